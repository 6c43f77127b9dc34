"""Where emox-edge keeps what it builds on first use (the default bundle, fetched model files)."""

from __future__ import annotations

import os
from pathlib import Path

ENV_HOME = "EMOX_EDGE_HOME"


def home() -> Path:
    """The cache root: ``$EMOX_EDGE_HOME`` if set, else ``platformdirs.user_cache_dir("emox-edge")``."""
    env = os.environ.get(ENV_HOME)
    if env:
        return Path(env).expanduser()
    import platformdirs

    return Path(platformdirs.user_cache_dir("emox-edge"))
