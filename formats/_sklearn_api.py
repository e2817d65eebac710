"""Models with the scikit-learn API (scikit-learn itself, and the scikit-learn wrappers
of XGBoost, LightGBM and CatBoost) as verification runs them."""
from __future__ import annotations

from collections import defaultdict

from mlconvert.errors import InputError
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
        import numpy as np

        if self.feature_names is not None and self.library == "sklearn":
            import pandas as pd

            if isinstance(X, dict):  # one (rows, 1) array per named column
                return pd.DataFrame({name: np.asarray(X[name]).ravel() for name in self.feature_names})
            return pd.DataFrame(X, columns=self.feature_names)
        return X

    def _column_transformer(self):
        """The ColumnTransformer that reads the raw input, when it picks columns by name
        (a model fitted on a DataFrame)."""
        import numpy as np

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
        import numpy as np

        out = {}
        for trans, cols in self._first_steps():
            for col, values in zip(cols, getattr(trans, "categories_", None) or []):
                if not np.issubdtype(np.asarray(values).dtype, np.number):
                    out[col] = [str(v) for v in values]
        return out

    def predict(self, X):
        import numpy as np

        Xin = self._input(X)
        if self.kind == "classifier":
            return {"label": column(self.model.predict(Xin)), "probabilities": np.asarray(self.model.predict_proba(Xin))}
        return {"value": column(self.model.predict(Xin))}

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

    def missing_features(self) -> set[int]:
        """XGBoost, LightGBM and HistGradientBoosting route missing values at every split."""
        model = self.model
        if hasattr(model, "get_booster"):
            from mlconvert.formats.xgboost_model import XGBoosterPredictor

            return XGBoosterPredictor(model.get_booster()).missing_features()
        if hasattr(model, "booster_") or type(model).__name__.startswith("HistGradientBoosting"):
            return set(range(self.n_features or 0))
        return set()

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
    if hasattr(obj, "predict"):
        return EstimatorPredictor(obj)
    raise InputError(f"cannot run a {module}.{type(obj).__name__} object to verify it")
