"""XGBoost's legacy binary model format, translated to the JSON model document.

XGBoost >= 3.1 no longer reads the binary format that `save_model` wrote before JSON
took over, so old model files need a translator. This module reads the bytes itself
(standard library only) and builds the JSON document that xgboost 3.x accepts with
`Booster.load_model(bytearray(json.dumps(doc).encode()))`.

The layout, as written by the C++ structs of each release (little-endian):

    ["binf"]                      only from 1.0+ (and 0.4x CLI/R); 0.5-0.9 wrote none
    LearnerModelParam   136 B     base_score f32, num_feature u32, num_class i32,
                                  contain_extra_attrs i32, contain_eval_metrics i32,
                                  major u32, minor u32, num_target u32 (2.x),
                                  boost_from_average i32 (2.x), reserved
    objective name      u64 length + bytes
    booster name        u64 length + bytes ("gbtree" | "dart" | "gblinear")
    gbtree:  GBTreeModelParam 160 B, num_trees x RegTree, tree_info i32[num_trees]
             RegTree = TreeParam 148 B, Node[num_nodes] (20 B), NodeStat[num_nodes] (16 B)
    dart:    gbtree part, then weight_drop (u64 count + f32[])
    gblinear: param 136 B, weights (u64 count + f32[])
    attributes          if contain_extra_attrs: u64 count + (key, value) strings;
                        1.x puts the objective's JSON config under "objective"
    (pre-1.0 only) count:poisson max_delta_step string; eval metric names

base_score: before 1.0 the file holds the *margin* (the learner stored
ProbToMargin(base_score)); from 1.0 on it holds the user-facing value. The JSON
document wants the user-facing value for xgboost 3.x, which applies its own
ProbToMargin on load, so pre-1.0 margins are mapped back through the inverse link.
"""
from __future__ import annotations

import json
import math
import re
import struct

from mlconvert.errors import InputError

__all__ = ["LegacyFormatError", "is_legacy_binary", "legacy_to_json", "describe_legacy"]

# The schema version the produced document follows (what xgboost 3.2 writes).
JSON_SCHEMA_VERSION = [3, 2, 0]


class LegacyFormatError(InputError, ValueError):
    """The bytes are not a readable legacy XGBoost binary model (corrupt, truncated, unsupported)."""

    def __init__(self, message: str, hint: str | None = None, details: dict | None = None):
        super().__init__(
            message,
            hint=hint
            or "the file is not a complete XGBoost binary model; re-export it from the "
            "XGBoost version that wrote it, or check that it was copied whole",
            details=details,
        )


_LEARNER_PARAM = struct.Struct("<fIiiiIIIi25i")  # 136 bytes
_GBTREE_PARAM = struct.Struct("<iiiiqii32i")  # 160 bytes
_TREE_PARAM = struct.Struct("<iiiiii31i")  # 148 bytes
_NODE = struct.Struct("<iiiIf")  # parent, left, right, sindex (bit 31 = default left), value
_STAT = struct.Struct("<fffi")  # loss_chg, sum_hess, base_weight, leaf_child_cnt
_GBLINEAR_PARAM = struct.Struct("<Ii32i")  # 136 bytes
_U64 = struct.Struct("<Q")
_I32 = struct.Struct("<i")
_F32 = struct.Struct("<f")

_DELETED = 0xFFFFFFFF  # a node's sindex when the pruner deleted it
_BOOSTERS = ("gbtree", "gblinear", "dart")
_OBJECTIVE_NAME = re.compile(r"^[a-z][a-z0-9_]*(:[a-z][a-z0-9_]*)+$")

# Objectives xgboost 3.x knows; old names are renamed on the way.
_RENAMED = {"reg:linear": "reg:squarederror"}
_KNOWN_OBJECTIVES = {
    "reg:squarederror", "reg:squaredlogerror", "reg:logistic", "reg:pseudohubererror",
    "reg:absoluteerror", "reg:quantileerror", "reg:gamma", "reg:tweedie",
    "binary:logistic", "binary:logitraw", "binary:hinge", "count:poisson",
    "survival:cox", "survival:aft", "multi:softmax", "multi:softprob",
    "rank:pairwise", "rank:ndcg", "rank:map",
}
# xgboost 3.x ProbToMargin per objective: logit, log, or identity (everything else).
_LOGIT_LINK = {"binary:logistic", "reg:logistic"}
_LOG_LINK = {"count:poisson", "reg:gamma", "reg:tweedie", "survival:cox", "survival:aft"}


