"""Models with the scikit-learn API (scikit-learn itself, and the scikit-learn wrappers
of XGBoost, LightGBM and CatBoost) as verification runs them."""
from __future__ import annotations

from collections import defaultdict

from mlconvert.errors import ConversionError, InputError
from mlconvert.predict import Predictor, column


def _sklearn_tree_thresholds(model, out: dict[int, list[float]]) -> None:
    import numpy as np

    if type(model).__name__.startswith("HistGradientBoosting"):
        from mlconvert.formats.classic import sklearn as trees

        for f, values in trees.thresholds(model).items():
            out[f].extend(values)
        return
    tree = getattr(model, "tree_", None)
    if tree is not None:
        for f, t in zip(tree.feature, tree.threshold):
            if f >= 0:
                out[int(f)].append(float(t))
        return
    for est in np.ravel(getattr(model, "estimators_", [])):
        _sklearn_tree_thresholds(est, out)


# Packages whose estimators follow scikit-learn's API and take scikit-learn's inputs:
# sklearn2pmml's PMMLPipeline and decorators, sklearn-pandas' DataFrameMapper.
_SKLEARN_FAMILY = ("sklearn", "sklearn2pmml", "sklearn_pandas")


def _unwrap(step):
    """The estimator that really reads a wrapper's input: a pipeline's first step, an
    Alias' transformer, a SelectorProxy's selector."""
    for _ in range(20):
        if hasattr(step, "steps") and step.steps:
            step = step.steps[0][1]
        elif type(step).__name__ in ("Alias", "MultiAlias") and hasattr(step, "transformer_"):
            step = step.transformer_
        elif type(step).__name__ == "SelectorProxy":
            step = step.selector
        else:
            break
    return step


def _names(model) -> list[str] | None:
    for attr in ("feature_names_in_", "active_fields"):  # active_fields: PMMLPipeline
        names = getattr(model, attr, None)
        if names is not None and len(names):
            return [str(n) for n in names]
    return None


