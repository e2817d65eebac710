"""Small files of the static formats, built by hand for the format tests.

Hand-built protobufs cover Core ML and SavedModel structures that no fixture has
(ML programs, packages, multiArray inputs...) without importing coremltools or
TensorFlow; ONNX files are built with onnx.helper, imported inside the builders.
"""
from __future__ import annotations

import json
import struct
import zipfile
from pathlib import Path

# ------------------------------------------------------------------ a tiny encoder


def _varint(n: int) -> bytes:
    n &= (1 << 64) - 1
    out = bytearray()
    while True:
        byte, n = n & 0x7F, n >> 7
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def fv(field: int, value: int) -> bytes:
    return _varint(field << 3) + _varint(value)


def fb(field: int, data) -> bytes:
    data = data.encode() if isinstance(data, str) else data
    return _varint(field << 3 | 2) + _varint(len(data)) + data


def entry(key: str, value) -> bytes:
    return fb(1, key) + fb(2, value)


# Core ML


def coreml_feature(name: str, ftype: bytes) -> bytes:
    return fb(1, name) + fb(3, ftype)


DOUBLE = fb(2, b"")
INT64 = fb(1, b"")


def multiarray(shape, dtype=65568) -> bytes:
    return fb(5, fb(1, b"".join(_varint(d) for d in shape)) + fv(2, dtype))


def coreml_spec(type_field: int = 300, body: bytes = fb(2, struct.pack("<d", 1.5)), inputs=None, outputs=None,
                user_defined=None, version: int = 4) -> bytes:
    inputs = inputs if inputs is not None else [coreml_feature("x", multiarray([3]))]
    outputs = outputs if outputs is not None else [coreml_feature("y", DOUBLE)]
    meta = fb(3, "tests") + b"".join(fb(100, entry(k, v)) for k, v in (user_defined or {}).items())
    description = b"".join(fb(1, f) for f in inputs) + b"".join(fb(10, f) for f in outputs)
    description += fb(11, "y") + fb(100, meta)
    return fv(1, version) + fb(2, description) + fb(type_field, body)


# SavedModel


def tensor_info(name: str, dtype: int, dims) -> bytes:
    shape = b"".join(fb(2, fv(1, d)) for d in dims)
    return fb(1, name) + fv(2, dtype) + fb(3, shape)


def saved_model_pb(tf_version: str = "2.15.0") -> bytes:
    signature = fb(1, entry("x", tensor_info("serving_default_x:0", 1, [-1, 3])))
    signature += fb(2, entry("y", tensor_info("Identity:0", 2, [-1, 1])))
    signature += fb(3, "tensorflow/serving/predict")
    meta_info = fb(4, "serve") + fb(5, tf_version) + fb(6, "v2.15.0-0-g123")
    graph_def = fb(1, fb(1, "x") + fb(2, "Placeholder")) + fb(1, fb(1, "y") + fb(2, "Identity"))
    meta_graph = fb(1, meta_info) + fb(2, graph_def) + fb(5, entry("serving_default", signature))
    meta_graph += fb(5, entry("__saved_model_init_op", fb(2, entry("__saved_model_init_op", fb(1, "NoOp")))))
    return fv(1, 1) + fb(2, meta_graph)


def make_savedmodel(root: Path, data: bytes | None = None) -> Path:
    root.mkdir(parents=True, exist_ok=True)
    (root / "saved_model.pb").write_bytes(saved_model_pb() if data is None else data)
    (root / "variables").mkdir(exist_ok=True)
    (root / "variables" / "variables.index").write_bytes(b"\x00" * 10)
    (root / "variables" / "variables.data-00000-of-00001").write_bytes(b"\x00" * 30)
    return root


# ONNX (built with onnx.helper, imported inside the helpers)


def onnx_classifier_bytes() -> bytes:
    from onnx import TensorProto, helper

    node = helper.make_node(
        "LinearClassifier", ["X"], ["label", "scores"], domain="ai.onnx.ml",
        coefficients=[0.1] * 12, intercepts=[0.0, 0.0, 0.0], classlabels_ints=[0, 1, 2],
    )
    cast = helper.make_node("Cast", ["scores"], ["probabilities"], to=TensorProto.FLOAT)
    graph = helper.make_graph(
        [node, cast], "linear",
        [helper.make_tensor_value_info("X", TensorProto.FLOAT, ["N", 4])],
        [helper.make_tensor_value_info("label", TensorProto.INT64, ["N"]),
         helper.make_tensor_value_info("probabilities", TensorProto.FLOAT, ["N", 3])],
    )
    model = helper.make_model(
        graph, producer_name="tests", producer_version="0.1",
        opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)],
    )
    helper.set_model_props(model, {"author": "tests", "mlconvert.report": "{}"})
    model.ir_version = 8
    return model.SerializeToString()


