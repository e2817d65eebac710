"""scikit-learn tree models → the classic representation (from the loaded estimator).

- DecisionTree*, ExtraTree*: `x <= threshold` goes left (scikit-learn compares float32
  inputs with float64 thresholds); a missing value follows `missing_go_to_left`.
  A classifier's leaf holds its class fractions.
- RandomForest*, ExtraTrees*: the average of the trees' outputs.
- GradientBoosting*: the init estimator's constant raw score + learning_rate * leaves;
  then sigmoid (binary log-loss), sigmoid(2 raw) (exponential loss) or softmax.
- HistGradientBoosting*: baseline + leaves; categorical features pass through an ordinal
  encoder first (raw value → code, unknown → missing), so a categorical split lists the
  raw values whose codes go left, and unknown values follow the missing-value direction;
  then the loss's link: sigmoid, softmax, exp (poisson, gamma) or identity.
"""
from __future__ import annotations

from mlconvert.formats.classic import ir

SINGLE_TREES = ("DecisionTreeClassifier", "DecisionTreeRegressor", "ExtraTreeClassifier", "ExtraTreeRegressor")
FORESTS = ("RandomForestClassifier", "RandomForestRegressor", "ExtraTreesClassifier", "ExtraTreesRegressor")
BOOSTING = ("GradientBoostingClassifier", "GradientBoostingRegressor")
HIST = ("HistGradientBoostingClassifier", "HistGradientBoostingRegressor")
SUPPORTED = SINGLE_TREES + FORESTS + BOOSTING + HIST


def handles(model) -> bool:
    return type(model).__name__ in SUPPORTED and type(model).__module__.startswith("sklearn.")


def read(model) -> ir.Graph:
    name = type(model).__name__
    if not handles(model):
        raise ir.Unsupported([name], where="scikit-learn tree reader",
                             hint="reads decision trees, forests, extra trees and (hist) gradient boosting")
    n_features = int(getattr(model, "n_features_in_", 0) or 0)
    if not n_features:
        raise ir.Unsupported([f"{name} without n_features_in_"], where="scikit-learn tree reader")
    if name in HIST:
        return _hist(model, n_features)
    classifier = name.endswith("Classifier")
    if classifier and getattr(model, "n_outputs_", 1) > 1:
        raise ir.Unsupported([f"multi-output {name}"], where="scikit-learn tree reader")
    if name in BOOSTING:
        return _boosting(model, n_features)
    estimators = [model] if name in SINGLE_TREES else list(model.estimators_)
    classes = list(model.classes_) if classifier else None
    if classifier:
        n_targets = len(classes)
        trees = [_tree(e.tree_, proba=True) for e in estimators]
        op = ir.TreeEnsemble(["X"], ["label", "probabilities"], n_targets, trees, aggregate="average",
                             classes=classes)
    else:
        n_targets = int(getattr(model, "n_outputs_", 1))
        trees = [_tree(e.tree_, proba=False) for e in estimators]
        op = ir.TreeEnsemble(["X"], ["value"], n_targets, trees, aggregate="average")
    return _graph(op, n_features, name)


def _graph(op: ir.TreeEnsemble, n_features: int, name: str, ops_before=()) -> ir.Graph:
    if op.classes is not None:
        outputs = [ir.Output("label", "label", op.classes), ir.Output("probabilities", "probabilities", op.classes)]
    else:
        outputs = [ir.Output("value", "value")]
    metadata = {"producer": "scikit-learn", "estimator": name, "trees": len(op.trees),
                "source_outputs": [o.name for o in outputs]}
    return ir.Graph([ir.Value("X", "float", n_features)], [*ops_before, op], outputs, metadata).check()


def _tree(t, *, proba: bool, scale: float = 1.0, target: int | None = None) -> ir.Tree:
    import numpy as np

    left, right = t.children_left, t.children_right
    missing_left = getattr(t, "missing_go_to_left", None)
    out = ir.Tree()
    for i in range(t.node_count):
        if left[i] < 0:
            value = np.asarray(t.value[i], dtype=np.float64)
            if proba:
                row = value[0]
                total = row.sum()
                out.add_leaf([(k, float(v / total) if total else 0.0) for k, v in enumerate(row)])
            elif target is not None:
                out.add_leaf([(target, float(value[0, 0]) * scale)])
            else:
                out.add_leaf([(k, float(v) * scale) for k, v in enumerate(value[:, 0])])
        else:
            missing = bool(missing_left[i]) if missing_left is not None else False
            out.add_split(int(t.feature[i]), "le", float(t.threshold[i]), missing_yes=missing)
    for i in range(t.node_count):
        if left[i] >= 0:
            out.link(i, int(left[i]), int(right[i]))
    return out


def _boosting(model, n_features: int) -> ir.Graph:
    import numpy as np

    name = type(model).__name__
    init = model.init_
    if init != "zero" and type(init).__name__ not in ("DummyClassifier", "DummyRegressor"):
        raise ir.Unsupported([f"{name} with init={type(init).__name__}"], where="scikit-learn tree reader",
                             hint="only a constant (dummy or zero) initial estimator has a fixed base score")
    base = np.asarray(model._raw_predict_init(np.zeros((1, n_features))), dtype=np.float64)[0]
    rate = float(model.learning_rate)
    loss = getattr(model, "loss", "")
    stages = model.estimators_  # (n_iterations, K)
    factor = 2.0 if loss == "exponential" else 1.0  # expit(2 * raw)
    trees = [_tree(stages[i, k].tree_, proba=False, scale=rate * factor, target=k)
             for i in range(stages.shape[0]) for k in range(stages.shape[1])]
    if name == "GradientBoostingClassifier":
        classes = list(model.classes_)
        k = stages.shape[1]
        transform = "logistic" if k == 1 else "softmax"
        op = ir.TreeEnsemble(["X"], ["label", "probabilities"], k, trees, base=list(base * factor),
                             post_transform=transform, classes=classes)
    else:
        op = ir.TreeEnsemble(["X"], ["value"], 1, trees, base=list(base))
    return _graph(op, n_features, name)


