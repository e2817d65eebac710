"""Same input, same versions, same bytes — on every edge family — and provenance inside."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import pytest

from mlconvert import api

pytestmark = pytest.mark.slow

CASES = [  # (fixture, output name, edges the plan must use)
    ("sklearn_columns_pipeline.joblib", "m.onnx", ["skl2onnx"]),
    ("xgb_classifier_iris.pkl", "m.onnx", ["onnxmltools-xgboost-pickle"]),
    ("lgbm_regressor_diabetes.txt", "m.onnx", ["onnxmltools-lightgbm"]),
    ("catboost_classifier_iris.pkl", "m.onnx", ["catboost-save", "catboost-onnx"]),
    ("xgb_classifier_iris.pkl", "m.json", ["xgboost-save"]),
    ("xgb_regressor_diabetes.ubj", "m.pkl", ["xgboost-load"]),
    ("xgb_classifier_iris.json", "m.ubj", ["xgboost-resave"]),
    ("lgbm_classifier_iris.pkl", "m.txt", ["lightgbm-save"]),
    ("lgbm_classifier_iris.txt", "m.pkl", ["lightgbm-load"]),
    ("catboost_classifier_iris.pkl", "m.cbm", ["catboost-save"]),
    ("catboost_regressor_diabetes.cbm", "m.pkl", ["catboost-load"]),
]


def sha(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


@pytest.mark.parametrize("fixture,name,edges", CASES, ids=[f"{c[0]}->{c[1]}" for c in CASES])
def test_byte_identical_outputs(fixtures, tmp_path, fixture, name, edges):
    first, second = tmp_path / "a" / name, tmp_path / "b" / name
    report = api.convert(fixtures / fixture, first)
    assert [s.edge for s in report.steps] == edges
    api.convert(fixtures / fixture, second)
    assert sha(first) == sha(second)
    assert report.target["sha256"] == sha(first)


@pytest.mark.parametrize("name", ["m.mlpackage", "m.mlmodel"])
def test_core_ml_outputs_are_byte_identical(fixtures, tmp_path, name):
    """coremltools writes random manifest ids and hash-ordered metadata: mlconvert normalises both."""
    pytest.importorskip("coremltools")
    first, second = tmp_path / "a" / name, tmp_path / "b" / name
    for out in (first, second):
        api.convert(fixtures / "keras_dense_iris.keras", out)
    files = sorted(p.relative_to(first) for p in first.rglob("*") if p.is_file()) if first.is_dir() else [Path()]
    for rel in files:
        assert sha(first / rel) == sha(second / rel), rel
    recorded = api.inspect(first).to_dict()["provenance"]
    assert recorded["source"] == "keras_dense_iris.keras"


@pytest.mark.parametrize("fixture,name", [("sklearn_rf_iris.pkl", "m.onnx"), ("xgb_classifier_iris.pkl", "m.ubj"),
                                          ("catboost_classifier_iris.pkl", "m.cbm")])
def test_provenance_travels_in_the_output(fixtures, tmp_path, fixture, name):
    out = tmp_path / name
    report = api.convert(fixtures / fixture, out)
    recorded = api.inspect(out).to_dict()["provenance"]
    assert recorded["source"] == fixture
    assert recorded["source_sha256"] == report.source["sha256"]
    assert json.loads(recorded["verification"])["status"] == "verified"
    assert json.loads(recorded["steps"])[0]["edge"] == report.steps[0].edge


def test_verify_reuses_the_recorded_tolerance(fixtures, tmp_path):
    out = tmp_path / "m.onnx"
    api.convert(fixtures / "lgbm_regressor_diabetes.txt", out)  # verified with the edge's own rtol 1e-4
    result = api.verify(fixtures / "lgbm_regressor_diabetes.txt", out)
    assert result.status == "verified"
    assert result.rtol == 1e-4
    assert result.tolerance_source.startswith("recorded in m.onnx (onnxmltools-lightgbm:")


def test_batch_and_single_conversions_give_the_same_bytes(fixtures, tmp_path):
    """Workers run single-threaded; the figures (and so the provenance) must not depend on it."""
    import shutil

    from mlconvert import batch

    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(fixtures / "catboost_regressor_diabetes.cbm", src / "m.cbm")
    api.convert(src / "m.cbm", tmp_path / "single" / "m.onnx")
    report = batch.run(src, targets=["onnx"], out=tmp_path / "batch", jobs=1)
    assert [r.status for r in report.results] == ["converted"]
    assert sha(tmp_path / "single" / "m.onnx") == sha(tmp_path / "batch" / "m.onnx")
