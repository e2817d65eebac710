"""TensorFlow Lite (.tflite): a FlatBuffer of the TFLite schema, file identifier `TFL3`.

sniff and describe read the FlatBuffer directly (a small bounded reader of the
schema's tables: tensorflow/compiler/mlir/lite/schema/schema.fbs), so inspecting a
model never imports TensorFlow. Running it uses the TFLite interpreter: ai-edge-litert
where installed, else TensorFlow's tf.lite.Interpreter.
"""
from __future__ import annotations

import mmap
import struct
from collections import Counter
from pathlib import Path

from mlconvert.errors import InputError
from mlconvert.formats import Format, register_format
from mlconvert.predict import CannotRun, Predictor, fixed_batch, named_inputs, run_in_batches

IDENTIFIER = b"TFL3"
_HINT_CORRUPT = "the file looks truncated or corrupt; convert or download it again"

# TensorType (schema.fbs) -> numpy-style names.
TENSOR_TYPES = {
    0: "float32", 1: "float16", 2: "int32", 3: "uint8", 4: "int64", 5: "string", 6: "bool", 7: "int16",
    8: "complex64", 9: "int8", 10: "float64", 11: "complex128", 12: "uint64", 13: "resource", 14: "variant",
    15: "uint32", 16: "uint16", 17: "int4", 18: "bfloat16", 19: "int2", 20: "uint4",
}
# BuiltinOperator (schema.fbs), by code.
_BUILTIN_OPS = (
    "ADD", "AVERAGE_POOL_2D", "CONCATENATION", "CONV_2D", "DEPTHWISE_CONV_2D", "DEPTH_TO_SPACE", "DEQUANTIZE",
    "EMBEDDING_LOOKUP", "FLOOR", "FULLY_CONNECTED", "HASHTABLE_LOOKUP", "L2_NORMALIZATION", "L2_POOL_2D",
    "LOCAL_RESPONSE_NORMALIZATION", "LOGISTIC", "LSH_PROJECTION", "LSTM", "MAX_POOL_2D", "MUL", "RELU",
    "RELU_N1_TO_1", "RELU6", "RESHAPE", "RESIZE_BILINEAR", "RNN", "SOFTMAX", "SPACE_TO_DEPTH", "SVDF", "TANH",
    "CONCAT_EMBEDDINGS", "SKIP_GRAM", "CALL", "CUSTOM", "EMBEDDING_LOOKUP_SPARSE", "PAD",
    "UNIDIRECTIONAL_SEQUENCE_RNN", "GATHER", "BATCH_TO_SPACE_ND", "SPACE_TO_BATCH_ND", "TRANSPOSE", "MEAN",
    "SUB", "DIV", "SQUEEZE", "UNIDIRECTIONAL_SEQUENCE_LSTM", "STRIDED_SLICE", "BIDIRECTIONAL_SEQUENCE_RNN",
    "EXP", "TOPK_V2", "SPLIT", "LOG_SOFTMAX", "DELEGATE", "BIDIRECTIONAL_SEQUENCE_LSTM", "CAST", "PRELU",
    "MAXIMUM", "ARG_MAX", "MINIMUM", "LESS", "NEG", "PADV2", "GREATER", "GREATER_EQUAL", "LESS_EQUAL", "SELECT",
    "SLICE", "SIN", "TRANSPOSE_CONV", "SPARSE_TO_DENSE", "TILE", "EXPAND_DIMS", "EQUAL", "NOT_EQUAL", "LOG",
    "SUM", "SQRT", "RSQRT", "SHAPE", "POW", "ARG_MIN", "FAKE_QUANT", "REDUCE_PROD", "REDUCE_MAX", "PACK",
    "LOGICAL_OR", "ONE_HOT", "LOGICAL_AND", "LOGICAL_NOT", "UNPACK", "REDUCE_MIN", "FLOOR_DIV", "REDUCE_ANY",
    "SQUARE", "ZEROS_LIKE", "FILL", "FLOOR_MOD", "RANGE", "RESIZE_NEAREST_NEIGHBOR", "LEAKY_RELU",
    "SQUARED_DIFFERENCE", "MIRROR_PAD", "ABS", "SPLIT_V", "UNIQUE", "CEIL", "REVERSE_V2", "ADD_N", "GATHER_ND",
    "COS", "WHERE", "RANK", "ELU", "REVERSE_SEQUENCE", "MATRIX_DIAG", "QUANTIZE", "MATRIX_SET_DIAG", "ROUND",
    "HARD_SWISH", "IF", "WHILE", "NON_MAX_SUPPRESSION_V4", "NON_MAX_SUPPRESSION_V5", "SCATTER_ND", "SELECT_V2",
    "DENSIFY", "SEGMENT_SUM", "BATCH_MATMUL", "PLACEHOLDER_FOR_GREATER_OP_CODES", "CUMSUM", "CALL_ONCE",
    "BROADCAST_TO", "RFFT2D", "CONV_3D", "IMAG", "REAL", "COMPLEX_ABS", "HASHTABLE", "HASHTABLE_FIND",
    "HASHTABLE_IMPORT", "HASHTABLE_SIZE", "REDUCE_ALL", "CONV_3D_TRANSPOSE", "VAR_HANDLE", "READ_VARIABLE",
    "ASSIGN_VARIABLE", "BROADCAST_ARGS", "RANDOM_STANDARD_NORMAL", "BUCKETIZE", "RANDOM_UNIFORM", "MULTINOMIAL",
    "GELU", "DYNAMIC_UPDATE_SLICE", "RELU_0_TO_1", "UNSORTED_SEGMENT_PROD", "UNSORTED_SEGMENT_MAX",
    "UNSORTED_SEGMENT_SUM", "ATAN2", "UNSORTED_SEGMENT_MIN", "SIGN", "BITCAST", "BITWISE_XOR", "RIGHT_SHIFT",
    "STABLEHLO_LOGISTIC", "STABLEHLO_ADD", "STABLEHLO_DIVIDE", "STABLEHLO_MULTIPLY", "STABLEHLO_MAXIMUM",
    "STABLEHLO_RESHAPE", "STABLEHLO_CLAMP", "STABLEHLO_CONCATENATE", "STABLEHLO_BROADCAST_IN_DIM",
    "STABLEHLO_CONVOLUTION", "STABLEHLO_SLICE", "STABLEHLO_CUSTOM_CALL", "STABLEHLO_REDUCE", "STABLEHLO_ABS",
    "STABLEHLO_AND", "STABLEHLO_COSINE", "STABLEHLO_EXPONENTIAL", "STABLEHLO_FLOOR", "STABLEHLO_LOG",
    "STABLEHLO_MINIMUM", "STABLEHLO_NEGATE", "STABLEHLO_OR", "STABLEHLO_POWER", "STABLEHLO_REMAINDER",
    "STABLEHLO_RSQRT", "STABLEHLO_SELECT", "STABLEHLO_SUBTRACT", "STABLEHLO_TANH", "STABLEHLO_SCATTER",
    "STABLEHLO_COMPARE", "STABLEHLO_CONVERT", "STABLEHLO_DYNAMIC_SLICE", "STABLEHLO_DYNAMIC_UPDATE_SLICE",
    "STABLEHLO_PAD", "STABLEHLO_IOTA", "STABLEHLO_DOT_GENERAL", "STABLEHLO_REDUCE_WINDOW", "STABLEHLO_SORT",
    "STABLEHLO_WHILE", "STABLEHLO_GATHER", "STABLEHLO_TRANSPOSE", "DILATE", "STABLEHLO_RNG_BIT_GENERATOR",
    "REDUCE_WINDOW", "STABLEHLO_COMPOSITE", "STABLEHLO_SHIFT_LEFT", "STABLEHLO_CBRT", "STABLEHLO_CASE",
)

