"""Small file helpers shared by the runtime and the converters: atomic writes and hashing."""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import tempfile
from pathlib import Path
from typing import Any, Iterator

from emox_edge.errors import BadInputError

_CHUNK = 1 << 20
_TEMP_STEM = 80  # characters of the final name kept in a temporary name (255 is the usual limit)


def sha256_file(path: str | os.PathLike) -> str:
    """Return the hex sha256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(_CHUNK), b""):
            digest.update(block)
    return digest.hexdigest()


@contextlib.contextmanager
def atomic_path(final: str | os.PathLike) -> Iterator[Path]:
    """Yield a temporary path beside ``final``; rename it onto ``final`` only if the block succeeds.

    Nothing half-written is ever left under the final name: on error the temporary file is removed.
    """
    final = Path(final)
    tmp_path = temp_beside(final)
    try:
        yield tmp_path
        if tmp_path.exists():
            # mkstemp creates 0600 files; give the result the permissions a plain open() would.
            os.chmod(tmp_path, 0o666 & ~_umask())
        os.replace(tmp_path, final)
    finally:
        if tmp_path.exists():
            tmp_path.unlink()


def temp_beside(final: Path, suffix: str = "") -> Path:
    """Create an empty ``.NAME.XXXX.part<suffix>`` file beside ``final`` (its parent is created).

    Raises:
        BadInputError: the final name is longer than the file system allows.
        IsADirectoryError: ``final`` is a directory.
    """
    try:
        if final.is_dir():  # also how a name too long for the file system shows (ENAMETOOLONG)
            raise IsADirectoryError(f"output {final} is a directory, expected a file path")
        final.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{final.name[:_TEMP_STEM]}.", suffix=f".part{suffix}", dir=final.parent)
    except OSError as exc:
        if exc.errno == errno.ENAMETOOLONG:
            raise BadInputError(f"output path too long: {str(final)[:80]}... ({len(final.name)} characters in its "
                                f"file name, {len(str(final))} in all; file systems allow 255 per name)") from exc
        raise
    os.close(fd)
    return Path(tmp)


class AtomicFile:
    """A temporary file beside ``final`` that ``commit()`` renames onto it and ``discard()`` removes.

    The temporary name starts with ``.`` and ends with ``.part`` + ``suffix`` (so a writer can tell its
    format from the suffix); it gets the permissions a plain ``open()`` would give.

    Raises:
        BadInputError, IsADirectoryError: as ``temp_beside``.
    """

    def __init__(self, final: str | os.PathLike, suffix: str = "") -> None:
        self.final = Path(final)
        self.tmp = temp_beside(self.final, suffix)
        os.chmod(self.tmp, 0o666 & ~_umask())

    def commit(self) -> None:
        if self.tmp.exists():
            os.replace(self.tmp, self.final)

    def discard(self) -> None:
        self.tmp.unlink(missing_ok=True)


def _umask() -> int:
    mask = os.umask(0)
    os.umask(mask)
    return mask


def write_bytes_atomic(final: str | os.PathLike, data: bytes) -> Path:
    with atomic_path(final) as tmp:
        tmp.write_bytes(data)
    return Path(final)


def write_text_atomic(final: str | os.PathLike, text: str) -> Path:
    return write_bytes_atomic(final, text.encode("utf-8"))


def write_json_atomic(final: str | os.PathLike, obj: Any) -> Path:
    return write_text_atomic(final, json.dumps(obj, indent=2, ensure_ascii=False, sort_keys=False) + "\n")
