"""Every edge, end to end: a real conversion, then real predictions compared.

mlconvert verifies each conversion itself; these tests also check the result
independently, on real data, with the source library and onnxruntime directly.
"""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from mlconvert import api
from mlconvert.errors import ConversionError
from mlconvert.edges import Edge, Requirement, registered_edge

pytestmark = pytest.mark.slow


def iris():
    from sklearn.datasets import load_iris

    return load_iris(return_X_y=True)[0]


def diabetes():
    from sklearn.datasets import load_diabetes

    return load_diabetes(return_X_y=True)[0]


def onnx_run(path, X, dtype=np.float32):
    import onnxruntime

    sess = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return sess.run(None, {sess.get_inputs()[0].name: X.astype(dtype)})


def load_pickle(path):
    with open(path, "rb") as fh:
        return pickle.load(fh)


def check_report(report, edges, max_abs=1e-4, rows=100):
    assert [s.edge for s in report.steps] == edges
    assert all(s.version for s in report.steps), "each step records the library version that ran it"
    v = report.verification
    assert v["status"] == "verified", v
    assert v["rows"] >= rows
    for out in v["outputs"]:
        if out["name"] == "label":
            assert out["agreement"] == 1.0
        else:
            assert out["max_abs"] <= max_abs
    assert report.written


@pytest.mark.parametrize("name", ["sklearn_logreg_iris.pkl", "sklearn_rf_iris.pkl"])
def test_sklearn_classifier_to_onnx(fixtures, tmp_path, name):
    out = tmp_path / "model.onnx"
    report = api.convert(fixtures / name, out)
    check_report(report, ["skl2onnx"])
    model, X = load_pickle(fixtures / name), iris()
    label, proba = onnx_run(out, X)
    assert (label == model.predict(X)).all()
    np.testing.assert_allclose(proba, model.predict_proba(X), atol=1e-5)


