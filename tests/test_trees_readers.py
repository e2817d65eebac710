"""The tree readers agree with the libraries that define the models (through the reference
semantics), and the tree writer's ONNX agrees with the reference semantics (through
onnxruntime), on models the libraries train here: every objective, categorical splits,
missing values, linear leaves, forests."""
from __future__ import annotations

import json
import warnings

import numpy as np
import pytest

from mlconvert.formats.classic import ir, onnx_trees
from mlconvert.formats.classic.evaluate import evaluate

from test_trees_onnx_writer import run, to_onnx

ort = pytest.importorskip("onnxruntime")

rng = np.random.default_rng(0)
N = 300
X = rng.normal(size=(N, 4))
X[:, 3] = rng.integers(0, 5, N)
X[::7, 1] = np.nan
Y = X[:, 0] + np.nan_to_num(X[:, 1]) + (X[:, 3] == 2)
Y3 = np.digitize(Y, np.quantile(Y, [1 / 3, 2 / 3]))
# Inputs beyond training: unseen and negative categories, zeros, more missing values.
XT = X.astype(np.float32).astype(np.float64)
XT[::13, 3] = 7
XT[::17, 3] = -1
XT[::11, 3] = np.nan
XT[::19, 0] = 0.0
XT[::23, 0] = np.nan


def _single(graph: ir.Graph) -> ir.TreeEnsemble:
    (op,) = [o for o in graph.ops if isinstance(o, ir.TreeEnsemble)]
    return op


def _through_onnx(graph: ir.Graph, x, double=False):
    """The graph's tree op written as ONNX and run by onnxruntime (graphs of one op)."""
    op = _single(graph)
    return run(to_onnx(op, graph.inputs[0].width, ml_opset=onnx_trees.ML_OPSET, double=double), x, double)


# ---- XGBoost ---------------------------------------------------------------------------

xgboost = None


def _xgb(params, label, rounds=5, categorical=False, **dmatrix):
    global xgboost
    xgboost = pytest.importorskip("xgboost")
    if categorical:
        import pandas as pd

        frame = pd.DataFrame(X, columns=list("abcd"))
        frame["d"] = frame["d"].astype(int).astype("category")
        d = xgboost.DMatrix(frame, label, enable_categorical=True, **dmatrix)
    else:
        d = xgboost.DMatrix(X[:, :3], label, **dmatrix)
    booster = xgboost.train({"max_depth": 3, "nthread": 1, "seed": 0, **params}, d, rounds)
    return booster, d


XGB_CASES = {
    "squarederror": ({}, Y),
    "reg:logistic": ({"objective": "reg:logistic"}, (Y > 0.5) * 1.0),
    "binary:logistic": ({"objective": "binary:logistic"}, (Y > 0.5) * 1.0),
    "binary:logitraw": ({"objective": "binary:logitraw"}, (Y > 0.5) * 1.0),
    "count:poisson": ({"objective": "count:poisson"}, np.abs(Y).round()),
    "reg:gamma": ({"objective": "reg:gamma"}, np.abs(Y) + 0.1),
    "reg:tweedie": ({"objective": "reg:tweedie"}, np.abs(Y)),
    "survival:cox": ({"objective": "survival:cox"}, np.where(Y > 0.5, np.abs(Y) + 1, -np.abs(Y) - 1)),
    "multi:softprob": ({"objective": "multi:softprob", "num_class": 3}, Y3),
    "multi:softprob 2": ({"objective": "multi:softprob", "num_class": 2}, Y3 % 2),
    "quantiles": ({"objective": "reg:quantileerror", "quantile_alpha": np.array([0.2, 0.8])}, Y),
    "dart": ({"booster": "dart", "rate_drop": 0.3, "skip_drop": 0.0}, Y),
    "forest": ({"num_parallel_tree": 3, "subsample": 0.7}, Y),
    "multi-output tree": ({"tree_method": "hist", "multi_strategy": "multi_output_tree"}, np.c_[Y, X[:, 0]]),
}


@pytest.mark.parametrize("case", sorted(XGB_CASES))
def test_xgboost_reader_and_writer(case):
    from mlconvert.formats.classic import xgboost as reader

    params, label = XGB_CASES[case]
    booster, d = _xgb(params, label)
    graph = reader.read(json.loads(booster.save_raw("json")))
    x = XT[:, :3]
    expected = booster.predict(xgboost.DMatrix(x))
    out = evaluate(graph, {"X": x})
    got = out.get("value", out.get("probabilities"))
    if got.shape[1] == 2 and expected.ndim == 1 and "probabilities" in out:
        got = got[:, 1]
    np.testing.assert_allclose(got.reshape(expected.shape), expected, rtol=1e-5, atol=1e-6)
    onnx_out = _through_onnx(graph, x)
    np.testing.assert_allclose(onnx_out[-1], evaluate(graph, {"X": x})[graph.outputs[-1].name], rtol=1e-5,
                               atol=1e-5)


