"""LightGBM text model (`Booster.save_model`) → the classic representation, without
importing LightGBM.

LightGBM's prediction (tree.h, v2-v4), per tree node:
- decision_type bit 0: categorical; bit 1: a missing value goes left; bits 2-3: what is
  missing: 0 None (NaN is read as 0), 1 Zero (0 and NaN are missing), 2 NaN.
- numeric: `x <= threshold` goes left (float64 compare).
- categorical: int(x) in the node's bitset goes left; NaN and negative values go right.
- linear trees: leaf = const + sum(coeff * x[feature]), or the plain leaf value when one of
  those features is missing.
raw = sum of leaves per class (tree k scores class k % num_tree_per_iteration), divided
by the iteration count for `rf` (average_output); then the objective's transform:
sigmoid(s * raw) for binary / cross_entropy / multiclassova, softmax for multiclass,
exp for poisson / gamma / tweedie, identity for regression, l1, huber, fair, quantile,
mape, ranking and custom objectives.
"""
from __future__ import annotations

import json

from mlconvert.formats.classic import ir

_IDENTITY = {"regression", "regression_l2", "l2", "mean_squared_error", "mse", "l2_root", "root_mean_squared_error",
             "rmse", "regression_l1", "l1", "mean_absolute_error", "mae", "huber", "fair", "quantile", "mape",
             "mean_absolute_percentage_error", "lambdarank", "rank_xendcg", "xendcg", "xe_ndcg", "xe_ndcg_mart",
             "xendcg_mart", "custom", "none", "null", "na"}
_EXP = {"poisson", "gamma", "tweedie"}
_SIGMOID = {"binary", "cross_entropy", "xentropy", "multiclassova", "multiclass_ova", "ova", "ovr"}
_SOFTMAX = {"multiclass", "softmax"}
OBJECTIVES = _IDENTITY | _EXP | _SIGMOID | _SOFTMAX
# LightGBM's kZeroThreshold (1e-35f): a value this close to 0 is zero for zero-as-missing.
ZERO_THRESHOLD = 1.0000000180025095e-35
_CLASSIFIERS = {"binary", "cross_entropy", "xentropy", "multiclass", "softmax", "multiclassova", "multiclass_ova",
                "ova", "ovr"}


def parse(text: str) -> tuple[dict[str, str], list[dict[str, str]], dict]:
    """(header fields, one dict of fields per tree, trailer: pandas_categorical)."""
    header: dict[str, str] = {}
    trees: list[dict[str, str]] = []
    trailer: dict = {}
    current = header
    for line in text.splitlines():
        line = line.rstrip("\r")
        if line.startswith("Tree="):
            current = {}
            trees.append(current)
        elif line in ("end of trees",) or line.startswith("feature_importances:") \
                or line.startswith("feature importances:") or line.startswith("parameters:"):
            current = {}
        elif line.startswith("pandas_categorical:"):
            value = line.partition(":")[2].strip()
            try:
                trailer["pandas_categorical"] = json.loads(value) if value not in ("", "null") else None
            except ValueError:
                trailer["pandas_categorical"] = None
        elif line.startswith("[") and ":" in line and current is not header:
            key, _, value = line[1:-1].partition(": ")
            trailer.setdefault("parameters", {})[key.strip()] = value.strip()
        elif "=" in line:
            key, _, value = line.partition("=")
            current[key] = value
        elif line == "average_output" and current is header:
            header["average_output"] = "1"
    return header, trees, trailer


def _objective(header: dict[str, str]) -> tuple[str, dict[str, str]]:
    """(objective name, its parameters such as sigmoid:1 or num_class:3)."""
    parts = header.get("objective", "custom").split()
    name = parts[0] if parts else "custom"
    params = {}
    for p in parts[1:]:
        key, _, value = p.partition(":")
        params[key] = value or "1"
    return name, params


def problems(header: dict[str, str], trees: list[dict[str, str]]) -> list[str]:
    out = []
    name, params = _objective(header)
    if name not in OBJECTIVES:
        out.append(f"objective {name}")
    if "sqrt" in params:
        out.append(f"objective {name} with sqrt (predictions are sign(raw) * raw^2)")
    return out


def _numbers(text: str | None, kind=float) -> list:
    return [kind(v) for v in (text or "").split()]


def read_text(text: str) -> ir.Graph:
    header, trees, trailer = parse(text)
    return read(header, trees, trailer)


