"""--expected: the converted model checked against predictions recorded where the model was
made (CSV columns by name, .npy, a pickle of arrays, ONNX output_N.pb files), for
convert, verify and batch (by the NAME.expected.* / NAME.sample.* naming convention)."""
from __future__ import annotations

import pickle

import numpy as np
import pytest

from mlconvert import api
from mlconvert.errors import UsageError, VerificationError

from conftest import run_cli

pytestmark = pytest.mark.slow


def _iris():
    from sklearn.datasets import load_iris

    return load_iris(return_X_y=True)


def _write_csv(path, labels, proba=None, label_name="label"):
    header = [label_name] + ([f"probability({k})" for k in range(proba.shape[1])] if proba is not None else [])
    lines = [",".join(header)]
    for i, label in enumerate(labels):
        cells = [str(label)] + ([repr(float(p)) for p in proba[i]] if proba is not None else [])
        lines.append(",".join(cells))
    path.write_text("\n".join(lines) + "\n")
    return path


@pytest.fixture
def logreg(tmp_path):
    from sklearn.linear_model import LogisticRegression

    X, y = _iris()
    model = LogisticRegression(max_iter=500).fit(X, y)
    path = tmp_path / "logreg.pkl"
    path.write_bytes(pickle.dumps(model))
    sample = tmp_path / "rows.npy"
    np.save(sample, X[::5])
    return model, path, sample, X[::5]


def test_convert_against_recorded_csv(logreg, tmp_path):
    model, path, sample, X = logreg
    expected = _write_csv(tmp_path / "recorded.csv", model.predict(X), model.predict_proba(X))
    report = api.convert(path, tmp_path / "m.onnx", sample=sample, expected=expected)
    v = report.verification
    assert v["status"] == "verified"
    assert v["reference"] == "recorded predictions (recorded.csv) and the source model"
    assert {o["name"] for o in v["outputs"]} == {"label", "probabilities"}
    assert v["expected"]["live"]["status"] == "verified"
    assert max(o.get("max_abs", 0) for o in v["outputs"]) < 1e-5


def test_recorded_predictions_that_differ_fail_with_exit_6(logreg, tmp_path):
    model, path, sample, X = logreg
    proba = model.predict_proba(X)
    proba[3] = proba[3][::-1]  # one row recorded otherwise
    expected = _write_csv(tmp_path / "recorded.csv", model.predict(X), proba)
    with pytest.raises(VerificationError, match="recorded predictions: probabilities"):
        api.convert(path, tmp_path / "m.onnx", sample=sample, expected=expected)
    assert not (tmp_path / "m.onnx").exists()
    r = run_cli("convert", str(path), str(tmp_path / "m.onnx"), "--sample", str(sample), "--expected", str(expected))
    assert r.code == 6, r


def test_recorded_predictions_decide_when_the_source_today_computes_otherwise(tmp_path):
    """An ONNX model that computes one-vs-rest (as the original did), a source pickle that
    today's library runs with softmax: the recorded predictions judge the conversion."""
    from scipy.special import expit
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import FloatTensorType
    from sklearn.linear_model import LogisticRegression
    from sklearn.multiclass import OneVsRestClassifier

    X, y = _iris()
    ovr = OneVsRestClassifier(LogisticRegression(max_iter=500)).fit(X, y)
    onx = convert_sklearn(ovr, initial_types=[("input", FloatTensorType([None, 4]))],
                          options={id(ovr): {"zipmap": False}})
    (tmp_path / "ovr.onnx").write_bytes(onx.SerializeToString())
    # the same coefficients as one multinomial-style LogisticRegression: softmax today
    softmax_model = LogisticRegression(max_iter=500).fit(X, y)
    softmax_model.coef_ = np.vstack([e.coef_ for e in ovr.estimators_])
    softmax_model.intercept_ = np.concatenate([e.intercept_ for e in ovr.estimators_])
    source = tmp_path / "source.pkl"
    source.write_bytes(pickle.dumps(softmax_model))
    np.save(tmp_path / "rows.npy", X)
    recorded = expit(softmax_model.decision_function(X))
    recorded /= recorded.sum(axis=1, keepdims=True)
    np.save(tmp_path / "recorded.npy", recorded)

    with pytest.raises(VerificationError):  # live only: softmax vs one-vs-rest
        api.verify(source, tmp_path / "ovr.onnx", sample=tmp_path / "rows.npy")
    result = api.verify(source, tmp_path / "ovr.onnx", sample=tmp_path / "rows.npy",
                        expected=tmp_path / "recorded.npy")
    assert result.status == "verified"
    assert result.reference == "recorded predictions (recorded.npy)"
    assert result.expected["live"]["status"] == "mismatch"
    assert any("disagrees with its recorded predictions" in n for n in result.notes)


