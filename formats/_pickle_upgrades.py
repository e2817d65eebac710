"""Upgrades of state pickled by older scikit-learn (and pandas) releases.

A pickle names classes and stores their state as the release that wrote it laid them
out. Where a later release removed a class or changed a layout, loading fails or the
loaded model computes something else. Each entry below rebuilds today's equivalent
from the old state *where what the original computed is certain*, so the loaded model
predicts as the original did; anything else that was removed stays a placeholder, and
the load is refused with the producer's version and the reason.

| pickled by            | what                                   | upgrade                                            |
|-----------------------|----------------------------------------|----------------------------------------------------|
| scikit-learn < 1.3    | tree node arrays without               | the field added: missing values go to the child    |
|                       | `missing_go_to_left`                   | with more samples (those trees refused NaN inputs) |
| scikit-learn < 1.4    | gradient boosting `loss_` objects      | `_loss`: today's loss with the same link function  |
|                       | (`_gb_losses` / `gradient_boosting`)   | (identity, logit, half-logit, softmax)             |
| scikit-learn < 0.21   | init estimators (MeanEstimator,        | DummyRegressor / DummyClassifier whose raw         |
|                       | LogOddsEstimator, PriorProbability...) | prediction is the one the old estimator gave       |
| scikit-learn 1.5-1.6  | ColumnTransformer `_RemainderColsList` | the plain list of column indices it held           |
| scikit-learn < 0.22   | one-vs-rest multiclass LogisticRegression | OneVsRestClassifier of its binary models        |
| pandas < 2            | Int64Index / UInt64Index / Float64Index| (module renames in _pickle_load) Index             |
| scikit-learn < 1.1    | OneHotEncoder without infrequent-      | no infrequent categories (they did not exist);     |
|                       | category state                         | the columns out as its categories and drop say     |
| scikit-learn < 0.23   | KMeans without `_n_threads`            | one thread (a thread count: results are the same)  |
| scikit-learn < 1.9    | SVC / SVR without `_effective_probability` | the `probability` flag it was fitted with      |
| scikit-learn < 1.2    | SimpleImputer without `_fit_dtype` /   | object if its statistics are objects, else float64;|
|                       | `_fill_dtype`                          | its statistics' own dtype (a no-op cast)           |
| scikit-learn < 1.2    | ColumnTransformer without              | each part's column indices, from its fitted column |
|                       | `_transformer_to_input_indices`        | selection, as fit computes them                    |

Only the standard library is imported at module level.
"""
from __future__ import annotations

from typing import Any

__all__ = ["Removed", "removed_class", "is_removed_target", "upgrading_tree", "upgrade"]


class Removed:
    """Stands in for a class a later release removed: holds the pickled state until an
    upgrade replaces it, or the load is refused."""

    origin = ""

    def __setstate__(self, state):
        if isinstance(state, dict):
            self.__dict__.update(state)
        else:
            self.__dict__["_state"] = state


_PLACEHOLDERS: dict[tuple[str, str], type] = {}

# Removed classes an upgrade can replace (by the module paths they were pickled under).
_GB_MODULES = ("sklearn.ensemble._gb", "sklearn.ensemble._gb_losses", "sklearn.ensemble.gradient_boosting")
_GB_LOSSES = {
    "LeastSquaresError": "HalfSquaredError", "LeastAbsoluteError": "AbsoluteError",
    "HuberLossFunction": "HuberLoss", "QuantileLossFunction": "PinballLoss",
    "BinomialDeviance": "HalfBinomialLoss", "ExponentialLoss": "ExponentialLoss",
    "MultinomialDeviance": "HalfMultinomialLoss",
}
_GB_INITS = ("MeanEstimator", "QuantileEstimator", "LogOddsEstimator", "ScaledLogOddsEstimator",
             "PriorProbabilityEstimator", "ZeroEstimator")
_COLUMN_TRANSFORMER = "sklearn.compose._column_transformer"


def is_removed_target(module: str, name: str) -> bool:
    """Whether `module.name` is a removed class that an upgrade below knows."""
    if module in _GB_MODULES and (name in _GB_LOSSES or name in _GB_INITS):
        return True
    return module == _COLUMN_TRANSFORMER and name == "_RemainderColsList"


