"""Make float32 tree thresholds decide exactly as the source's float64 thresholds do.

ONNX's classic tree operators store thresholds as float32. A converter that rounds
a float64 threshold t to the *nearest* float32 flips the branch for inputs that lie
between t and its rounded value; ONNX inputs are float32, so the exact rule is:
for `x <= t`, use the largest float32 <= t; for `x < t`, the smallest float32 >= t.
"""
from __future__ import annotations

import numpy as np

TREE_OPS = ("TreeEnsembleClassifier", "TreeEnsembleRegressor")


def _nearest_map(thresholds: dict[int, list[float]]) -> dict[int, dict[float, tuple[float, float]]]:
    """feature -> {float32(t): (smallest t, largest t) that round to it}."""
    out: dict[int, dict[float, tuple[float, float]]] = {}
    for feature, values in thresholds.items():
        table: dict[float, tuple[float, float]] = {}
        for t in values:
            key = float(np.float32(t))
            lo, hi = table.get(key, (t, t))
            table[key] = (min(lo, t), max(hi, t))
        out[feature] = table
    return out


def fix_float32_thresholds(model, thresholds: dict[int, list[float]]) -> int:
    """Adjust the ONNX model's tree thresholds in place; returns how many changed."""
    table = _nearest_map(thresholds)
    changed = 0
    for node in model.graph.node:
        if node.op_type not in TREE_OPS:
            continue
        attrs = {a.name: a for a in node.attribute}
        if "nodes_values" not in attrs:
            continue
        feats, modes, values = attrs["nodes_featureids"].ints, attrs["nodes_modes"].strings, attrs["nodes_values"].floats
        for i, (feature, mode) in enumerate(zip(feats, modes)):
            v = np.float32(values[i])
            lo, hi = table.get(int(feature), {}).get(float(v), (None, None))
            if lo is None:
                continue
            if mode == b"BRANCH_LEQ" and hi < float(v):  # every source threshold lies below v
                values[i] = float(np.nextafter(v, np.float32(-np.inf)))
                changed += 1
            elif mode == b"BRANCH_LT" and lo > float(v):
                values[i] = float(np.nextafter(v, np.float32(np.inf)))
                changed += 1
    return changed
