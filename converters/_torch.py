"""Lazy import of torch with an install hint."""

from __future__ import annotations

INSTALL_HINT = "pip install 'emox-edge[convert]'"


def require_torch():
    """Return the ``torch`` module, or raise ImportError naming the extra to install."""
    try:
        import torch
    except ImportError as exc:  # pragma: no cover - exercised by a test that hides torch
        raise ImportError(f"the converters need PyTorch: {INSTALL_HINT}") from exc
    return torch
