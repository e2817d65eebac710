"""ONNX (.onnx): a protobuf ModelProto.

sniff and describe read the protobuf wire format directly (formats._protobuf), so
inspecting a model never imports onnx; load/save use the onnx package.
"""
from __future__ import annotations

import re
import struct
from collections import Counter, defaultdict
from pathlib import Path

from mlconvert.errors import InputError, NoPathError
from mlconvert.formats import Format, register_format
from mlconvert.formats import _protobuf as pb
from mlconvert.predict import Predictor, binary_to_two_columns, column, fixed_batch, named_inputs, run_in_batches

# TensorProto.DataType -> numpy-style dtype names (onnx.proto, TensorProto.DataType).
ELEM_TYPES = {
    1: "float32", 2: "uint8", 3: "int8", 4: "uint16", 5: "int16", 6: "int32",
    7: "int64", 8: "string", 9: "bool", 10: "float16", 11: "float64", 12: "uint32",
    13: "uint64", 14: "complex64", 15: "complex128", 16: "bfloat16",
    17: "float8e4m3fn", 18: "float8e4m3fnuz", 19: "float8e5m2", 20: "float8e5m2fnuz",
    21: "uint4", 22: "int4", 23: "float4e2m1", 24: "float8e8m0", 25: "uint2",
    26: "int2", 27: "float6e2m3", 28: "float6e3m2",
}

# ModelProto field number -> wire type. Anything else at the top level is not ONNX.
_MODEL_FIELDS = {
    1: pb.VARINT,  # ir_version
    2: pb.LEN,  # producer_name
    3: pb.LEN,  # producer_version
    4: pb.LEN,  # domain
    5: pb.VARINT,  # model_version
    6: pb.LEN,  # doc_string
    7: pb.LEN,  # graph
    8: pb.LEN,  # opset_import
    14: pb.LEN,  # metadata_props
    20: pb.LEN,  # training_info
    25: pb.LEN,  # functions
    26: pb.LEN,  # configuration
}
# Fields that a Core ML Model (which also starts with field 1 as a varint) never has.
_ONNX_ONLY = {3, 4, 5, 6, 7, 8, 14, 20, 25, 26}
_TEXT_FIELDS = (2, 3, 4, 6)
# GraphProto fields are all length-delimited.
_GRAPH_FIELDS = {1, 2, 5, 10, 11, 12, 13, 14, 15, 16}

ML_DOMAIN = "ai.onnx.ml"
# Default-domain ops that classic-ML converters put around ai.onnx.ml ops. A graph
# of these plus ai.onnx.ml ops is a classic model; MatMul, Gemm, Conv, Relu... make
# it a neural network.
_GLUE_OPS = frozenset(
    {
        "Cast", "CastLike", "Identity", "Reshape", "Concat", "Flatten", "Squeeze",
        "Unsqueeze", "Gather", "GatherElements", "Slice", "Shape", "Constant",
        "ConstantOfShape", "ArgMax", "ArgMin", "Add", "Sub", "Mul", "Div", "Neg",
        "Abs", "Exp", "Log", "Sqrt", "Pow", "Sigmoid", "Softmax", "Clip", "Max",
        "Min", "Sum", "Mean", "Transpose", "Equal", "Greater", "Less", "Where",
        "Not", "And", "Or", "ReduceSum", "ReduceMax", "ReduceMean", "Erf", "Expand",
        "Split", "Tile", "Range", "Size", "LessOrEqual", "GreaterOrEqual",
    }
)
_CLASSIFIER_OPS = {"TreeEnsembleClassifier", "LinearClassifier", "SVMClassifier"}

_HINT_CORRUPT = (
    "the file looks truncated or corrupt; download or export it again "
    "(compare its size and checksum with the source)"
)


# --------------------------------------------------------------------------- sniff