class EstimatorPredictor(Predictor):
    def __init__(self, model):
        self.model = model
        module = type(model).__module__.split(".")[0]
        self.library = "sklearn" if module in _SKLEARN_FAMILY else module
        self.kind = self._kind()
        self.feature_names = _names(model)
        self.n_features = getattr(model, "n_features_in_", None) or (
            len(self.feature_names) if self.feature_names else None)
        if not self.n_features and getattr(model, "feature_names_", None):  # CatBoost
            self.n_features = len(model.feature_names_)
        if not self.n_features:
            try:  # n_features_of looks through wrappers
                self.n_features = n_features_of(model)
            except Exception:
                self.n_features = None

    def _kind(self) -> str:
        if hasattr(self.model, "predict_proba") and self._is_classifier():
            return "classifier"
        if self._estimator_type() == "clusterer" or (
                hasattr(self.model, "cluster_centers_") and hasattr(self.model, "predict")):
            return "clusterer"
        if not hasattr(self.model, "predict") and hasattr(self.model, "transform"):
            return "transformer"
        return "regressor"

    def _estimator_type(self):
        est_type = getattr(self.model, "_estimator_type", None)
        if est_type is None and hasattr(self.model, "__sklearn_tags__"):
            try:
                est_type = self.model.__sklearn_tags__().estimator_type
            except Exception:
                est_type = None
        return est_type

    def _is_classifier(self) -> bool:
        return self._estimator_type() == "classifier" or hasattr(self.model, "classes_")

    def _input(self, X):
        import numpy as np

        if self.feature_names is not None and self.library == "sklearn":
            import pandas as pd

            if isinstance(X, dict):  # one (rows, 1) array per named column
                return pd.DataFrame({name: np.asarray(X[name]).ravel() for name in self.feature_names})
            return pd.DataFrame(X, columns=self.feature_names)
        return X

    def _first(self):
        """The step that reads the raw input (through PMMLPipeline and other wrappers)."""
        first = self.model
        while hasattr(first, "steps") and first.steps:
            first = first.steps[0][1]
        return first

    def _column_transformer(self):
        """The ColumnTransformer or DataFrameMapper that reads the raw input, when it picks
        columns by name (a model fitted on a DataFrame)."""
        import numpy as np

        first = self._first()
        if type(first).__name__ == "DataFrameMapper" and self.feature_names:
            return first
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
        for col, values in self._learnt_values():
            if not _numeric(values):
                out[col] = [str(v) for v in values]
        return out

    def predict(self, X):
        import numpy as np

        Xin = self._input(X)
        if self.kind == "classifier":
            return {"label": column(self.model.predict(Xin)), "probabilities": np.asarray(self.model.predict_proba(Xin))}
        if self.kind == "clusterer":  # the cluster each row falls in
            return {"label": column(self.model.predict(Xin))}
        if self.kind == "transformer":  # a fitted transformer on its own: what it makes of the rows
            out = self.model.transform(Xin)
            out = out.toarray() if hasattr(out, "toarray") else np.asarray(out, dtype=np.float64)
            return {"value": column(out)}
        return {"value": column(self.model.predict(Xin))}

    def recorded(self):
        """(inputs, outputs) the model carries from where it was made, or None: the rows
        and predictions sklearn2pmml's PMMLPipeline.verify() stores in the pipeline."""
        import numpy as np

        rec = getattr(self.model, "verification", None)
        if rec is None or type(rec).__name__ != "_Verification" or not self.feature_names:
            return None
        X, y = np.asarray(getattr(rec, "active_values", [])), np.asarray(getattr(rec, "target_values", []))
        if X.ndim != 2 or X.shape[1] != len(self.feature_names) or len(X) != len(y) or not len(X):
            return None
        specs = self.input_specs()
        if specs:  # one column per input, in the model's column order
            inputs = {s["name"]: X[:, i].reshape(-1, 1).astype(object if s["dtype"] == "object" else np.float64)
                      for i, s in enumerate(specs)}
        else:
            inputs = X.astype(np.float64)
        y = y.reshape(len(y), -1)[:, 0] if y.ndim == 2 else y
        if self.kind != "classifier":
            return inputs, {"value": y.astype(np.float64)}
        outputs = {"label": y}
        proba = getattr(rec, "probability_values", None)
        if proba is not None:
            outputs["probabilities"] = np.asarray(proba, dtype=np.float64)
        return inputs, outputs

    def thresholds(self):
        out: dict[int, list[float]] = defaultdict(list)
        model = self.model
        if self.library == "sklearn":
            _sklearn_tree_thresholds(model, out)
        elif hasattr(model, "get_booster"):
            from mlconvert.formats.xgboost_model import XGBoosterPredictor

            out = XGBoosterPredictor(model.get_booster()).thresholds()
        elif hasattr(model, "booster_"):
            from mlconvert.formats.lightgbm_text import LightGBMPredictor

            out = LightGBMPredictor(model.booster_).thresholds()
        elif hasattr(model, "get_borders"):
            out = _catboost_borders(model)
        return dict(out)

    def _first_steps(self):
        """(transformer, input columns) pairs that read the raw input first."""
        import numpy as np

        first = self._first() if (hasattr(self.model, "steps") or self.kind == "transformer") else None
        if first is None:
            return []
        names = self.feature_names or []

        def index(c):
            return names.index(c) if isinstance(c, str) else int(c)

        out = []
        if hasattr(first, "transformers_"):  # ColumnTransformer: each part reads its own columns
            for _, trans, cols in first.transformers_:
                if not isinstance(trans, str):
                    out.append((_unwrap(trans), [index(c) for c in np.atleast_1d(cols)]))
        elif type(first).__name__ == "DataFrameMapper":  # sklearn-pandas: the same, by name
            for feature in getattr(first, "built_features", None) or []:
                cols, trans = feature[0], feature[1]
                if trans is not None and all(not isinstance(c, str) or c in names for c in np.atleast_1d(cols)):
                    out.append((_unwrap(trans), [index(c) for c in np.atleast_1d(cols)]))
        elif type(first).__name__ == "MultiDomain":  # one domain per column
            out.extend((d, [i]) for i, d in enumerate(first.domains) if d is not None)
        else:
            out.append((_unwrap(first), list(range(self.n_features or 0))))
        return out

    def _learnt_values(self):
        """(column, the values a step learnt for it): categories of encoders and domains."""
        for trans, cols in self._first_steps():
            learnt = getattr(trans, "categories_", None)
            if learnt is None and getattr(trans, "data_values_", None) is not None:  # CategoricalDomain
                learnt = trans.data_values_
                if len(cols) == 1 and len(learnt) and _numeric_scalar(learnt[0]):
                    learnt = [learnt]
            if learnt is None and len(cols) == 1 and getattr(trans, "classes_", None) is not None:
                learnt = [trans.classes_]  # LabelBinarizer / LabelEncoder on one column
            for col, values in zip(cols, learnt if learnt is not None else []):
                yield col, list(values)

    def ranges(self):
        # A scaler that reads the raw input says where the training data lived.
        out = {}
        for trans, cols in self._first_steps():
            if _bounded_domain(trans):
                continue  # only values inside its interval are valid: categories() gives them
            mean, scale = getattr(trans, "mean_", None), getattr(trans, "scale_", None)
            lo, hi = getattr(trans, "data_min_", None), getattr(trans, "data_max_", None)
            for i, col in enumerate(cols):
                if mean is not None and scale is not None:
                    out[col] = (float(mean[i]), float(scale[i]) or 1.0)
                elif lo is not None and hi is not None:
                    lo_i, hi_i = float(_at(lo, i)), float(_at(hi, i))
                    out[col] = ((lo_i + hi_i) / 2, (hi_i - lo_i) / 2 or 1.0)
        return out

    def missing_features(self) -> set[int]:
        """XGBoost, LightGBM and HistGradientBoosting route missing values at every split."""
        model = self.model
        if hasattr(model, "get_booster"):
            from mlconvert.formats.xgboost_model import XGBoosterPredictor

            return XGBoosterPredictor(model.get_booster()).missing_features()
        if hasattr(model, "booster_") or type(model).__name__.startswith("HistGradientBoosting"):
            return set(range(self.n_features or 0))
        return set()

    def closed_features(self) -> set[int]:
        """Columns read by an encoder that raises on an unknown category, or by a domain
        that raises outside its fitted values or interval."""
        out = set()
        for trans, cols in self._first_steps():
            learnt = any(getattr(trans, a, None) is not None for a in ("categories_", "data_values_", "classes_"))
            refuses = getattr(trans, "handle_unknown", "error") == "error" \
                if not type(trans).__module__.startswith("sklearn2pmml") \
                else getattr(trans, "invalid_value_treatment", None) == "return_invalid"
            if (learnt and refuses) or _bounded_domain(trans):
                out.update(cols)
        return out

    def categories(self):
        import numpy as np

        model = self.model
        if hasattr(model, "get_booster"):
            from mlconvert.formats.xgboost_model import XGBoosterPredictor

            return XGBoosterPredictor(model.get_booster()).categories()
        if hasattr(model, "booster_"):
            from mlconvert.formats.lightgbm_text import LightGBMPredictor

            return LightGBMPredictor(model.booster_).categories()
        if type(model).__name__.startswith("HistGradientBoosting"):
            from mlconvert.formats.classic import sklearn as trees

            return trees.categories(model)
        # An encoder that reads the raw input knows the only values that make sense there;
        # a domain that refuses values outside its interval, the interval.
        out = {}
        for col, values in self._learnt_values():
            if _numeric(values):
                out[col] = [float(v) for v in values]
        for trans, cols in self._first_steps():
            if _bounded_domain(trans):
                for i, col in enumerate(cols):
                    lo, hi = float(_at(trans.data_min_, i)), float(_at(trans.data_max_, i))
                    # float32-representable values (verification feeds float32) inside [lo, hi]
                    grid = np.linspace(lo, hi, 65).astype(np.float32)
                    wide = grid.astype(np.float64)  # compare in float64: NumPy 2 would in float32
                    grid = np.where(wide > hi, np.nextafter(grid, np.float32(-np.inf)), grid)
                    grid = np.where(wide < lo, np.nextafter(grid, np.float32(np.inf)), grid)
                    out[col] = [float(v) for v in grid.astype(np.float64) if lo <= float(v) <= hi]
        return out


