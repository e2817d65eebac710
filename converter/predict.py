"""Uniform prediction over every kind of loaded model, for verification.

Each adapter answers `predict(X) -> {"label", "probabilities", "value"}` (the keys
that apply) and, for tree models, `thresholds()`: the split values per input
feature, which is where conversions that compare in float32 go wrong.
"""
from __future__ import annotations

import json
from collections import defaultdict
from pathlib import Path

import numpy as np

from mlconvert.errors import InputError, UsageError


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
    notes: list[str] = []  # what loading the model revealed, for the report

    def input_specs(self) -> list[dict] | None:
        """For models with named, shaped inputs (neural networks): [{"name", "dtype", "shape"}].
        None means one float matrix of n_features columns."""
        return None

    def predict(self, X: np.ndarray) -> dict[str, np.ndarray]:
        raise NotImplementedError

    def thresholds(self) -> dict[int, list[float]]:
        return {}

    def ranges(self) -> dict[int, tuple[float, float]]:
        """Typical (center, scale) per feature where the model records them."""
        return {}

    def categories(self) -> dict[int, list[float]]:
        """The values a categorical input feature takes, where the model records them."""
        return {}


def _column(values) -> np.ndarray:
    arr = np.asarray(values)
    return arr.reshape(len(arr)) if arr.ndim == 2 and arr.shape[1] == 1 else arr


