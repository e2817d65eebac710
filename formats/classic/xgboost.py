"""XGBoost model document (JSON, UBJSON or legacy binary, as formats.xgboost_model reads
them) → the classic representation, without importing xgboost.

What a prediction is, per objective (XGBoost's `predict()`):
- raw margin: reg:squarederror/squaredlogerror/pseudohubererror/absoluteerror,
  reg:quantileerror (one target per quantile), binary:logitraw, rank:*
- sigmoid(margin): reg:logistic (a value), binary:logistic (a two-class classifier)
- exp(margin): count:poisson, reg:gamma, reg:tweedie, survival:cox, survival:aft
- binary:hinge: the class 1 where margin > 0, else 0
- multi:softprob: softmax probabilities; multi:softmax: the argmax class

margin = base margin (base_score through the objective's link) + sum of leaves over the
trees of the iterations used: all of them, or up to `best_iteration` when the model was
trained with early stopping (what XGBoost's scikit-learn interface predicts with).
Splits: numeric `x < threshold` goes left; a categorical split sends the categories it
lists right and every other value (unseen, negative) left; a missing value follows
`default_left`. DART models predict with their per-tree weights folded into the leaves.
"""
from __future__ import annotations

import math
import struct

from mlconvert.formats.classic import ir

# The objective's link from base_score to the base margin (XGBoost's ProbToMargin).
_LOGIT_LINK = {"binary:logistic", "reg:logistic"}
_LOG_LINK = {"count:poisson", "reg:gamma", "reg:tweedie", "survival:cox", "survival:aft"}
_IDENTITY = {"reg:squarederror", "reg:squaredlogerror", "reg:pseudohubererror", "reg:absoluteerror",
             "reg:quantileerror", "binary:logitraw", "binary:hinge", "multi:softmax", "multi:softprob",
             "rank:pairwise", "rank:ndcg", "rank:map", "reg:linear"}
OBJECTIVES = _LOGIT_LINK | _LOG_LINK | _IDENTITY

# How XGBoost's predict() reports each objective: the outputs our graph gives.
LABEL_ONLY = ("binary:hinge", "multi:softmax")


def objective_of(doc: dict) -> str:
    return doc.get("learner", {}).get("objective", {}).get("name", "")


def _f32(v) -> float:
    """XGBoost stores float32; JSON prints the shortest decimal, which read as a double is
    not the same number (a threshold equal to an input would decide the other way)."""
    try:
        return struct.unpack("<f", struct.pack("<f", float(v)))[0]
    except OverflowError:
        return math.copysign(math.inf, float(v))


def _floats(text) -> list[float]:
    """base_score: "0.5", "[5E-1]" or "[1E0,2E0]"."""
    if isinstance(text, (int, float)):
        return [float(text)]
    text = str(text).strip()
    if text.startswith("["):
        text = text[1:-1]
    return [_f32(v) for v in text.split(",") if v.strip()]


def _margin(objective: str, score: float) -> float:
    if objective in _LOGIT_LINK:
        p = min(max(score, 1e-16), 1 - 1e-16)
        return -math.log(1.0 / p - 1.0)
    if objective in _LOG_LINK:
        return math.log(score) if score > 0 else -math.inf
    return score


def _booster_model(doc: dict) -> tuple[dict, list[float] | None, str]:
    """(gbtree model, per-tree DART weights or None, booster name)."""
    booster = doc["learner"]["gradient_booster"]
    name = booster.get("name", "gbtree")
    if name == "dart":
        return booster["gbtree"]["model"], list(map(float, booster.get("weight_drop") or [])), name
    model = booster.get("model", {})
    weights = model.get("weight_drop")
    return model, (list(map(float, weights)) if weights else None), name


def _iterations(model: dict, n_trees: int, per_iteration: int) -> list[int]:
    """Tree index where each iteration starts, and the end."""
    indptr = model.get("iteration_indptr")
    if indptr:
        return [int(v) for v in indptr]
    per_iteration = max(per_iteration, 1)
    return list(range(0, n_trees + 1, per_iteration)) if n_trees % per_iteration == 0 else [0, n_trees]


def best_iteration(doc: dict) -> int | None:
    """The early-stopping iteration the model records (attribute best_iteration, or
    best_ntree_limit of XGBoost < 1.4), or None."""
    attrs = doc["learner"].get("attributes") or {}
    try:
        if "best_iteration" in attrs:
            return int(attrs["best_iteration"])
    except ValueError:
        return None
    return None