def read(header: dict[str, str], trees_text: list[dict[str, str]], trailer: dict | None = None) -> ir.Graph:
    found = problems(header, trees_text)
    if found:
        raise ir.Unsupported(found, where="LightGBM reader")
    name, params = _objective(header)
    n_features = int(header.get("max_feature_idx", "-1")) + 1
    per_iteration = max(int(header.get("num_tree_per_iteration", "1")), 1)
    num_class = int(header.get("num_class", "1"))
    average = "average_output" in header
    n_iterations = max(len(trees_text) // per_iteration, 1)
    scale = float(params.get("sigmoid", "1")) if name in _SIGMOID else 1.0
    # A multiclass rf averages per class over the iterations, not over every tree.
    leaf_scale = scale / n_iterations if average and per_iteration > 1 else scale
    zero_missing: set[int] = set()
    other_missing: set[int] = set()
    trees = []
    for k, fields in enumerate(trees_text):
        tree, zeros, others = _tree(fields, k % per_iteration, leaf_scale)
        trees.append(tree)
        zero_missing |= zeros
        other_missing |= others
    both = sorted(zero_missing & other_missing)
    if both:
        raise ir.Unsupported([f"feature {f} with both zero-as-missing and other missing-value splits" for f in both],
                             where="LightGBM reader")
    aggregate = "average" if average and per_iteration == 1 else "sum"
    ops: list = []
    source = "X"
    if zero_missing:  # a 0 is "missing" for these features: it takes the default direction
        ops.append(ir.ZeroToMissing(["X"], ["X_missing"], sorted(zero_missing), within=ZERO_THRESHOLD))
        source = "X_missing"
    names = header.get("feature_names", "").split() or None
    metadata = {"producer": "lightgbm", "objective": header.get("objective", "custom"), "feature_names": names,
                "trees": len(trees), "average_output": average,
                "pandas_categorical": (trailer or {}).get("pandas_categorical")}
    if name in _CLASSIFIERS:
        n_classes = 2 if name in ("binary", "cross_entropy", "xentropy") else num_class
        n_targets = 1 if n_classes == 2 and per_iteration == 1 else per_iteration
        transform = "softmax" if name in _SOFTMAX else "logistic"
        classes = list(range(n_classes))
        ops.append(ir.TreeEnsemble([source], ["label", "probabilities"], n_targets, trees, aggregate=aggregate,
                                   post_transform=transform, classes=classes))
        outputs = [ir.Output("label", "label", classes), ir.Output("probabilities", "probabilities", classes)]
    else:
        transform = "exp" if name in _EXP else "none"
        ops.append(ir.TreeEnsemble([source], ["value"], per_iteration, trees, aggregate=aggregate,
                                   post_transform=transform))
        outputs = [ir.Output("value", "value")]
    metadata["source_outputs"] = [o.name for o in outputs]
    return ir.Graph([ir.Value("X", "float", n_features)], ops, outputs, metadata).check()


def _tree(fields: dict[str, str], target: int, scale: float) -> tuple[ir.Tree, set[int], set[int]]:
    n_leaves = int(fields.get("num_leaves", "1"))
    leaf_value = _numbers(fields.get("leaf_value"))
    tree = ir.Tree()
    zeros: set[int] = set()
    others: set[int] = set()
    if n_leaves <= 1:
        tree.add_leaf([(target, (leaf_value[0] if leaf_value else 0.0) * scale)],
                      linear=_linear(fields, 0, scale) if fields.get("is_linear") == "1" else None)
        return tree, zeros, others
    feature = _numbers(fields["split_feature"], int)
    threshold = _numbers(fields["threshold"])
    decision = _numbers(fields.get("decision_type"), int) or [0] * len(feature)
    left, right = _numbers(fields["left_child"], int), _numbers(fields["right_child"], int)
    boundaries = _numbers(fields.get("cat_boundaries"), int)
    bitsets = _numbers(fields.get("cat_threshold"), int)
    linear = fields.get("is_linear") == "1"
    n_internal = len(feature)
    # Internal nodes keep their index; leaf j becomes node n_internal + j.
    for i in range(n_internal):
        kind = decision[i]
        missing_type = (kind >> 2) & 3
        default_left = bool(kind & 2)
        if kind & 1:  # categorical: the bitset's members go left, NaN and negatives right
            c = int(threshold[i])
            words = bitsets[boundaries[c]:boundaries[c + 1]]
            members = [32 * w + b for w, word in enumerate(words) for b in range(32) if (word >> b) & 1]
            tree.add_split(feature[i], "in", categories=members, missing_yes=False)
            others.add(feature[i])
        else:
            if missing_type == 1:
                zeros.add(feature[i])
                missing_yes = default_left
            elif missing_type == 2:
                others.add(feature[i])
                missing_yes = default_left
            else:  # None: a NaN is read as 0
                others.add(feature[i])
                missing_yes = 0.0 <= threshold[i]
            tree.add_split(feature[i], "le", threshold[i], missing_yes=missing_yes)
    for j in range(n_leaves):
        tree.add_leaf([(target, leaf_value[j] * scale)], linear=_linear(fields, j, scale) if linear else None)
    for i in range(n_internal):
        tree.link(i, _child(left[i], n_internal), _child(right[i], n_internal))
    return tree, zeros, others


def _child(index: int, n_internal: int) -> int:
    return index if index >= 0 else n_internal + (~index)


def _linear(fields: dict[str, str], leaf: int, scale: float):
    consts = _numbers(fields.get("leaf_const"))
    counts = _numbers(fields.get("num_features"), int)
    features = _numbers(fields.get("leaf_features"), int)
    coeffs = _numbers(fields.get("leaf_coeff"))
    start = sum(counts[:leaf])
    terms = tuple((features[start + k], coeffs[start + k] * scale) for k in range(counts[leaf]))
    return (consts[leaf] * scale, terms)


def categories(header: dict[str, str]) -> dict[int, list[float]]:
    """The category codes each categorical feature took in training (feature_infos)."""
    out = {}
    for f, info in enumerate(header.get("feature_infos", "").split()):
        if info.startswith("[") or info == "none":
            continue
        values = sorted({float(v) for v in info.split(":") if v and float(v) >= 0})
        if values:
            out[f] = values
    return out

