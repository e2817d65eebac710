"""Every tree objective and feature converts to ONNX and verifies, end to end through the CLI.

The models are fixtures/trees (fixtures/make_fixtures.py, tree_models). For each one the
test states which edge converts it: the converter library where it is right for the
model, mlconvert's own tree writer (trees-*) where the library refuses it; with --double
the tree writer converts all of them, in float64.
"""
from __future__ import annotations

import json

import pytest

from conftest import FIXTURES

pytestmark = pytest.mark.slow
np = pytest.importorskip("numpy")
pytest.importorskip("onnxruntime")
pytest.importorskip("xgboost")
pytest.importorskip("lightgbm")
pytest.importorskip("sklearn")

TREES = FIXTURES / "trees"

# The edge that writes each model's ONNX file (without --double).
EDGE = {
    "lgb_binary_sigmoid.txt": "trees-lightgbm",
    "lgb_categorical.txt": "onnxmltools-lightgbm",
    "lgb_categorical_binary.txt": "onnxmltools-lightgbm",
    "lgb_cross_entropy.txt": "trees-lightgbm",
    "lgb_gamma.txt": "onnxmltools-lightgbm",
    "lgb_linear.txt": "trees-lightgbm",
    "lgb_multiclassova.txt": "trees-lightgbm",
    "lgb_no_missing.txt": "onnxmltools-lightgbm",
    "lgb_poisson.txt": "onnxmltools-lightgbm",
    "lgb_quantile.txt": "onnxmltools-lightgbm",
    "lgb_rf.txt": "trees-lightgbm",
    "lgb_rf_multiclass.txt": "trees-lightgbm",
    "lgb_tweedie.txt": "onnxmltools-lightgbm",
    "lgb_zero_as_missing.txt": "trees-lightgbm",
    "skl_extra_trees.pkl": "skl2onnx",
    "skl_forest_missing.pkl": "skl2onnx",
    "skl_gb_binary.pkl": "skl2onnx",
    "skl_gb_multiclass.pkl": "skl2onnx",
    "skl_gb_regressor.pkl": "skl2onnx",
    "skl_hgb_categorical.pkl": "trees-sklearn",
    "skl_hgb_poisson.pkl": "trees-sklearn",
    "skl_hgb_regressor.pkl": "trees-sklearn",
    "skl_tree_two_targets.pkl": "skl2onnx",
    "xgb_aft.json": "trees-xgboost",
    "xgb_binary_hinge.json": "trees-xgboost",
    "xgb_binary_logistic.ubj": "onnxmltools-xgboost",
    "xgb_binary_logitraw.json": "trees-xgboost",
    "xgb_categorical.json": "trees-xgboost",
    "xgb_categorical.ubj": "trees-xgboost",
    "xgb_categorical_softprob.json": "trees-xgboost",
    "xgb_cox.json": "trees-xgboost",
    "xgb_dart.json": "onnxmltools-xgboost",
    "xgb_early_stopping.json": "trees-xgboost",
    "xgb_forest.json": "onnxmltools-xgboost",
    "xgb_gamma.json": "onnxmltools-xgboost",
    "xgb_multi_target.json": "trees-xgboost",
    "xgb_poisson.json": "onnxmltools-xgboost",
    "xgb_pseudohuber.json": "onnxmltools-xgboost",
    "xgb_quantiles.json": "trees-xgboost",
    "xgb_rank.json": "trees-xgboost",
    "xgb_reg_logistic.json": "trees-xgboost",
    "xgb_softmax.json": "onnxmltools-xgboost",
    "xgb_softprob_two.json": "trees-xgboost",
    "xgb_tweedie.json": "onnxmltools-xgboost",
    "xgb_two_targets.json": "trees-xgboost",
}


def _convert(cli, name: str, tmp_path, *args):
    out = tmp_path / "out.onnx"
    r = cli(TREES / name, out, "--json", "--trust", *args)
    assert "Traceback" not in r.err, r
    return r, out


def test_every_fixture_has_an_expected_edge():
    assert sorted(p.name for p in TREES.iterdir()) == sorted(EDGE)


@pytest.mark.parametrize("name", sorted(EDGE))
def test_converts_and_verifies(name, cli, tmp_path):
    r, out = _convert(cli, name, tmp_path)
    assert r.code == 0, r
    doc = r.json
    assert doc["verification"]["status"] == "verified", doc["verification"]
    assert [s["edge"] for s in doc["steps"]] == [EDGE[name]], doc["steps"]
    if EDGE[name].startswith("trees-"):
        # The library edge was tried first and refused (naming what it cannot express) or failed.
        refused = [s for s in doc["failed_steps"] if s["edge"].startswith(("onnxmltools", "skl2onnx"))]
        assert refused and ("cannot express" in refused[0]["error"] or "cannot convert" in refused[0]["error"]), \
            doc["failed_steps"]


