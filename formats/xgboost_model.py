"""XGBoost model files: JSON, UBJSON, and the legacy binary format.

JSON and UBJSON are read statically here. Legacy binaries (XGBoost < 1.0 without a
header, 1.x with "binf") are no longer loadable by XGBoost >= 3.1, so they are
translated to the JSON document by our own reader (xgboost_legacy.py).
"""
from __future__ import annotations

import json
import re
import struct
from pathlib import Path

from mlconvert import probe
from mlconvert.errors import InputError
from mlconvert.formats import Format, register_format
from mlconvert.formats import _ubjson
from mlconvert.predict import Predictor, booster_outputs, column

# The one rule for what an XGBoost objective makes of a model, used by describe, the
# predictor and the scikit-learn wrapper alike.
PROBABILITY_OBJECTIVES = ("binary:logistic", "multi:softprob")  # predict() gives probabilities
LABEL_OBJECTIVES = ("multi:softmax", "binary:hinge")  # predict() gives the class itself


def objective_kind(objective: str) -> str:
    """'classifier' (binary:* and multi:*), 'ranker' (rank:*) or 'regressor'."""
    if objective.startswith(("binary:", "multi:")):
        return "classifier"
    return "ranker" if objective.startswith("rank:") else "regressor"


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


def encoding(path: Path, head: bytes | None = None) -> str:
    """'json', 'ubj' or 'legacy' by content (the file's first bytes, read if not given)."""
    from mlconvert.formats import HEAD_SIZE, read_head, xgboost_legacy

    head = read_head(path) if head is None else head[:HEAD_SIZE]
    if _is_ubjson(head):
        return "ubj"
    if _is_json(head):
        return "json"
    if xgboost_legacy.is_legacy_binary(head):
        return "legacy"
    raise InputError(f"{path} is not an XGBoost model file", hint="expected JSON, UBJSON or a legacy binary")


def read_document(path: Path, data: bytes | None = None) -> dict:
    """The model as XGBoost's JSON document, whatever the encoding (from `data` when the
    caller has already read the file)."""
    data = Path(path).read_bytes() if data is None else data
    kind = encoding(path, data)
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
        "kind": objective_kind(objective),
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


def _recorded_version(kind: str, doc: dict, data: bytes) -> str | None:
    """The XGBoost version that wrote the file (legacy documents carry the translator's)."""
    if kind == "legacy":
        from mlconvert.formats import xgboost_legacy

        return xgboost_legacy.describe_legacy(data).get("version")
    version = doc.get("version")
    return ".".join(map(str, version)) if isinstance(version, list) else version


def describe(path: Path) -> dict:
    data = Path(path).read_bytes()
    kind = encoding(path, data)
    doc = read_document(path, data)
    out = summarize(doc)
    out["producer_version"] = _recorded_version(kind, doc, data)
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


def load(path: Path, *, trust: bool = False, **options):
    """An xgboost.Booster, from one read of the file and one load. Legacy binaries go
    through our translator, and DART weights that the installed XGBoost would ignore are
    folded into the leaves first."""
    import xgboost

    data = Path(path).read_bytes()
    kind = encoding(path, data)
    booster = xgboost.Booster()
    try:
        if kind == "legacy" or b"weight_drop" in data:  # the cheap test before parsing it all
            doc = read_document(path, data)
            if kind != "legacy":
                doc = dart_as_gbtree(doc)
            data = json.dumps(doc).encode()
        booster.load_model(bytearray(data))
    except xgboost.core.XGBoostError as exc:
        unknown = re.search(r"Unknown objective function: `([^`]+)`", str(exc))
        if unknown:  # a model kind XGBoost here does not know: refused by name, like any edge would
            from mlconvert.errors import Unsupported

            raise Unsupported([f"objective {unknown[1]}"], where=f"XGBoost {xgboost.__version__}") from exc
        raise InputError(f"XGBoost cannot load {path}: {str(exc).splitlines()[0]}") from exc
    return booster


def objective_of(booster) -> str:
    return json.loads(booster.save_config())["learner"]["objective"]["name"]


