"""Pickles written by older scikit-learn (and pandas) releases: the old state layouts are
written here by code (the classes and fields those releases had), then loaded, upgraded
where what the original computed is certain, converted and checked; or refused with the
producer's version and the reason. The real 0.19 files in ../shared/realworld are checked
against the predictions their authors recorded."""
from __future__ import annotations

import contextlib
import io
import pickle
import sys
import types

import numpy as np
import pytest

from mlconvert import api
from mlconvert.errors import InputError
from mlconvert.formats._pickle_load import load_pickle

pytestmark = pytest.mark.slow


@contextlib.contextmanager
def _fake_class(module: str, name: str, base=object, **attrs):
    """A class importable as module.name while the old layout is written (the module may
    no longer exist); removed again afterwards so loading never sees it."""
    cls = type(name, (base,), {"__module__": module, "__qualname__": name, **attrs})
    existing = sys.modules.get(module)
    mod = existing or types.ModuleType(module)
    setattr(mod, name, cls)
    if existing is None:
        sys.modules[module] = mod
    try:
        yield cls
    finally:
        delattr(mod, name)
        if existing is None:
            del sys.modules[module]


class _OldLayout(pickle.Pickler):
    """Writes estimators as an older release did: the recorded version, tree node arrays
    without missing_go_to_left, and any state rewrite a test asks for."""

    def __init__(self, fh, version: str, rewrite=None):
        super().__init__(fh, protocol=2)
        self.version, self.rewrite = version, rewrite or {}

    def reducer_override(self, obj):
        from sklearn.base import BaseEstimator
        from sklearn.tree._tree import Tree

        if isinstance(obj, Tree):
            cls, args, state = obj.__reduce__()
            nodes = state["nodes"]
            names = [n for n in nodes.dtype.names if n != "missing_go_to_left"]
            old = np.zeros(nodes.shape, dtype=[(n, nodes.dtype[n]) for n in names])
            for n in names:
                old[n] = nodes[n]
            return cls, args, {**state, "nodes": old}
        if isinstance(obj, BaseEstimator):
            reduced = obj.__reduce_ex__(2)
            state = dict(reduced[2])
            state["_sklearn_version"] = self.version
            for key, value in self.rewrite.get(id(obj), {}).items():
                if value is _DROP:
                    state.pop(key, None)
                else:
                    state[key] = value
            return (reduced[0], reduced[1], state) + tuple(reduced[3:])
        return NotImplemented


_DROP = object()


def _write_old(obj, path, version, rewrite=None):
    buf = io.BytesIO()
    _OldLayout(buf, version, rewrite).dump(obj)
    path.write_bytes(buf.getvalue())
    return path


def _iris():
    from sklearn.datasets import load_iris

    return load_iris(return_X_y=True)


def _diabetes():
    from sklearn.datasets import load_diabetes

    return load_diabetes(return_X_y=True)


def test_tree_node_arrays_without_missing_go_to_left(tmp_path):
    from sklearn.ensemble import RandomForestClassifier

    X, y = _iris()
    model = RandomForestClassifier(n_estimators=4, max_depth=4, random_state=0).fit(X, y)
    path = _write_old(model, tmp_path / "forest.pkl", "1.2.2")
    with pytest.raises(ValueError, match="incompatible dtype"):
        with open(path, "rb") as fh:  # what plain pickle makes of it today
            pickle.load(fh)
    loaded = load_pickle(path)
    assert any("missing_go_to_left" in n for n in loaded.warnings)
    assert np.array_equal(loaded.obj.predict_proba(X), model.predict_proba(X))
    report = api.convert(path, tmp_path / "forest.onnx")
    assert report.verification["status"] == "verified"


def _old_gradient_boosting(tmp_path, model, loss_name, loss_state, init_name, init_state, version="0.19.2"):
    losses = _fake_class("sklearn.ensemble.gradient_boosting", loss_name)
    inits = _fake_class("sklearn.ensemble.gradient_boosting", init_name)
    with losses as Loss, inits as Init:
        loss, init = Loss(), Init()
        loss.__dict__.update(loss_state)
        init.__dict__.update(init_state)
        rewrite = {id(model): {"loss_": loss, "init_": init, "_loss": _DROP}}
        return _write_old(model, tmp_path / "gb.pkl", version, rewrite)