@pytest.mark.parametrize("objective", ["binary:hinge", "multi:softmax"])
def test_xgboost_label_objectives(objective):
    from mlconvert.formats.classic import xgboost as reader

    params = {"objective": objective, **({"num_class": 3} if objective == "multi:softmax" else {})}
    booster, _ = _xgb(params, Y3 if objective == "multi:softmax" else (Y > 0.5) * 1.0)
    graph = reader.read(json.loads(booster.save_raw("json")))
    x = XT[:, :3]
    expected = booster.predict(xgboost.DMatrix(x))
    assert (evaluate(graph, {"X": x})["label"].ravel().astype(float) == expected).all()
    assert (run(to_onnx(_single(graph), 3, ml_opset=onnx_trees.ML_OPSET), x)[0].astype(float) == expected).all()


def test_xgboost_categorical_splits_with_unseen_and_missing_values():
    from mlconvert.formats.classic import xgboost as reader

    booster, _ = _xgb({"tree_method": "hist", "max_cat_to_onehot": 1}, Y, categorical=True)
    graph = reader.read(json.loads(booster.save_raw("json")))
    assert any(op == "in" for t in _single(graph).trees for op in t.op)
    x = XT.copy()
    x[:, 3] = np.where(x[:, 3] < 0, np.nan, x[:, 3])  # XGBoost refuses negative codes
    d = xgboost.DMatrix(x, feature_names=list("abcd"), feature_types=["q", "q", "q", "c"], enable_categorical=True)
    expected = booster.predict(d)
    np.testing.assert_allclose(evaluate(graph, {"X": x})["value"].ravel(), expected, rtol=1e-5, atol=1e-6)
    for double in (False, True):
        np.testing.assert_allclose(_through_onnx(graph, x, double)[0].ravel(), expected, rtol=1e-5, atol=1e-5)


def test_xgboost_unknown_objective_is_unsupported():
    from mlconvert.formats.classic import xgboost as reader

    booster, _ = _xgb({}, Y)
    doc = json.loads(booster.save_raw("json"))
    doc["learner"]["objective"]["name"] = "reg:mystery"
    with pytest.raises(ir.Unsupported, match="objective reg:mystery"):
        reader.read(doc)


# ---- LightGBM ---------------------------------------------------------------------------

LGB_CASES = {
    "regression": ({}, Y, None),
    "zero_as_missing": ({"zero_as_missing": True}, Y, None),
    "use_missing=false": ({"use_missing": False}, Y, None),
    "binary sigmoid 2": ({"objective": "binary", "sigmoid": 2.0}, (Y > 0.5) * 1.0, None),
    "cross_entropy": ({"objective": "cross_entropy"}, np.clip(Y / 4 + 0.5, 0, 1), None),
    "multiclass": ({"objective": "multiclass", "num_class": 3}, Y3, None),
    "multiclassova": ({"objective": "multiclassova", "num_class": 3}, Y3, None),
    "poisson": ({"objective": "poisson"}, np.abs(Y).round(), None),
    "gamma": ({"objective": "gamma"}, np.abs(Y) + 0.1, None),
    "tweedie": ({"objective": "tweedie"}, np.abs(Y), None),
    "quantile": ({"objective": "quantile", "alpha": 0.3}, Y, None),
    "rf": ({"boosting": "rf", "bagging_freq": 1, "bagging_fraction": 0.7}, Y, None),
    "rf multiclass": ({"boosting": "rf", "bagging_freq": 1, "bagging_fraction": 0.7, "objective": "multiclass",
                       "num_class": 3}, Y3, None),
    "categorical": ({}, Y, [3]),
    "categorical binary": ({"objective": "binary"}, (Y > 0.5) * 1.0, [3]),
    "linear tree": ({"linear_tree": True}, Y, None),
    "linear tree categorical": ({"linear_tree": True}, Y, [3]),
}