def removed_class(module: str, name: str) -> type:
    key = (module, name)
    if key not in _PLACEHOLDERS:
        _PLACEHOLDERS[key] = type(name, (Removed,), {"origin": f"{module}.{name}"})
    return _PLACEHOLDERS[key]


_TREE: type | None = None


def upgrading_tree() -> type:
    """sklearn's Tree, whose state may come without `missing_go_to_left` (< 1.3)."""
    global _TREE
    if _TREE is None:
        import numpy as np
        from sklearn.tree._tree import NODE_DTYPE, Tree

        class UpgradingTree(Tree):
            """Rebuilt and pickled again as a plain Tree (Tree.__reduce__ names Tree)."""

            def __setstate__(self, state):
                nodes = state.get("nodes") if isinstance(state, dict) else None
                if nodes is not None and nodes.dtype.names and "missing_go_to_left" not in nodes.dtype.names:
                    new = np.zeros(nodes.shape, dtype=NODE_DTYPE)
                    for field in nodes.dtype.names:
                        new[field] = nodes[field]
                    # Those trees refused NaN; today's convention for a split that saw no
                    # missing values in training: they go to the child with more samples.
                    left, right = nodes["left_child"], nodes["right_child"]
                    inner = left >= 0
                    counts = nodes["n_node_samples"]
                    new["missing_go_to_left"][inner] = counts[left[inner]] >= counts[right[inner]]
                    state = {**state, "nodes": new}
                    _note("tree node arrays without missing_go_to_left (scikit-learn < 1.3) upgraded")
                super().__setstate__(state)

        _TREE = UpgradingTree
    return _TREE


_NOTES: list[str] = []


def _note(text: str) -> None:
    if text not in _NOTES:
        _NOTES.append(text)


# --- after loading -----------------------------------------------------------------


def _children(obj: Any):
    import numpy as np

    if isinstance(obj, (list, tuple)):
        return list(obj)
    if isinstance(obj, dict):
        return list(obj.values())
    if isinstance(obj, np.ndarray) and obj.dtype == object:
        return list(obj.ravel())
    if hasattr(obj, "__dict__") and not isinstance(obj, type):
        return list(vars(obj).values())
    return []


def _walk(root: Any, budget: int = 50000):
    seen: set[int] = set()
    todo = [root]
    while todo and budget > 0:
        obj = todo.pop()
        if id(obj) in seen or obj is None or isinstance(obj, (str, bytes, int, float, bool)):
            continue
        seen.add(id(obj))
        budget -= 1
        yield obj
        todo.extend(_children(obj))


def _sigmoid(x: float) -> float:
    import math

    return 1.0 / (1.0 + math.exp(-x))


def _modern_loss(old: Removed, est):
    from sklearn._loss import loss as losses

    name = type(old).__name__
    state = vars(old)
    if name == "HuberLossFunction":
        return losses.HuberLoss(quantile=state.get("alpha", 0.9))
    if name == "QuantileLossFunction":
        return losses.PinballLoss(quantile=state.get("alpha", 0.9))
    if name == "MultinomialDeviance":
        return losses.HalfMultinomialLoss(n_classes=int(state.get("K", len(est.classes_))))
    return getattr(losses, _GB_LOSSES[name])()


def _dummy_regressor(value: float, strategy: str = "mean", quantile: float | None = None):
    import numpy as np
    from sklearn.dummy import DummyRegressor

    dummy = DummyRegressor(strategy=strategy, quantile=quantile)
    dummy.fit(np.zeros((1, 1)), np.array([value], dtype=np.float64))  # constant_ = [[value]]
    return dummy


def _dummy_classifier(classes, priors):
    import numpy as np
    from sklearn.dummy import DummyClassifier

    dummy = DummyClassifier(strategy="prior").fit(np.zeros((len(classes), 1)), classes)
    dummy.class_prior_ = np.asarray(priors, dtype=np.float64)
    return dummy


