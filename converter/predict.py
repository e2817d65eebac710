"""What verification runs: the Predictor protocol every format's predictor follows.

The adapters live with their formats (formats/<format>.py); this module holds what they
share. Standard library at the top, so format modules can subclass Predictor freely.
Each adapter answers `predict(X) -> {"label", "probabilities", "value"}` (the keys
that apply) and, for tree models, `thresholds()`: the split values per input
feature, which is where conversions that compare in float32 go wrong.
"""
from __future__ import annotations

from typing import Any

from mlconvert.errors import UsageError


class CannotRun(Exception):
    """The model cannot be run here (e.g. no Core ML runtime off macOS): verification
    reports 'unverified' with this message instead of failing."""


def named_inputs(X, specs: list[dict]) -> dict:
    """X as {input name: array}: a dict must name every input; a single array feeds a one-input model."""
    names = [spec["name"] for spec in specs]
    if isinstance(X, dict):
        missing = [n for n in names if n not in X]
        if missing:
            raise UsageError(f"the inputs given ({', '.join(map(str, X)) or 'none'}) lack {', '.join(missing)}",
                             hint=f"the model takes {', '.join(names)}: give a .npz sample with one array per name")
        return {n: X[n] for n in names}
    if len(names) != 1:
        raise UsageError(f"the model takes {len(names)} inputs ({', '.join(names)}), not one matrix",
                         hint="give a .npz sample with one array per input name")
    return {names[0]: X}


class Predictor:
    kind = "regressor"  # "classifier" | "regressor" | "neural-network"
    n_features: int | None = None
    feature_names: list[str] | None = None
    notes: tuple[str, ...] = ()  # what loading the model revealed, for the report

    def input_specs(self) -> list[dict] | None:
        """For models with named, shaped inputs (neural networks): [{"name", "dtype", "shape"}].
        None means one float matrix of n_features columns."""
        return None

    def predict(self, X) -> dict[str, Any]:
        raise NotImplementedError

    def thresholds(self) -> dict[int, list[float]]:
        return {}

    def ranges(self) -> dict[int, tuple[float, float]]:
        """Typical (center, scale) per feature where the model records them."""
        return {}

    def categories(self) -> dict[int, list[float]]:
        """The values a categorical input feature takes, where the model records them."""
        return {}

    def closed_features(self) -> set[int]:
        """Categorical features whose recorded values are the only ones the model accepts
        (it raises on any other), so verification inputs hold no unseen value there."""
        return set()

    def missing_features(self) -> set[int]:
        """Features for which the model has a direction for a missing value (NaN), so
        verification inputs may hold one there."""
        return set()


def column(values):
    """A (rows, 1) array as (rows,)."""
    import numpy as np

    arr = np.asarray(values)
    return arr.reshape(len(arr)) if arr.ndim == 2 and arr.shape[1] == 1 else arr


def binary_to_two_columns(p):
    """P(class 1) as [P(0), P(1)] columns; a (rows, classes) matrix as it is."""
    import numpy as np

    p = np.asarray(p, dtype=np.float64)
    return np.column_stack([1.0 - p, p]) if p.ndim == 1 else p


def booster_outputs(raw, kind: str) -> dict:
    """A booster's raw predict() as labels and probabilities, or values."""
    if kind == "classifier":
        proba = binary_to_two_columns(raw)
        return {"label": proba.argmax(axis=1), "probabilities": proba}
    return {"value": column(raw)}


def fixed_batch(shapes: list) -> int | None:
    """The batch size every input fixes (first dimension), or None when any is free."""
    sizes = {shape[0] if shape and isinstance(shape[0], int) and shape[0] > 0 else None for shape in shapes}
    return sizes.pop() if len(sizes) == 1 and None not in sizes else None


def run_in_batches(run, feed: dict, batch: int | None) -> list:
    """`run(feed)` over rows in slices of the model's fixed batch size (the last one padded
    by repeating its final row), outputs joined again; one call when the batch is free."""
    import numpy as np

    rows = {len(v) for v in feed.values() if np.ndim(v)}
    if not batch or len(rows) != 1 or rows == {batch}:
        return run(feed)
    n = rows.pop()
    parts: list[list] = []
    for start in range(0, n, batch):
        chunk = {}
        for name, value in feed.items():
            piece = value[start:start + batch]
            if len(piece) < batch:
                piece = np.concatenate([piece, np.repeat(piece[-1:], batch - len(piece), axis=0)])
            chunk[name] = piece
        parts.append(run(chunk))
    joined = []
    for i in range(len(parts[0])):
        if isinstance(parts[0][i], list):  # ZipMap: a list of rows
            joined.append([row for part in parts for row in part[i]][:n])
        else:
            joined.append(np.concatenate([np.asarray(part[i]) for part in parts])[:n])
    return joined