def sniff(head: bytes, path: Path) -> bool:
    """An ONNX ModelProto prefix: field 1 (ir_version) first, ONNX-only fields after."""
    if not head or head[0] != 0x08:
        return False
    try:
        fields = list(pb.iter_fields(head, partial=True))
        if not fields or fields[0][0] != 1 or fields[0][1] != pb.VARINT:
            return False
        if not 1 <= fields[0][2] <= 64:
            return False
        strong = False
        for number, wire, value in fields:
            if _MODEL_FIELDS.get(number) != wire:
                return False
            if number in _TEXT_FIELDS and not pb.is_text(value, partial=True):
                # Core ML puts its description *message* in field 2.
                return False
            if number == 7:
                for sub, sub_wire, _ in pb.iter_fields(value, partial=True):
                    if sub not in _GRAPH_FIELDS or sub_wire != pb.LEN:
                        return False
            if number == 8:
                for sub, sub_wire, sub_value in pb.iter_fields(value, partial=True):
                    if (sub, sub_wire) not in ((1, pb.LEN), (2, pb.VARINT)):
                        return False
                    if sub == 1 and not pb.is_text(sub_value, partial=True):
                        return False
            if number in _ONNX_ONLY:
                strong = True
    except pb.ProtobufError:
        return False
    if strong:
        return True
    # Only ir_version (+ a producer string) in view: the content fits, but so would
    # other protobufs; let the extension decide.
    return Path(path).suffix.lower() == ".onnx"


# ------------------------------------------------------------------------ describe


def _type_info(type_bytes) -> tuple[str, list | None]:
    """(dtype, shape) of a TypeProto; non-tensor types get a descriptive dtype."""
    fields = pb.parse(type_bytes)
    if 1 in fields or 8 in fields:  # tensor_type / sparse_tensor_type
        tensor = pb.parse(pb.first(fields, 1) if 1 in fields else pb.first(fields, 8))
        dtype = ELEM_TYPES.get(pb.first(tensor, 1, 0), f"onnx-type-{pb.first(tensor, 1, 0)}")
        if 8 in fields:
            dtype = f"sparse({dtype})"
        shape_bytes = pb.first(tensor, 2)
        if shape_bytes is None:
            return dtype, None  # unknown rank
        shape: list = []
        for dim_bytes in pb.parse(shape_bytes).get(1, []):
            dim = pb.parse(dim_bytes)
            if 1 in dim:
                shape.append(pb.signed64(pb.first(dim, 1)))
            elif 2 in dim:
                shape.append(pb.decode_string(pb.first(dim, 2)))
            else:
                shape.append(None)
        return dtype, shape
    if 4 in fields:  # sequence_type
        inner = pb.first(pb.parse(pb.first(fields, 4)), 1)
        return f"seq({_type_info(inner)[0] if inner is not None else '?'})", None
    if 5 in fields:  # map_type
        mapping = pb.parse(pb.first(fields, 5))
        key = ELEM_TYPES.get(pb.first(mapping, 1, 0), "?")
        value = pb.first(mapping, 2)
        return f"map({key},{_type_info(value)[0] if value is not None else '?'})", None
    if 9 in fields:  # optional_type
        inner = pb.first(pb.parse(pb.first(fields, 9)), 1)
        return f"optional({_type_info(inner)[0] if inner is not None else '?'})", None
    if 7 in fields:
        return "opaque", None
    return "unknown", None


def _value_info(vi_bytes) -> dict:
    fields = pb.parse(vi_bytes)
    name = pb.decode_string(pb.first(fields, 1))
    type_bytes = pb.first(fields, 2)
    dtype, shape = _type_info(type_bytes) if type_bytes is not None else ("unknown", None)
    return {"name": name, "dtype": dtype, "shape": shape}


# Bytes per element of TensorProto data types with a fixed width (4-bit and 2-bit: packed).
_ITEM_BYTES = {1: 4, 2: 1, 3: 1, 4: 2, 5: 2, 6: 4, 7: 8, 9: 1, 10: 2, 11: 8, 12: 4, 13: 8, 14: 8, 15: 16, 16: 2,
               17: 1, 18: 1, 19: 1, 20: 1, 21: 0.5, 22: 0.5, 23: 0.5, 24: 1, 25: 0.25, 26: 0.25}


def _tensor_bytes(tensor: dict) -> int:
    """How many bytes a TensorProto's values take (its dims times the element width)."""
    count = 1
    for dim in pb.varints(tensor.get(1)):
        count *= pb.signed64(dim)
    width = _ITEM_BYTES.get(pb.first(tensor, 2, 0))
    if width is None:  # strings: what the file holds
        return sum(len(v) for v in tensor.get(6, []))
    return max(0, int(count * width + 0.999))


