"""ONNX as a source: ONNX -> ONNX (--opset, --fp16, cleanup), TensorProto .pb samples,
and what `inspect` shows of an ONNX file. Every conversion is checked with onnxruntime
(or onnx's reference evaluator for opsets onnxruntime dropped) against the source."""
from __future__ import annotations

import numpy as np
import pytest

from mlconvert import api, probe
from mlconvert.errors import InputError, UsageError
from mlconvert.verification import load_sample

if not (probe.has_module("onnx") and probe.has_module("onnxruntime")):
    pytest.skip("onnx and onnxruntime are not installed (pip install 'mlconvert[classic]')", allow_module_level=True)

REAL_ONNX = ["pytorch03_test_Linear.onnx", "hls4ml_three_layer_keras.onnx", "skl2onnx1112_rf_iris.onnx",
             "skl2onnx2018_GradientBoostingRegressor.onnx", "amelia_insurance_xgb.onnx"]


def small_network(path, opset=13, batch="N", fold=True):
    """x[N,4] -> MatMul -> Add(bias, folded from two constants) -> Relu -> y[N,3]."""
    import onnx
    from onnx import TensorProto, helper, numpy_helper

    rng = np.random.default_rng(0)
    w = numpy_helper.from_array(rng.normal(size=(4, 3)).astype(np.float32), "w")
    b1 = numpy_helper.from_array(rng.normal(size=(3,)).astype(np.float32), "b1")
    b2 = numpy_helper.from_array(rng.normal(size=(3,)).astype(np.float32), "b2")
    nodes = [helper.make_node("MatMul", ["x", "w"], ["h"])]
    if fold:
        nodes.append(helper.make_node("Add", ["b1", "b2"], ["b"]))  # constant: folded by the cleanup
        nodes.append(helper.make_node("Add", ["h", "b"], ["z"]))
    else:
        nodes.append(helper.make_node("Add", ["h", "b1"], ["z"]))
    nodes.append(helper.make_node("Relu", ["z"], ["y"]))
    graph = helper.make_graph(nodes, "small", [helper.make_tensor_value_info("x", TensorProto.FLOAT, [batch, 4])],
                              [helper.make_tensor_value_info("y", TensorProto.FLOAT, [batch, 3])], [w, b1, b2])
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", opset)], producer_name="test")
    model.ir_version = 8
    onnx.save(model, str(path))
    return path


def run_onnx(path, feed):
    import onnxruntime

    session = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    return session.run(None, feed)


def test_opset_conversion_of_a_network(tmp_path):
    import onnx

    src = small_network(tmp_path / "net.onnx", opset=13)
    out = tmp_path / "net17.onnx"
    report = api.convert(src, out, opset=17)
    assert report.verification["status"] == "verified"
    model = onnx.load(str(out))
    assert [(o.domain, o.version) for o in model.opset_import if o.domain in ("", "ai.onnx")] == [("", 17)]
    # Independently of mlconvert's verification: the same outputs on other inputs.
    x = np.random.default_rng(5).normal(size=(7, 4)).astype(np.float32)
    np.testing.assert_allclose(run_onnx(out, {"x": x})[0], run_onnx(src, {"x": x})[0], atol=1e-6)
    step = report.steps[0]
    assert step.edge == "onnx-rewrite" and step.details["opset_from"] == 13 and step.details["opset"] == 17


def test_cleanup_folds_constants(tmp_path):
    src = small_network(tmp_path / "net.onnx")
    report = api.convert(src, tmp_path / "clean.onnx")
    details = report.steps[0].details
    assert details["nodes_before"] == 4 and details["nodes_after"] <= 3, details  # (and MatMul+Add may fuse)
    assert report.verification["status"] == "verified"


def test_fp16_keeps_float32_io_and_declares_its_tolerance(tmp_path):
    import onnx

    src = small_network(tmp_path / "net.onnx", fold=False)
    out = tmp_path / "half.onnx"
    report = api.convert(src, out, fp16=True)
    v = report.verification
    assert v["status"] == "verified" and v["atol"] == 1e-2 and "fp16" in v["tolerance_source"]
    model = onnx.load(str(out))
    assert {t.data_type for t in model.graph.initializer} == {onnx.TensorProto.FLOAT16}
    assert model.graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    assert model.graph.output[0].type.tensor_type.elem_type == onnx.TensorProto.FLOAT
    x = np.random.default_rng(6).normal(size=(9, 4)).astype(np.float32)
    got, want = run_onnx(out, {"x": x})[0], run_onnx(src, {"x": x})[0]
    assert 0 < np.abs(got - want).max() < 1e-2  # float16 shows, within what is declared


def test_bad_opset_is_a_usage_error(tmp_path):
    src = small_network(tmp_path / "net.onnx")
    with pytest.raises(UsageError):
        api.convert(src, tmp_path / "x.onnx", opset=999)