def _at(values, i):
    import numpy as np

    arr = np.atleast_1d(np.asarray(values))
    return arr[i] if arr.size > 1 else arr[0]


def _numeric(values) -> bool:
    import numpy as np

    try:
        return np.issubdtype(np.asarray(values).dtype, np.number)
    except TypeError:
        return False


def _numeric_scalar(value) -> bool:
    import numpy as np

    return np.ndim(value) == 0


def _bounded_domain(trans) -> bool:
    """A ContinuousDomain that makes the model raise on values outside its fitted interval."""
    return (type(trans).__module__.startswith("sklearn2pmml") and hasattr(trans, "data_min_")
            and getattr(trans, "invalid_value_treatment", None) == "return_invalid")


def _catboost_borders(model) -> dict[int, list[float]]:
    """A CatBoost model's split borders per feature, where it records them."""
    try:
        return {int(k): [float(b) for b in v] for k, v in model.get_borders().items()}
    except Exception:  # older models or categorical-only: no borders, random inputs only
        return {}


def predictor_for(obj) -> Predictor:
    """The adapter for an object unpickled from a file: a raw booster or a scikit-learn API model."""
    module = type(obj).__module__
    if module.startswith("xgboost") and type(obj).__name__ == "Booster":
        from mlconvert.formats.xgboost_model import XGBoosterPredictor

        return XGBoosterPredictor(obj)
    if module.startswith("lightgbm") and type(obj).__name__ == "Booster":
        from mlconvert.formats.lightgbm_text import LightGBMPredictor

        return LightGBMPredictor(obj)
    if hasattr(obj, "predict") or (hasattr(obj, "transform") and hasattr(obj, "get_params")):
        return EstimatorPredictor(obj)
    raise InputError(f"cannot run a {module}.{type(obj).__name__} object to verify it")