@pytest.mark.parametrize("case", sorted(LGB_CASES))
def test_lightgbm_reader_and_writer(case):
    lightgbm = pytest.importorskip("lightgbm")
    from mlconvert.formats.classic import lightgbm as reader

    params, label, categorical = LGB_CASES[case]
    data = X.copy()
    data[::5, 2] = 0.0
    ds = lightgbm.Dataset(data, label, categorical_feature=categorical or "auto")
    booster = lightgbm.train({"verbose": -1, "num_leaves": 7, "min_data_in_leaf": 5, "num_threads": 1,
                              "deterministic": True, **params}, ds, 5)
    graph = reader.read_text(booster.model_to_string())
    expected = booster.predict(XT)
    out = evaluate(graph, {"X": XT})
    got = out.get("value", out.get("probabilities"))
    if expected.ndim == 1 and got.shape[1] == 2:
        got = got[:, 1]
    np.testing.assert_allclose(got.reshape(expected.shape), expected, rtol=1e-12, atol=1e-12)
    # ONNX, float64 (exact up to summation order) and float32 (thresholds decide exactly).
    from mlconvert.edges.translate_trees import graph_to_onnx

    for double, tol in ((True, 1e-9), (False, 1e-5)):
        model = graph_to_onnx(graph, double=double)
        session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
        x = XT.astype(np.float64 if double else np.float32)
        got = session.run(None, {"X": x})[-1]
        want = out[graph.outputs[-1].name]
        np.testing.assert_allclose(got, want, rtol=tol, atol=tol)


# ---- scikit-learn -----------------------------------------------------------------------

def _sklearn_cases():
    pytest.importorskip("sklearn")
    from sklearn import ensemble, tree

    Xn = X.copy()
    filled = np.nan_to_num(X)
    return {
        "decision tree classifier (missing)": (tree.DecisionTreeClassifier(max_depth=4), Xn, Y3),
        "decision tree two targets": (tree.DecisionTreeRegressor(max_depth=4), filled, np.c_[Y, X[:, 0]]),
        "extra tree": (tree.ExtraTreeClassifier(max_depth=4, random_state=0), filled, Y3),
        "random forest classifier strings": (ensemble.RandomForestClassifier(n_estimators=4, max_depth=4,
                                                                             random_state=0), Xn,
                                             np.array(["lo", "mid", "hi"])[Y3]),
        "random forest regressor": (ensemble.RandomForestRegressor(n_estimators=4, max_depth=4, random_state=0),
                                    Xn, Y),
        "extra trees": (ensemble.ExtraTreesRegressor(n_estimators=4, max_depth=4, random_state=0), filled, Y),
        "gradient boosting regressor": (ensemble.GradientBoostingRegressor(n_estimators=5, random_state=0),
                                        filled, Y),
        "gradient boosting binary": (ensemble.GradientBoostingClassifier(n_estimators=5, random_state=0), filled,
                                     Y3 > 0),
        "gradient boosting exponential": (ensemble.GradientBoostingClassifier(
            n_estimators=5, loss="exponential", random_state=0), filled, Y3 > 0),
        "gradient boosting multiclass": (ensemble.GradientBoostingClassifier(n_estimators=4, random_state=0),
                                         filled, Y3),
        "hist gradient boosting": (ensemble.HistGradientBoostingRegressor(max_iter=5), Xn, Y),
        "hist gradient boosting poisson": (ensemble.HistGradientBoostingRegressor(max_iter=5, loss="poisson"), Xn,
                                           np.abs(Y)),
        "hist gradient boosting categorical": (ensemble.HistGradientBoostingClassifier(
            max_iter=5, categorical_features=[3]), Xn, Y3),
        "hist gradient boosting categorical binary": (ensemble.HistGradientBoostingClassifier(
            max_iter=5, categorical_features=[3]), Xn, Y3 > 0),
    }


SKLEARN_CASES = ["decision tree classifier (missing)", "decision tree two targets", "extra tree",
                 "random forest classifier strings", "random forest regressor", "extra trees",
                 "gradient boosting regressor", "gradient boosting binary", "gradient boosting exponential",
                 "gradient boosting multiclass", "hist gradient boosting", "hist gradient boosting poisson",
                 "hist gradient boosting categorical", "hist gradient boosting categorical binary"]


@pytest.mark.parametrize("case", SKLEARN_CASES)
def test_sklearn_reader_and_writer(case):
    from mlconvert.formats.classic import sklearn as reader

    model, data, label = _sklearn_cases()[case]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        model.fit(data, label)
    graph = reader.read(model)
    x = XT.copy()
    x[:, 3] = np.where(x[:, 3] < 0, 7, x[:, 3])
    if np.isnan(data).sum() == 0:
        x = np.nan_to_num(x)
    out = evaluate(graph, {"X": x})
    if "probabilities" in out:
        np.testing.assert_allclose(out["probabilities"], model.predict_proba(x), atol=1e-12)
        assert (out["label"].ravel() == model.predict(x)).all()
    else:
        np.testing.assert_allclose(out["value"].squeeze(), model.predict(x), rtol=1e-12, atol=1e-12)
    got = _through_onnx(graph, x, double=True)
    np.testing.assert_allclose(got[-1], out[graph.outputs[-1].name], rtol=1e-9, atol=1e-9)
    if "label" in out:
        assert got[0].tolist() == out["label"].ravel().tolist()