class _Reader:
    """Bounds-checked cursor: every short read becomes a LegacyFormatError."""

    def __init__(self, data: bytes, pos: int = 0):
        self.data = memoryview(data)
        self.pos = pos

    @property
    def remaining(self) -> int:
        return len(self.data) - self.pos

    def take(self, n: int, what: str) -> memoryview:
        if n < 0 or n > self.remaining:
            raise LegacyFormatError(
                f"truncated or corrupt XGBoost binary model: {what} needs {n} bytes at "
                f"offset {self.pos}, but the data has {self.remaining} left "
                f"(file size {len(self.data)})"
            )
        out = self.data[self.pos : self.pos + n]
        self.pos += n
        return out

    def unpack(self, st: struct.Struct, what: str) -> tuple:
        return st.unpack(self.take(st.size, what))

    def u64(self, what: str) -> int:
        return self.unpack(_U64, what)[0]

    def string(self, what: str, max_len: int | None = None) -> bytes:
        n = self.u64(f"length of {what}")
        if max_len is not None and n > max_len:
            raise LegacyFormatError(f"corrupt XGBoost binary model: {what} claims {n} bytes")
        return bytes(self.take(n, what))

    def float_vector(self, what: str) -> list[float]:
        n = self.u64(f"length of {what}")
        if n * 4 > self.remaining:
            raise LegacyFormatError(
                f"truncated or corrupt XGBoost binary model: {what} claims {n} floats at "
                f"offset {self.pos}, but only {self.remaining} bytes are left"
            )
        return [v for (v,) in _F32.iter_unpack(self.take(4 * n, what))]


def _text(raw: bytes | memoryview) -> str:
    return bytes(raw).decode("utf-8", errors="replace")


def _f32_str(v: float) -> str:
    """Shortest decimal that reads back as the same float32."""
    if not math.isfinite(v):
        return repr(v)
    for digits in range(6, 10):
        s = f"{v:.{digits}g}"
        try:
            if _F32.unpack(_F32.pack(float(s)))[0] == v:
                return s
        except OverflowError:  # rounding near float32's max went past it
            continue
    return repr(v)


def _to_f32(v: float) -> float:
    try:
        return _F32.unpack(_F32.pack(v))[0]
    except OverflowError:
        return math.copysign(math.inf, v)


# ---------------------------------------------------------------------------------
# header: learner parameters, objective, booster


def _read_header(r: _Reader) -> dict:
    variant = "pre-1.0"
    if bytes(r.data[:4]) == b"binf":
        r.pos = 4
        variant = "binf"
    (base_score, num_feature, num_class, extra_attrs, eval_metrics, major, minor,
     num_target, boost_from_average, *_reserved) = r.unpack(_LEARNER_PARAM, "learner parameters")
    # Plausibility: these are small flags/counts in every real file; junk fails here.
    if not 0 <= num_class <= 1_000_000 or num_feature > 0x7FFFFFFF:
        raise LegacyFormatError(
            f"not an XGBoost binary model: implausible num_class={num_class} / "
            f"num_feature={num_feature}"
        )
    if extra_attrs not in (0, 1) or eval_metrics not in (0, 1):
        raise LegacyFormatError("not an XGBoost binary model: flag fields are not 0/1")
    if major > 100 or minor > 1000 or (major == 0 and minor != 0):
        raise LegacyFormatError(f"not an XGBoost binary model: version field {major}.{minor}")
    if num_target > 1_000_000 or boost_from_average not in (0, 1):
        raise LegacyFormatError("not an XGBoost binary model: implausible num_target")

    # Before 0.6 the objective name length could be written as a 32-bit value
    # followed by padding; xgboost's own reader tolerates it, so do we.
    n = r.u64("length of objective name")
    if n >= 0xFFFFFFFF:
        r.take(4, "objective name padding")
        n >>= 32
    if not 1 <= n <= 64:
        raise LegacyFormatError(f"not an XGBoost binary model: objective name length {n}")
    objective = _text(r.take(n, "objective name"))
    if not _OBJECTIVE_NAME.match(objective):
        raise LegacyFormatError(f"not an XGBoost binary model: objective name {objective!r}")
    booster = _text(r.string("booster name", max_len=16))
    if booster not in _BOOSTERS:
        raise LegacyFormatError(f"not an XGBoost binary model: booster name {booster!r}")
    return {
        "variant": variant,
        "base_score_raw": base_score,
        "num_feature": num_feature,
        "num_class": num_class,
        "contain_extra_attrs": extra_attrs,
        "contain_eval_metrics": eval_metrics,
        "major": major,
        "minor": minor,
        "num_target": max(num_target, 1),
        "boost_from_average": boost_from_average,
        "objective_raw": objective,
        "booster": booster,
    }