_FLOATS = {"float32", "float16", "float64", "bfloat16"}
_LIMIT = 1 << 24  # no TFLite model has this many tensors, operators or dims: a corrupt count
_TEXT_LIMIT = 1 << 20  # provenance entries are short JSON texts


class FlatBufferError(ValueError):
    pass


class _Table:
    """One FlatBuffer table: fields by index (the schema's declaration order), bounds-checked."""

    def __init__(self, buf, pos: int):
        self.buf, self.pos = buf, pos
        self._check(pos, 4)
        vtable = pos - struct.unpack_from("<i", buf, pos)[0]
        self._check(vtable, 4)
        self.vsize, _ = struct.unpack_from("<HH", buf, vtable)
        self._check(vtable, self.vsize)
        self.vtable = vtable

    def _check(self, pos: int, size: int) -> None:
        if pos < 0 or pos + size > len(self.buf):
            raise FlatBufferError(f"offset {pos} (+{size}) is outside the file ({len(self.buf)} bytes)")

    def _field(self, index: int) -> int | None:
        slot = 4 + 2 * index
        if slot + 2 > self.vsize:
            return None
        offset = struct.unpack_from("<H", self.buf, self.vtable + slot)[0]
        return self.pos + offset if offset else None

    def scalar(self, index: int, fmt: str, default=0):
        at = self._field(index)
        if at is None:
            return default
        self._check(at, struct.calcsize(fmt))
        return struct.unpack_from("<" + fmt, self.buf, at)[0]

    def _target(self, index: int) -> int | None:
        at = self._field(index)
        if at is None:
            return None
        self._check(at, 4)
        return at + struct.unpack_from("<I", self.buf, at)[0]

    def table(self, index: int) -> _Table | None:
        at = self._target(index)
        return None if at is None else _Table(self.buf, at)

    def _vector(self, index: int, width: int) -> tuple[int, int]:
        at = self._target(index)
        if at is None:
            return 0, 0
        self._check(at, 4)
        count = struct.unpack_from("<I", self.buf, at)[0]
        if count > _LIMIT:
            raise FlatBufferError(f"a vector claims {count} elements")
        self._check(at + 4, count * width)
        return at + 4, count

    def string(self, index: int) -> str:
        start, count = self._vector(index, 1)
        return bytes(self.buf[start:start + count]).decode("utf-8", "replace") if count else ""

    def scalars(self, index: int, fmt: str) -> list:
        width = struct.calcsize(fmt)
        start, count = self._vector(index, width)
        return list(struct.unpack_from(f"<{count}{fmt}", self.buf, start)) if count else []

    def vector_length(self, index: int) -> int:
        return self._vector(index, 1)[1]

    def tables(self, index: int) -> list[_Table]:
        start, count = self._vector(index, 4)
        return [_Table(self.buf, start + 4 * i + struct.unpack_from("<I", self.buf, start + 4 * i)[0])
                for i in range(count)]