def outside_folder(location: str, folder: Path) -> bool:
    """Whether an external-data location leaves the model's folder (absolute, `..`, or a
    link that resolves elsewhere): onnx would read any file the user can."""
    if not location or Path(location).is_absolute() or "\\" in location:
        return True
    base = folder.resolve()
    target = (base / location).resolve()
    return target != base and base not in target.parents


def check_external_data(path: Path, description: dict | None = None) -> None:
    """Refuse a model whose weights point outside its own folder, or to files that are missing."""
    path = Path(path)
    description = description if description is not None else describe(path)
    for entry in description.get("details", {}).get("external_data", []):
        location = entry["location"]
        if outside_folder(location, path.parent):
            raise InputError(f"{path} reads external weights from {location!r}, outside the model's folder",
                             hint="a model's external data must sit beside it; move the files there "
                                  "and re-export with relative locations")
        if not (path.parent / location).is_file():
            raise InputError(f"{path} reads external weights from {location!r}, which is missing",
                             hint="copy the external data files along with the model")


def _class_count(node: dict) -> int | None:
    """Number of class labels a classifier node declares (classlabels_* attributes)."""
    for attr_bytes in node.get(5, []):
        attr = pb.parse(attr_bytes)
        name = pb.decode_string(pb.first(attr, 1))
        # TreeEnsembleClassifier says classlabels_int64s; Linear/SVMClassifier classlabels_ints.
        if name in ("classlabels_int64s", "classlabels_ints"):
            return len(pb.varints(attr.get(8)))
        if name == "classlabels_strings":
            return len(attr.get(9, []))
    return None


def _read_model(data: bytes) -> dict:
    model = pb.parse(data)
    if 1 not in model:
        raise pb.ProtobufError("no ir_version (field 1), so this is not an ONNX ModelProto")
    if 7 not in model:
        raise pb.ProtobufError("no graph (field 7); the file ends before the model's graph")
    warnings: list[str] = []

    opsets = []
    for entry in model.get(8, []):
        opset = pb.parse(entry)
        opsets.append(
            {"domain": pb.decode_string(pb.first(opset, 1)) or "ai.onnx", "version": pb.first(opset, 2, 0)}
        )
    ir_version = pb.first(model, 1)
    if not opsets and ir_version >= 3:
        # ONNX writers put opset_import after the graph: missing means cut off.
        raise pb.ProtobufError("no opset_import (field 8); the file ends right after the graph")

    graph = pb.parse(pb.first(model, 7))
    initializer_names = set()
    external: dict[str, int] = {}  # file -> bytes the model reads from it
    initializer_bytes = 0
    for tensor_bytes in graph.get(5, []):
        tensor = pb.parse(tensor_bytes)
        initializer_names.add(pb.decode_string(pb.first(tensor, 8)))
        size = _tensor_bytes(tensor)
        initializer_bytes += size
        if pb.first(tensor, 14, 0) == 1:  # data_location EXTERNAL
            entries = pb.string_map(tensor.get(13))
            location = entries.get("location", "")
            external[location] = external.get(location, 0) + int(entries.get("length") or size)
    if external:
        warnings.append("some weights are stored in external data files beside the model; keep them together")

    # Before IR version 4 graph inputs also listed the initializers (the weights).
    inputs = [vi for vi in map(_value_info, graph.get(11, [])) if vi["name"] not in initializer_names]
    outputs = [_value_info(vi) for vi in graph.get(12, [])]

    op_types: Counter = Counter()
    domains: set[str] = set()
    n_classes = None
    has_classifier = has_regressor = False
    default_ops: set[str] = set()
    for node_bytes in graph.get(1, []):
        node = pb.parse(node_bytes)
        op = pb.decode_string(pb.first(node, 4))
        domain = pb.decode_string(pb.first(node, 7)) or "ai.onnx"
        op_types[op] += 1
        domains.add(domain)
        if domain == ML_DOMAIN:
            if op in _CLASSIFIER_OPS:
                has_classifier = True
                n_classes = n_classes or _class_count(node)
            elif op.endswith("Regressor"):
                has_regressor = True
        elif domain == "ai.onnx":
            default_ops.add(op)
        else:
            default_ops.add(f"{domain}:{op}")

    classic = ML_DOMAIN in domains and default_ops <= _GLUE_OPS
    flavor = "onnx-ml" if classic else "onnx-nn"
    if has_classifier:
        kind = "classifier"
    elif has_regressor:
        kind = "regressor"
    elif classic:
        kind = "transformer"  # only preprocessing ops (Scaler, OneHotEncoder...)
    else:
        kind = "neural-network"

    result: dict = {"flavor": flavor, "kind": kind}
    producer = pb.decode_string(pb.first(model, 2), strict=False)
    if producer:
        result["producer"] = producer
    producer_version = pb.decode_string(pb.first(model, 3), strict=False)
    if producer_version:
        result["producer_version"] = producer_version
    # A table of features is (rows, features); an image's last dimension is not a feature count.
    if (len(inputs) == 1 and inputs[0]["shape"] and len(inputs[0]["shape"]) == 2
            and isinstance(inputs[0]["shape"][-1], int) and inputs[0]["shape"][-1] > 0):
        result["n_features"] = inputs[0]["shape"][-1]
    if n_classes:
        result["n_classes"] = n_classes
    result["inputs"] = inputs
    result["outputs"] = outputs
    details = {
        "ir_version": ir_version,
        "opsets": {o["domain"]: o["version"] for o in opsets},
        "opset_import": opsets,
        "graph_name": pb.decode_string(pb.first(graph, 2), strict=False),
        "node_count": sum(op_types.values()),
        "op_types": dict(sorted(op_types.items())),
        "initializer_count": len(initializer_names),
        "initializer_bytes": initializer_bytes,
        "metadata_props": pb.string_map(model.get(14)),
    }
    domain = pb.decode_string(pb.first(model, 4), strict=False)
    if domain:
        details["domain"] = domain
    if 5 in model:
        details["model_version"] = pb.first(model, 5)
    doc = pb.decode_string(pb.first(model, 6), strict=False)
    if doc:
        details["doc_string"] = doc[:500]
    if 25 in model:
        details["local_functions"] = len(model[25])
    if external:
        details["external_data"] = [{"location": k, "bytes": v} for k, v in sorted(external.items())]
    result["details"] = details
    if not inputs:
        warnings.append("the graph declares no inputs")
    if warnings:
        result["warnings"] = warnings
    return result