def test_gradient_boosting_regressor_019_losses_and_init(tmp_path):
    from sklearn.ensemble import GradientBoostingRegressor

    X, y = _diabetes()
    model = GradientBoostingRegressor(n_estimators=12, max_depth=3, random_state=0).fit(X, y)
    path = _old_gradient_boosting(tmp_path, model, "LeastSquaresError", {"K": 1}, "MeanEstimator",
                                  {"mean": float(model.init_.constant_[0][0])})
    loaded = load_pickle(path)
    assert type(loaded.obj._loss).__name__ == "HalfSquaredError"
    assert np.abs(loaded.obj.predict(X) - model.predict(X)).max() < 1e-9
    report = api.convert(path, tmp_path / "gb.onnx")
    assert report.verification["status"] == "verified"


def test_gradient_boosting_binary_classifier_log_odds_init(tmp_path):
    from scipy.special import logit
    from sklearn.datasets import load_breast_cancer
    from sklearn.ensemble import GradientBoostingClassifier

    X, y = load_breast_cancer(return_X_y=True)
    model = GradientBoostingClassifier(n_estimators=8, max_depth=2, random_state=0).fit(X, y)
    prior = float(logit(model.init_.class_prior_[1]))
    path = _old_gradient_boosting(tmp_path, model, "BinomialDeviance", {"K": 1}, "LogOddsEstimator",
                                  {"prior": prior})
    loaded = load_pickle(path).obj
    assert type(loaded._loss).__name__ == "HalfBinomialLoss"
    assert np.abs(loaded.predict_proba(X) - model.predict_proba(X)).max() < 1e-12
    assert api.convert(path, tmp_path / "gb.onnx").verification["status"] == "verified"


def test_gradient_boosting_multiclass_prior_probability_init(tmp_path):
    """0.19's multinomial init gave the priors themselves as raw scores: the upgraded model
    computes softmax(priors + trees), as the original did."""
    from scipy.special import softmax
    from sklearn.ensemble import GradientBoostingClassifier

    X, y = _iris()
    model = GradientBoostingClassifier(n_estimators=6, max_depth=2, random_state=0).fit(X, y)
    priors = np.array([0.2, 0.5, 0.3])
    path = _old_gradient_boosting(tmp_path, model, "MultinomialDeviance", {"K": 3},
                                  "PriorProbabilityEstimator", {"priors": priors})
    trees = model.decision_function(X) - model._raw_predict_init(X)
    expected = softmax(priors + trees, axis=1)
    loaded = load_pickle(path).obj
    assert np.abs(loaded.predict_proba(X) - expected).max() < 1e-12
    assert api.convert(path, tmp_path / "gb.onnx").verification["status"] == "verified"


@pytest.mark.parametrize("attr, version", [("loss_", "0.24.2"), ("_loss", "1.2.2")])
def test_gradient_boosting_losses_module_of_022_to_13(tmp_path, attr, version):
    """Between 0.22 and 1.3 the loss lived in sklearn.ensemble._gb_losses (init_ was
    already a DummyRegressor), as loss_ until 1.0 and as _loss from 1.1."""
    from sklearn.ensemble import GradientBoostingRegressor

    X, y = _diabetes()
    model = GradientBoostingRegressor(loss="huber", n_estimators=6, random_state=0).fit(X, y)
    with _fake_class("sklearn.ensemble._gb_losses", "HuberLossFunction") as Loss:
        loss = Loss()
        loss.__dict__.update({"K": 1, "alpha": 0.9, "gamma": 10.0})
        rewrite = {"loss_": loss, "_loss": _DROP} if attr == "loss_" else {"_loss": loss}
        path = _write_old(model, tmp_path / "gb.pkl", version, {id(model): rewrite})
    loaded = load_pickle(path).obj
    assert np.array_equal(loaded.predict(X), model.predict(X))


def test_remainder_cols_list_of_15(tmp_path):
    from collections import UserList

    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import StandardScaler

    X, _ = _iris()
    model = ColumnTransformer([("scale", StandardScaler(), [0, 1])], remainder="passthrough").fit(X)
    with _fake_class("sklearn.compose._column_transformer", "_RemainderColsList", UserList) as Cols:
        cols = Cols([2, 3])
        cols.__dict__.update({"future_dtype": "int", "warning_was_emitted": False, "warning_enabled": True})
        transformers = [(n, t, cols if n == "remainder" else c) for n, t, c in model.transformers_]
        path = _write_old(model, tmp_path / "ct.pkl", "1.5.2",
                          {id(model): {"transformers_": transformers, "_remainder": ("remainder", "passthrough", cols)}})
    loaded = load_pickle(path)
    assert loaded.obj.transformers_[-1][2] == [2, 3]
    assert np.array_equal(loaded.obj.transform(X), model.transform(X))
    assert api.convert(path, tmp_path / "ct.onnx").verification["status"] == "verified"