# --------------------------------------------------------------------------- sniff


def sniff(head: bytes, path: Path) -> bool:
    """The FlatBuffer file identifier `TFL3` sits right after the root offset."""
    return len(head) >= 8 and head[4:8] == IDENTIFIER


# ------------------------------------------------------------------------ describe


def _tensor(table: _Table, buffers: list[_Table]) -> dict:
    # Tensor: shape 0, type 1, buffer 2, name 3, quantization 4, shape_signature 7.
    shape = table.scalars(7, "i") or table.scalars(0, "i")
    info = {"name": table.string(3), "dtype": TENSOR_TYPES.get(table.scalar(1, "b"), f"tflite-type-{table.scalar(1, 'b')}"),
            "shape": [d if d >= 0 else None for d in shape]}
    buffer = table.scalar(2, "I")
    constant = 0 < buffer < len(buffers) and (buffers[buffer].vector_length(0) > 0 or buffers[buffer].scalar(1, "Q") > 0)
    quant = table.table(4)
    scales = quant.scalars(2, "f") if quant is not None else []
    return {**info, "constant": constant, "quantized": bool(scales), "scales": len(scales)}


def _precision(tensors: list[dict], ops: Counter) -> str:
    weights = Counter(t["dtype"] for t in tensors if t["constant"])
    activations = Counter(t["dtype"] for t in tensors if not t["constant"])
    quantized_weights = any(t["constant"] and t["quantized"] and t["dtype"] in ("int8", "uint8", "int4")
                            for t in tensors)
    quantized_activations = any(not t["constant"] and t["quantized"] and t["dtype"] in ("int8", "uint8", "int16")
                                for t in tensors)
    if quantized_activations:
        return "full integer (quantized activations and weights)"
    if quantized_weights:
        return "dynamic-range int8 (int8 weights, float activations)"
    if weights.get("float16") and ops.get("DEQUANTIZE"):
        return "float16 weights (dequantized to float32 when loaded)"
    if set(activations) & _FLOATS == {"float32"} or (weights and set(weights) <= {"float32", "int32", "int64"}):
        return "float32"
    return "mixed: " + ", ".join(sorted(set(weights) | set(activations)))


