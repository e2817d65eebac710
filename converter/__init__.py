"""mlconvert: convert trained machine-learning models between file formats, verified.

The public API is lazy: importing `mlconvert` imports no ML library.
"""
from __future__ import annotations

from mlconvert._version import __version__

__all__ = ["convert", "plan", "inspect", "verify", "doctor", "__version__"]


def __getattr__(name: str):
    if name in ("convert", "plan", "inspect", "verify", "doctor"):
        from mlconvert import api

        return getattr(api, name)
    raise AttributeError(f"module 'mlconvert' has no attribute {name!r}")
