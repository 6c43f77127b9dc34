"""The bundle manifest (``bundle.json``): what a bundle holds and how to check it is intact.

A bundle is a directory the runtime opens with nothing but its manifest. The manifest is JSON with
these top-level keys (writers add the sections their bundle kind needs; readers ignore unknown keys):

- ``format`` ("emox-edge-bundle") and ``format_version`` (int; readers refuse a newer major).
- ``kind``: "nano-emox" or "lite"; ``name``; ``created`` (ISO time); ``producer`` (tool + version).
- ``files``: ``{relative_path: {"size": int, "sha256": hex}}`` for every file the bundle uses.
- ``language_core``: ``{"gguf": {quant_type: relative_path}, "default": quant_type,
  "embedding_width": int, ...}``.
- ``graphs``: ``{name: {"file": relpath (int8 when present), "fp32": relpath, "inputs": [io],
  "outputs": [io]}}`` with ``io = {"name": str, "shape": [int|str], "dtype": str}``.
- ``preprocess``, ``prompt``, ``tasks``, ``generation``: see docs/bundle-format.md.
"""

from __future__ import annotations

import datetime as _dt
import json
import os
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Mapping

from emox_edge._io import sha256_file, write_json_atomic
from emox_edge._version import __version__
from emox_edge.errors import BadInputError, BundleError

MANIFEST_NAME = "bundle.json"
BUNDLE_FORMAT = "emox-edge-bundle"
BUNDLE_FORMAT_VERSION = 1
_VERIFY_MODES = ("none", "size", "sha256")


@dataclass(frozen=True)
class Bundle:
    """An opened, verified bundle directory."""

    root: Path
    manifest: Mapping[str, Any] = field(repr=False)

    @classmethod
    def open(cls, root: str | os.PathLike, *, verify: str = "size") -> "Bundle":
        """Open ``root/bundle.json`` and check every listed file.

        Args:
            root: the bundle directory.
            verify: "size" (default, cheap), "sha256" (reads every byte) or "none".

        Raises:
            FileNotFoundError: the directory or its manifest does not exist.
            BundleError: the manifest is unreadable or of another format, or a listed file is
                missing, of the wrong size or of the wrong sha256 (the message names the file).
            ValueError: ``verify`` is not one of the accepted modes.
        """
        if verify not in _VERIFY_MODES:
            raise BadInputError(f"verify must be one of {_VERIFY_MODES}, got {verify!r}")
        root = Path(root).expanduser()
        manifest_path = root / MANIFEST_NAME
        if not root.is_dir():
            raise FileNotFoundError(f"bundle directory not found: {root}")
        if not manifest_path.is_file():
            raise FileNotFoundError(f"{manifest_path}: no bundle manifest (expected {MANIFEST_NAME} in the bundle directory)")
        try:
            manifest = json.loads(manifest_path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise BundleError(f"{manifest_path}: not a readable JSON manifest ({exc})") from exc
        _check_header(manifest_path, manifest)
        bundle = cls(root=root, manifest=manifest)
        bundle.verify(mode=verify)
        return bundle

    @property
    def kind(self) -> str:
        return str(self.manifest["kind"])

    @property
    def name(self) -> str:
        return str(self.manifest.get("name", self.kind))

    def section(self, key: str) -> Mapping[str, Any]:
        """Return a top-level manifest section, raising a BundleError naming it when absent."""
        value = self.manifest.get(key)
        if not isinstance(value, Mapping):
            raise BundleError(f"{self.root / MANIFEST_NAME}: section {key!r} is missing or not an object")
        return value

    def require(self, dotted: str) -> Any:
        """The manifest value at a dotted path ("graphs.expression.file").

        Raises:
            BundleError: an entry on the way is missing (the message names the first one missing).
        """
        value: Any = self.manifest
        walked = []
        for key in dotted.split("."):
            walked.append(key)
            if not isinstance(value, Mapping) or key not in value:
                raise BundleError(f"{self.root / MANIFEST_NAME}: a {self.kind!r} bundle needs the manifest entry "
                                  f"{'.'.join(walked)!r}, which is missing")
            value = value[key]
        return value

    def path(self, relpath: str) -> Path:
        """Absolute path of a file the manifest lists.

        Raises:
            BundleError: ``relpath`` is not listed in ``files``, or it resolves (symlinks included)
                to a place outside the bundle directory.
        """
        files = self.manifest.get("files", {})
        if not isinstance(relpath, str) or relpath not in files:
            raise BundleError(f"{self.root / MANIFEST_NAME}: file {relpath!r} is not listed in 'files'")
        return self._inside(relpath)

    def _inside(self, relpath: str) -> Path:
        root = self.root.resolve()
        target = (root / relpath).resolve()
        if os.path.isabs(relpath) or not target.is_relative_to(root):
            raise BundleError(f"{self.root / MANIFEST_NAME}: entry {relpath!r} points outside the bundle "
                              f"directory ({target}); a bundle may only name files inside it")
        return target

    def verify(self, *, mode: str = "size") -> None:
        """Check every listed file exists with the recorded size (and sha256 when mode='sha256')."""
        if mode == "none":
            return
        for rel, meta in self.manifest.get("files", {}).items():
            target = self._inside(rel)
            if not target.is_file():
                raise BundleError(f"{target}: file listed in the bundle manifest is missing")
            size = target.stat().st_size
            if size != int(meta["size"]):
                raise BundleError(f"{target}: corrupt file, size {size} bytes, manifest expects {meta['size']}")
            if mode == "sha256":
                digest = sha256_file(target)
                if digest != meta["sha256"]:
                    raise BundleError(f"{target}: corrupt file, sha256 {digest} != manifest {meta['sha256']}")


def _check_header(path: Path, manifest: Any) -> None:
    if not isinstance(manifest, dict) or manifest.get("format") != BUNDLE_FORMAT:
        raise BundleError(f"{path}: not an emox-edge bundle manifest (expected format {BUNDLE_FORMAT!r})")
    version = manifest.get("format_version")
    if not isinstance(version, int) or version > BUNDLE_FORMAT_VERSION:
        raise BundleError(
            f"{path}: bundle format_version {version!r} is not supported by emox-edge {__version__} "
            f"(supports up to {BUNDLE_FORMAT_VERSION}); upgrade emox-edge"
        )
    for key in ("kind", "files"):
        if key not in manifest:
            raise BundleError(f"{path}: manifest has no {key!r} key")


def file_entry(path: str | os.PathLike) -> dict[str, Any]:
    """The manifest's ``files`` entry for one file: size and sha256."""
    return {"size": os.path.getsize(path), "sha256": sha256_file(path)}


def write_manifest(root: str | os.PathLike, body: Mapping[str, Any], *, files: list[str]) -> Path:
    """Write ``root/bundle.json`` atomically.

    ``body`` holds ``kind`` and the sections of that kind; the header, creation time and the
    ``files`` table (size + sha256 of each relative path in ``files``) are added here.
    """
    root = Path(root)
    missing = [rel for rel in files if not (root / rel).is_file()]
    if missing:
        raise FileNotFoundError(f"{root}: cannot write a manifest, missing files: {', '.join(missing)}")
    if "kind" not in body:
        raise BadInputError("manifest body needs a 'kind'")
    manifest = {
        "format": BUNDLE_FORMAT,
        "format_version": BUNDLE_FORMAT_VERSION,
        "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
        "producer": f"emox-edge {__version__}",
        **body,
        "files": {rel: file_entry(root / rel) for rel in sorted(files)},
    }
    return write_json_atomic(root / MANIFEST_NAME, manifest)