def _read_model(buf) -> dict:
    if len(buf) < 8 or bytes(buf[4:8]) != IDENTIFIER:
        raise FlatBufferError("no TFL3 file identifier")
    root = _Table(buf, struct.unpack_from("<I", buf, 0)[0])
    # Model: version 0, operator_codes 1, subgraphs 2, description 3, buffers 4,
    # metadata 6, signature_defs 7.
    codes = []
    for code in root.tables(1):
        # OperatorCode: deprecated_builtin_code 0 (byte), custom_code 1, version 2, builtin_code 3.
        builtin = max(code.scalar(0, "b"), code.scalar(3, "i"))
        custom = code.string(1)
        if custom:
            codes.append(f"custom:{custom}")
        else:
            codes.append(_BUILTIN_OPS[builtin] if 0 <= builtin < len(_BUILTIN_OPS) else f"builtin-{builtin}")
    buffers = root.tables(4)
    subgraphs = root.tables(2)
    if not subgraphs:
        raise FlatBufferError("the model has no subgraph")
    ops: Counter = Counter()
    all_tensors: list[dict] = []
    for subgraph in subgraphs:
        # SubGraph: tensors 0, inputs 1, outputs 2, operators 3, name 4. Operator: opcode_index 0.
        for op in subgraph.tables(3):
            index = op.scalar(0, "I")
            ops[codes[index] if index < len(codes) else f"opcode-{index}"] += 1
        all_tensors.extend(_tensor(t, buffers) for t in subgraph.tables(0))
    main = subgraphs[0]
    tensors = [_tensor(t, buffers) for t in main.tables(0)]

    def io(indices: list[int]) -> list[dict]:
        return [{k: tensors[i][k] for k in ("name", "dtype", "shape")} for i in indices if 0 <= i < len(tensors)]

    signatures = []
    for sig in root.tables(7):
        # SignatureDef: inputs 0, outputs 1 (TensorMap: name 0, tensor_index 1), signature_key 2, subgraph_index 4.
        sub_index = sig.scalar(4, "I")
        sub_tensors = [_tensor(t, buffers) for t in subgraphs[sub_index].tables(0)] if sub_index < len(subgraphs) else []

        def named(maps):
            out = []
            for m in maps:
                i = m.scalar(1, "I")
                spec = sub_tensors[i] if i < len(sub_tensors) else {"dtype": "?", "shape": None}
                out.append({"name": m.string(0), "dtype": spec["dtype"], "shape": spec["shape"]})
            return out

        signatures.append({"key": sig.string(2), "inputs": named(sig.tables(0)), "outputs": named(sig.tables(1))})
    metadata = [m.string(0) for m in root.tables(6)]
    provenance = {}
    for entry in root.tables(6):  # Metadata: name 0, buffer 1; mlconvert's entries hold text
        name, index = entry.string(0), entry.scalar(1, "I")
        if name.startswith("mlconvert.") and index < len(buffers):
            start, count = buffers[index]._vector(0, 1)
            if count <= _TEXT_LIMIT:
                provenance[name] = bytes(buffers[index].buf[start:start + count]).decode("utf-8", "replace")
    weights = [t for t in all_tensors if t["constant"]]
    serving = next((s for s in signatures if s["key"] == "serving_default"), signatures[0] if signatures else None)
    result: dict = {
        "flavor": "tflite",
        "kind": "neural-network",
        "inputs": serving["inputs"] if serving else io(main.scalars(1, "i")),
        "outputs": serving["outputs"] if serving else io(main.scalars(2, "i")),
    }
    details = {
        "schema_version": root.scalar(0, "I"),
        "description": root.string(3),
        "precision": _precision(all_tensors, ops),
        "subgraphs": len(subgraphs),
        "op_types": dict(sorted(ops.items())),
        "operator_count": sum(ops.values()),
        "tensor_count": len(all_tensors),
        "weight_dtypes": dict(sorted(Counter(t["dtype"] for t in weights).items())),
        "quantized_tensors": sum(1 for t in all_tensors if t["quantized"]),
        "signatures": [s["key"] for s in signatures],
        "metadata_entries": metadata,
        "metadata_props": provenance,
    }
    if serving:
        details["graph_inputs"] = io(main.scalars(1, "i"))
        details["graph_outputs"] = io(main.scalars(2, "i"))
    result["details"] = details
    customs = sorted(op for op in ops if op.startswith("custom:") or op in ("CUSTOM", "DELEGATE"))
    if customs:
        result["warnings"] = [f"custom operators need their own kernels to run: {', '.join(customs)}"]
    return result