@pytest.mark.parametrize("name", ["sklearn_rf_diabetes.pkl", "sklearn_tree_diabetes.pkl", "sklearn_ridge_pipeline.pkl"])
def test_sklearn_regressor_to_onnx(fixtures, tmp_path, name):
    out = tmp_path / "model.onnx"
    report = api.convert(fixtures / name, out)
    check_report(report, ["skl2onnx"], max_abs=1e-3)
    model, X = load_pickle(fixtures / name), diabetes()
    (value,) = onnx_run(out, X)
    np.testing.assert_allclose(value.ravel(), model.predict(X), rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("name", ["sklearn_ridge_pipeline.pkl"])
def test_sklearn_double_precision(fixtures, tmp_path, name):
    out = tmp_path / "model.onnx"
    report = api.convert(fixtures / name, out, double=True)
    check_report(report, ["skl2onnx"], max_abs=1e-9)
    model, X = load_pickle(fixtures / name), diabetes()
    (value,) = onnx_run(out, X, dtype=np.float64)
    assert value.dtype == np.float64
    np.testing.assert_allclose(value.ravel(), model.predict(X), rtol=1e-12)


def test_double_precision_trees_use_the_tree_writer(fixtures, tmp_path):
    """skl2onnx 1.20 writes double trees that onnxruntime 1.32 refuses: skl2onnx refuses
    --double for tree models, and mlconvert's tree writer converts them in float64."""
    out = tmp_path / "model.onnx"
    report = api.convert(fixtures / "sklearn_rf_diabetes.pkl", out, double=True)
    assert [s.edge for s in report.steps] == ["trees-sklearn"]
    assert "float64" in report.steps[0].fidelity
    assert any(s.edge == "skl2onnx" and "--double" in s.error for s in report.failed_steps)
    assert report.verification["status"] == "verified"
    import onnxruntime

    assert onnxruntime.InferenceSession(str(out)).get_inputs()[0].type == "tensor(double)"


def test_column_transformer_pipeline_joblib(fixtures, tmp_path):
    import joblib

    out = tmp_path / "pipe.onnx"
    report = api.convert(fixtures / "sklearn_columns_pipeline.joblib", out)
    check_report(report, ["skl2onnx"])
    model = joblib.load(fixtures / "sklearn_columns_pipeline.joblib")
    X = np.column_stack([iris(), np.arange(150) % 3])
    label, proba = onnx_run(out, X)
    assert (label == model.predict(X)).all()
    np.testing.assert_allclose(proba, model.predict_proba(X), atol=1e-5)


def test_xgboost_pickle_to_file_and_back(fixtures, tmp_path):
    clf = load_pickle(fixtures / "xgb_classifier_iris.pkl")
    ubj = tmp_path / "clf.ubj"
    check_report(api.convert(fixtures / "xgb_classifier_iris.pkl", ubj), ["xgboost-save"], max_abs=0)
    assert ubj.read_bytes()[:1] == b"{"
    back = tmp_path / "clf.pkl"
    check_report(api.convert(ubj, back), ["xgboost-load"], max_abs=0)
    again = load_pickle(back)
    X = iris()
    assert type(again).__name__ == "XGBClassifier"
    np.testing.assert_array_equal(again.predict_proba(X), clf.predict_proba(X))


def test_xgboost_json_to_ubj(fixtures, tmp_path):
    out = tmp_path / "clf.ubj"
    check_report(api.convert(fixtures / "xgb_classifier_iris.json", out), ["xgboost-resave"], max_abs=0)
    assert out.read_bytes()[:2] == b"{L"


@pytest.mark.parametrize("name,edges", [
    ("xgb_classifier_iris.pkl", ["onnxmltools-xgboost-pickle"]),
    ("xgb_classifier_iris.json", ["onnxmltools-xgboost"]),
])
def test_xgboost_classifier_to_onnx(fixtures, tmp_path, name, edges):
    out = tmp_path / "xgb.onnx"
    check_report(api.convert(fixtures / name, out), edges)
    clf, X = load_pickle(fixtures / "xgb_classifier_iris.pkl"), iris()
    label, proba = onnx_run(out, X)
    assert (label == clf.predict(X)).all()
    np.testing.assert_allclose(proba, clf.predict_proba(X), atol=1e-6)


def test_xgboost_regressor_ubj_to_onnx(fixtures, tmp_path):
    out = tmp_path / "xgb.onnx"
    check_report(api.convert(fixtures / "xgb_regressor_diabetes.ubj", out), ["onnxmltools-xgboost"])
    reg, X = load_pickle(fixtures / "xgb_regressor_diabetes.pkl"), diabetes()
    (value,) = onnx_run(out, X)
    np.testing.assert_allclose(value.ravel(), reg.predict(X), rtol=1e-5)


def test_xgboost_ubj_to_pickle_is_two_steps_away_from_onnx(fixtures, tmp_path):
    """UBJ -> pickle goes through the planner like any other path."""
    out = tmp_path / "reg.pkl"
    check_report(api.convert(fixtures / "xgb_regressor_diabetes.ubj", out), ["xgboost-load"], max_abs=0)


def test_lightgbm_pickle_to_text_and_back(fixtures, tmp_path):
    txt = tmp_path / "m.txt"
    check_report(api.convert(fixtures / "lgbm_classifier_iris.pkl", txt), ["lightgbm-save"], max_abs=0)
    assert txt.read_text().startswith("tree\nversion=")
    back = tmp_path / "m.pkl"
    check_report(api.convert(txt, back), ["lightgbm-load"], max_abs=0)


@pytest.mark.parametrize("name,via,edges", [
    ("lgbm_classifier_iris.pkl", None, ["onnxmltools-lightgbm-pickle"]),
    ("lgbm_classifier_iris.pkl", "lightgbm", ["lightgbm-save", "onnxmltools-lightgbm"]),
    ("lgbm_classifier_iris.txt", None, ["onnxmltools-lightgbm"]),
])
def test_lightgbm_classifier_to_onnx(fixtures, tmp_path, name, via, edges):
    out = tmp_path / "lgbm.onnx"
    check_report(api.convert(fixtures / name, out, via=via), edges)
    clf, X = load_pickle(fixtures / "lgbm_classifier_iris.pkl"), iris()
    label, proba = onnx_run(out, X)
    assert (label == clf.predict(X)).all()
    np.testing.assert_allclose(proba, clf.predict_proba(X), atol=1e-6)


def test_lightgbm_thresholds_decide_exactly_at_splits(fixtures, tmp_path):
    """Inputs sitting on LightGBM's float64 thresholds, in float32: the ONNX model must agree."""
    import lightgbm

    booster = lightgbm.Booster(model_file=str(fixtures / "lgbm_regressor_diabetes.txt"))
    out = tmp_path / "lgbm.onnx"
    check_report(api.convert(fixtures / "lgbm_regressor_diabetes.txt", out), ["onnxmltools-lightgbm"])
    X = np.tile(diabetes()[:64], (3, 1)).astype(np.float32)
    rng = np.random.default_rng(0)

    def thresholds(node, acc):
        if "split_feature" in node:
            acc.append((node["split_feature"], node["threshold"]))
            thresholds(node["left_child"], acc)
            thresholds(node["right_child"], acc)
        return acc

    splits = [s for t in booster.dump_model()["tree_info"] for s in thresholds(t["tree_structure"], [])]
    for row in X:
        f, t = splits[rng.integers(len(splits))]
        row[f] = np.float32(t)  # the float32 nearest to the threshold: either side of it
    expected = booster.predict(X.astype(np.float64))
    (value,) = onnx_run(out, X)
    np.testing.assert_allclose(value.ravel(), expected, rtol=1e-5)


def test_lightgbm_regressor_text_to_onnx(fixtures, tmp_path):
    out = tmp_path / "lgbm.onnx"
    check_report(api.convert(fixtures / "lgbm_regressor_diabetes.txt", out), ["onnxmltools-lightgbm"])


def test_catboost_pickle_to_onnx_takes_two_hops(fixtures, tmp_path):
    out = tmp_path / "cb.onnx"
    check_report(api.convert(fixtures / "catboost_classifier_iris.pkl", out), ["catboost-save", "catboost-onnx"])
    clf, X = load_pickle(fixtures / "catboost_classifier_iris.pkl"), iris()
    label, proba = onnx_run(out, X)
    np.testing.assert_allclose(proba, clf.predict_proba(X), atol=1e-6)
    assert (np.asarray(label).ravel().astype(str) == clf.predict(X).ravel().astype(str)).all()


def test_catboost_regressor_cbm_to_onnx(fixtures, tmp_path):
    out = tmp_path / "cb.onnx"
    check_report(api.convert(fixtures / "catboost_regressor_diabetes.cbm", out), ["catboost-onnx"], max_abs=1e-3)


def test_catboost_cbm_to_pickle(fixtures, tmp_path):
    out = tmp_path / "cb.pkl"
    check_report(api.convert(fixtures / "catboost_classifier_iris.cbm", out), ["catboost-load"], max_abs=0)
    assert type(load_pickle(out)).__name__ == "CatBoostClassifier"


def always_fails(source, dst, ctx):
    raise ConversionError("this edge always fails (test)")


def test_runner_replans_around_a_failed_step(fixtures, tmp_path):
    broken = Edge(name="aa-broken-lightgbm", source="pickle", target="onnx", flavors=frozenset({"lightgbm"}),
                  output_flavor="onnx-ml", run=always_fails, library="lightgbm",
                  requires=(Requirement("lightgbm"),), cost=0.1)
    with registered_edge(broken):
        report = api.convert(fixtures / "lgbm_classifier_iris.pkl", tmp_path / "m.onnx")
    assert [s.edge for s in report.failed_steps] == ["aa-broken-lightgbm"]
    assert report.failed_steps[0].error == "this edge always fails (test)"
    assert [s.edge for s in report.steps] == ["onnxmltools-lightgbm-pickle"]
    assert report.verification["status"] == "verified"


def test_provenance_is_written_and_output_is_deterministic(fixtures, tmp_path):
    import onnx

    a, b = tmp_path / "a.onnx", tmp_path / "b.onnx"
    api.convert(fixtures / "sklearn_rf_iris.pkl", a)
    api.convert(fixtures / "sklearn_rf_iris.pkl", b)
    assert a.read_bytes() == b.read_bytes()
    meta = {p.key: p.value for p in onnx.load(str(a)).metadata_props}
    assert meta["mlconvert.source"] == "sklearn_rf_iris.pkl"
    assert meta["mlconvert.plan"] == "pickle -> onnx"
    assert '"status": "verified"' in meta["mlconvert.verification"]


def test_pickle_from_a_newer_patch_release_converts(fixtures, tmp_path):
    """A model pickled by scikit-learn 1.9.1 loads and converts under the pinned 1.9.0."""
    data = (fixtures / "sklearn_rf_iris.pkl").read_bytes()
    assert data.count(b"1.9.0") >= 1
    newer = tmp_path / "newer.pkl"
    newer.write_bytes(data.replace(b"1.9.0", b"1.9.1"))  # same length: the pickle stays valid
    report = api.convert(newer, tmp_path / "m.onnx")
    check_report(report, ["skl2onnx"])
    assert report.source["producer_version"] == "1.9.1"
    assert any("1.9.1" in w for w in report.source["warnings"])


def test_dataframe_pipeline_with_string_columns(fixtures, tmp_path):
    """Fitted on a DataFrame: one ONNX input per column, strings where the encoder learnt strings."""
    import pandas as pd

    out = tmp_path / "churn.onnx"
    report = api.convert(fixtures / "sklearn_dataframe_churn.pkl", out, sample=fixtures / "churn_sample.csv")
    check_report(report, ["skl2onnx"], rows=25)
    assert report.verification["inputs"] == "sample churn_sample.csv"
    model, df = load_pickle(fixtures / "sklearn_dataframe_churn.pkl"), pd.read_csv(fixtures / "churn_sample.csv")
    import onnxruntime

    sess = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert [(i.name, i.type) for i in sess.get_inputs()] == [
        ("age", "tensor(float)"), ("income", "tensor(float)"), ("city", "tensor(string)"), ("plan", "tensor(string)")]
    feed = {c: (df[[c]].to_numpy(dtype=np.float32) if pd.api.types.is_numeric_dtype(df[c])
                else df[[c]].to_numpy(dtype=object)) for c in df.columns}
    label, proba = sess.run(None, feed)
    assert (label == model.predict(df)).all()
    np.testing.assert_allclose(proba, model.predict_proba(df), atol=1e-5)
    synthetic = api.convert(fixtures / "sklearn_dataframe_churn.pkl", tmp_path / "again.onnx")
    assert synthetic.verification["status"] == "verified" and synthetic.verification["rows"] == 512


@pytest.mark.parametrize("booster", ["xgboost", "lightgbm"])
def test_scikit_learn_pipeline_ending_in_a_booster(tmp_path, booster):
    """skl2onnx gets onnxmltools' converters for XGBoost/LightGBM steps inside a Pipeline."""
    import lightgbm
    import xgboost
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = iris(), np.repeat([0, 1, 2], 50)
    final = (xgboost.XGBClassifier(n_estimators=6, max_depth=3) if booster == "xgboost"
             else lightgbm.LGBMClassifier(n_estimators=6, num_leaves=6, verbose=-1))
    pipe = make_pipeline(StandardScaler(), final).fit(X, y)
    src = tmp_path / "pipe.pkl"
    src.write_bytes(pickle.dumps(pipe))
    out = tmp_path / "pipe.onnx"
    check_report(api.convert(src, out), ["skl2onnx"])
    label, proba = onnx_run(out, X)
    assert (label == pipe.predict(X)).all()
    np.testing.assert_allclose(proba, pipe.predict_proba(X), atol=1e-5)