def describe(path: Path) -> dict:
    path = Path(path)
    try:
        data = path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}", hint="check the path and permissions") from exc
    if not data:
        raise InputError(f"{path} is empty; expected an ONNX model", hint=_HINT_CORRUPT)
    try:
        description = _read_model(data)
    except (ValueError, KeyError, IndexError, TypeError, struct.error, RecursionError) as exc:
        raise InputError(
            f"{path} is not a readable ONNX model ({len(data)} bytes): {exc}", hint=_HINT_CORRUPT
        ) from exc
    check_external_data(path, description)
    return description


# -------------------------------------------------------------------- load / save


def _import_onnx():
    try:
        import onnx
    except ImportError as exc:
        raise NoPathError(
            "the onnx package is not installed", hint="install it: pip install 'mlconvert[classic]'"
        ) from exc
    return onnx


def load(path: Path, *, trust: bool = False, **options):
    """onnx.load + the ONNX checker; a model the checker rejects is an input error."""
    onnx = _import_onnx()
    path = Path(path)
    check_external_data(path)
    try:
        # The path form of check_model also handles models with external data.
        onnx.checker.check_model(str(path))
        return onnx.load(str(path))
    except Exception as exc:  # onnx raises DecodeError, ValidationError, OSError...
        reason = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
        repaired = _ir3_without_initializer_inputs(onnx, path, reason)
        if repaired is not None:
            return repaired
        raise InputError(f"{path} is not a valid ONNX model: {reason}", hint=_HINT_CORRUPT) from exc


def _in_stable_order(model) -> None:
    """opset_import sorted by domain: converters build it from a dict or set, and its order
    alone made the bytes of the same conversion differ between runs."""
    opsets = sorted(((o.domain, o.version) for o in model.opset_import))
    del model.opset_import[:]
    for domain, version in opsets:
        entry = model.opset_import.add()
        entry.domain, entry.version = domain, version
