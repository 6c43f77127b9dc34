"""Bundles: a directory of model files described by ``bundle.json``."""

from emox_edge.bundle.manifest import (
    BUNDLE_FORMAT,
    BUNDLE_FORMAT_VERSION,
    MANIFEST_NAME,
    Bundle,
    BundleError,
    write_manifest,
)

__all__ = [
    "BUNDLE_FORMAT",
    "BUNDLE_FORMAT_VERSION",
    "MANIFEST_NAME",
    "Bundle",
    "BundleError",
    "write_manifest",
]
