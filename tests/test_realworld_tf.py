"""Keras and SavedModel files other people wrote (../shared/realworld/keras, savedmodel;
SOURCES.tsv says where each came from): each converts and verifies, or fails with its
documented exit code and a clear message. Nothing is copied into the project.
"""
from __future__ import annotations

import csv

import numpy as np
import pytest

from mlconvert import api, probe
from mlconvert.errors import ConversionError, InputError

if not probe.has_module("tensorflow"):
    pytest.skip("TensorFlow is not installed (pip install 'mlconvert[tf]')", allow_module_level=True)

pytestmark = [pytest.mark.realworld, pytest.mark.slow]

KERAS = ["hls4ml_keras_3layer.h5", "anindasau_admission.h5", "anindasau_admission.keras",
         "adityab_student_pass.keras", "cryptic_diabetes.keras"]


def corpus_file(realworld, rel):
    path = realworld / rel
    if not path.exists():
        pytest.skip(f"{rel} is not in ../shared/realworld")
    return path


def onnx_outputs(path, feed):
    import onnxruntime

    sess = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feed)))


def check_verified(report, max_abs=1e-5):
    v = report.verification
    assert v["status"] == "verified", v
    assert v["rows"] > 1 and v["outputs"] and all(o["max_abs"] <= max_abs for o in v["outputs"]), v


@pytest.mark.parametrize("name", KERAS)
def test_keras_files_to_onnx_coreml_and_savedmodel(realworld, tmp_path, name):
    import keras

    src = corpus_file(realworld, f"keras/{name}")
    out = tmp_path / "model.onnx"
    report = api.convert(src, out)
    check_verified(report)
    # Independently: Keras itself against onnxruntime on other inputs.
    model = keras.models.load_model(str(src), compile=False)
    (sess_input,) = [t for t in model.inputs]
    x = np.random.default_rng(3).normal(size=(25, sess_input.shape[-1])).astype("float32")
    (got,) = onnx_outputs(out, {api.inspect(out).to_dict()["inputs"][0]["name"]: x}).values()
    np.testing.assert_allclose(got, model.predict(x, verbose=0), atol=1e-5, rtol=1e-5)

    for target in ("model.mlpackage", "model.mlmodel"):
        check_verified(api.convert(src, tmp_path / target))

    report = api.convert(src, tmp_path / "exported", to_format="savedmodel")
    check_verified(report, max_abs=0.0)


def _scaled_csv(realworld, data, scaler, columns):
    from mlconvert.formats._pickle_load import load_pickle

    with open(corpus_file(realworld, data), newline="") as fh:
        rows = list(csv.DictReader(fh))
    X = np.array([[float(r[c]) for c in columns] for r in rows])
    return load_pickle(corpus_file(realworld, scaler)).obj.transform(X)


@pytest.mark.parametrize("name,data,scaler,columns", [
    ("anindasau_admission.keras", "keras/anindasau_Admission_Predict_Ver1.1.csv", "keras/anindasau_scaler.pkl",
     ["GRE Score", "TOEFL Score", "University Rating", "SOP", "LOR ", "CGPA", "Research"]),
    ("anindasau_admission.h5", "keras/anindasau_Admission_Predict_Ver1.1.csv", "keras/anindasau_scaler.pkl",
     ["GRE Score", "TOEFL Score", "University Rating", "SOP", "LOR ", "CGPA", "Research"]),
    ("adityab_student_pass.keras", "keras/adityab_student_pass_data.csv", "keras/adityab_scaler.pkl",
     ["Age", "Score"]),
])
def test_keras_files_on_their_authors_data(realworld, tmp_path, name, data, scaler, columns):
    sample = tmp_path / "sample.npy"
    X = _scaled_csv(realworld, data, scaler, columns)
    np.save(sample, X)
    report = api.convert(corpus_file(realworld, f"keras/{name}"), tmp_path / "m.onnx", sample=sample)
    check_verified(report)
    assert report.verification["rows"] == len(X)


