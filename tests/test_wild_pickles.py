"""Pickles as people ship them: sklearn2pmml's PMMLPipeline and decorators, sklearn-pandas'
DataFrameMapper, XGBoost / LightGBM inside them, fitted transformers on their own,
clusterers. Each model is built here with the library that makes it, converted to ONNX,
and the ONNX model is checked against the pickle's own predictions on real rows
(including rows with missing and out-of-range values, where the decorators act)."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from mlconvert import api

pytest.importorskip("sklearn2pmml")
pd = pytest.importorskip("pandas")
ort = pytest.importorskip("onnxruntime")

pytestmark = pytest.mark.slow


def _iris():
    from sklearn.datasets import load_iris

    iris = load_iris(as_frame=True)
    X = iris.data.copy()
    X.columns = ["sl", "sw", "pl", "pw"]
    return X, iris.target


def _dump(obj, tmp_path, name="model.pkl"):
    path = tmp_path / name
    with open(path, "wb") as fh:
        pickle.dump(obj, fh, protocol=5)
    return path


def _run_onnx(path, X: "pd.DataFrame"):
    """The ONNX model's outputs on X: one matrix input, or one input per column."""
    sess = ort.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    inputs = sess.get_inputs()
    if len(inputs) == 1 and inputs[0].shape[-1] != 1:
        dtype = np.float64 if inputs[0].type == "tensor(double)" else np.float32
        feed = {inputs[0].name: X.to_numpy(dtype=dtype)}
    else:
        feed = {}
        for i in inputs:
            col = X[i.name].to_numpy().reshape(-1, 1)
            feed[i.name] = col.astype(object).astype(str) if i.type == "tensor(string)" else col.astype(np.float32)
    return sess.run(None, feed)


def _convert(path, tmp_path, **kw):
    out = tmp_path / "model.onnx"
    report = api.convert(path, out, trust=True, **kw)
    assert report.verification["status"] == "verified", report.verification
    return out, report


def _check_classifier(model, onnx_path, X, atol=1e-5):
    label, proba = _run_onnx(onnx_path, X)[:2]
    assert np.array_equal(np.ravel(label), model.predict(X))
    diff = np.abs(np.asarray(proba) - model.predict_proba(X)).max()
    assert diff < atol, diff
    return float(diff)


def _check_regressor(model, onnx_path, X, rtol=1e-5):
    value = np.ravel(_run_onnx(onnx_path, X)[0])
    expected = model.predict(X)
    diff = np.abs(value - expected).max()
    assert diff <= rtol * np.abs(expected).max(), diff
    return float(diff)


