"""`inspect` is right about the model: DataFrame columns, LightGBM's version, image inputs,
Keras architecture files, long values, several paths (transcripts)."""
from __future__ import annotations

import json

import pytest


def test_dataframe_pipeline_shows_its_columns(cli, fixtures, tmp_path):
    r = cli("inspect", fixtures / "sklearn_dataframe_churn.pkl", "--json")
    assert r.code == 0, r
    assert r.json["n_features"] == 4
    assert r.json["feature_names"] == ["age", "income", "city", "plan"]
    text = cli("inspect", fixtures / "sklearn_dataframe_churn.pkl").out
    assert "n_features       4\n" in text and "feature_names    age, income, city, plan\n" in text
    # ... and it is what a conversion makes of it: one ONNX input per column
    import onnx

    out = tmp_path / "churn.onnx"
    assert cli(fixtures / "sklearn_dataframe_churn.pkl", out, "-q").code == 0
    assert [i.name for i in onnx.load(str(out)).graph.input] == ["age", "income", "city", "plan"]


def test_nothing_is_cut_mid_token(cli, fixtures):
    r = cli("inspect", fixtures / "sklearn_dataframe_churn.pkl")
    scan = cli("inspect", fixtures / "sklearn_dataframe_churn.pkl", "--json").json["details"]["globals"]
    line = next(l for l in r.out.splitlines() if l.lstrip().startswith("globals"))
    assert line.split(None, 1)[1] == ", ".join(scan)  # the whole list in a log
    from mlconvert.console import _shown

    shown = _shown([f"sklearn.module_{i}.Class" for i in range(40)], 100)  # a terminal's limit
    assert shown.endswith("more; --json lists all)")
    kept = shown.split(", …")[0].split(", ")
    assert all(item.startswith("sklearn.module_") and item.endswith(".Class") for item in kept)


def test_keys_stay_aligned(cli, fixtures):
    lines = cli("inspect", fixtures / "sklearn_logreg_iris.pkl").out.splitlines()[1:]
    columns = {len(line) - len(line.split(None, 1)[1]) for line in lines if line.startswith("  ")}
    assert len(columns) == 1, lines


def test_lightgbm_shows_the_library_version_not_the_file_format(cli, fixtures):
    r = cli("inspect", fixtures / "lgbm_binary_cancer.txt", "--json")
    assert r.json["producer_version"] == "4.x"
    assert r.json["details"]["model_format"] == "v4"


def test_an_image_input_has_no_feature_count(cli, tmp_path):
    onnx = pytest.importorskip("onnx")
    from onnx import TensorProto, helper

    graph = helper.make_graph([helper.make_node("Identity", ["image"], ["out"])], "g",
                              [helper.make_tensor_value_info("image", TensorProto.FLOAT, [1, 3, 224, 224])],
                              [helper.make_tensor_value_info("out", TensorProto.FLOAT, [1, 3, 224, 224])])
    path = tmp_path / "image.onnx"
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17)]), str(path))
    r = cli("inspect", path, "--json")
    assert r.code == 0, r
    assert "n_features" not in r.json
    assert r.json["inputs"][0]["shape"] == [1, 3, 224, 224]
    assert "224" not in next((l for l in cli("inspect", path).out.splitlines() if "n_features" in l), "")


ARCHITECTURE = {"class_name": "Sequential", "config": {"name": "mlp", "layers": [
    {"class_name": "InputLayer", "config": {"batch_shape": [None, 4], "name": "x"}},
    {"class_name": "Dense", "config": {"name": "d", "units": 3, "activation": "softmax"}}]},
    "keras_version": "3.15.1", "backend": "tensorflow"}


def test_a_keras_architecture_json_points_to_architecture(cli, tmp_path):
    path = tmp_path / "model.json"
    path.write_text(json.dumps(ARCHITECTURE, indent=4, sort_keys=True))
    r = cli("inspect", path)
    assert r.code == 3, r
    assert "is a Keras model architecture (model.to_json()): it has no weights" in r.err
    assert "--architecture model.json" in r.err
    assert "XGBoost" not in r.err


@pytest.mark.realworld
def test_a_real_keras_architecture_json(cli, realworld):
    r = cli("inspect", realworld / "keras" / "hls4ml_KERAS_3layer.json")
    assert r.code == 3 and "--architecture hls4ml_KERAS_3layer.json" in r.err, r


def test_several_paths_in_one_call(cli, fixtures, tmp_path):
    paths = [fixtures / "sklearn_logreg_iris.pkl", fixtures / "lgbm_binary_cancer.txt", fixtures / "xgb_classifier_iris.json"]
    r = cli("inspect", *paths)
    assert r.code == 0, r
    for path in paths:
        assert f"{path}  " in r.out
    r = cli("inspect", *paths, tmp_path / "missing.pkl", "--json")
    assert r.code == 3, r
    assert [m["format"] for m in r.json["models"]] == ["pickle", "lightgbm", "xgboost"]
    assert r.json["failed"][0]["path"] == str(tmp_path / "missing.pkl")
    assert "1 of 4 file(s) could not be inspected" in r.err
    from test_cli import validate

    validate(r.envelope)
