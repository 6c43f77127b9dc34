"""``POST /v1/analyze`` uploads: multipart parsed as it arrives, the file streamed to a temporary file,
size-limited while it is read (never held in memory, never kept)."""

from __future__ import annotations

import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import AsyncIterator

FIELDS = ("file", "tasks", "subtitle")
MAX_FIELD_BYTES = 16 * 1024
_SUFFIX = re.compile(r"^\.[a-z0-9]{1,10}$")


class UploadError(Exception):
    """A request the upload parser refuses; ``status`` is the HTTP status to answer with."""

    def __init__(self, status: int, message: str) -> None:
        super().__init__(message)
        self.status = status


@dataclass
class Upload:
    """A received upload: the temporary file (delete it with ``discard``), its name, the text fields."""

    path: Path | None = None
    filename: str = ""
    size: int = 0
    fields: dict[str, str] = field(default_factory=dict)

    def discard(self) -> None:
        if self.path is not None:
            self.path.unlink(missing_ok=True)
            self.path = None


def _multipart():
    try:
        from python_multipart.multipart import MultipartParser, parse_options_header
    except ImportError:  # python-multipart < 0.0.13
        from multipart.multipart import MultipartParser, parse_options_header
    return MultipartParser, parse_options_header


class _Parts:
    """The parser's callbacks: one part at a time, a file part written straight to disk."""

    def __init__(self, upload: Upload, *, max_bytes: int, tmp_dir: str | None) -> None:
        _, self._parse_header = _multipart()
        self.upload, self.max_bytes, self.tmp_dir = upload, max_bytes, tmp_dir
        self._header_field = b""
        self._header_value = b""
        self._headers: dict[bytes, bytes] = {}
        self._name = ""
        self._text: bytearray | None = None
        self._file = None

    def on_part_begin(self) -> None:
        self._headers, self._name, self._text, self._file = {}, "", None, None

    def on_header_field(self, data: bytes, start: int, end: int) -> None:
        self._header_field += data[start:end]

    def on_header_value(self, data: bytes, start: int, end: int) -> None:
        self._header_value += data[start:end]

    def on_header_end(self) -> None:
        self._headers[self._header_field.lower()] = self._header_value
        self._header_field = self._header_value = b""

    def on_headers_finished(self) -> None:
        disposition, params = self._parse_header(self._headers.get(b"content-disposition", b""))
        name = params.get(b"name", b"").decode("utf-8", "replace")
        if disposition != b"form-data" or name not in FIELDS:
            raise UploadError(422, f"unknown form field {name!r}; valid fields: {', '.join(FIELDS)}")
        if name in self.upload.fields or (name == "file" and self.upload.path is not None):
            raise UploadError(422, f"form field {name!r} given twice")
        self._name = name
        if name != "file":
            self._text = bytearray()
            return
        if b"filename" not in params:
            raise UploadError(422, "form field 'file' must be a file (with a filename)")
        filename = params[b"filename"].decode("utf-8", "replace")
        suffix = Path(filename).suffix.lower()
        fd, path = tempfile.mkstemp(prefix="emox-upload-", suffix=suffix if _SUFFIX.match(suffix) else "",
                                    dir=self.tmp_dir)
        self.upload.path, self.upload.filename = Path(path), Path(filename).name[:200] or "upload"
        self._file = os.fdopen(fd, "wb")

    def on_part_data(self, data: bytes, start: int, end: int) -> None:
        if self._file is not None:
            self.upload.size += end - start
            if self.upload.size > self.max_bytes:
                raise UploadError(413, f"the file is larger than the server's limit of {self.max_bytes / 2**20:g} MB "
                                       "(--max-upload-mb)")
            self._file.write(data[start:end])
        elif self._text is not None:
            self._text += data[start:end]
            if len(self._text) > MAX_FIELD_BYTES:
                raise UploadError(413, f"form field {self._name!r} is longer than {MAX_FIELD_BYTES} bytes")

    def on_part_end(self) -> None:
        if self._file is not None:
            self._file.close()
            self._file = None
        elif self._text is not None:
            try:
                self.upload.fields[self._name] = self._text.decode("utf-8")
            except UnicodeDecodeError:
                raise UploadError(422, f"form field {self._name!r} is not UTF-8 text") from None
            self._text = None

    def close(self) -> None:
        if self._file is not None:
            self._file.close()


async def receive_upload(content_type: str, content_length: str | None, body: AsyncIterator[bytes], *,
                         max_bytes: int, tmp_dir: str | None = None) -> Upload:
    """Parse a multipart body as it streams in.

    Raises:
        UploadError: 400 not multipart or malformed; 413 too large; 422 a missing, unknown or
            repeated field. The temporary file is removed before raising.
    """
    MultipartParser, parse_options_header = _multipart()
    kind, params = parse_options_header(content_type or "")
    if kind != b"multipart/form-data" or not params.get(b"boundary"):
        raise UploadError(400, "send multipart/form-data with a 'file' field (and 'tasks', 'subtitle')")
    limit = max_bytes + 2 * MAX_FIELD_BYTES * len(FIELDS) + 4096  # the file, the text fields, the framing
    if content_length is not None and content_length.isdigit() and int(content_length) > limit:
        raise UploadError(413, f"the request is larger than the server's limit of {max_bytes / 2**20:g} MB "
                               "(--max-upload-mb)")
    upload = Upload()
    parts = _Parts(upload, max_bytes=max_bytes, tmp_dir=tmp_dir)
    callbacks = {name: getattr(parts, name) for name in ("on_part_begin", "on_header_field", "on_header_value",
                                                         "on_header_end", "on_headers_finished", "on_part_data",
                                                         "on_part_end")}
    parser = MultipartParser(params[b"boundary"], callbacks)
    received = 0
    try:
        async for chunk in body:
            received += len(chunk)
            if received > limit:
                raise UploadError(413, f"the request is larger than the server's limit of {max_bytes / 2**20:g} MB "
                                       "(--max-upload-mb)")
            parser.write(chunk)
        parser.finalize()
        if upload.path is None:
            raise UploadError(422, "form field 'file' is missing")
        return upload
    except ValueError as exc:  # python-multipart's parse errors: a malformed body
        parts.close()
        upload.discard()
        raise UploadError(400, f"malformed multipart body: {exc}") from None
    except BaseException:  # refused, or the client went away: no file is left behind
        parts.close()
        upload.discard()
        raise