def is_legacy_binary(head: bytes) -> bool:
    """True when `head` (the first bytes of a file, ~200 suffice) starts a legacy binary model.

    Checks the learner parameter struct for plausible values and requires the
    length-prefixed objective and booster names that follow it.
    """
    try:
        _read_header(_Reader(bytes(head)))
    except LegacyFormatError:
        return False
    return True


# ---------------------------------------------------------------------------------
# boosters


def _read_tree(r: _Reader, index: int, hdr: dict) -> dict:
    what = f"tree {index}"
    (_roots, num_nodes, num_deleted, _depth, num_feature, size_leaf_vector,
     *_reserved) = r.unpack(_TREE_PARAM, f"{what} parameters")
    if num_nodes < 1:
        raise LegacyFormatError(f"corrupt XGBoost binary model: {what} has {num_nodes} nodes")
    # Scalar trees store 0 (<2.0) or 1 (2.x); 0.4x-0.6x would also have written a
    # leaf-vector block for other values, a feature no released updater used.
    if size_leaf_vector not in (0, 1):
        raise LegacyFormatError(
            f"{what} has size_leaf_vector={size_leaf_vector}: vector-leaf trees are not supported"
        )
    if num_nodes * (_NODE.size + _STAT.size) > r.remaining:
        raise LegacyFormatError(
            f"truncated or corrupt XGBoost binary model: {what} claims {num_nodes} nodes "
            f"at offset {r.pos}, but only {r.remaining} bytes are left"
        )
    nodes = list(_NODE.iter_unpack(r.take(num_nodes * _NODE.size, f"{what} nodes")))
    stats = list(_STAT.iter_unpack(r.take(num_nodes * _STAT.size, f"{what} node statistics")))

    lefts, rights, parents, indices, conds, dleft = [], [], [], [], [], []
    deleted = 0
    n_feat = hdr["num_feature"]
    for nid, (parent, left, right, sindex, value) in enumerate(nodes):
        if nid == 0:
            if parent != -1:
                raise LegacyFormatError(f"corrupt XGBoost binary model: {what} root has a parent")
        elif not 0 <= (parent & 0x7FFFFFFF) < num_nodes:
            raise LegacyFormatError(f"corrupt XGBoost binary model: {what} node {nid} parent")
        if sindex == _DELETED:
            deleted += 1
        elif left != -1:
            if not (0 < left < num_nodes and 0 < right < num_nodes):
                raise LegacyFormatError(
                    f"corrupt XGBoost binary model: {what} node {nid} has children "
                    f"{left}/{right} outside 0..{num_nodes - 1}"
                )
            if n_feat and (sindex & 0x7FFFFFFF) >= n_feat:
                raise LegacyFormatError(
                    f"corrupt XGBoost binary model: {what} node {nid} splits on feature "
                    f"{sindex & 0x7FFFFFFF}, the model has {n_feat}"
                )
        lefts.append(left)
        rights.append(right)
        parents.append(parent & 0x7FFFFFFF)  # JSON keeps the index; xgboost recomputes the side bit
        indices.append(sindex & 0x7FFFFFFF)
        conds.append(value)  # split threshold, or the leaf value for leaves
        dleft.append(sindex >> 31)
    if deleted != num_deleted:
        raise LegacyFormatError(
            f"corrupt XGBoost binary model: {what} records {num_deleted} deleted nodes, found {deleted}"
        )
    return {
        "base_weights": [s[2] for s in stats],
        "categories": [],
        "categories_nodes": [],
        "categories_segments": [],
        "categories_sizes": [],
        "default_left": dleft,
        "id": index,
        "left_children": lefts,
        "loss_changes": [s[0] for s in stats],
        "parents": parents,
        "right_children": rights,
        "split_conditions": conds,
        "split_indices": indices,
        "split_type": [0] * num_nodes,
        "sum_hessian": [s[1] for s in stats],
        "tree_param": {
            "num_deleted": str(num_deleted),
            "num_feature": str(num_feature),
            "num_nodes": str(num_nodes),
            "size_leaf_vector": "1",
        },
    }