def _binary_to_two_columns(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    return np.column_stack([1.0 - p, p]) if p.ndim == 1 else p


# --- scikit-learn API (scikit-learn, and the scikit-learn wrappers of the boosters) ---


def _sklearn_tree_thresholds(model, out: dict[int, list[float]]) -> None:
    tree = getattr(model, "tree_", None)
    if tree is not None:
        for f, t in zip(tree.feature, tree.threshold):
            if f >= 0:
                out[int(f)].append(float(t))
        return
    for est in np.ravel(getattr(model, "estimators_", [])):
        _sklearn_tree_thresholds(est, out)


class EstimatorPredictor(Predictor):
    def __init__(self, model):
        self.model = model
        module = type(model).__module__.split(".")[0]
        self.library = module
        self.kind = "classifier" if hasattr(model, "predict_proba") and self._is_classifier() else "regressor"
        self.n_features = getattr(model, "n_features_in_", None)
        names = getattr(model, "feature_names_in_", None)
        self.feature_names = [str(n) for n in names] if names is not None else None
        if not self.n_features and getattr(model, "feature_names_", None):  # CatBoost
            self.n_features = len(model.feature_names_)

    def _is_classifier(self) -> bool:
        est_type = getattr(self.model, "_estimator_type", None)
        if est_type is None and hasattr(self.model, "__sklearn_tags__"):
            try:
                est_type = self.model.__sklearn_tags__().estimator_type
            except Exception:
                est_type = None
        return est_type == "classifier" or hasattr(self.model, "classes_")

    def _input(self, X):
        if self.feature_names is not None and self.library == "sklearn":
            import pandas as pd

            if isinstance(X, dict):  # one (rows, 1) array per named column
                return pd.DataFrame({name: np.asarray(X[name]).ravel() for name in self.feature_names})
            return pd.DataFrame(X, columns=self.feature_names)
        return X

    def _column_transformer(self):
        """The ColumnTransformer that reads the raw input, when it picks columns by name
        (a model fitted on a DataFrame)."""
        first = self.model.steps[0][1] if hasattr(self.model, "steps") else self.model
        parts = getattr(first, "transformers_", None)
        if parts and self.feature_names and any(
                isinstance(c, str) for _, _, cols in parts for c in np.atleast_1d(cols)):
            return first
        return None

    def input_specs(self):
        """One named (rows, 1) input per column for models that select columns by name;
        a column an encoder learnt strings for is a string input, with those values."""
        if self._column_transformer() is None:
            return None
        ranges, numeric, strings = self.ranges(), self.categories(), self._string_categories()
        specs = []
        for i, name in enumerate(self.feature_names):
            spec = {"name": name, "dtype": "object" if i in strings else "float32", "shape": [None, 1]}
            if i in strings or i in numeric:
                spec["values"] = strings.get(i) or numeric[i]
            elif i in ranges:
                spec["center"], spec["scale"] = ranges[i]
            specs.append(spec)
        return specs

    def _string_categories(self) -> dict[int, list[str]]:
        out = {}
        for trans, cols in self._first_steps():
            for col, values in zip(cols, getattr(trans, "categories_", None) or []):
                if not np.issubdtype(np.asarray(values).dtype, np.number):
                    out[col] = [str(v) for v in values]
        return out

    def predict(self, X):
        Xin = self._input(X)
        if self.kind == "classifier":
            return {"label": _column(self.model.predict(Xin)), "probabilities": np.asarray(self.model.predict_proba(Xin))}
        return {"value": _column(self.model.predict(Xin))}

    def thresholds(self):
        out: dict[int, list[float]] = defaultdict(list)
        model = self.model
        if self.library == "sklearn":
            _sklearn_tree_thresholds(model, out)
        elif hasattr(model, "get_booster"):
            out = XGBoosterPredictor(model.get_booster()).thresholds()
        elif hasattr(model, "booster_"):
            out = LightGBMPredictor(model.booster_).thresholds()
        elif hasattr(model, "get_borders"):
            out = _catboost_borders(model)
        return dict(out)

    def _first_steps(self):
        """(transformer, input columns) pairs that read the raw input first."""
        first = self.model.steps[0][1] if hasattr(self.model, "steps") else None
        if first is None:
            return []
        if hasattr(first, "transformers_"):  # ColumnTransformer: each part reads its own columns
            names = self.feature_names or []
            out = []
            for _, trans, cols in first.transformers_:
                if isinstance(trans, str):
                    continue
                cols = [names.index(c) if isinstance(c, str) else int(c) for c in np.atleast_1d(cols)]
                out.append((trans.steps[0][1] if hasattr(trans, "steps") else trans, cols))
            return out
        return [(first, list(range(self.n_features or 0)))]

    def ranges(self):
        # A scaler that reads the raw input says where the training data lived.
        out = {}
        for trans, cols in self._first_steps():
            mean, scale = getattr(trans, "mean_", None), getattr(trans, "scale_", None)
            lo, hi = getattr(trans, "data_min_", None), getattr(trans, "data_max_", None)
            for i, col in enumerate(cols):
                if mean is not None and scale is not None:
                    out[col] = (float(mean[i]), float(scale[i]) or 1.0)
                elif lo is not None and hi is not None:
                    out[col] = ((lo[i] + hi[i]) / 2, (hi[i] - lo[i]) / 2 or 1.0)
        return out

    def categories(self):
        # An encoder that reads the raw input knows the only values that make sense there.
        out = {}
        for trans, cols in self._first_steps():
            cats = getattr(trans, "categories_", None)
            if cats is not None:
                for col, values in zip(cols, cats):
                    if np.issubdtype(np.asarray(values).dtype, np.number):
                        out[col] = [float(v) for v in values]
        return out


def _catboost_borders(model) -> dict[int, list[float]]:
    try:
        return {int(k): [float(b) for b in v] for k, v in model.get_borders().items()}
    except Exception:  # older models or categorical-only: no borders, random inputs only
        return {}


# --- native boosters ---


def _booster_outputs(raw, kind: str) -> dict[str, np.ndarray]:
    """A booster's raw predict() as labels and probabilities, or values."""
    if kind == "classifier":
        proba = _binary_to_two_columns(raw)
        return {"label": proba.argmax(axis=1), "probabilities": proba}
    return {"value": _column(raw)}


class XGBoosterPredictor(Predictor):
    def __init__(self, booster):
        self.booster = booster
        config = json.loads(booster.save_config())["learner"]
        self.objective = config["objective"]["name"]
        self.n_features = int(config["learner_model_param"]["num_feature"])
        self.n_classes = int(config["learner_model_param"].get("num_class", 0))
        self.kind = "classifier" if self.objective.startswith(("binary:logistic", "multi:softprob")) else "regressor"
        self.feature_names = booster.feature_names

    def predict(self, X):
        import xgboost

        return _booster_outputs(self.booster.predict(xgboost.DMatrix(X, feature_names=self.feature_names)), self.kind)

    def thresholds(self):
        out: dict[int, list[float]] = defaultdict(list)
        names = self.feature_names or []
        index = {n: i for i, n in enumerate(names)}

        def walk(node):
            if "split" in node:
                split = node["split"]
                f = index.get(split, None)
                if f is None and isinstance(split, str) and split.startswith("f") and split[1:].isdigit():
                    f = int(split[1:])
                if f is not None and "split_condition" in node:
                    out[f].append(float(node["split_condition"]))
                for child in node.get("children", []):
                    walk(child)

        for tree in self.booster.get_dump(dump_format="json"):
            walk(json.loads(tree))
        return dict(out)


class LightGBMPredictor(Predictor):
    def __init__(self, booster):
        self.booster = booster
        dump = booster.dump_model(num_iteration=-1)
        self._dump = dump
        objective = str(dump.get("objective", ""))
        from mlconvert.formats.lightgbm_text import objective_kind

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
        return _booster_outputs(self.booster.predict(X), self.kind)

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


# --- ONNX ---

_ONNX_FLOAT_TYPES = {"tensor(float)": np.float32, "tensor(double)": np.float64}
_ONNX_TYPES = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16",
               "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int8)": "int8", "tensor(uint8)": "uint8",
               "tensor(bool)": "bool", "tensor(string)": "object"}