def test_pb_samples_load_one_or_several(tmp_path):
    from onnx import numpy_helper

    a = np.arange(12, dtype=np.float32).reshape(3, 4)
    b = np.ones((3, 2), dtype=np.int64)
    (tmp_path / "input_0.pb").write_bytes(numpy_helper.from_array(a, "a").SerializeToString())
    X = load_sample(tmp_path / "input_0.pb", 4)
    np.testing.assert_array_equal(X, a)
    (tmp_path / "input_1.pb").write_bytes(numpy_helper.from_array(b, "b").SerializeToString())
    specs = [{"name": "a", "dtype": "float32", "shape": [None, 4]}, {"name": "b", "dtype": "int64", "shape": [None, 2]}]
    both = load_sample(tmp_path / "input_0.pb", None, specs=specs)
    np.testing.assert_array_equal(both["a"], a)
    np.testing.assert_array_equal(both["b"], b)
    (tmp_path / "junk.pb").write_bytes(b"\xff\xff\xff")
    with pytest.raises(UsageError):
        load_sample(tmp_path / "junk.pb", 4)


def test_inspect_shows_opsets_symbolic_dims_ops_and_sizes(tmp_path):
    src = small_network(tmp_path / "net.onnx")
    info = api.inspect(src).to_dict()
    assert info["inputs"][0]["shape"] == ["N", 4]
    details = info["details"]
    assert details["opsets"] == {"ai.onnx": 13}
    assert details["op_types"] == {"Add": 2, "MatMul": 1, "Relu": 1}
    assert details["initializer_bytes"] == (12 + 3 + 3) * 4
    assert info["producer"] == "test"


def _with_external_data(tmp_path, location):
    import onnx

    small_network(tmp_path / "net.onnx")
    model = onnx.load(str(tmp_path / "net.onnx"))
    onnx.external_data_helper.convert_model_to_external_data(model, all_tensors_to_one_file=True,
                                                             location="weights.bin", size_threshold=0)
    onnx.save(model, str(tmp_path / "ext.onnx"))
    if location != "weights.bin":
        for tensor in model.graph.initializer:
            for entry in tensor.external_data:
                if entry.key == "location":
                    entry.value = location
        onnx.save(model, str(tmp_path / "ext.onnx"))
    return tmp_path / "ext.onnx"


def test_external_data_beside_the_model_is_listed_and_converts(tmp_path):
    src = _with_external_data(tmp_path, "weights.bin")
    info = api.inspect(src).to_dict()
    assert info["details"]["external_data"] == [{"location": "weights.bin", "bytes": 18 * 4}]
    report = api.convert(src, tmp_path / "inline.onnx")
    assert report.verification["status"] == "verified"


@pytest.mark.parametrize("location", ["../outside.bin", "/etc/passwd", "sub/../../x.bin"])
def test_external_data_outside_the_folder_is_refused(tmp_path, location):
    folder = tmp_path / "model"
    folder.mkdir()
    src = _with_external_data(folder, location)
    with pytest.raises(InputError, match="outside the model's folder"):
        api.inspect(src)
    with pytest.raises(InputError):
        api.convert(src, tmp_path / "x.onnx")


@pytest.mark.realworld
@pytest.mark.parametrize("name", REAL_ONNX)
def test_real_files_to_another_opset(realworld, tmp_path, name):
    src = realworld / "onnx" / name
    if not src.exists():
        pytest.skip(f"onnx/{name} is not in ../shared/realworld")
    report = api.convert(src, tmp_path / "model13.onnx", opset=13)
    v = report.verification
    assert v["status"] == "verified" and v["rows"] > 1, v
    assert all(o["max_abs"] <= 1e-5 for o in v["outputs"] if "max_abs" in o), v


@pytest.mark.realworld
def test_real_pytorch_file_with_its_pb_data(realworld, tmp_path):
    from onnx import load_tensor, numpy_helper

    src = realworld / "onnx" / "pytorch03_test_Linear.onnx"
    if not src.exists():
        pytest.skip("onnx/pytorch03_test_Linear.onnx is not in ../shared/realworld")
    out = tmp_path / "linear13.onnx"
    report = api.convert(src, out, opset=13, sample=src.with_name("pytorch03_test_Linear.input_0.pb"))
    assert report.verification["status"] == "verified" and report.verification["rows"] == 4
    # The converted model reproduces the exporter's own recorded output.
    x = numpy_helper.to_array(load_tensor(str(src.with_name("pytorch03_test_Linear.input_0.pb"))))
    want = numpy_helper.to_array(load_tensor(str(src.with_name("pytorch03_test_Linear.output_0.pb"))))
    np.testing.assert_allclose(run_onnx(out, {"0": x})[0], want, atol=1e-5)


@pytest.mark.realworld
def test_real_network_fp16_and_classic_fp16_refused(realworld, tmp_path):
    src = realworld / "onnx" / "hls4ml_three_layer_keras.onnx"
    classic = realworld / "onnx" / "skl2onnx1112_rf_iris.onnx"
    if not (src.exists() and classic.exists()):
        pytest.skip("the ONNX files are not in ../shared/realworld")
    report = api.convert(src, tmp_path / "half.onnx", fp16=True)
    assert report.verification["status"] == "verified"
    assert 0 < report.verification["outputs"][0]["max_abs"] <= 1e-2
    with pytest.raises(UsageError, match="--fp16 applies to neural networks"):
        api.convert(classic, tmp_path / "x.onnx", fp16=True)