def test_onnx_output_pb_files(logreg, tmp_path):
    from onnx import numpy_helper

    model, path, sample, X = logreg
    folder = tmp_path / "test_data_set_0"
    folder.mkdir()
    (folder / "output_0.pb").write_bytes(numpy_helper.from_array(model.predict(X).astype(np.int64)).SerializeToString())
    (folder / "output_1.pb").write_bytes(
        numpy_helper.from_array(model.predict_proba(X).astype(np.float32)).SerializeToString())
    report = api.convert(path, tmp_path / "m.onnx", sample=sample, expected=folder)
    assert report.verification["status"] == "verified"
    assert {o["name"] for o in report.verification["outputs"]} == {"label", "probabilities"}


def test_regressor_values_npy_and_headerless_csv(tmp_path):
    from sklearn.datasets import load_diabetes
    from sklearn.linear_model import Ridge

    X, y = load_diabetes(return_X_y=True)
    model = Ridge().fit(X, y)
    path = tmp_path / "ridge.pkl"
    path.write_bytes(pickle.dumps(model))
    np.save(tmp_path / "rows.npy", X[:40])
    np.save(tmp_path / "values.npy", model.predict(X[:40]))
    (tmp_path / "values.csv").write_text("\n".join(repr(float(v)) for v in model.predict(X[:40])) + "\n")
    for name in ("values.npy", "values.csv"):
        report = api.convert(path, tmp_path / "r.onnx", sample=tmp_path / "rows.npy", expected=tmp_path / name)
        assert report.verification["status"] == "verified"
        assert [o["name"] for o in report.verification["outputs"]] == ["value"]
        (tmp_path / "r.onnx").unlink()


def test_expected_needs_the_rows_it_was_recorded_for(logreg, tmp_path):
    model, path, sample, X = logreg
    expected = _write_csv(tmp_path / "recorded.csv", model.predict(X))
    with pytest.raises(UsageError, match="--sample"):
        api.convert(path, tmp_path / "m.onnx", expected=expected)
    np.save(tmp_path / "other.npy", X[:7])
    with pytest.raises(UsageError, match="30 predictions for 7 input rows"):
        api.convert(path, tmp_path / "m.onnx", sample=tmp_path / "other.npy", expected=expected)


def test_batch_finds_recorded_predictions_by_name(tmp_path):
    from mlconvert import batch
    from sklearn.linear_model import LogisticRegression

    X, y = _iris()
    models = tmp_path / "models"
    models.mkdir()
    good = LogisticRegression(max_iter=500).fit(X, y)
    (models / "good.pkl").write_bytes(pickle.dumps(good))
    np.save(models / "good.sample.npy", X[::3])
    _write_csv(models / "good.expected.csv", good.predict(X[::3]), good.predict_proba(X[::3]))
    (models / "bad.model.pkl").write_bytes(pickle.dumps(good))
    np.save(models / "bad.sample.npy", X[::3])
    _write_csv(models / "bad.expected.csv", (good.predict(X[::3]) + 1) % 3)  # recorded otherwise
    report = batch.run(models, targets=["onnx"], out=tmp_path / "out", jobs=1)
    by_source = {r.source: r for r in report.results}
    assert set(by_source) == {"good.pkl", "bad.model.pkl"}  # the recorded files are not models
    assert by_source["good.pkl"].status == "converted"
    assert by_source["bad.model.pkl"].exit_code == 6


@pytest.mark.realworld
def test_realworld_019_logistic_regression_against_its_recorded_pickle(realworld, tmp_path):
    folder = realworld / "sklearn"
    with open(folder / "skl0192_LogisticRegressionMulti.data.pkl", "rb") as fh:
        np.save(tmp_path / "rows.npy", np.asarray(pickle.load(fh), dtype=np.float64))
    r = run_cli("convert", str(folder / "skl0192_LogisticRegressionMulti.model.pkl"), str(tmp_path / "lr.onnx"),
                "--sample", str(tmp_path / "rows.npy"),
                "--expected", str(folder / "skl0192_LogisticRegressionMulti.expected.pkl"), "--json")
    assert r.code == 0, r
    v = r.json["verification"]
    assert v["reference"].startswith("recorded predictions (skl0192_LogisticRegressionMulti.expected.pkl)")
    assert max(o.get("max_abs", 0) for o in v["outputs"]) < 1e-6