def test_pandas_before_2_int64_index(tmp_path):
    pd = pytest.importorskip("pandas")
    from pandas.core.indexes.base import _new_Index
    from sklearn.linear_model import LinearRegression

    X, y = _diabetes()
    model = LinearRegression().fit(X, y)
    with _fake_class("pandas.core.indexes.numeric", "Int64Index") as OldIndex:
        old = OldIndex()
        OldIndex.__reduce__ = lambda self: (_new_Index, (OldIndex, {"data": np.arange(3, dtype=np.int64),
                                                                     "name": "rows"}))
        model.rows_seen_ = old
        path = _write_old(model, tmp_path / "lr.pkl", "0.24.2")
    loaded = load_pickle(path).obj  # no --trust: pandas indexes are data
    assert isinstance(loaded.rows_seen_, pd.Index) and loaded.rows_seen_.dtype == np.int64
    assert list(loaded.rows_seen_) == [0, 1, 2] and loaded.rows_seen_.name == "rows"


@pytest.mark.parametrize("multi_class, solver", [("ovr", "lbfgs"), ("warn", "liblinear"), ("auto", "liblinear")])
def test_one_vs_rest_logistic_regression_keeps_its_semantics(tmp_path, multi_class, solver):
    from scipy.special import expit
    from sklearn.linear_model import LogisticRegression

    X, y = _iris()
    model = LogisticRegression(max_iter=500).fit(X, y)
    path = _write_old(model, tmp_path / "lr.pkl", "0.21.3",
                      {id(model): {"multi_class": multi_class, "solver": solver}})
    ovr = expit(model.decision_function(X))
    ovr /= ovr.sum(axis=1, keepdims=True)
    loaded = load_pickle(path)
    assert np.abs(loaded.obj.predict_proba(X) - ovr).max() < 1e-12
    assert np.array_equal(loaded.obj.predict(X), model.predict(X))
    report = api.convert(path, tmp_path / "lr.onnx")
    assert report.verification["status"] == "verified"
    import onnxruntime as ort

    sess = ort.InferenceSession(str(tmp_path / "lr.onnx"), providers=["CPUExecutionProvider"])
    proba = sess.run(None, {sess.get_inputs()[0].name: X.astype(np.float32)})[1]
    assert np.abs(proba - ovr).max() < 1e-5


def test_removed_class_without_a_certain_upgrade_is_refused_with_the_version(tmp_path):
    from sklearn.linear_model import LinearRegression

    X, y = _diabetes()
    model = LinearRegression().fit(X, y)
    with _fake_class("sklearn.ensemble.gradient_boosting", "LeastSquaresError") as Loss:
        model.extra_ = Loss()  # a loss object outside any gradient boosting model
        path = _write_old(model, tmp_path / "lr.pkl", "0.19.2")
    with pytest.raises(InputError, match=r"LeastSquaresError, which scikit-learn 0\.19\.2 wrote"):
        load_pickle(path)


# --- the real files, against what their authors' scikit-learn predicted ---


def _recorded(realworld, name):
    folder = realworld / "sklearn"
    with open(folder / f"{name}.data.pkl", "rb") as fh:  # numpy arrays, written by the test suite's source
        X = pickle.load(fh)
    with open(folder / f"{name}.expected.pkl", "rb") as fh:
        expected = pickle.load(fh)
    return folder / f"{name}.model.pkl", np.asarray(X, dtype=np.float64), expected


@pytest.mark.realworld
def test_realworld_gradient_boosting_019(realworld, tmp_path):
    path, X, expected = _recorded(realworld, "skl0192_GradientBoostingRegressor")
    assert np.abs(load_pickle(path).obj.predict(X) - np.ravel(expected[0])).max() == 0.0
    report = api.convert(path, tmp_path / "gb.onnx")
    assert report.verification["status"] == "verified"
    import onnxruntime as ort

    sess = ort.InferenceSession(str(tmp_path / "gb.onnx"), providers=["CPUExecutionProvider"])
    got = sess.run(None, {sess.get_inputs()[0].name: X.astype(np.float32)})[0]
    assert np.abs(np.ravel(got) - np.ravel(expected[0])).max() < 1e-5


@pytest.mark.realworld
def test_realworld_one_vs_rest_logistic_regression_019(realworld, tmp_path):
    path, X, (labels, proba) = _recorded(realworld, "skl0192_LogisticRegressionMulti")
    loaded = load_pickle(path).obj
    assert np.array_equal(loaded.predict(X), labels)
    assert np.abs(loaded.predict_proba(X) - proba).max() < 1e-12
    report = api.convert(path, tmp_path / "lr.onnx")
    assert report.verification["status"] == "verified"