def n_features_of(model) -> int:
    """How many input columns a fitted model takes."""
    if getattr(model, "n_features_in_", None):
        return int(model.n_features_in_)
    if hasattr(model, "num_features"):  # xgboost.Booster
        return int(model.num_features())
    if hasattr(model, "num_feature"):  # lightgbm.Booster
        return int(model.num_feature())
    coef = getattr(model, "coef_", None)  # linear models pickled before n_features_in_ existed
    if coef is not None:
        return int(coef.shape[-1])
    for attr in ("n_features_", "n_features"):  # what scikit-learn < 1.0 recorded
        value = getattr(model, attr, None)
        if isinstance(value, int) and not isinstance(value, bool) and value > 0:
            return value
    # Wrappers (sklearn2pmml's PMMLPipeline, decorators) record the columns they were
    # fitted on, or leave it to the step that reads the input.
    for attr in ("feature_names_in_", "active_fields"):
        names = getattr(model, attr, None)
        if names is not None and len(names):
            return len(names)
    for inner in [step for _, step in getattr(model, "steps", None) or []][:1] + [
            getattr(model, attr, None) for attr in ("transformer_", "selector", "estimator_")]:
        if inner is not None and not isinstance(inner, str):
            try:
                return n_features_of(inner)
            except ConversionError:  # this step does not record it either: try the next
                pass
    raise ConversionError(
        f"{type(model).__name__} does not record how many features it takes "
        "(no n_features_in_, feature names, or first step that records them)",
        hint="the ONNX input's width cannot be told from this model; please report it with the file",
    )
