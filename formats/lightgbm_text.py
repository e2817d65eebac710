"""LightGBM's text model format (`Booster.save_model`).

The header is `key=value` lines before the first `Tree=`; reading it is enough to
say what the model is, without LightGBM.
"""
from __future__ import annotations

from collections import defaultdict
from pathlib import Path

from mlconvert.errors import InputError
from mlconvert.formats import Format, register_format
from mlconvert.predict import Predictor, booster_outputs

CLASSIFIER_OBJECTIVES = ("binary", "multiclass", "multiclassova", "cross_entropy", "xentropy")


def sniff(head: bytes, path: Path) -> bool:
    return head.startswith(b"tree\nversion=") or head.startswith(b"tree\r\nversion=")


def read_header(path: Path) -> tuple[dict[str, str], int, bool]:
    """(header fields, number of trees, whether the file ends properly)."""
    header: dict[str, str] = {}
    trees = 0
    complete = False
    trailer = False  # "feature importances:" / "pandas_categorical:" follow the last tree
    in_header = True
    with open(path, "r", encoding="utf-8", errors="replace") as fh:
        for line in fh:
            line = line.rstrip("\r\n")
            if line.startswith("Tree="):
                in_header = False
                trees += 1
            elif line == "end of trees":
                complete = True
            elif in_header and "=" in line:
                key, _, value = line.partition("=")
                header[key] = value
            elif line.startswith("pandas_categorical:"):
                header["pandas_categorical"] = line.partition(":")[2]
                trailer = True
            elif line.startswith("feature importances:"):
                trailer = True
    # LightGBM 2.x wrote no "end of trees" line; its tree_sizes header says how many to expect.
    sizes = header.get("tree_sizes", "").split()
    if not complete and sizes and trailer and len(sizes) == trees:
        complete = True
    return header, trees, complete


def objective_kind(objective: str) -> str:
    name = objective.split(" ")[0]
    if name.startswith(CLASSIFIER_OBJECTIVES):
        return "classifier"
    if name in ("lambdarank", "rank_xendcg"):
        return "ranker"
    return "regressor"


def _library_version(model_format: str | None) -> str | None:
    """The LightGBM release line a model-format version comes from: the file records its
    format (version=v4), not the library's version; format vN is written by LightGBM N.x."""
    if model_format and model_format[:1] == "v" and model_format[1:].isdigit() and int(model_format[1:]) >= 2:
        return f"{model_format[1:]}.x"
    return None


def describe(path: Path) -> dict:
    header, trees, complete = read_header(path)
    if "version" not in header or not complete:
        raise InputError(
            f"{path} starts like a LightGBM text model but is incomplete "
            f"({trees} trees read, no 'end of trees' line)",
            hint="the file is probably truncated; save the model again",
        )
    objective = header.get("objective", "")
    num_class = int(header.get("num_class", "1"))
    out = {
        "flavor": "lightgbm",
        "kind": objective_kind(objective),
        "producer": "lightgbm",
        "producer_version": _library_version(header.get("version")),
        "n_features": int(header.get("max_feature_idx", "-1")) + 1 or None,
        "n_classes": num_class if num_class > 1 else (2 if objective.startswith("binary") else None),
        "details": {
            "model_format": header.get("version"),
            "objective": objective,
            "trees": trees,
            "feature_names": header.get("feature_names", "").split() or None,
            "categorical": "pandas_categorical" in header and header["pandas_categorical"] not in ("", "null"),
        },
    }
    if objective.startswith("custom"):
        out.setdefault("warnings", []).append("custom objective: predictions are raw scores")
    return out


def load(path: Path, *, trust: bool = False, **options):
    import logging

    import lightgbm

    # Old files name parameters LightGBM 4 no longer knows, a warning line each: keep
    # LightGBM's chatter at debug level (MLCONVERT_DEBUG / logging config shows it).
    lightgbm.register_logger(logging.getLogger("mlconvert.lightgbm"), info_method_name="debug",
                             warning_method_name="debug")

    try:
        return lightgbm.Booster(model_file=str(path))
    except lightgbm.basic.LightGBMError as exc:
        raise InputError(f"LightGBM cannot load {path}: {exc}") from exc


def save(model, path: Path) -> None:
    booster = getattr(model, "booster_", model)
    booster.save_model(str(path))


class LightGBMPredictor(Predictor):
    def __init__(self, booster):
        self.booster = booster
        dump = booster.dump_model(num_iteration=-1)
        self._dump = dump
        objective = str(dump.get("objective", ""))
        self.kind = objective_kind(objective)
        self.n_features = booster.num_feature()
        self.feature_names = booster.feature_name()

    def categories(self):
        # LightGBM records every category value it saw; numeric features have a range instead.
        infos = self._dump.get("feature_infos", {})
        out = {}
        for i, name in enumerate(self.feature_names or []):
            values = [v for v in infos.get(name, {}).get("values", []) if v >= 0]
            if values:
                out[i] = [float(v) for v in values]
        return out

    def ranges(self):
        infos = self._dump.get("feature_infos", {})
        out = {}
        for i, name in enumerate(self.feature_names or []):
            info = infos.get(name, {})
            lo, hi = info.get("min_value"), info.get("max_value")
            if lo is not None and hi is not None and not info.get("values"):
                out[i] = ((lo + hi) / 2, (hi - lo) / 2 or 1.0)
        return out

    def predict(self, X):
        return booster_outputs(self.booster.predict(X), self.kind)

    def missing_features(self):
        # LightGBM routes a missing value at every split (NaN, or as zero).
        return set(range(self.n_features or 0))

    def thresholds(self):
        out: dict[int, list[float]] = defaultdict(list)

        def walk(node):
            if "split_feature" in node:
                if node.get("decision_type") == "<=":
                    out[int(node["split_feature"])].append(float(node["threshold"]))
                walk(node["left_child"])
                walk(node["right_child"])

        for tree in self._dump.get("tree_info", []):
            walk(tree["tree_structure"])
        return dict(out)


def predictor(source, options: dict) -> Predictor:
    return LightGBMPredictor(source.model)


def probe_load(path: Path) -> None:
    """What a conversion asks of LightGBM (load, dump, predict), for a child process to try first."""
    import numpy as np

    booster = load(path)  # an error here is the answer: the file cannot be loaded
    try:  # the rest may not fit every model: only crashes count
        booster_predictor = LightGBMPredictor(booster)
        booster_predictor.predict(np.zeros((2, booster_predictor.n_features)))
        booster_predictor.thresholds()
    except Exception:  # noqa: BLE001
        pass


register_format(
    Format(
        id="lightgbm",
        title="LightGBM text model",
        extensions=(".txt", ".lgb", ".lgbm"),
        sniff=sniff,
        describe=describe,
        load=load,
        save=save,
        predictor=predictor,
        runtime="lightgbm",
        family="classic",
        probe=probe_load,
        native="LightGBM",
    )
)