class OnnxPredictor(Predictor):
    def __init__(self, path: Path):
        import onnxruntime

        self.path = Path(path)
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        # One thread: onnxruntime splits tree sums across threads, and the summation order
        # would change the verification figures (and so the provenance bytes) with the core count.
        options.intra_op_num_threads = 1
        try:
            self.session = onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])
        except Exception as exc:
            raise InputError(f"onnxruntime cannot load {path}: {str(exc).splitlines()[0]}") from exc
        inputs = self.session.get_inputs()
        # Neural networks take named inputs of any rank and dtype; classic models one matrix.
        self.specs = [{"name": i.name, "dtype": _ONNX_TYPES.get(i.type, "float32"),
                       "shape": [d if isinstance(d, int) else None for d in (i.shape or [])]} for i in inputs]
        self.input = inputs[0]
        shape = self.input.shape
        self.n_features = shape[-1] if shape and isinstance(shape[-1], int) else None
        self.dtype = _ONNX_FLOAT_TYPES.get(self.input.type, np.float32)
        outs = self.session.get_outputs()
        self.output_names = [o.name for o in outs]
        self.kind = "classifier" if len(outs) >= 2 else "regressor"

    def input_specs(self):
        classic = len(self.specs) == 1 and self.input.type in _ONNX_FLOAT_TYPES and len(self.specs[0]["shape"]) == 2
        return None if classic else [dict(s) for s in self.specs]

    def predict(self, X):
        if isinstance(X, dict) or len(self.specs) != 1:  # named inputs in, outputs by name out
            feed = named_inputs(X, self.specs)
            feed = {s["name"]: np.asarray(feed[s["name"]]).astype(s["dtype"]) for s in self.specs}
            return dict(zip(self.output_names, self.session.run(None, feed)))
        results = self.session.run(None, {self.input.name: np.asarray(X, dtype=self.dtype)})
        # Every output by its name too (a one-input network fed a matrix); the classic keys win.
        named = {n: np.asarray(r) for n, r in zip(self.output_names, results) if not isinstance(r, list)}
        return {**named, **self._classic(results)}

    def _classic(self, results):
        if self.kind == "classifier":
            label, proba = results[0], results[1]
            if isinstance(proba, list):  # ZipMap: a list of {class: probability}
                keys = sorted(proba[0])
                proba = np.array([[row[k] for k in keys] for row in proba])
            return {"label": _column(label), "probabilities": _binary_to_two_columns(np.asarray(proba))}
        return {"value": _column(results[0])}

    def thresholds(self):
        out: dict[int, list[float]] = defaultdict(list)
        from onnx import load

        model = load(str(self.path))
        for node in model.graph.node:
            if node.op_type.startswith("TreeEnsemble"):
                attrs = {a.name: a for a in node.attribute}
                feats = attrs.get("nodes_featureids")
                vals = attrs.get("nodes_values") or attrs.get("nodes_values_as_tensor")
                if feats is not None and vals is not None and vals.floats:
                    for f, v in zip(feats.ints, vals.floats):
                        out[int(f)].append(float(v))
        return dict(out)


def predictor_for(obj) -> Predictor:
    """The adapter for a model object loaded by a format module."""
    module = type(obj).__module__
    if module.startswith("xgboost") and type(obj).__name__ == "Booster":
        return XGBoosterPredictor(obj)
    if module.startswith("lightgbm") and type(obj).__name__ == "Booster":
        return LightGBMPredictor(obj)
    if hasattr(obj, "predict"):
        return EstimatorPredictor(obj)
    raise InputError(f"cannot run a {module}.{type(obj).__name__} object to verify it")