def onnx_mlp_bytes() -> bytes:
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    w = numpy_helper.from_array(np.ones((5, 2), dtype=np.float64), "W")
    graph = helper.make_graph(
        [helper.make_node("MatMul", ["X", "W"], ["H"]), helper.make_node("Relu", ["H"], ["Y"])],
        "mlp",
        [helper.make_tensor_value_info("X", TensorProto.DOUBLE, [None, 5])],
        [helper.make_tensor_value_info("Y", TensorProto.DOUBLE, [None, 2])],
        initializer=[w],
    )
    model = helper.make_model(graph, producer_name="tests", opset_imports=[helper.make_opsetid("", 17)])
    model.ir_version = 8
    return model.SerializeToString()


# Keras


def keras_config(lambda_layer: bool = False, functional: bool = True) -> dict:
    layers = [
        {"class_name": "InputLayer", "name": "features",
         "config": {"name": "features", "batch_shape": [None, 6], "dtype": "float32"}},
        {"class_name": "Dense", "name": "hidden",
         "config": {"name": "hidden", "units": 8, "activation": "relu",
                    "dtype": {"module": "keras", "class_name": "DTypePolicy", "config": {"name": "float32"}}}},
    ]
    if lambda_layer:
        layers.append({"class_name": "Lambda", "name": "scale", "config": {"name": "scale", "function": "4wEAAAAA"}})
    layers.append({"class_name": "Dense", "name": "probs",
                   "config": {"name": "probs", "units": 3, "activation": "softmax", "dtype": "float32"}})
    config: dict = {"name": "net", "layers": layers}
    if functional:
        config["input_layers"] = [["features", 0, 0]]
        config["output_layers"] = ["probs", 0, 0]  # Keras 3 writes a single output flat
    return {"module": "keras", "class_name": "Functional" if functional else "Sequential", "config": config}


def make_keras_zip(path: Path, config: dict | None = None, metadata: dict | None = None) -> Path:
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("metadata.json", json.dumps(metadata or {"keras_version": "3.9.0", "date_saved": "2026-01-01@00:00:00"}))
        archive.writestr("config.json", json.dumps(config or keras_config()))
        archive.writestr("model.weights.h5", b"\x89HDF\r\n\x1a\n" + b"\x00" * 200)
    return path


def make_keras_h5(path: Path, config: dict | None = None, weights_only: bool = False) -> Path:
    import h5py
    import numpy as np

    with h5py.File(path, "w") as handle:
        handle.attrs["keras_version"] = "2.15.0"
        handle.attrs["backend"] = "tensorflow"
        group = handle if weights_only else handle.create_group("model_weights")
        group.attrs["layer_names"] = [b"hidden", b"probs"]
        group.create_dataset("hidden/hidden/kernel:0", data=np.zeros((6, 8), dtype="float32"))
        group.create_dataset("probs/probs/kernel:0", data=np.zeros((8, 3), dtype="float32"))
        if not weights_only:
            handle.attrs["model_config"] = json.dumps(config or keras_config())
    return path


# PMML

PMML_DOC = """<?xml version="1.0" encoding="UTF-8"?>
<!-- written by hand for the tests -->
<PMML xmlns="http://www.dmg.org/PMML-4_4" version="4.4">
  <Header copyright="tests" description="tiny tree">
    <Application name="handmade" version="1.0"/>
    <Timestamp>2026-01-01</Timestamp>
  </Header>
  <DataDictionary numberOfFields="3">
    <DataField name="a" optype="continuous" dataType="double"/>
    <DataField name="b" optype="continuous" dataType="integer"/>
    <DataField name="label" optype="categorical" dataType="string">
      <Value value="yes"/><Value value="no"/>
    </DataField>
  </DataDictionary>
  <TreeModel functionName="classification" modelName="t">
    <MiningSchema>
      <MiningField name="a"/>
      <MiningField name="b" usageType="active"/>
      <MiningField name="label" usageType="target"/>
    </MiningSchema>
    <Node score="yes"><True/>
      <Node score="no"><SimplePredicate field="a" operator="lessThan" value="1"/></Node>
    </Node>
  </TreeModel>
</PMML>
"""


# TensorFlow Lite (a FlatBuffer of the TFLite schema, built with the flatbuffers package)


