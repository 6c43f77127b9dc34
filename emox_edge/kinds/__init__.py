"""Bundle kinds: what differs between bundles (perception and prompts); the analyzer owns the rest.

A kind is one module here holding one ``BundleKind`` subclass, registered in ``KINDS`` by the
manifest's ``kind``. Adding a third kind means one new module and one line below.
"""

from __future__ import annotations

import importlib

from emox_edge.errors import BundleError

KINDS = {"nano-emox": "emox_edge.kinds.nanoemox:NanoEmoxKind", "lite": "emox_edge.kinds.lite:LiteKind"}


def kind_class(kind: str, *, where: object = "bundle"):
    """The ``BundleKind`` subclass for a manifest ``kind``.

    Raises:
        BundleError: an unknown kind (the message lists the known ones).
    """
    target = KINDS.get(kind)
    if target is None:
        raise BundleError(f"{where}: bundle kind {kind!r} is not one of {', '.join(KINDS)}")
    module, _, name = target.partition(":")
    return getattr(importlib.import_module(module), name)