@pytest.mark.parametrize("drop", [None, "first"])
def test_one_hot_encoder_before_infrequent_categories(tmp_path, drop):
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder

    rng = np.random.default_rng(0)
    X = rng.integers(0, 4, (200, 3)).astype(float)
    y = (X[:, 0] + X[:, 1] > 3).astype(int)
    model = make_pipeline(OneHotEncoder(drop=drop), LogisticRegression()).fit(X, y)
    encoder = model.steps[0][1]
    gone = {k: _DROP for k in ("_infrequent_enabled", "_drop_idx_after_grouping", "_n_features_outs",
                               "_infrequent_indices", "_default_to_infrequent_mappings")}
    path = _write_old(model, tmp_path / "ohe.pkl", "1.0.2", {id(encoder): gone})
    loaded = load_pickle(path)
    assert any("infrequent" in n for n in loaded.warnings)
    assert np.array_equal(loaded.obj.predict_proba(X), model.predict_proba(X))
    assert api.convert(path, tmp_path / "ohe.onnx").verification["status"] == "verified"


def test_kmeans_before_n_threads(tmp_path):
    from sklearn.cluster import KMeans

    X, _ = _iris()
    model = KMeans(3, n_init=3, random_state=0).fit(X)
    path = _write_old(model, tmp_path / "km.pkl", "0.22.2", {id(model): {"_n_threads": _DROP}})
    loaded = load_pickle(path).obj
    assert np.array_equal(loaded.predict(X), model.predict(X))
    assert api.convert(path, tmp_path / "km.onnx").verification["status"] == "verified"


def test_svc_before_effective_probability(tmp_path):
    """scikit-learn 1.9 reads _effective_probability when a model fitted on sparse rows predicts."""
    from scipy.sparse import csr_matrix
    from sklearn.svm import SVC

    X, y = _iris()
    model = SVC(probability=True, random_state=0).fit(csr_matrix(X), y)
    model.probability = True  # what an old release recorded (1.9 records "deprecated" unless told)
    path = _write_old(model, tmp_path / "svc.pkl", "1.3.2", {id(model): {"_effective_probability": _DROP}})
    with open(path, "rb") as fh:
        with pytest.raises(AttributeError, match="_effective_probability"):
            pickle.load(fh).predict(csr_matrix(X))
    loaded = load_pickle(path).obj
    assert np.array_equal(loaded.predict(csr_matrix(X)), model.predict(csr_matrix(X)))


def test_simple_imputer_before_fit_and_fill_dtype(tmp_path):
    from sklearn.impute import SimpleImputer
    from sklearn.linear_model import Ridge
    from sklearn.pipeline import make_pipeline

    X, y = _diabetes()
    X = X.copy()
    X[::7, 2] = np.nan
    model = make_pipeline(SimpleImputer(strategy="median"), Ridge()).fit(X, y)
    imputer = model.steps[0][1]
    path = _write_old(model, tmp_path / "imp.pkl", "1.0.2",
                      {id(imputer): {"_fit_dtype": _DROP, "_fill_dtype": _DROP}})
    with open(path, "rb") as fh:
        with pytest.raises(AttributeError, match="_fit_dtype"):
            pickle.load(fh).predict(X)
    loaded = load_pickle(path).obj
    assert np.array_equal(loaded.predict(X), model.predict(X))
    assert api.convert(path, tmp_path / "imp.onnx").verification["status"] == "verified"


def test_column_transformer_before_transformer_to_input_indices(tmp_path):
    pd = pytest.importorskip("pandas")
    from sklearn.compose import ColumnTransformer
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import OneHotEncoder, StandardScaler

    rng = np.random.default_rng(0)
    frame = pd.DataFrame({"age": rng.normal(40, 10, 120), "city": rng.choice(["a", "b", "c"], 120),
                          "income": rng.normal(50, 5, 120)})
    y = (frame["age"] > 40).astype(int)
    columns = ColumnTransformer([("num", StandardScaler(), ["age", "income"]),
                                 ("cat", OneHotEncoder(), ["city"])])
    model = make_pipeline(columns, LogisticRegression()).fit(frame, y)
    path = _write_old(model, tmp_path / "ct.pkl", "1.1.3", {id(columns): {"_transformer_to_input_indices": _DROP}})
    with open(path, "rb") as fh:
        with pytest.raises(AttributeError, match="_transformer_to_input_indices"):
            pickle.load(fh).predict(frame)
    loaded = load_pickle(path).obj
    assert np.array_equal(loaded.predict_proba(frame), model.predict_proba(frame))
    assert api.convert(path, tmp_path / "ct.onnx").verification["status"] == "verified"