def trees_used(doc: dict) -> int:
    """How many trees XGBoost's scikit-learn predict() sums (all, or up to best_iteration)."""
    model, _, _ = _booster_model(doc)
    n = len(model.get("trees", []))
    best = best_iteration(doc)
    if best is None:
        return n
    params = doc["learner"].get("learner_model_param", {})
    groups = max(int(float(params.get("num_class", 0) or 0)), 1)
    targets = max(int(float(params.get("num_target", 1) or 1)), 1)
    parallel = int(model.get("gbtree_model_param", {}).get("num_parallel_tree", 1) or 1)
    trees = model.get("trees", [])
    vector_leaves = bool(trees) and int(trees[0].get("tree_param", {}).get("size_leaf_vector", 1) or 1) > 1
    per_iteration = parallel * (1 if vector_leaves else max(groups, targets))
    bounds = _iterations(model, n, per_iteration)
    return bounds[min(best + 1, len(bounds) - 1)]


def problems(doc: dict) -> list[str]:
    """What this reader cannot express faithfully (empty when it can read the model)."""
    learner = doc.get("learner", {})
    out = []
    objective = objective_of(doc)
    if objective not in OBJECTIVES:
        out.append(f"objective {objective or '(none)'}")
    name = learner.get("gradient_booster", {}).get("name", "gbtree")
    if name == "gblinear":
        out.append("booster gblinear (a linear model, not trees)")
    elif name not in ("gbtree", "dart"):
        out.append(f"booster {name}")
    params = learner.get("learner_model_param", {})
    targets = int(float(params.get("num_target", 1) or 1))
    if targets > 1 and objective in ("binary:logistic", "binary:hinge", "multi:softmax", "multi:softprob"):
        out.append(f"{objective} with {targets} targets (multi-label)")
    return out


def read(doc: dict) -> ir.Graph:
    """The model as a Graph with one input "X" and outputs "label"/"probabilities" (a
    classifier) or "value"; raises Unsupported naming what it cannot express."""
    found = problems(doc)
    if found:
        raise ir.Unsupported(found, where="XGBoost reader")
    learner = doc["learner"]
    objective = objective_of(doc)
    params = learner.get("learner_model_param", {})
    n_features = int(float(params.get("num_feature", 0) or 0))
    num_class = int(float(params.get("num_class", 0) or 0))
    num_target = max(int(float(params.get("num_target", 1) or 1)), 1)
    model, weights, _ = _booster_model(doc)
    trees_json = model.get("trees", [])
    used = trees_used(doc)
    tree_info = model.get("tree_info") or [0] * len(trees_json)
    n_outputs = num_class if num_class > 1 else num_target
    scores = _floats(params.get("base_score", "0.5"))
    if len(scores) == 1:
        scores = scores * n_outputs
    if len(scores) != n_outputs:
        raise ir.Unsupported([f"base_score with {len(scores)} values for {n_outputs} outputs"], where="XGBoost reader")
    base = [_margin(objective, s) for s in scores]
    trees = []
    for k, tree in enumerate(trees_json[:used]):
        weight = weights[k] if weights else 1.0
        trees.append(_tree(tree, int(tree_info[k]) if k < len(tree_info) else 0, weight, n_features))
    x = ir.Value("X", "float", n_features)
    feature_names = learner.get("feature_names") or None
    metadata = {"producer": "xgboost", "objective": objective, "feature_names": feature_names,
                "trees": len(trees), "trees_in_file": len(trees_json)}
    if objective in ("binary:logistic", "binary:hinge") or objective.startswith("multi:"):
        n_classes = num_class if objective.startswith("multi:") else 2
        n_targets = n_classes if objective.startswith("multi:") else 1
        transform = {"binary:logistic": "logistic", "binary:hinge": "none"}.get(objective, "softmax")
        if objective.startswith("multi:") and n_classes < 2:
            raise ir.Unsupported([f"{objective} with num_class={num_class}"], where="XGBoost reader")
        op = ir.TreeEnsemble(["X"], ["label", "probabilities"], n_targets, trees, base=base,
                             post_transform=transform, classes=list(range(n_classes)))
        role = "scores" if objective == "binary:hinge" else "probabilities"
        outputs = [ir.Output("label", "label", list(range(n_classes))),
                   ir.Output("probabilities", role, list(range(n_classes)))]
    else:
        transform = "logistic" if objective in _LOGIT_LINK else "exp" if objective in _LOG_LINK else "none"
        op = ir.TreeEnsemble(["X"], ["value"], n_outputs, trees, base=base, post_transform=transform)
        outputs = [ir.Output("value", "value")]
    metadata["source_outputs"] = ["label"] if objective in LABEL_ONLY else [o.name for o in outputs
                                                                             if o.role != "scores"]
    return ir.Graph([x], [op], outputs, metadata).check()