def _n_groups(hdr: dict, gb_output_group: int) -> int:
    if hdr["major"] >= 2:  # 2.x dropped the gbtree field; the learner knows
        return max(hdr["num_class"], hdr["num_target"], 1)
    return max(gb_output_group, hdr["num_class"], 1)


def _read_gbtree(r: _Reader, hdr: dict) -> dict:
    (num_trees, roots_or_parallel, _nf, _pad, num_pbuffer, output_group, _slv,
     *_reserved) = r.unpack(_GBTREE_PARAM, "gbtree parameters")
    if not 0 <= num_trees <= 10_000_000:
        raise LegacyFormatError(f"corrupt XGBoost binary model: num_trees={num_trees}")
    trees = [_read_tree(r, i, hdr) for i in range(num_trees)]
    tree_info = []
    if num_trees:
        raw = r.take(4 * num_trees, "tree_info (output group of each tree)")
        tree_info = [g for (g,) in _I32.iter_unpack(raw)]
    groups = _n_groups(hdr, output_group)
    if any(not 0 <= g < groups for g in tree_info):
        raise LegacyFormatError(
            f"corrupt XGBoost binary model: tree_info has groups outside 0..{groups - 1}"
        )
    # 0.4x files saved "with pbuffer" carry the training prediction cache; skip it.
    if hdr["variant"] == "binf" and hdr["major"] == 0 and hdr["contain_extra_attrs"] and num_pbuffer:
        r.take(8 * groups * num_pbuffer, "prediction buffer (0.4x)")
    # 2.x records the forest size; older files have the (always 1) root count there
    # and random forests cannot be told from boosting rounds: prediction is the same.
    parallel = roots_or_parallel if hdr["major"] >= 2 and roots_or_parallel >= 1 else 1
    layer = groups * parallel
    indptr = list(range(0, num_trees + 1, layer)) if num_trees else [0]
    if indptr[-1] != num_trees:
        indptr.append(num_trees)
    return {
        "gbtree_model_param": {"num_parallel_tree": str(parallel), "num_trees": str(num_trees)},
        "iteration_indptr": indptr,
        "tree_info": tree_info,
        "trees": trees,
    }


def _read_booster(r: _Reader, hdr: dict) -> dict:
    booster = hdr["booster"]
    if booster == "gblinear":
        num_feature, output_group, *_reserved = r.unpack(_GBLINEAR_PARAM, "gblinear parameters")
        weights = r.float_vector("gblinear weights")
        # 1.0+ leaves these fields zero (deprecated); the learner's values count then.
        num_feature = num_feature or hdr["num_feature"]
        groups = max(output_group, hdr["num_class"], hdr["num_target"], 1)
        if len(weights) != (num_feature + 1) * groups:
            raise LegacyFormatError(
                f"corrupt XGBoost binary model: gblinear has {len(weights)} weights, expected "
                f"({num_feature} features + bias) x {groups} groups"
            )
        return {"name": "gblinear", "model": {"weights": weights}}
    model = _read_gbtree(r, hdr)
    if booster == "gbtree":
        return {"name": "gbtree", "model": model}
    weight_drop: list[float] = []
    if model["trees"]:
        weight_drop = r.float_vector("dart weight_drop")
    if len(weight_drop) != len(model["trees"]):
        raise LegacyFormatError(
            f"corrupt XGBoost binary model: dart has {len(weight_drop)} tree weights "
            f"for {len(model['trees'])} trees"
        )
    return {"name": "dart", "gbtree": {"name": "gbtree", "model": model}, "weight_drop": weight_drop}


