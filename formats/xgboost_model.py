"""XGBoost model files: JSON, UBJSON, and the legacy binary format.

JSON and UBJSON are read statically here. Legacy binaries (XGBoost < 1.0 without a
header, 1.x with "binf") are no longer loadable by XGBoost >= 3.1, so they are
translated to the JSON document by our own reader (xgboost_legacy.py).
"""
from __future__ import annotations

import json
import struct
from pathlib import Path

from mlconvert import probe
from mlconvert.errors import InputError
from mlconvert.formats import Format, register_format
from mlconvert.formats import _ubjson

CLASSIFIER_OBJECTIVES = ("binary:", "multi:")


def _is_ubjson(head: bytes) -> bool:
    # An object whose first key (length-prefixed by an int marker) is "learner" or "version".
    return head[:1] == b"{" and head[1:2] in (b"L", b"l", b"i", b"U", b"I") and b"learner" in head[:64]


def _is_json(head: bytes) -> bool:
    text = head.lstrip()[:256]
    return text[:1] == b"{" and (b'"learner"' in text or b'"version"' in text) and b'"learner"' in head


def sniff(head: bytes, path: Path) -> bool:
    if _is_ubjson(head) or _is_json(head):
        return True
    from mlconvert.formats import xgboost_legacy

    return xgboost_legacy.is_legacy_binary(head)


def encoding(path: Path) -> str:
    """'json', 'ubj' or 'legacy' by content."""
    from mlconvert.formats import read_head, xgboost_legacy

    head = read_head(path)
    if _is_ubjson(head):
        return "ubj"
    if _is_json(head):
        return "json"
    if xgboost_legacy.is_legacy_binary(head):
        return "legacy"
    raise InputError(f"{path} is not an XGBoost model file", hint="expected JSON, UBJSON or a legacy binary")


def read_document(path: Path) -> dict:
    """The model as XGBoost's JSON document, whatever the encoding."""
    data = Path(path).read_bytes()
    kind = encoding(path)
    try:
        if kind == "json":
            return json.loads(data)
        if kind == "ubj":
            return _ubjson.loads(data)
        from mlconvert.formats import xgboost_legacy

        return xgboost_legacy.legacy_to_json(data)
    except (ValueError, KeyError, struct.error, UnicodeDecodeError) as exc:
        raise InputError(
            f"{path} looks like an XGBoost {kind} model but cannot be read: {exc}",
            hint="the file is probably truncated or corrupt",
        ) from exc


def summarize(doc: dict) -> dict:
    learner = doc.get("learner", {})
    params = learner.get("learner_model_param", {})
    objective = learner.get("objective", {}).get("name", "")
    booster = learner.get("gradient_booster", {})
    model = booster.get("model", booster.get("gbtree", {}).get("model", {}))
    trees = model.get("trees", [])
    num_class = int(float(params.get("num_class", 0) or 0))
    version = doc.get("version")
    return {
        "flavor": "xgboost",
        "kind": "classifier" if objective.startswith(CLASSIFIER_OBJECTIVES) else
        ("ranker" if objective.startswith("rank:") else "regressor"),
        "producer": "xgboost",
        "producer_version": ".".join(map(str, version)) if isinstance(version, list) else version,
        "n_features": int(float(params.get("num_feature", 0) or 0)) or None,
        "n_classes": num_class if num_class > 1 else (2 if objective.startswith("binary:") else None),
        "details": {
            "objective": objective,
            "booster": booster.get("name"),
            "trees": len(trees),
            "base_score": params.get("base_score"),
            "feature_names": learner.get("feature_names") or None,
            "feature_types": sorted(set(learner.get("feature_types") or [])) or None,
            "attributes": learner.get("attributes") or None,
        },
    }


def _scale_leaves(model: dict, weights: list[float]) -> None:
    for tree, weight in zip(model["trees"], weights):
        for node, left in enumerate(tree["left_children"]):
            if left == -1:  # a leaf: its value lives in split_conditions and base_weights
                tree["split_conditions"][node] *= weight
                tree["base_weights"][node] *= weight


def has_tree_weights(doc: dict) -> bool:
    """XGBoost >= 3.4 writes DART as a gbtree whose model carries per-tree weights;
    older XGBoost loads such a file but silently ignores the weights."""
    booster = doc.get("learner", {}).get("gradient_booster", {})
    return booster.get("name") == "gbtree" and bool(booster.get("model", {}).get("weight_drop"))


