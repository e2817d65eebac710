"""What this environment has, found without importing anything heavy.

Distributions are probed with importlib.metadata, modules with find_spec, programs
with shutil.which. Results are cached for the life of the process.
"""
from __future__ import annotations

import functools
import importlib.metadata
import importlib.util
import re
import shutil

# Distribution names that provide the same import (xgboost ships as two wheels).
_ALIASES = {"xgboost": ("xgboost", "xgboost-cpu"), "jpmml_evaluator": ("jpmml_evaluator", "jpmml-evaluator")}

# Libraries `--version` and `doctor` report, in the order they are shown.
LIBRARIES = (
    "numpy", "scikit-learn", "xgboost", "lightgbm", "catboost", "onnx", "onnxruntime",
    "skl2onnx", "onnxmltools", "h5py", "tensorflow", "keras", "tf2onnx", "coremltools",
    "sklearn2pmml", "jpmml_evaluator",
)


@functools.cache
def dist_version(dist: str) -> str | None:
    """Installed version of a distribution, or None."""
    for name in _ALIASES.get(dist, (dist,)):
        try:
            return importlib.metadata.version(name)
        except importlib.metadata.PackageNotFoundError:
            continue
    # tensorflow-cpu and friends install the same module under another name.
    for suffix in ("-cpu",):
        try:
            return importlib.metadata.version(dist + suffix)
        except importlib.metadata.PackageNotFoundError:
            pass
    return None


@functools.cache
def has_module(module: str) -> bool:
    try:
        return importlib.util.find_spec(module) is not None
    except (ImportError, ValueError):
        return False


@functools.cache
def which(program: str) -> str | None:
    return shutil.which(program)


def parse_version(text: str) -> tuple[int, ...]:
    """'1.9.0rc1' -> (1, 9, 0). Enough for range checks on release numbers."""
    parts = []
    for piece in text.split("."):
        m = re.match(r"\d+", piece)
        if not m:
            break
        parts.append(int(m.group()))
    return tuple(parts)


def version_in_range(version: str, minimum: str | None = None, below: str | None = None) -> bool:
    v = parse_version(version)
    if minimum and v < parse_version(minimum):
        return False
    if below and v >= parse_version(below):
        return False
    return True


def library_versions() -> dict[str, str | None]:
    return {name: dist_version(name) for name in LIBRARIES}