def describe(path: Path) -> dict:
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            if path.stat().st_size == 0:
                raise InputError(f"{path} is empty; expected a TensorFlow Lite model", hint=_HINT_CORRUPT)
            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as buf:
                return _read_model(buf)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}", hint="check the path and permissions") from exc
    except (FlatBufferError, struct.error, IndexError, UnicodeError, RecursionError) as exc:
        raise InputError(f"{path} is not a readable TensorFlow Lite model: {exc}", hint=_HINT_CORRUPT) from exc


# ------------------------------------------------------------- load / predictor


def _interpreter_class():
    """ai-edge-litert's interpreter (TFLite's own package), else TensorFlow's."""
    try:
        from ai_edge_litert.interpreter import Interpreter
    except ImportError:
        try:
            from mlconvert.formats import _tensorflow

            Interpreter = _tensorflow.import_tf().lite.Interpreter
        except Exception as exc:  # TensorFlow missing, or without tf.lite
            raise CannotRun("no TFLite interpreter here (pip install ai-edge-litert, or tensorflow)") from exc
    return Interpreter


class TFLiteModel:
    """A .tflite file in the TFLite interpreter, run through its serving signature (named
    inputs and outputs), or through the graph's own inputs and outputs when it has none."""

    def __init__(self, path: Path):
        self.path = Path(path)
        self.description = describe(self.path)
        Interpreter = _interpreter_class()
        try:
            # One thread: the same summation order, so the same figures, on every machine.
            self.interpreter = Interpreter(model_path=str(self.path), num_threads=1)
        except Exception as exc:
            first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
            raise InputError(f"the TFLite interpreter cannot load {self.path}: {first}", hint=_HINT_CORRUPT) from exc
        keys = list(self.interpreter.get_signature_list())
        self.signature = "serving_default" if "serving_default" in keys else (keys[0] if keys else None)
        self.inputs = [dict(spec) for spec in self.description["inputs"]]
        self.outputs = [spec["name"] for spec in self.description["outputs"]]

    def run(self, feed: dict) -> dict:
        import numpy as np

        batch = fixed_batch([spec["shape"] for spec in self.inputs])
        feed = {s["name"]: np.asarray(feed[s["name"]]).astype(s["dtype"]) for s in self.inputs}
        if self.signature:
            runner = self.interpreter.get_signature_runner(self.signature)

            def call(part):
                result = runner(**part)
                return [result[name] for name in self.outputs]
        else:
            call = self._run_graph
        return dict(zip(self.outputs, run_in_batches(call, feed, batch)))

    def _run_graph(self, feed: dict) -> list:
        interp = self.interpreter
        details = {d["name"]: d for d in interp.get_input_details()}
        for name, value in feed.items():
            if list(details[name]["shape"]) != list(value.shape):
                interp.resize_tensor_input(details[name]["index"], value.shape, strict=False)
        interp.allocate_tensors()
        for name, value in feed.items():
            interp.set_tensor(details[name]["index"], value)
        interp.invoke()
        by_name = {d["name"]: d for d in interp.get_output_details()}
        return [interp.get_tensor(by_name[name]["index"]).copy() for name in self.outputs]