def dart_as_gbtree(doc: dict) -> dict:
    """A DART model as the equivalent plain gbtree. At prediction time DART weighs tree i
    by weight_drop[i], which is the same as scaling that tree's leaf values. Both layouts:
    name "dart" with the weights beside the gbtree (XGBoost < 3.4), and a gbtree whose
    model holds the weights (XGBoost >= 3.4)."""
    booster = doc["learner"]["gradient_booster"]
    if booster.get("name") == "dart":
        model = booster["gbtree"]["model"]
        _scale_leaves(model, booster["weight_drop"])
        doc["learner"]["gradient_booster"] = {"name": "gbtree", "model": model}
    elif has_tree_weights(doc):
        _scale_leaves(booster["model"], booster["model"].pop("weight_drop"))
    return doc


def _recorded_version(path: Path, kind: str, doc: dict) -> str | None:
    """The XGBoost version that wrote the file (legacy documents carry the translator's)."""
    if kind == "legacy":
        from mlconvert.formats import xgboost_legacy

        return xgboost_legacy.describe_legacy(Path(path).read_bytes()).get("version")
    version = doc.get("version")
    return ".".join(map(str, version)) if isinstance(version, list) else version


def describe(path: Path) -> dict:
    kind = encoding(path)
    doc = read_document(path)
    out = summarize(doc)
    out["producer_version"] = _recorded_version(path, kind, doc)
    out["details"]["encoding"] = kind
    warnings = out.setdefault("warnings", [])
    if kind == "legacy":
        warnings.append("legacy binary format: XGBoost >= 3.1 cannot load it; mlconvert translates it to JSON")
    if has_tree_weights(doc):
        warnings.append("DART with per-tree weights (XGBoost >= 3.4): mlconvert folds the weights into the leaves, "
                        "which older XGBoost would ignore")
    installed = probe.dist_version("xgboost")
    written = out["producer_version"]
    if installed and written and probe.parse_version(written) > probe.parse_version(installed):
        warnings.append(f"written by XGBoost {written}, installed {installed}: newer model features may be missed")
    if not warnings:
        del out["warnings"]
    return out


def load_booster(path: Path):
    """An xgboost.Booster. Legacy binaries go through our translator, and DART weights
    that the installed XGBoost would ignore are folded into the leaves first."""
    import xgboost

    booster = xgboost.Booster()
    try:
        kind = encoding(path)
        doc = read_document(path) if kind == "legacy" or _may_have_weights(path) else None
        if doc is not None and (kind == "legacy" or has_tree_weights(doc)):
            booster.load_model(bytearray(json.dumps(dart_as_gbtree(doc) if kind != "legacy" else doc).encode()))
        else:
            booster.load_model(str(path))
    except xgboost.core.XGBoostError as exc:
        raise InputError(f"XGBoost cannot load {path}: {str(exc).splitlines()[0]}") from exc
    return booster


def _may_have_weights(path: Path) -> bool:
    """Cheap test before parsing a whole document: the key's bytes appear in the file."""
    return b"weight_drop" in Path(path).read_bytes()


def load(path: Path, **_):
    """A scikit-learn style model when the objective says what it is, else the Booster."""
    booster = load_booster(path)
    import xgboost

    objective = json.loads(booster.save_config())["learner"]["objective"]["name"]
    wrapper = None
    if objective.startswith(("binary:logistic", "multi:softprob", "multi:softmax")):
        wrapper = xgboost.XGBClassifier()
    elif objective.startswith("reg:"):
        wrapper = xgboost.XGBRegressor()
    if wrapper is None:
        return booster
    wrapper._Booster = booster
    # The wrapper reads n_classes_ and friends from the booster's saved attributes.
    raw = booster.save_raw(raw_format="ubj")
    wrapper.load_model(bytearray(raw))
    return wrapper


def save(model, path: Path) -> None:
    booster = model.get_booster() if hasattr(model, "get_booster") else model
    if hasattr(model, "get_booster"):
        model.save_model(str(path))  # keeps the scikit-learn attributes (classes, ...)
    else:
        booster.save_model(str(path))


def predictor(path: Path, options: dict):
    from mlconvert.predict import predictor_for

    return predictor_for(load(path))


register_format(
    Format(
        id="xgboost",
        title="XGBoost model",
        extensions=(".ubj", ".json", ".model", ".bin", ".xgb"),
        sniff=sniff,
        describe=describe,
        load=load,
        save=save,
        predictor=predictor,
        runtime="xgboost",
        family="classic",
        notes="JSON, UBJSON (.ubj) or legacy binary; the extension of the output picks JSON or UBJSON",
    )
)