def _read_attributes(r: _Reader) -> dict[str, str]:
    n = r.u64("number of attributes")
    if n > r.remaining // 16:  # each pair needs at least two length fields
        raise LegacyFormatError(f"corrupt XGBoost binary model: {n} attributes claimed")
    attrs = {}
    for i in range(n):
        key = _text(r.string(f"attribute {i} name"))
        attrs[key] = _text(r.string(f"attribute {key!r} value"))
    return attrs


def _read_trailer_pre10(r: _Reader, hdr: dict, objective: str) -> dict:
    """Fields 0.7-0.9 appended after the attributes (0.6 wrote none of them)."""
    extra: dict = {}
    if objective == "count:poisson" and r.remaining:
        extra["max_delta_step"] = _text(r.string("count:poisson max_delta_step", max_len=64))
    if hdr["contain_eval_metrics"] and r.remaining:
        n = r.u64("number of eval metrics")
        if n > r.remaining // 8:
            raise LegacyFormatError(f"corrupt XGBoost binary model: {n} eval metrics claimed")
        extra["metrics"] = [_text(r.string("eval metric name", max_len=256)) for _ in range(n)]
    return extra


# ---------------------------------------------------------------------------------
# objective and base_score


def _objective_name(raw: str) -> str:
    name = raw[4:] if raw.startswith("gpu:") else raw  # 0.8x GPU aliases
    return _RENAMED.get(name, name)


def _objective_config(name: str, hdr: dict, attrs: dict, extra: dict) -> dict:
    config: dict = {"name": name}
    saved = attrs.pop("objective", None)  # 1.x stores the objective's JSON config here
    if saved is not None:
        try:
            loaded = json.loads(saved)
        except ValueError as exc:
            raise LegacyFormatError(
                f"corrupt XGBoost binary model: the saved objective configuration is not JSON ({exc})"
            ) from None
        if isinstance(loaded, dict):
            config = loaded
            config["name"] = _objective_name(str(loaded.get("name", name)))
    # xgboost 3.x refuses these objectives without their parameter block.
    if config["name"].startswith("multi:"):
        config["softmax_multiclass_param"] = {"num_class": str(hdr["num_class"])}
    elif config["name"] == "count:poisson":
        mds = attrs.pop("count_poisson_max_delta_step", None) or extra.get("max_delta_step") or "0.7"
        config.setdefault("poisson_regression_param", {"max_delta_step": mds})
    elif config["name"] == "reg:tweedie":
        config.setdefault("tweedie_regression_param", {"tweedie_variance_power": "1.5"})
    elif config["name"] == "survival:aft":
        config.setdefault(
            "aft_loss_param", {"aft_loss_distribution": "normal", "aft_loss_distribution_scale": "1"}
        )
    return config


def _base_score(hdr: dict, objective: str) -> tuple[float, float]:
    """(user-facing base_score for the JSON document, margin the old model added)."""
    raw = hdr["base_score_raw"]
    if not math.isfinite(raw):
        raise LegacyFormatError(f"XGBoost binary model has a non-finite base_score ({raw})")
    if hdr["major"] >= 1:
        # Stored user-facing. Only binary:logitraw changed its link since: 1.0-1.2
        # (and 1.3.0) applied logit, 1.3.1+ none. Files record no patch level, so
        # 1.3 counts as 1.3.1+ (1.3.0 was current for a few days).
        if objective == "binary:logitraw" and (hdr["major"], hdr["minor"]) < (1, 3):
            p = min(max(raw, 1e-16), 1 - 1e-16)
            margin = -math.log(1.0 / p - 1.0)
            return _to_f32(margin), margin
        return raw, _margin_of(objective, raw)
    # Pre-1.0 stored the margin itself; invert xgboost 3.x's link so it gets it back.
    margin = raw
    if objective in _LOGIT_LINK:
        score = 1.0 / (1.0 + math.exp(-margin)) if margin > -700 else 0.0
    elif objective in _LOG_LINK:
        score = math.exp(margin) if margin < 88 else math.inf
    else:
        score = margin
    score = _to_f32(score)
    if not math.isfinite(score) or (objective in _LOGIT_LINK and not 0.0 < score < 1.0):
        raise LegacyFormatError(
            f"base margin {margin} of this {objective} model cannot be expressed as an xgboost 3.x base_score"
        )
    return score, margin


def _margin_of(objective: str, score: float) -> float:
    if objective in _LOGIT_LINK:
        p = min(max(score, 1e-6), 1 - 1e-6)
        return -math.log(1.0 / p - 1.0)
    if objective in _LOG_LINK:
        return math.log(score) if score > 0 else -math.inf
    return score