def test_weights_only_h5_needs_its_json(realworld, tmp_path):
    weights = corpus_file(realworld, "keras/hls4ml_KERAS_3layer_weights.h5")
    with pytest.raises(InputError, match="holds weights only") as info:
        api.convert(weights, tmp_path / "m.onnx")
    assert info.value.exit_code == 3 and "--architecture" in info.value.hint
    report = api.convert(weights, tmp_path / "m.onnx",
                         architecture=corpus_file(realworld, "keras/hls4ml_KERAS_3layer.json"))
    check_verified(report)
    # The same network as the full-model file of the same repository.
    full = tmp_path / "full.onnx"
    api.convert(corpus_file(realworld, "keras/hls4ml_keras_3layer.h5"), full)
    x = np.random.default_rng(5).normal(size=(10, 16)).astype("float32")
    (a,), (b,) = onnx_outputs(tmp_path / "m.onnx", {"input_1": x}).values(), onnx_outputs(full, {"input_1": x}).values()
    assert a.shape == b.shape == (10, 5)


def test_half_plus_two_tf1(realworld, tmp_path):
    src = corpus_file(realworld, "savedmodel/tfserving_half_plus_two_cpu")
    out = tmp_path / "hp2.onnx"
    report = api.convert(src, out)
    check_verified(report, max_abs=0.0)
    got = onnx_outputs(out, {"x": np.array([[1], [2], [5]], dtype="float32")})
    np.testing.assert_allclose(got["y"].ravel(), [2.5, 3.0, 4.5])
    check_verified(api.convert(src, tmp_path / "hp2.mlpackage"))


def test_half_plus_two_tf2(realworld, tmp_path):
    src = corpus_file(realworld, "savedmodel/tfserving_half_plus_two_tf2_cpu")
    out = tmp_path / "hp2.onnx"
    report = api.convert(src, out)
    # Its signature fixes x to shape [1]: verification runs one row at a time.
    assert report.verification["status"] == "verified" and report.verification["rows"] == 1
    got = [onnx_outputs(out, {"x": np.array([v], dtype="float32")})["y"][0] for v in (1, 2, 5)]
    np.testing.assert_allclose(got, [2.5, 3.0, 4.5])


def test_heart_feature_columns_fail_clearly(realworld, tmp_path):
    src = corpus_file(realworld, "savedmodel/aditahmedabadi_heart_keras_savedmodel")
    # TF 2.21 cannot restore its tf.keras 2 optimizer objects; it is served from its graph,
    # like TensorFlow Serving does, and predicts on the authors' rows.
    from mlconvert import formats

    predictor = formats.get("savedmodel").predictor(formats.Source(src, formats.get("savedmodel")), {})
    with open(corpus_file(realworld, "savedmodel/aditahmedabadi_heart.csv"), newline="") as fh:
        rows = list(csv.DictReader(fh))[:20]
    feed = {s["name"]: np.array([r[s["name"]] for r in rows]).astype(object if s["dtype"] == "string" else s["dtype"])
            for s in predictor.input_specs()}
    (probability,) = predictor.predict(feed).values()
    assert probability.shape == (20, 1) and ((probability >= 0) & (probability <= 1)).all()
    # ONNX: the string feature columns (bucketize, vocabulary lookups) have no mapping.
    with pytest.raises(ConversionError) as info:
        api.convert(src, tmp_path / "heart.onnx")
    assert info.value.exit_code == 5
    for op in ("Bucketize", "LookupTableFindV2", "HashTableV2"):
        assert op in info.value.message
    # Core ML takes numbers: the string inputs are named.
    with pytest.raises(ConversionError, match="string tensors") as info:
        api.convert(src, tmp_path / "heart.mlpackage")
    assert "ChestPainType" in info.value.message
    assert not (tmp_path / "heart.onnx").exists() and not (tmp_path / "heart.mlpackage").exists()