def test_pmml_pipeline_with_domain_scaler_logreg(tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    from sklearn2pmml.decoration import ContinuousDomain
    from sklearn2pmml.pipeline import PMMLPipeline

    X, y = _iris()
    model = PMMLPipeline([("domain", ContinuousDomain()), ("scaler", StandardScaler()),
                          ("clf", LogisticRegression(max_iter=500))]).fit(X, y)
    out, report = _convert(_dump(model, tmp_path), tmp_path)
    assert report.source["flavor"] == "sklearn"
    _check_classifier(model, out, X)


def test_pmml_pipeline_fitted_on_arrays(tmp_path):
    """No active_fields, no feature names: the width comes from the first step."""
    from sklearn.svm import SVR
    from sklearn2pmml.decoration import ContinuousDomain
    from sklearn2pmml.pipeline import PMMLPipeline

    X, _ = _iris()
    arr = X.to_numpy()
    model = PMMLPipeline([("domain", ContinuousDomain(invalid_value_treatment="as_is")),
                          ("svr", SVR())]).fit(arr, arr[:, 0] * 2)
    out, _ = _convert(_dump(model, tmp_path), tmp_path)
    value = np.ravel(_run_onnx(out, X)[0])
    assert np.abs(value - model.predict(arr)).max() < 1e-4


def test_multi_domain_treatments_match_the_pickle(tmp_path):
    """Missing, invalid and outlier values are treated in ONNX as the decorators treat them."""
    from sklearn.linear_model import LogisticRegression
    from sklearn2pmml.decoration import ContinuousDomain, MultiDomain
    from sklearn2pmml.pipeline import PMMLPipeline

    X, y = _iris()
    domains = MultiDomain([
        ContinuousDomain(missing_value_replacement=5.8, invalid_value_treatment="as_missing"),
        ContinuousDomain(outlier_treatment="as_extreme_values", low_value=2.5, high_value=4.0,
                         invalid_value_treatment="as_is"),
        None,
        ContinuousDomain(missing_values=-1.0, missing_value_replacement=1.2,
                         invalid_value_treatment="as_value", invalid_value_replacement=0.5),
    ])
    model = PMMLPipeline([("domains", domains), ("clf", LogisticRegression(max_iter=500))]).fit(X, y)
    out, _ = _convert(_dump(model, tmp_path), tmp_path)
    rows = X.copy()
    rows.iloc[::7, 0] = np.nan  # missing: replaced by 5.8
    rows.iloc[1::7, 0] = 12.0  # invalid (outside the fitted range): as missing, so 5.8
    rows.iloc[2::7, 1] = 1.0  # invalid, kept, but an outlier: clipped to 2.5
    rows.iloc[3::7, 1] = 4.3  # valid outlier: clipped to 4.0
    rows.iloc[4::7, 3] = -1.0  # the declared missing value: 1.2
    rows.iloc[5::7, 3] = 9.0  # invalid: 0.5
    transformed = model.steps[0][1].transform(rows)
    assert transformed.iloc[1, 0] == 5.8 and transformed.iloc[5, 3] == 0.5  # the treatments did act
    _check_classifier(model, out, rows)


def test_data_frame_mapper_alias_selector_proxy_and_string_domain(tmp_path):
    from sklearn.feature_selection import SelectKBest
    from sklearn.preprocessing import LabelBinarizer, StandardScaler
    from sklearn.tree import DecisionTreeClassifier
    from sklearn2pmml import SelectorProxy
    from sklearn2pmml.decoration import Alias, CategoricalDomain, ContinuousDomain
    from sklearn2pmml.pipeline import PMMLPipeline
    from sklearn2pmml.sklearn_pandas import patch_sklearn

    patch_sklearn()  # sklearn-pandas 2.2 needs sklearn.utils.tosequence (gone in scikit-learn 1.7)
    from sklearn_pandas import DataFrameMapper

    X, y = _iris()
    X["color"] = np.random.default_rng(0).choice(["red", "green", "blue"], len(X))
    mapper = DataFrameMapper([
        (["sl", "sw"], [ContinuousDomain(), StandardScaler()]),
        (["pl"], Alias(StandardScaler(), name="pl_scaled")),
        ("color", [CategoricalDomain(), LabelBinarizer()]),
    ])
    model = PMMLPipeline([("mapper", mapper), ("select", SelectorProxy(SelectKBest(k=4))),
                          ("tree", DecisionTreeClassifier(max_depth=3, random_state=0))]).fit(X, y)
    out, report = _convert(_dump(model, tmp_path), tmp_path)
    assert "declared input" in report.verification["inputs"]  # one input per column, by name
    _check_classifier(model, out, X)


def test_categorical_domain_invalid_strings_as_value(tmp_path):
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import OneHotEncoder
    from sklearn2pmml.decoration import CategoricalDomain, ContinuousDomain
    from sklearn2pmml.pipeline import PMMLPipeline
    from sklearn2pmml.sklearn_pandas import patch_sklearn

    patch_sklearn()
    from sklearn_pandas import DataFrameMapper

    X, y = _iris()
    X["color"] = np.where(y.to_numpy() == 0, "red", np.where(y.to_numpy() == 1, "green", "blue"))
    mapper = DataFrameMapper([
        (["color"], [CategoricalDomain(invalid_value_treatment="as_value", invalid_value_replacement="green"),
                     OneHotEncoder()]),
        (["sl", "pw"], ContinuousDomain(invalid_value_treatment="as_is")),
    ])
    model = PMMLPipeline([("mapper", mapper), ("clf", LogisticRegression(max_iter=500))]).fit(X, y)
    out, _ = _convert(_dump(model, tmp_path), tmp_path)
    rows = X.copy()
    rows.loc[::5, "color"] = "purple"  # unseen: becomes "green"
    _check_classifier(model, out, rows)


def test_xgboost_inside_pmml_pipeline_goes_through_skl2onnx(tmp_path):
    from sklearn2pmml.decoration import ContinuousDomain
    from sklearn2pmml.pipeline import PMMLPipeline
    from xgboost import XGBClassifier

    X, y = _iris()
    model = PMMLPipeline([("domain", ContinuousDomain(invalid_value_treatment="as_is")),
                          ("xgb", XGBClassifier(n_estimators=6, max_depth=3, random_state=0))]).fit(X, y)
    out, report = _convert(_dump(model, tmp_path), tmp_path)
    assert [s.edge for s in report.steps] == ["skl2onnx"]
    _check_classifier(model, out, X)


def test_lightgbm_inside_data_frame_mapper_pipeline(tmp_path):
    from lightgbm import LGBMRegressor
    from sklearn.datasets import load_diabetes
    from sklearn2pmml.decoration import ContinuousDomain
    from sklearn2pmml.pipeline import PMMLPipeline
    from sklearn2pmml.sklearn_pandas import patch_sklearn

    patch_sklearn()
    from sklearn_pandas import DataFrameMapper

    data = load_diabetes(as_frame=True)
    X, y = data.data, data.target
    mapper = DataFrameMapper([([c], ContinuousDomain(missing_value_replacement=0.0, invalid_value_treatment="as_missing"))
                              for c in X.columns])
    model = PMMLPipeline([("mapper", mapper),
                          ("lgbm", LGBMRegressor(n_estimators=8, num_leaves=6, verbose=-1))]).fit(X, y)
    out, report = _convert(_dump(model, tmp_path), tmp_path)
    assert [s.edge for s in report.steps] == ["skl2onnx"]
    rows = X.copy()
    rows.iloc[::6, 2] = np.nan
    rows.iloc[1::6, 3] = 5.0  # out of range: as missing, then 0.0
    _check_regressor(model, out, rows, rtol=1e-5)


# --- fitted transformers on their own, clusterers ---


@pytest.mark.parametrize("make", ["scaler", "minmax", "columns"])
def test_fitted_transformer_alone_converts_and_verifies_with_transform(tmp_path, make):
    from sklearn.compose import ColumnTransformer
    from sklearn.preprocessing import MinMaxScaler, StandardScaler

    X, _ = _iris()
    arr = X.to_numpy()
    model = {"scaler": StandardScaler(), "minmax": MinMaxScaler(),
             "columns": ColumnTransformer([("s", StandardScaler(), [0, 1]), ("keep", "passthrough", [3])])}[make]
    model.fit(arr)
    out, report = _convert(_dump(model, tmp_path), tmp_path)
    assert [o["name"] for o in report.verification["outputs"]] == ["value"]
    got = _run_onnx(out, X)[0]
    assert np.abs(got - model.transform(arr)).max() < 1e-5


def test_kmeans_in_a_pipeline_compares_cluster_labels(tmp_path):
    from sklearn.cluster import KMeans
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, _ = _iris()
    arr = X.to_numpy()
    model = make_pipeline(StandardScaler(), KMeans(3, random_state=0, n_init=3)).fit(arr)
    out, report = _convert(_dump(model, tmp_path), tmp_path)
    checks = {o["name"]: o for o in report.verification["outputs"]}
    assert checks["label"]["agreement"] == 1.0
    assert np.array_equal(np.ravel(_run_onnx(out, X)[0]), model.predict(arr))


@pytest.mark.realworld
@pytest.mark.parametrize("name", ["adityab_scaler.pkl", "anindasau_scaler.pkl", "cryptic_scaler.pkl"])
def test_realworld_scalers_shipped_beside_keras_models(realworld, tmp_path, name):
    path = realworld / "keras" / name
    out, _ = _convert(path, tmp_path)
    import joblib

    scaler = joblib.load(path)  # joblib files: read by the library that wrote them, in the test only
    rows = np.random.default_rng(0).normal(scaler.mean_ if hasattr(scaler, "mean_") else 0.5, 1.0,
                                           (32, scaler.n_features_in_))
    got = _run_onnx(out, pd.DataFrame(rows))[0]
    assert np.abs(got - scaler.transform(rows)).max() < 1e-4 * max(1.0, np.abs(scaler.transform(rows)).max())


# --- the allow-list: pandas data, sklearn2pmml's decorators ---


def test_pandas_dtypes_and_arrow_strings_load_without_trust(tmp_path):
    """A model carrying a DataFrame's dtypes and string columns (pandas 3 keeps them in
    Arrow arrays) is data, not code: it loads and converts without --trust."""
    pytest.importorskip("pyarrow")
    from sklearn.linear_model import LogisticRegression

    X, y = _iris()
    frame = X.assign(color=pd.array(["a", "b", "c"] * 50, dtype="string[pyarrow]"))
    model = LogisticRegression(max_iter=500).fit(X.to_numpy(), y)
    model.dtypes_seen_ = frame.dtypes  # what web apps keep beside the model
    model.colors_ = frame["color"].array
    path = _dump(model, tmp_path)
    from mlconvert.formats._pickle_scan import scan_pickle

    scan = scan_pickle(path)
    assert any("ArrowStringArray" in g for g in scan.globals) and not scan.untrusted
    report = api.convert(path, tmp_path / "m.onnx")
    assert report.verification["status"] == "verified"


def test_arrow_array_with_offsets_outside_its_buffers_is_refused(tmp_path):
    pa = pytest.importorskip("pyarrow")
    from mlconvert.errors import InputError
    from mlconvert.formats._pickle_load import load_pickle

    class Forged:
        def __reduce__(self):
            offsets = pa.py_buffer(np.array([0, 1, 1 << 20], dtype=np.int32).tobytes())
            return pa.lib._restore_array, ((pa.string(), 2, 0, 0, [None, offsets, pa.py_buffer(b"xyy")], [], None),)

    path = _dump({"column": Forged()}, tmp_path)
    with pytest.raises(InputError):
        load_pickle(path)


def test_pmml_decorators_load_without_trust_but_expression_transformer_does_not(tmp_path):
    from sklearn.linear_model import LinearRegression
    from sklearn2pmml.decoration import CategoricalDomain, ContinuousDomain
    from sklearn2pmml.pipeline import PMMLPipeline
    from sklearn2pmml.preprocessing import ExpressionTransformer

    from mlconvert.errors import UntrustedInputError

    X, _ = _iris()
    model = PMMLPipeline([("domain", ContinuousDomain()), ("reg", LinearRegression())]).fit(X, X["sl"] * 2)
    out = tmp_path / "m.onnx"
    assert api.convert(_dump(model, tmp_path), out).verification["status"] == "verified"

    frame = X.assign(color=np.where(X["sl"] > 5.8, "big", "small"))
    domain = CategoricalDomain().fit(frame[["color"]])  # its dtype_ is pandas' StringDtype
    assert not __import__("mlconvert").formats._pickle_scan.scan_pickle(_dump(domain, tmp_path, "d.pkl")).untrusted

    expr = PMMLPipeline([("expr", ExpressionTransformer("X[0] + X[1]")), ("reg", LinearRegression())])
    expr.fit(X, X["sl"])
    with pytest.raises(UntrustedInputError, match="ExpressionTransformer"):
        api.convert(_dump(expr, tmp_path, "expr.pkl"), tmp_path / "e.onnx")


# --- what a refusal says ---


def test_missing_package_hint_names_module_and_our_extra(tmp_path):
    """A PMML pipeline where sklearn2pmml is not installed: the hint says what to install."""
    from sklearn.linear_model import LinearRegression
    from sklearn2pmml.decoration import ContinuousDomain
    from sklearn2pmml.pipeline import PMMLPipeline

    from conftest import run_cli

    X, _ = _iris()
    model = PMMLPipeline([("domain", ContinuousDomain()), ("reg", LinearRegression())]).fit(X, X["sl"])
    path = _dump(model, tmp_path)
    r = run_cli("convert", "--trust", str(path), str(tmp_path / "m.onnx"),
                prelude="import sys; sys.modules['sklearn2pmml'] = None")
    assert r.code == 3, r
    assert "sklearn2pmml" in r.err and "pip install 'mlconvert[pmml]'" in r.err


def test_unknown_flavor_refusal_names_the_classes(tmp_path):
    import fractions

    path = _dump({"model": fractions.Fraction(1, 3)}, tmp_path)
    from mlconvert.errors import NoPathError

    with pytest.raises(NoPathError, match=r"builtins.dict, built from fractions.Fraction"):
        api.convert(path, tmp_path / "m.onnx", trust=True)


def test_domain_with_integer_dtype_and_outliers_as_missing(tmp_path):
    """dtype=int truncates like the cast the domain makes; outliers become the missing
    value's replacement."""
    from sklearn.linear_model import LogisticRegression
    from sklearn2pmml.decoration import ContinuousDomain, MultiDomain
    from sklearn2pmml.pipeline import PMMLPipeline

    X, y = _iris()
    X = (X * 10).round()  # whole numbers, as an integer column holds them
    domains = MultiDomain([
        ContinuousDomain(dtype=float, outlier_treatment="as_missing_values", low_value=45.0, high_value=75.0,
                         missing_value_replacement=58.0),
        ContinuousDomain(dtype=int, invalid_value_treatment="as_is"),
        None,
        ContinuousDomain(invalid_value_treatment="as_is"),
    ])
    model = PMMLPipeline([("domains", domains), ("clf", LogisticRegression(max_iter=1000))]).fit(X, y)
    out, _ = _convert(_dump(model, tmp_path), tmp_path)
    rows = X.copy()
    rows.iloc[::4, 0] = 44.0  # an outlier inside the valid range: missing, then 58
    rows.iloc[1::4, 1] = 31.7  # cast to int: 31
    assert model.steps[0][1].transform(rows).iloc[0, 0] == 58.0
    _check_classifier(model, out, rows)


def test_predictions_recorded_by_pmml_pipeline_verify_are_checked(tmp_path):
    """PMMLPipeline.verify(X) stores rows and the predictions made for them in the pickle:
    the converted model must reproduce them too; a tampered record fails with exit 6."""
    from sklearn.tree import DecisionTreeClassifier
    from sklearn2pmml.decoration import ContinuousDomain
    from sklearn2pmml.pipeline import PMMLPipeline

    from mlconvert.errors import VerificationError

    X, y = _iris()
    model = PMMLPipeline([("domain", ContinuousDomain()),
                          ("tree", DecisionTreeClassifier(max_depth=3, random_state=0))]).fit(X, y)
    model.verify(X.sample(12, random_state=0))
    _, report = _convert(_dump(model, tmp_path), tmp_path)
    assert report.verification["reference"] == "source model, and the predictions recorded in it (12 rows)"
    assert {o["name"] for o in report.verification["expected"]["outputs"]} == {"label", "probabilities"}

    model.verification.target_values = (model.verification.target_values + 1) % 3  # recorded otherwise
    with pytest.raises(VerificationError, match="recorded in the model: label"):
        api.convert(_dump(model, tmp_path, "tampered.pkl"), tmp_path / "t.onnx", trust=True)


@pytest.mark.parametrize("variant", ["default-passthrough", "default-transformer"])
def test_data_frame_mapper_defaults_for_unnamed_columns(tmp_path, variant):
    """default=None passes the columns no feature names through; default=<transformer>
    transforms them; without --trust (the mapper is allow-listed)."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.preprocessing import StandardScaler
    from sklearn2pmml.decoration import ContinuousDomain
    from sklearn2pmml.pipeline import PMMLPipeline
    from sklearn2pmml.sklearn_pandas import patch_sklearn

    patch_sklearn()
    from sklearn_pandas import DataFrameMapper

    X, y = _iris()
    if variant == "default-passthrough":
        mapper = DataFrameMapper([(["sl"], StandardScaler()), (["sw"], None)], default=None, df_out=True)
    else:
        mapper = DataFrameMapper([("sl", ContinuousDomain()), (["sw", "pl"], StandardScaler())],
                                 default=StandardScaler(), input_df=True)
    model = PMMLPipeline([("mapper", mapper), ("clf", LogisticRegression(max_iter=500))]).fit(X, y)
    out = tmp_path / "model.onnx"
    assert api.convert(_dump(model, tmp_path), out).verification["status"] == "verified"
    _check_classifier(model, out, X)