def _ir3_without_initializer_inputs(onnx, path: Path, reason: str):
    """IR 3 wanted every initializer listed as a graph input too; early Keras and PyTorch
    exporters skipped that, which IR 4 made legal. Such a model loads as IR 4 (what
    onnxruntime does with it), with a note; anything else stays an input error."""
    if "in initializer but not in graph input" not in reason:
        return None
    from mlconvert.formats import Loaded

    model = onnx.load(str(path))
    if model.ir_version >= 4:
        return None
    model.ir_version = 4
    try:
        onnx.checker.check_model(model)
    except Exception:
        return None
    return Loaded(model, ("an IR 3 model whose weights are not listed among its inputs (IR 4 allows it); "
                          "read as IR 4",))


def save(model, path: Path) -> None:
    _in_stable_order(model)
    _import_onnx().save(model, str(path))


def stamp(path: Path, entries: dict[str, str]) -> None:
    """Provenance in metadata_props (earlier mlconvert entries replaced)."""
    onnx = _import_onnx()
    model = onnx.load(str(path))
    # skl2onnx names the graph with a random uuid: name it after the source instead.
    if re.fullmatch(r"[0-9a-f]{32}", model.graph.name):
        stem = Path(entries.get("mlconvert.source", "model")).stem
        model.graph.name = re.sub(r"\W", "_", stem) or "model"
    kept = [p for p in model.metadata_props if not p.key.startswith("mlconvert.")]
    del model.metadata_props[:]
    model.metadata_props.extend(kept)
    for key, value in entries.items():
        entry = model.metadata_props.add()
        entry.key, entry.value = key, value
    _in_stable_order(model)
    onnx.save(model, str(path))


_ONNX_FLOAT_TYPES = {"tensor(float)": "float32", "tensor(double)": "float64"}
_ONNX_TYPES = {"tensor(float)": "float32", "tensor(double)": "float64", "tensor(float16)": "float16",
               "tensor(int64)": "int64", "tensor(int32)": "int32", "tensor(int8)": "int8", "tensor(uint8)": "uint8",
               "tensor(bool)": "bool", "tensor(string)": "object"}


class _ReferenceSession:
    """onnx's reference evaluator behind onnxruntime's session interface: it runs the
    operator versions onnxruntime no longer implements (opset < 7)."""

    def __init__(self, path: Path):
        import onnx
        from onnx.reference import ReferenceEvaluator

        model = onnx.load(str(path))
        self.evaluator = ReferenceEvaluator(model)
        initializers = {t.name for t in model.graph.initializer}
        self.inputs = [_Arg(vi) for vi in model.graph.input if vi.name not in initializers]
        self.outputs = [_Arg(vi) for vi in model.graph.output]

    def get_inputs(self):
        return self.inputs

    def get_outputs(self):
        return self.outputs

    def run(self, names, feed):
        return self.evaluator.run(names, feed)


class _Arg:
    """A graph input or output as onnxruntime describes it (name, type, shape)."""

    def __init__(self, vi):
        tensor = vi.type.tensor_type
        name = ELEM_TYPES.get(tensor.elem_type, "float32")
        self.name = vi.name
        self.type = {"float32": "tensor(float)", "float64": "tensor(double)"}.get(name, f"tensor({name})")
        self.shape = [d.dim_value if d.HasField("dim_value") else (d.dim_param or None) for d in tensor.shape.dim]


def _session(path: Path):
    """An onnxruntime session; onnx's reference evaluator where onnxruntime has dropped
    the kernels of the model's (old) operator versions."""
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    # One thread: onnxruntime splits tree sums across threads, and the summation order
    # would change the verification figures (and so the provenance bytes) with the core count.
    options.intra_op_num_threads = 1
    try:
        return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"]), ()
    except Exception as exc:
        first = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
        if "NOT_IMPLEMENTED" not in first:
            raise InputError(f"onnxruntime cannot load {path}: {first}") from exc
        try:
            session = _ReferenceSession(path)
        except Exception as ref_exc:
            raise InputError(f"neither onnxruntime nor onnx's reference evaluator can run {path}: {first}",
                             hint="convert it to a newer opset first: mlconvert IN OUT.onnx --opset 13") from ref_exc
        return session, (f"onnxruntime cannot run this model ({first}); it ran in onnx's reference evaluator",)