def tflite_bytes(weights_dtype: str = "float32", signature: bool = True) -> bytes:
    """x[-1,4] -> FULLY_CONNECTED(w[3,4], b[3]) -> SOFTMAX -> y[-1,3]. `weights_dtype`
    float16 adds the DEQUANTIZE a float16 file has; int8 gives w a quantization scale."""
    import flatbuffers
    import numpy as np

    b = flatbuffers.Builder(1024)
    types = {"float32": 0, "float16": 1, "int8": 9}

    def ints(values):
        b.StartVector(4, len(values), 4)
        for v in reversed(values):
            b.PrependInt32(v)
        return b.EndVector()

    def offsets(items):
        b.StartVector(4, len(items), 4)
        for item in reversed(items):
            b.PrependUOffsetTRelative(item)
        return b.EndVector()

    def floats(values):
        b.StartVector(4, len(values), 4)
        for v in reversed(values):
            b.PrependFloat32(v)
        return b.EndVector()

    def buffer(data: bytes | None):
        vector = b.CreateByteVector(data) if data else None
        b.StartObject(3)
        if vector is not None:
            b.PrependUOffsetTRelativeSlot(0, vector, 0)
        return b.EndObject()

    w = np.arange(12, dtype=weights_dtype if weights_dtype != "int8" else "int8").reshape(3, 4)
    buffers = [buffer(None), buffer(w.tobytes()), buffer(np.zeros(3, dtype="float32").tobytes())]

    def tensor(name, shape, dtype=0, buf=0, signature_shape=None, scale=None):
        name_off, shape_off = b.CreateString(name), ints(shape)
        sig_off = ints(signature_shape) if signature_shape else None
        quant = None
        if scale is not None:
            scales = floats([scale])
            b.StartObject(7)
            b.PrependUOffsetTRelativeSlot(2, scales, 0)
            quant = b.EndObject()
        b.StartObject(10)
        b.PrependUOffsetTRelativeSlot(0, shape_off, 0)
        b.PrependInt8Slot(1, dtype, 0)
        b.PrependUint32Slot(2, buf, 0)
        b.PrependUOffsetTRelativeSlot(3, name_off, 0)
        if quant is not None:
            b.PrependUOffsetTRelativeSlot(4, quant, 0)
        if sig_off is not None:
            b.PrependUOffsetTRelativeSlot(7, sig_off, 0)
        return b.EndObject()

    tensors = [tensor("x", [1, 4], signature_shape=[-1, 4]),
               tensor("w", [3, 4], types[weights_dtype], 1, scale=0.5 if weights_dtype == "int8" else None),
               tensor("b", [3], 0, 2), tensor("fc", [1, 3], signature_shape=[-1, 3]),
               tensor("y", [1, 3], signature_shape=[-1, 3])]
    chain = [(0, [0, 1, 2], [3]), (1, [3], [4])]
    codes_used = [9, 25]  # FULLY_CONNECTED, SOFTMAX
    if weights_dtype == "float16":
        tensors.append(tensor("w32", [3, 4]))
        chain = [(2, [1], [5]), (0, [0, 5, 2], [3]), (1, [3], [4])]
        codes_used.append(6)  # DEQUANTIZE

    def operator(code_index, inputs, outputs):
        ins, outs = ints(inputs), ints(outputs)
        b.StartObject(14)
        b.PrependUint32Slot(0, code_index, 0)
        b.PrependUOffsetTRelativeSlot(1, ins, 0)
        b.PrependUOffsetTRelativeSlot(2, outs, 0)
        return b.EndObject()

    operators = [operator(*op) for op in chain]

    def opcode(code):
        b.StartObject(4)
        b.PrependInt8Slot(0, code, 0)
        b.PrependInt32Slot(2, 1, 1)
        b.PrependInt32Slot(3, code, 0)
        return b.EndObject()

    codes = [opcode(c) for c in codes_used]
    tensors_vec, ops_vec = offsets(tensors), offsets(operators)
    inputs_vec, outputs_vec, name = ints([0]), ints([4]), b.CreateString("main")
    b.StartObject(5)
    b.PrependUOffsetTRelativeSlot(0, tensors_vec, 0)
    b.PrependUOffsetTRelativeSlot(1, inputs_vec, 0)
    b.PrependUOffsetTRelativeSlot(2, outputs_vec, 0)
    b.PrependUOffsetTRelativeSlot(3, ops_vec, 0)
    b.PrependUOffsetTRelativeSlot(4, name, 0)
    subgraph = b.EndObject()

    def tensor_map(label, index):
        label_off = b.CreateString(label)
        b.StartObject(2)
        b.PrependUOffsetTRelativeSlot(0, label_off, 0)
        b.PrependUint32Slot(1, index, 0)
        return b.EndObject()

    signatures = None
    if signature:
        sig_in, sig_out = offsets([tensor_map("features", 0)]), offsets([tensor_map("probs", 4)])
        key = b.CreateString("serving_default")
        b.StartObject(5)
        b.PrependUOffsetTRelativeSlot(0, sig_in, 0)
        b.PrependUOffsetTRelativeSlot(1, sig_out, 0)
        b.PrependUOffsetTRelativeSlot(2, key, 0)
        signatures = offsets([b.EndObject()])
    codes_vec, subgraphs_vec, buffers_vec = offsets(codes), offsets([subgraph]), offsets(buffers)
    description = b.CreateString("tests")
    b.StartObject(8)
    b.PrependUint32Slot(0, 3, 0)
    b.PrependUOffsetTRelativeSlot(1, codes_vec, 0)
    b.PrependUOffsetTRelativeSlot(2, subgraphs_vec, 0)
    b.PrependUOffsetTRelativeSlot(3, description, 0)
    b.PrependUOffsetTRelativeSlot(4, buffers_vec, 0)
    if signatures is not None:
        b.PrependUOffsetTRelativeSlot(7, signatures, 0)
    b.Finish(b.EndObject(), file_identifier=b"TFL3")
    return bytes(b.Output())
