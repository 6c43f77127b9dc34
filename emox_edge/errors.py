"""The library's error types: the user's input, bundle or device is at fault, never emox-edge.

Each subclasses the matching built-in, so ``except ValueError`` written before these existed keeps
working. The CLI turns an ``EmoxEdgeError`` (and the OS's ``FileNotFoundError``, ``PermissionError``,
``ConnectionError``, ...) into one line and exit 2; any other exception is a bug in emox-edge: exit 1,
with the traceback under ``-v``.
"""

from __future__ import annotations


class EmoxEdgeError(Exception):
    """Base of every error emox-edge raises on purpose (bad input, bad bundle, missing device)."""


class BadInputError(EmoxEdgeError, ValueError):
    """A value the caller gave is not acceptable (an option, a task, a file's content). The message
    names the value and what is allowed."""


class InputTypeError(EmoxEdgeError, TypeError):
    """An argument of the wrong type (the message lists the accepted types)."""


class MediaError(BadInputError):
    """A media file or stream that cannot be decoded (corrupt, truncated, empty, not media)."""


class BundleError(EmoxEdgeError, ValueError):
    """A bundle is missing an entry, corrupt or of an unsupported format. The message names the file."""


class DeviceUnavailableError(EmoxEdgeError, RuntimeError):
    """A device (camera, microphone, accelerator) that was asked for cannot be used."""


class ParityError(EmoxEdgeError, ValueError):
    """A converted model does not compute what its reference computes (within the gate's tolerance)."""


class ExportError(EmoxEdgeError, RuntimeError):
    """A conversion step failed for a reason outside the input (e.g. an exporter's limitation)."""


class MissingDependencyError(EmoxEdgeError, ImportError):
    """An optional dependency is not installed; the message says what to install."""