def _tree(tree: dict, group: int, weight: float, n_features: int) -> ir.Tree:
    lefts, rights = tree["left_children"], tree["right_children"]
    index, conds = tree["split_indices"], tree["split_conditions"]
    default_left = tree["default_left"]
    split_type = tree.get("split_type") or [0] * len(lefts)
    size_leaf = int(tree.get("tree_param", {}).get("size_leaf_vector", 1) or 1)
    leaf_weights = tree.get("leaf_weights")
    categories: dict[int, tuple] = {}
    cats = tree.get("categories") or []
    for node, start, size in zip(tree.get("categories_nodes") or [], tree.get("categories_segments") or [],
                                 tree.get("categories_sizes") or []):
        categories[int(node)] = tuple(float(c) for c in cats[int(start):int(start) + int(size)])
    out = ir.Tree()
    for i in range(len(lefts)):
        if lefts[i] == -1:
            if size_leaf > 1:  # a vector leaf: right_children holds its row in leaf_weights
                row = int(rights[i])
                values = leaf_weights[row * size_leaf:(row + 1) * size_leaf]
                out.add_leaf([(t, _f32(_f32(v) * weight)) for t, v in enumerate(values)])
            else:
                out.add_leaf([(group, _f32(_f32(conds[i]) * weight))])
        elif int(split_type[i]) == 1:
            # The listed categories go right; any other value (unseen, negative) left.
            out.add_split(int(index[i]), "in", categories=categories.get(i, ()),
                          missing_yes=not bool(default_left[i]))
        else:
            out.add_split(int(index[i]), "lt", _f32(conds[i]), missing_yes=bool(default_left[i]))
    for i in range(len(lefts)):
        if lefts[i] != -1:
            if int(split_type[i]) == 1:
                out.link(i, int(rights[i]), int(lefts[i]))
            else:
                out.link(i, int(lefts[i]), int(rights[i]))
        if lefts[i] != -1 and not 0 <= int(index[i]) < max(n_features, 1):
            raise ir.Unsupported([f"a split on feature {index[i]} of a {n_features}-feature model"],
                                 where="XGBoost reader")
    return out


def categories(doc: dict) -> dict[int, list[float]]:
    """The category codes each categorical feature takes: from the model's category
    encoder where it has one, else those its splits name."""
    learner = doc.get("learner", {})
    types = learner.get("feature_types") or []
    found: dict[int, set] = {f: set() for f, t in enumerate(types) if t == "c"}
    model, _, _ = _booster_model(doc) if "gradient_booster" in learner else ({}, None, "")
    encoder = (model.get("cats") or {}).get("enc") or []
    for f, enc in enumerate(encoder):
        offsets = enc.get("offsets") or []
        n = len(offsets) - 1 if offsets and offsets[-1] == len(enc.get("values") or []) and len(offsets) > 1 \
            else len(offsets)
        if n > 0:
            found.setdefault(f, set()).update(range(n))
    for tree in model.get("trees", []):
        cats = tree.get("categories") or []
        for node, start, size in zip(tree.get("categories_nodes") or [], tree.get("categories_segments") or [],
                                     tree.get("categories_sizes") or []):
            f = int(tree["split_indices"][int(node)])
            found.setdefault(f, set()).update(float(c) for c in cats[int(start):int(start) + int(size)])
    return {f: sorted(float(v) for v in values) for f, values in found.items() if values}


def _all_trees(doc: dict) -> list[dict]:
    learner = doc.get("learner", {})
    if "gradient_booster" not in learner:
        return []
    model, _, _ = _booster_model(doc)
    return model.get("trees", [])


def numeric_thresholds(doc: dict) -> dict[int, list[float]]:
    """Each feature's numeric split thresholds (categorical splits have none)."""
    out: dict[int, list[float]] = {}
    for tree in _all_trees(doc):
        types = tree.get("split_type") or [0] * len(tree["left_children"])
        for i, left in enumerate(tree["left_children"]):
            if left != -1 and int(types[i]) == 0:
                out.setdefault(int(tree["split_indices"][i]), []).append(_f32(tree["split_conditions"][i]))
    return out


def split_features(doc: dict) -> set[int]:
    """Features some split tests (each has a default direction for missing values)."""
    return {int(tree["split_indices"][i]) for tree in _all_trees(doc)
            for i, left in enumerate(tree["left_children"]) if left != -1}