def _schema():
    """The TFLite schema's generated Python classes (object API), from ai-edge-litert or TensorFlow."""
    try:
        from ai_edge_litert import schema_py_generated as schema
    except ImportError:
        from mlconvert.formats import _tensorflow

        _tensorflow.import_tf()
        from tensorflow.lite.python import schema_py_generated as schema
    return schema


def stamp(path: Path, entries: dict[str, str]) -> None:
    """Provenance as Model.metadata entries (name -> a buffer holding the text); earlier
    mlconvert entries are replaced (their buffers emptied, so no index moves)."""
    import flatbuffers
    import numpy as np

    schema = _schema()
    path = Path(path)
    model = schema.ModelT.InitFromPackedBuf(bytearray(path.read_bytes()), 0)
    kept = []
    for meta in model.metadata or []:
        name = meta.name.decode() if isinstance(meta.name, bytes) else (meta.name or "")
        if name.startswith("mlconvert."):
            model.buffers[meta.buffer].data = None
        else:
            kept.append(meta)
    for key, value in entries.items():
        buffer = schema.BufferT()
        buffer.data = np.frombuffer(value.encode("utf-8"), dtype=np.uint8)
        model.buffers.append(buffer)
        meta = schema.MetadataT()
        meta.name, meta.buffer = key, len(model.buffers) - 1
        kept.append(meta)
    model.metadata = kept
    builder = flatbuffers.Builder(1024)
    builder.Finish(model.Pack(builder), file_identifier=IDENTIFIER)
    path.write_bytes(bytes(builder.Output()))


def load(path: Path, *, trust: bool = False, **options) -> TFLiteModel:
    return TFLiteModel(path)


class TFLitePredictor(Predictor):
    kind = "neural-network"

    def __init__(self, model: TFLiteModel):
        self.model = model
        first = model.inputs[0]["shape"] if len(model.inputs) == 1 else None
        if first and len(first) == 2 and isinstance(first[-1], int):
            self.n_features = first[-1]

    def input_specs(self):
        # A fixed batch size is not the number of rows to verify with: run() slices.
        return [dict(s, shape=[None, *s["shape"][1:]] if s["shape"] else s["shape"]) for s in self.model.inputs]

    def predict(self, X):
        return self.model.run(named_inputs(X, self.model.inputs))


def predictor(source, options: dict) -> Predictor:
    return TFLitePredictor(source.model)


register_format(
    Format(
        id="tflite",
        title="TensorFlow Lite",
        extensions=(".tflite",),
        sniff=sniff,
        describe=describe,
        load=load,
        predictor=predictor,
        stamp=stamp,
        family="tf",
        notes="a FlatBuffer (TFL3); read without TensorFlow, run in the TFLite interpreter",
    )
)