_HIST_LINKS = {"log_loss": None, "binary_crossentropy": None, "categorical_crossentropy": None,
               "squared_error": "none", "absolute_error": "none", "quantile": "none", "gamma": "exp",
               "poisson": "exp"}


def _hist(model, n_features: int) -> ir.Graph:
    import numpy as np

    name = type(model).__name__
    loss = str(getattr(model, "loss", ""))
    classifier = name.endswith("Classifier")
    if not classifier and _HIST_LINKS.get(loss) is None:
        raise ir.Unsupported([f"{name} loss {loss}"], where="scikit-learn tree reader")
    column, codes = _hist_columns(model, n_features)
    k = int(model.n_trees_per_iteration_)
    trees = []
    for iteration in model._predictors:
        for target, predictor in enumerate(iteration):
            trees.append(_hist_tree(predictor, target if k > 1 else 0, column, codes))
    base = [float(v) for v in np.asarray(model._baseline_prediction, dtype=np.float64).ravel()]
    if classifier:
        classes = list(model.classes_)
        op = ir.TreeEnsemble(["X"], ["label", "probabilities"], k, trees, base=base,
                             post_transform="logistic" if k == 1 else "softmax", classes=classes)
    else:
        op = ir.TreeEnsemble(["X"], ["value"], 1, trees, base=base, post_transform=_HIST_LINKS[loss])
    return _graph(op, n_features, name)


def _hist_columns(model, n_features: int):
    """(original column of each column the trees see, {tree column: raw value of each code})."""
    import numpy as np

    pre = getattr(model, "_preprocessor", None)
    if pre is None:
        return list(range(n_features)), {}
    column: list[int] = []
    codes: dict[int, list[float]] = {}
    for label, transformer, mask in pre.transformers_:
        if label == "remainder" or transformer == "drop":
            continue
        picked = [int(i) for i in (np.flatnonzero(mask) if np.asarray(mask).dtype == bool else mask)]
        if label == "encoder":
            for j, categories in zip(picked, transformer.categories_):
                values = [float(v) for v in categories if not _is_nan(v)]
                if any(not isinstance(v, (int, float, np.number)) for v in categories if not _is_nan(v)):
                    raise ir.Unsupported([f"categorical column {j} with non-numeric categories"],
                                         where="scikit-learn tree reader",
                                         hint="the converted model takes a float matrix")
                codes[len(column)] = values
                column.append(j)
        else:
            column.extend(picked)
    return column, codes


def _is_nan(v) -> bool:
    return isinstance(v, float) and v != v


def _hist_tree(predictor, target: int, column: list[int], codes: dict[int, list[float]]) -> ir.Tree:
    nodes = predictor.nodes
    bitsets = predictor.raw_left_cat_bitsets
    out = ir.Tree()
    swapped = set()  # categorical nodes whose listed values go right
    for i in range(len(nodes)):
        node = nodes[i]
        if node["is_leaf"]:
            out.add_leaf([(target, float(node["value"]))])
            continue
        f = int(node["feature_idx"])
        missing_left = bool(node["missing_go_to_left"])
        if not node["is_categorical"]:
            out.add_split(column[f], "le", float(node["num_threshold"]), missing_yes=missing_left)
            continue
        words = bitsets[int(node["bitset_idx"])]
        left_codes = {32 * w + b for w, word in enumerate(words) for b in range(32) if (int(word) >> b) & 1}
        known = codes.get(f)
        if known is None:  # no encoder: the values are the codes
            out.add_split(column[f], "in", categories=sorted(float(c) for c in left_codes), missing_yes=missing_left)
        elif missing_left:
            # The encoder turns an unknown value into a missing one, which goes left here:
            # list the known values that go right instead.
            out.add_split(column[f], "in", categories=[v for c, v in enumerate(known) if c not in left_codes],
                          missing_yes=False)
            swapped.add(i)
        else:
            out.add_split(column[f], "in", categories=[known[c] for c in sorted(left_codes) if c < len(known)],
                          missing_yes=False)
    for i in range(len(nodes)):
        node = nodes[i]
        if not node["is_leaf"]:
            left, right = int(node["left"]), int(node["right"])
            out.link(i, *((right, left) if i in swapped else (left, right)))
    return out


def thresholds(model) -> dict[int, list[float]]:
    """A HistGradientBoosting model's numeric split thresholds per input column."""
    column, _ = _hist_columns(model, int(model.n_features_in_))
    out: dict[int, list[float]] = {}
    for iteration in model._predictors:
        for predictor in iteration:
            for node in predictor.nodes:
                if not node["is_leaf"] and not node["is_categorical"]:
                    out.setdefault(column[int(node["feature_idx"])], []).append(float(node["num_threshold"]))
    return out


def categories(model) -> dict[int, list[float]]:
    """The values each categorical column of a HistGradientBoosting model was trained on."""
    column, codes = _hist_columns(model, int(model.n_features_in_))
    return {column[f]: values for f, values in codes.items()}