@pytest.mark.parametrize("name", sorted(EDGE))
def test_double_keeps_float64(name, cli, tmp_path):
    r, out = _convert(cli, name, tmp_path, "--double")
    assert r.code == 0, r
    doc = r.json
    assert doc["verification"]["status"] == "verified", doc["verification"]
    (step,) = doc["steps"]
    assert step["edge"].startswith("trees-") and "float64" in step["fidelity"], step
    import onnxruntime

    session = onnxruntime.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    assert session.get_inputs()[0].type == "tensor(double)"
    assert all(o.type in ("tensor(double)", "tensor(int64)", "tensor(string)") for o in session.get_outputs())


def _onnx(path, X):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    (inp,) = session.get_inputs()
    dtype = np.float64 if inp.type == "tensor(double)" else np.float32
    return {o.name: v for o, v in zip(session.get_outputs(), session.run(None, {inp.name: X.astype(dtype)}))}


def _rows(n_features: int, rows: int = 64):
    rng = np.random.default_rng(7)
    X = rng.normal(size=(rows, n_features)).astype(np.float32)
    X[::5, 1] = np.nan
    return X


def test_survival_aft_is_a_regressor_of_exp_margin(cli, tmp_path):
    """XGBoost's survival:aft predicts survival times exp(margin): one value output, never
    a classifier."""
    import xgboost

    r, out = _convert(cli, "xgb_aft.json", tmp_path)
    assert r.code == 0 and r.json["verification"]["status"] == "verified", r
    booster = xgboost.Booster()
    booster.load_model(str(TREES / "xgb_aft.json"))
    X = _rows(4)
    got = _onnx(out, X)
    assert list(got) == ["value"]
    margin = booster.predict(xgboost.DMatrix(X), output_margin=True)
    np.testing.assert_allclose(got["value"].ravel(), np.exp(margin), rtol=1e-5)
    np.testing.assert_allclose(got["value"].ravel(), booster.predict(xgboost.DMatrix(X)), rtol=1e-5)


def test_early_stopping_predicts_up_to_best_iteration(cli, tmp_path):
    import xgboost

    booster = xgboost.Booster()
    booster.load_model(str(TREES / "xgb_early_stopping.json"))
    best = int(booster.attr("best_iteration"))
    assert best + 1 < booster.num_boosted_rounds()  # the fixture did stop early
    r, out = _convert(cli, "xgb_early_stopping.json", tmp_path)
    assert r.code == 0, r
    X = _rows(4)
    expected = booster.predict(xgboost.DMatrix(X), iteration_range=(0, best + 1))
    np.testing.assert_allclose(_onnx(out, X)["value"].ravel(), expected, rtol=1e-5, atol=1e-6)


def test_linear_tree_with_missing_values_matches_lightgbm(cli, tmp_path):
    import lightgbm

    r, out = _convert(cli, "lgb_linear.txt", tmp_path)
    assert r.code == 0, r
    booster = lightgbm.Booster(model_file=str(TREES / "lgb_linear.txt"))
    X = _rows(4)
    X[::3, 2] = np.nan  # a linear leaf with a missing feature falls back to its constant
    np.testing.assert_allclose(_onnx(out, X)["value"].ravel(), booster.predict(X.astype(np.float64)),
                               rtol=1e-5, atol=1e-5)


def test_categorical_inputs_take_real_unseen_and_missing_values(cli, tmp_path):
    r, _ = _convert(cli, "xgb_categorical.json", tmp_path)
    assert r.code == 0, r
    inputs = r.json["verification"]["inputs"]
    assert "1 categorical (their categories, one unseen)" in inputs and "missing values" in inputs


def test_unknown_objective_is_refused_by_name(cli, tmp_path):
    """An objective no edge understands ends as "no path" (exit 4), naming it, before
    anything is converted."""
    doc = json.loads((TREES / "xgb_gamma.json").read_text())
    doc["learner"]["objective"]["name"] = "reg:mystery"
    src = tmp_path / "mystery.json"
    src.write_text(json.dumps(doc))
    r = cli(src, tmp_path / "out.onnx", "--json")
    assert r.code == 4, r
    assert "objective reg:mystery" in r.envelope["error"]["message"], r
    assert not (tmp_path / "out.onnx").exists()