def as_sklearn(booster):
    """XGBClassifier / XGBRegressor around a Booster when its objective says which
    (what a scikit-learn user expects in a pickle), else the Booster itself."""
    import xgboost

    objective = objective_of(booster)
    if objective.startswith(PROBABILITY_OBJECTIVES + ("multi:softmax",)):
        wrapper = xgboost.XGBClassifier()
    elif objective.startswith("reg:"):
        wrapper = xgboost.XGBRegressor()
    else:
        return booster
    # The wrapper reads n_classes_ and friends from the booster's saved attributes.
    wrapper.load_model(bytearray(booster.save_raw(raw_format="ubj")))
    return wrapper


def save(model, path: Path) -> None:
    model.save_model(str(path))  # a wrapper keeps its scikit-learn attributes (classes, ...)


def stamp(path: Path, entries: dict[str, str]) -> None:
    """Provenance as Booster attributes, which travel in JSON and UBJSON files."""
    import xgboost

    booster = xgboost.Booster()
    booster.load_model(bytearray(Path(path).read_bytes()))
    booster.set_attr(**entries)
    booster.save_model(str(path))


class XGBoosterPredictor(Predictor):
    """XGBoost's own predictions, as its scikit-learn interface makes them: up to
    best_iteration when the model was trained with early stopping, categorical features
    read as category codes."""

    def __init__(self, booster):
        self.booster = booster
        self.doc = json.loads(bytes(booster.save_raw(raw_format="json")))
        learner = self.doc["learner"]
        self.objective = learner["objective"]["name"]
        self.n_features = int(float(learner["learner_model_param"]["num_feature"]))
        self.n_classes = int(float(learner["learner_model_param"].get("num_class", 0)))
        self.kind = objective_kind(self.objective)
        self.feature_names = booster.feature_names
        self.feature_types = booster.feature_types
        best = (learner.get("attributes") or {}).get("best_iteration")
        rounds = booster.num_boosted_rounds()
        self.iteration_range = (0, int(best) + 1) if best is not None and str(best).isdigit() \
            and int(best) + 1 < rounds else (0, 0)
        if self.iteration_range[1]:
            self.notes = (f"trained with early stopping: predictions use the first {self.iteration_range[1]} "
                          "iterations (best_iteration), as XGBoost's scikit-learn interface does",)

    def predict(self, X):
        import xgboost

        categorical = bool(self.feature_types) and "c" in self.feature_types
        data = xgboost.DMatrix(X, feature_names=self.feature_names, feature_types=self.feature_types,
                               enable_categorical=categorical)
        raw = self.booster.predict(data, iteration_range=self.iteration_range)
        if self.objective.startswith(PROBABILITY_OBJECTIVES):
            return booster_outputs(raw, "classifier")
        if self.objective.startswith(LABEL_OBJECTIVES):
            return {"label": column(raw)}
        return {"value": column(raw)}

    def thresholds(self):
        """Numeric split thresholds per feature (a categorical split's list is no threshold)."""
        from mlconvert.formats.classic.xgboost import numeric_thresholds

        return numeric_thresholds(self.doc)

    def categories(self):
        from mlconvert.formats.classic.xgboost import categories

        return categories(self.doc)

    def missing_features(self) -> set[int]:
        from mlconvert.formats.classic.xgboost import split_features

        return split_features(self.doc)


def predictor(source, options: dict) -> Predictor:
    return XGBoosterPredictor(source.model)


def probe_load(path: Path) -> None:
    """What a conversion asks of XGBoost (load, config, dump, predict), for a child process to try first."""
    import numpy as np

    booster = load(path)  # an error here is the answer: the file cannot be loaded
    try:  # the rest may not fit every model (categorical features want other inputs): only crashes count
        booster_predictor = XGBoosterPredictor(booster)
        booster_predictor.predict(np.zeros((2, booster_predictor.n_features)))
        booster_predictor.thresholds()
    except Exception:  # noqa: BLE001
        pass


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
        stamp=stamp,
        runtime="xgboost",
        family="classic",
        probe=probe_load,
        native="XGBoost",
        notes="JSON, UBJSON (.ubj) or legacy binary; the extension of the output picks JSON or UBJSON",
    )
)