def _modern_init(old: Removed, est):
    """An init estimator whose raw prediction (through today's link) is the old one's."""
    import numpy as np

    name = type(old).__name__
    state = vars(old)
    if name == "ZeroEstimator":
        return "zero"
    if name == "MeanEstimator":
        return _dummy_regressor(float(state["mean"]))
    if name == "QuantileEstimator":
        return _dummy_regressor(float(state["quantile"]), "quantile", float(state.get("alpha", 0.5)))
    classes = est.classes_
    if name in ("LogOddsEstimator", "ScaledLogOddsEstimator"):
        # old raw = prior; today's raw = logit(p) (binomial) or logit(p) / 2 (exponential)
        scale = 2.0 if name == "ScaledLogOddsEstimator" else 1.0
        p = _sigmoid(scale * float(state["prior"]))
        return _dummy_classifier(classes, [1.0 - p, p])
    if name == "PriorProbabilityEstimator":
        # old raw = the priors themselves; softmax is shift-invariant, so class
        # probabilities softmax(priors) reproduce the old predicted probabilities exactly
        priors = np.asarray(state["priors"], dtype=np.float64)
        q = np.exp(priors - priors.max())
        return _dummy_classifier(classes, q / q.sum())
    raise KeyError(name)


def _upgrade_gradient_boosting(est) -> None:
    state = vars(est)
    for attr in ("loss_", "_loss"):  # loss_ until 1.0, _loss (still the old classes) 1.1-1.3
        loss = state.get(attr)
        if isinstance(loss, Removed):
            if attr == "loss_":
                del est.loss_
            est._loss = _modern_loss(loss, est)
            _note(f"gradient boosting loss {type(loss).__name__} upgraded to {type(est._loss).__name__} "
                  "(the same link function)")
    init = state.get("init_")
    if isinstance(init, Removed):
        est.init_ = _modern_init(init, est)
        _note(f"gradient boosting init estimator {type(init).__name__} rebuilt as "
              f"{type(est.init_).__name__ if not isinstance(est.init_, str) else repr(est.init_)} "
              "with the same initial raw prediction")
    if "estimators_" in state and "n_trees_per_iteration_" not in state:
        est.n_trees_per_iteration_ = est.estimators_.shape[1]


def _private_state(est) -> None:
    """Fitted private attributes later releases read, where the old meaning is certain."""
    state = vars(est)
    name = type(est).__name__
    if name == "OneHotEncoder" and "categories_" in state and "_infrequent_enabled" not in state:
        est._infrequent_enabled = False  # infrequent categories came in 1.1
        est._drop_idx_after_grouping = state.get("drop_idx_")
        drops = est._drop_idx_after_grouping
        est._n_features_outs = [len(c) - (drops is not None and drops[i] is not None)
                                for i, c in enumerate(est.categories_)]
        _note("OneHotEncoder of scikit-learn < 1.1 given today's infrequent-category state (none)")
    if "support_vectors_" in state and "_effective_probability" not in state and \
            isinstance(state.get("probability"), bool):
        est._effective_probability = state["probability"]
        _note(f"{name} of scikit-learn < 1.9 given the probability flag it was fitted with")
    if name == "SimpleImputer" and "statistics_" in state:
        import numpy as np

        stats = np.asarray(state["statistics_"])
        if "_fit_dtype" not in state:
            est._fit_dtype = np.dtype(object) if stats.dtype.kind == "O" else np.dtype(np.float64)
        if "_fill_dtype" not in state:
            est._fill_dtype = stats.dtype
    if name == "ColumnTransformer" and "transformers_" in state and "_transformer_to_input_indices" not in state:
        import numpy as np
        from sklearn.utils._indexing import _get_column_indices

        names = state.get("feature_names_in_")
        if names is not None:
            import pandas as pd

            frame = pd.DataFrame(columns=list(names))
        else:
            frame = np.empty((0, int(state.get("n_features_in_") or state.get("_n_features") or 0)))
        est._transformer_to_input_indices = {
            part: list(_get_column_indices(frame, cols)) for part, _, cols in est.transformers_}
        _note("ColumnTransformer of scikit-learn < 1.2 given the column indices of its parts")
    if name in ("KMeans", "MiniBatchKMeans") and "cluster_centers_" in state and "_n_threads" not in state:
        est._n_threads = 1
        _note(f"{name} of scikit-learn < 0.23 given a thread count")