class OnnxPredictor(Predictor):
    def __init__(self, path: Path, kind: str | None = None):
        self.path = Path(path)
        self.session, self.notes = _session(self.path)
        inputs = self.session.get_inputs()
        # A batch size fixed in the graph (old exporters wrote 1): rows go through in slices.
        self.batch = fixed_batch([list(i.shape or []) for i in inputs])
        # Neural networks take named inputs of any rank and dtype; classic models one matrix.
        self.specs = [{"name": i.name, "dtype": _ONNX_TYPES.get(i.type, "float32"),
                       "shape": [d if isinstance(d, int) else None for d in (i.shape or [])]} for i in inputs]
        self.input = inputs[0]
        shape = self.input.shape
        self.n_features = shape[-1] if shape and isinstance(shape[-1], int) else None
        self.dtype = _ONNX_FLOAT_TYPES.get(self.input.type, "float32")
        outs = self.session.get_outputs()
        self.output_names = [o.name for o in outs]
        self.classifier = len(outs) >= 2
        # A network (no ai.onnx.ml operator) is compared output by output name; a classic
        # model by what it predicts (label, probabilities, value).
        self.kind = "neural-network" if kind == "neural-network" else "classifier" if self.classifier else "regressor"

    def input_specs(self):
        classic = len(self.specs) == 1 and self.input.type in _ONNX_FLOAT_TYPES and len(self.specs[0]["shape"]) == 2
        # A fixed batch size is not the number of rows to verify with: predict() slices.
        return None if classic else [dict(s, shape=[None, *s["shape"][1:]]) if self.batch else dict(s)
                                     for s in self.specs]

    def predict(self, X):
        import numpy as np

        if isinstance(X, dict) or len(self.specs) != 1:  # named inputs in, outputs by name out
            feed = named_inputs(X, self.specs)
            feed = {s["name"]: np.asarray(feed[s["name"]]).astype(s["dtype"]) for s in self.specs}
            results = self._run(feed)
            named = dict(zip(self.output_names, results))
            if all(s["shape"] == [None, 1] for s in self.specs):  # a classic model over a table's columns
                named.update(self._classic(results))
            return named
        results = self._run({self.input.name: np.asarray(X, dtype=self.dtype)})
        # Every output by its name too (a one-input network fed a matrix); the classic keys win.
        named = {n: np.asarray(r) for n, r in zip(self.output_names, results) if not isinstance(r, list)}
        return {**named, **self._classic(results)}

    def _run(self, feed: dict) -> list:
        return run_in_batches(lambda part: self.session.run(None, part), feed, self.batch)

    def _classic(self, results):
        import numpy as np

        if self.classifier:
            label, proba = results[0], results[1]
            if isinstance(proba, list):  # ZipMap: a list of {class: probability}
                keys = sorted(proba[0])
                proba = np.array([[row[k] for k in keys] for row in proba])
            return {"label": column(label), "probabilities": binary_to_two_columns(np.asarray(proba))}
        return {"value": column(results[0])}

    def thresholds(self):
        out: dict[int, list[float]] = defaultdict(list)
        from onnx import load

        model = load(str(self.path))
        for node in model.graph.node:
            if node.op_type.startswith("TreeEnsemble"):
                attrs = {a.name: a for a in node.attribute}
                feats = attrs.get("nodes_featureids")
                vals = attrs.get("nodes_values") or attrs.get("nodes_values_as_tensor")
                if feats is not None and vals is not None and vals.floats:
                    for f, v in zip(feats.ints, vals.floats):
                        out[int(f)].append(float(v))
        return dict(out)


def predictor(source, options: dict) -> Predictor:
    return OnnxPredictor(source.path, source.description.get("kind"))


register_format(
    Format(
        id="onnx",
        title="ONNX",
        extensions=(".onnx",),
        sniff=sniff,
        describe=describe,
        load=load,
        save=save,
        predictor=predictor,
        stamp=stamp,
        runtime="onnxruntime",
        family="classic",
        notes="protobuf ModelProto; ai.onnx.ml graphs are classic models, others neural networks",
    )
)
