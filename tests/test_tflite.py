"""TensorFlow Lite: the FlatBuffer reader (no TensorFlow), and Keras / SavedModel ->
TFLite with TensorFlow's converter at each precision, verified in the TFLite interpreter
and checked again here against Keras on other inputs."""
from __future__ import annotations

import struct
import subprocess
import sys

import numpy as np
import pytest

from format_samples import tflite_bytes
from mlconvert import api, probe
from mlconvert.errors import ConversionError, InputError
from mlconvert.formats import tflite


def write(tmp_path, data, name="model.tflite"):
    path = tmp_path / name
    path.write_bytes(data)
    return path


@pytest.mark.parametrize("dtype,precision", [("float32", "float32"), ("float16", "float16 weights"),
                                             ("int8", "dynamic-range int8")])
def test_describe_reads_io_ops_and_precision(tmp_path, dtype, precision):
    info = tflite.describe(write(tmp_path, tflite_bytes(dtype)))
    assert info["inputs"] == [{"name": "features", "dtype": "float32", "shape": [None, 4]}]
    assert info["outputs"] == [{"name": "probs", "dtype": "float32", "shape": [None, 3]}]
    assert info["details"]["precision"].startswith(precision)
    assert info["details"]["op_types"]["FULLY_CONNECTED"] == 1
    assert info["details"]["signatures"] == ["serving_default"]
    assert info["details"]["quantized_tensors"] == (1 if dtype == "int8" else 0)


def test_without_signature_the_graph_io_is_shown(tmp_path):
    info = tflite.describe(write(tmp_path, tflite_bytes(signature=False)))
    assert [i["name"] for i in info["inputs"]] == ["x"] and [o["name"] for o in info["outputs"]] == ["y"]


def test_inspect_imports_no_tensorflow(tmp_path):
    path = write(tmp_path, tflite_bytes())
    code = ("import sys; from mlconvert import api; r = api.inspect(sys.argv[1]).to_dict(); "
            "assert r['format'] == 'tflite', r; "
            "heavy = [m for m in ('tensorflow', 'ai_edge_litert', 'flatbuffers', 'numpy') if m in sys.modules]; "
            "assert not heavy, heavy")
    proc = subprocess.run([sys.executable, "-c", code, str(path)], capture_output=True, text=True, timeout=300)
    assert proc.returncode == 0, proc.stderr


def test_detected_by_identifier_not_extension(tmp_path):
    from mlconvert import formats

    assert formats.detect(write(tmp_path, tflite_bytes(), "model.bin")).id == "tflite"


@pytest.mark.parametrize("patch", ["root", "vector"])
def test_corrupt_offsets_and_counts_are_input_errors(tmp_path, patch):
    data = bytearray(tflite_bytes())
    if patch == "root":
        struct.pack_into("<I", data, 0, len(data) + 100)
    else:  # every 4-byte value that reads as a small count becomes an absurd one
        for pos in range(8, len(data) - 4, 4):
            if struct.unpack_from("<I", data, pos)[0] in (1, 2, 3, 5):
                struct.pack_into("<I", data, pos, 0x7FFFFFF0)
    with pytest.raises(InputError):
        tflite.describe(write(tmp_path, bytes(data)))


# --- conversions (TensorFlow) ---

needs_tf = pytest.mark.skipif(not probe.has_module("tensorflow"), reason="TensorFlow is not installed")


def big_keras_model(path):
    """Weights large enough (>= 1024 values) for the converter to quantize them."""
    import keras

    keras.utils.set_random_seed(7)
    model = keras.Sequential([keras.Input((16,), name="features"), keras.layers.Dense(64, activation="relu"),
                              keras.layers.Dense(32, activation="relu"), keras.layers.Dense(5, activation="softmax")])
    model.save(str(path))
    return model


def interpreter_outputs(path, x):
    Interpreter = tflite._interpreter_class()  # ai-edge-litert's, else TensorFlow's
    runner = Interpreter(model_path=str(path)).get_signature_runner("serving_default")
    (out,) = runner(features=x).values()
    return out


@needs_tf
@pytest.mark.slow
@pytest.mark.parametrize("options,precision,atol", [({}, "float32", 1e-5), ({"fp16": True}, "float16 weights", 1e-2),
                                                    ({"quantize": "dynamic"}, "dynamic-range int8", 1e-1)])
def test_keras_to_tflite_at_each_precision(tmp_path, options, precision, atol):
    model = big_keras_model(tmp_path / "net.keras")
    out = tmp_path / "net.tflite"
    report = api.convert(tmp_path / "net.keras", out, **options)
    assert [s.edge for s in report.steps] == ["keras-export", "tflite-converter"]
    assert report.steps[-1].details["precision"].startswith(precision)
    v = report.verification
    assert v["status"] == "verified" and v["rows"] > 1 and v["atol"] == atol, v
    described = tflite.describe(out)
    assert described["details"]["precision"].startswith(precision)
    recorded = api.inspect(out).to_dict()["provenance"]  # stamped into Model.metadata
    assert recorded["plan"] == "keras -> savedmodel -> tflite" and '"status": "verified"' in recorded["verification"]
    # Independently: the interpreter against Keras on other inputs, within what the edge declares.
    x = np.random.default_rng(11).normal(size=(20, 16)).astype(np.float32)
    got, want = interpreter_outputs(out, x), model.predict(x, verbose=0)
    np.testing.assert_allclose(got, want, atol=atol, rtol=atol)
    if options:
        assert np.abs(got - want).max() > 1e-7  # the reduced precision is really there


@needs_tf
@pytest.mark.slow
def test_small_weights_stay_float32_and_say_so(fixtures, tmp_path):
    report = api.convert(fixtures / "keras_dense_iris_savedmodel", tmp_path / "iris.tflite", quantize="dynamic")
    details = report.steps[-1].details
    assert details["precision"] == "float32" and "no weight tensor is large enough" in details["note"]
    assert report.verification["status"] == "verified"


@needs_tf
@pytest.mark.slow
@pytest.mark.realworld
def test_feature_column_savedmodel_names_the_ops_tflite_lacks(realworld, tmp_path):
    src = realworld / "savedmodel" / "aditahmedabadi_heart_keras_savedmodel"
    if not src.exists():
        pytest.skip("savedmodel/aditahmedabadi_heart_keras_savedmodel is not in ../shared/realworld")
    with pytest.raises(ConversionError, match="HashTableV2") as info:
        api.convert(src, tmp_path / "heart.tflite")
    assert info.value.exit_code == 5
    assert not (tmp_path / "heart.tflite").exists()