# ---------------------------------------------------------------------------------
# public entry points


def _parse(data: bytes) -> dict:
    if not isinstance(data, (bytes, bytearray, memoryview)):
        raise TypeError(f"expected bytes, got {type(data).__name__}")
    r = _Reader(bytes(data))
    if r.remaining < 4:
        raise LegacyFormatError(f"not an XGBoost binary model: only {r.remaining} bytes")
    hdr = _read_header(r)
    gbm = _read_booster(r, hdr)
    attrs: dict[str, str] = {}
    # In 0.4x "binf" files this slot meant "saved with prediction buffer", not attributes.
    if hdr["contain_extra_attrs"] and not (hdr["variant"] == "binf" and hdr["major"] == 0):
        attrs = _read_attributes(r)
    objective = _objective_name(hdr["objective_raw"])
    extra = _read_trailer_pre10(r, hdr, objective) if hdr["major"] == 0 else {}
    return {"hdr": hdr, "gbm": gbm, "attrs": attrs, "extra": extra, "objective": objective,
            "trailing": r.remaining}


def legacy_to_json(data: bytes) -> dict:
    """Translate a legacy binary model to the XGBoost JSON model document (a dict).

    Float values are the exact float32 values of the file (as Python floats), so
    `json.dumps` of the result round-trips bit-for-bit through xgboost's reader.
    """
    p = _parse(data)
    hdr, attrs, objective = p["hdr"], p["attrs"], p["objective"]
    if objective not in _KNOWN_OBJECTIVES:
        raise LegacyFormatError(
            f"the model's objective {hdr['objective_raw']!r} has no counterpart in xgboost 3.x",
            hint="known objectives: " + ", ".join(sorted(_KNOWN_OBJECTIVES)),
        )
    obj_config = _objective_config(objective, hdr, attrs, p["extra"])
    attrs.pop("metrics", None)  # evaluation metric names: training-time only
    attrs.pop("count_poisson_max_delta_step", None)
    score, _margin = _base_score(hdr, obj_config["name"])
    gbm = p["gbm"]
    if gbm["name"] == "gblinear":
        # The round count is not recorded; xgboost 3.x treats 0 rounds as "not fitted".
        niter = attrs.get("niter", "")
        gbm["model"]["boosted_rounds"] = int(niter) if niter.isdigit() and int(niter) > 0 else 1
    n_out = max(hdr["num_class"], hdr["num_target"], 1)
    return {
        "learner": {
            "attributes": attrs,
            "feature_names": [],
            "feature_types": [],
            "gradient_booster": gbm,
            "learner_model_param": {
                "base_score": "[" + ",".join([_f32_str(score)] * n_out) + "]",
                "boost_from_average": str(hdr["boost_from_average"]),
                "num_class": str(hdr["num_class"]),
                "num_feature": str(hdr["num_feature"]),
                "num_target": str(hdr["num_target"]),
            },
            "objective": obj_config,
        },
        "version": list(JSON_SCHEMA_VERSION),
    }


def describe_legacy(data: bytes) -> dict:
    """Static facts about a legacy binary model, for `mlconvert inspect`."""
    p = _parse(data)
    hdr, gbm = p["hdr"], p["gbm"]
    if gbm["name"] == "gblinear":
        num_trees = 0
    else:
        model = gbm["model"] if gbm["name"] == "gbtree" else gbm["gbtree"]["model"]
        num_trees = len(model["trees"])
    try:
        score, margin = _base_score(hdr, p["objective"])
    except LegacyFormatError:
        score, margin = hdr["base_score_raw"], hdr["base_score_raw"]
    out = {
        "variant": hdr["variant"],
        "objective": hdr["objective_raw"],
        "booster": hdr["booster"],
        "num_feature": hdr["num_feature"],
        "num_class": hdr["num_class"],
        "num_trees": num_trees,
        "base_score": float(_f32_str(score)),
        "base_margin": margin,
    }
    if hdr["major"]:
        out["version"] = f"{hdr['major']}.{hdr['minor']}"
    if p["attrs"]:
        out["attributes"] = sorted(k for k in p["attrs"] if k != "objective")
    return out