def _ovr_logistic(est):
    """A one-vs-rest multiclass LogisticRegression as the OneVsRestClassifier that
    computes what it computed: per-class sigmoid, normalised over the classes."""
    import numpy as np
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    n_features = est.coef_.shape[1]
    classes = np.asarray(est.classes_)
    # Fitted on a stand-in table (one row per class) for every fitted attribute
    # OneVsRestClassifier has, then given the pickled coefficients.
    ovr = OneVsRestClassifier(LogisticRegression()).fit(np.zeros((len(classes), n_features)), classes)
    for k, binary in enumerate(ovr.estimators_):
        binary.coef_ = np.asarray(est.coef_[k:k + 1], dtype=np.float64)
        binary.intercept_ = np.asarray(np.ravel(est.intercept_)[k:k + 1], dtype=np.float64)
    if hasattr(est, "feature_names_in_"):
        ovr.feature_names_in_ = est.feature_names_in_
    return ovr


def _is_ovr_logistic(est) -> bool:
    if type(est).__name__ != "LogisticRegression" or not hasattr(est, "__dict__"):
        return False
    state = vars(est)
    classes = state.get("classes_")
    mc = state.get("multi_class")
    return (type(est).__name__ == "LogisticRegression" and classes is not None and len(classes) > 2
            and (mc in ("ovr", "warn") or (mc == "auto" and state.get("solver") == "liblinear")))


def _replace(root: Any, old: Any, new: Any) -> Any:
    """`root` with every reference to `old` (top level, pipeline steps) pointing at `new`."""
    if root is old:
        return new
    for obj in _walk(root):
        steps = getattr(obj, "steps", None) if hasattr(obj, "get_params") else None
        if isinstance(steps, list):
            obj.steps = [(name, new if step is old else step) for name, step in steps]
    return root


def _remainder_lists(root: Any) -> None:
    """ColumnTransformer remainder columns: the plain list the placeholder holds."""
    for obj in _walk(root):
        if type(obj).__name__ not in ("ColumnTransformer",) or not hasattr(obj, "transformers_"):
            continue

        def plain(cols):
            return list(cols.__dict__.get("data", [])) if isinstance(cols, Removed) else cols

        obj.transformers_ = [(n, t, plain(c)) for n, t, c in obj.transformers_]
        if isinstance(getattr(obj, "_remainder", None), tuple):
            name, trans, cols = obj._remainder
            obj._remainder = (name, trans, plain(cols))
        _note("ColumnTransformer remainder columns (_RemainderColsList, scikit-learn 1.5-1.6) read as a list")


def upgrade(obj: Any, producer: str | None) -> tuple[Any, list[str]]:
    """The loaded object with old state upgraded, and notes saying what was; raises
    ValueError naming what was removed where nothing certain replaces it."""
    notes = list(_NOTES)
    _NOTES.clear()
    found = list(_walk(obj))
    if any(isinstance(o, Removed) and o.origin.endswith("_RemainderColsList") for o in found):
        _remainder_lists(obj)
    for est in found:
        name = type(est).__name__
        if not type(est).__module__.startswith("sklearn.") or not hasattr(est, "__dict__"):
            continue
        if name.startswith("GradientBoosting"):
            _upgrade_gradient_boosting(est)
        _private_state(est)
    for est in found:
        if _is_ovr_logistic(est):
            obj = _replace(obj, est, _ovr_logistic(est))
            notes.append(f"LogisticRegression fitted one-vs-rest (multi_class={vars(est).get('multi_class')!r}, "
                         f"scikit-learn {producer or 'before 0.22'}) is loaded as the OneVsRestClassifier of its "
                         "binary models, which computes its probabilities as it did")
    notes.extend(n for n in _NOTES if n not in notes)
    _NOTES.clear()
    left = sorted({o.origin for o in _walk(obj) if isinstance(o, Removed)})
    if left:
        raise ValueError(", ".join(left))
    return obj, notes


def reset() -> None:
    _NOTES.clear()
