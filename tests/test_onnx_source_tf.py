"""ONNX networks -> SavedModel with onnx2tf, and on from there along the existing edges
(TFLite, Core ML): planned, run, and verified against onnxruntime; the SavedModel is
also run here with TensorFlow against onnxruntime on other inputs."""
from __future__ import annotations

import numpy as np
import pytest

from mlconvert import api, probe
from mlconvert.edges import all_edges
from mlconvert.errors import NoPathError

(_ONNX2TF,) = [e for e in all_edges() if e.name == "onnx2tf"]
if _ONNX2TF.unavailable_reason():
    pytest.skip(f"onnx2tf edge unavailable: {_ONNX2TF.unavailable_reason()}", allow_module_level=True)

pytestmark = pytest.mark.slow


def conv_network(path, batch="N"):
    """image[N,3,8,8] (NCHW) -> Conv -> Relu -> MaxPool -> GlobalAveragePool -> Flatten -> Gemm -> Softmax."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    inits = [numpy_helper.from_array((rng.normal(size=(8, 3, 3, 3)) * 0.3).astype(np.float32), "cw"),
             numpy_helper.from_array(rng.normal(size=(8,)).astype(np.float32), "cb"),
             numpy_helper.from_array(rng.normal(size=(8, 4)).astype(np.float32), "fw"),
             numpy_helper.from_array(rng.normal(size=(4,)).astype(np.float32), "fb")]
    nodes = [helper.make_node("Conv", ["image", "cw", "cb"], ["c"], pads=[1, 1, 1, 1]),
             helper.make_node("Relu", ["c"], ["r"]),
             helper.make_node("MaxPool", ["r"], ["p"], kernel_shape=[2, 2], strides=[2, 2]),
             helper.make_node("GlobalAveragePool", ["p"], ["g"]),
             helper.make_node("Flatten", ["g"], ["f"]),
             helper.make_node("Gemm", ["f", "fw", "fb"], ["logits"]),
             helper.make_node("Softmax", ["logits"], ["probs"], axis=1)]
    graph = helper.make_graph(nodes, "conv", [helper.make_tensor_value_info("image", TensorProto.FLOAT, [batch, 3, 8, 8])],
                              [helper.make_tensor_value_info("probs", TensorProto.FLOAT, [batch, 4])], inits)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def onnx_run(path, feed):
    import onnxruntime

    return onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"]).run(None, feed)


def savedmodel_run(path, feed):
    import tensorflow as tf

    signature = tf.saved_model.load(str(path)).signatures["serving_default"]
    return {k: v.numpy() for k, v in signature(**{k: tf.constant(v) for k, v in feed.items()}).items()}


@pytest.mark.parametrize("batch", ["N", 1])
def test_conv_network_keeps_nchw_and_a_free_batch(tmp_path, batch):
    src = conv_network(tmp_path / "conv.onnx", batch)
    out = tmp_path / "conv_sm"
    report = api.convert(src, out, to_format="savedmodel")
    assert [s.edge for s in report.steps] == ["onnx2tf"]
    v = report.verification
    assert v["status"] == "verified" and v["rows"] > 1 and v["outputs"][0]["max_abs"] < 1e-5, v
    info = api.inspect(out).to_dict()
    assert info["inputs"][0]["name"] == "image" and info["inputs"][0]["shape"] == [None, 3, 8, 8]
    assert info["outputs"][0]["name"] == "probs"
    x = np.random.default_rng(4).normal(size=(5, 3, 8, 8)).astype(np.float32)
    want = onnx_run(src, {"image": x if batch == "N" else x[:1]})[0]
    got = savedmodel_run(out, {"image": x if batch == "N" else x[:1]})["probs"]
    np.testing.assert_allclose(got, want, atol=1e-5)
    if batch == 1:
        assert "freed" in report.steps[0].details["batch"]


def test_onnx_to_tflite_is_two_planned_hops(tmp_path):
    src = conv_network(tmp_path / "conv.onnx")
    assert [e.name for e in api.plan(src, tmp_path / "conv.tflite").steps] == ["onnx2tf", "tflite-converter"]
    report = api.convert(src, tmp_path / "conv.tflite")
    assert report.verification["status"] == "verified"
    assert report.steps[-1].details["precision"] == "float32"


def test_classic_onnx_has_no_path_to_tensorflow(realworld, tmp_path):
    src = realworld / "onnx" / "skl2onnx1112_rf_iris.onnx"
    if not src.exists():
        pytest.skip("onnx/skl2onnx1112_rf_iris.onnx is not in ../shared/realworld")
    with pytest.raises(NoPathError) as info:
        api.convert(src, tmp_path / "rf_sm", to_format="savedmodel")
    assert info.value.exit_code == 4
    (row,) = [e for e in info.value.details["plan"]["edges"] if e["edge"] == "onnx2tf"]
    assert "onnx-nn" in row["reason"] and "onnx-ml" in row["reason"]


@pytest.mark.realworld
@pytest.mark.parametrize("name", ["hls4ml_three_layer_keras.onnx", "pytorch03_test_Linear.onnx"])
@pytest.mark.parametrize("target", ["model_sm", "model.tflite"])
def test_real_networks_to_tensorflow(realworld, tmp_path, name, target):
    src = realworld / "onnx" / name
    if not src.exists():
        pytest.skip(f"onnx/{name} is not in ../shared/realworld")
    out = tmp_path / target
    report = api.convert(src, out, to_format="savedmodel" if target.endswith("_sm") else None)
    v = report.verification
    assert v["status"] == "verified" and v["rows"] > 1, v
    assert all(o["max_abs"] <= 1e-5 for o in v["outputs"] if "max_abs" in o), v
    if target.endswith("_sm"):  # TensorFlow itself against onnxruntime, on other rows
        import onnx

        model = onnx.load(str(src))
        initializers = {t.name for t in model.graph.initializer}
        (inp,) = [i for i in model.graph.input if i.name not in initializers]
        dims = [d.dim_value for d in inp.type.tensor_type.shape.dim]
        x = np.random.default_rng(8).normal(size=dims).astype(np.float32)
        got = savedmodel_run(out, {api.inspect(out).to_dict()["inputs"][0]["name"]: x})
        from mlconvert.formats.onnx_model import OnnxPredictor

        # onnxruntime, or onnx's reference evaluator for the opset-6 file onnxruntime no longer runs
        want = OnnxPredictor(src).predict({inp.name: x})
        assert got and set(got) <= set(want)
        for key, value in got.items():
            np.testing.assert_allclose(value, want[key], atol=1e-5)
