"""TensorFlow SavedModel: a directory with saved_model.pb (or .pbtxt), variables/ and
assets/. describe reads saved_model.pb with formats._protobuf, never importing
TensorFlow. Field numbers follow tensorflow/core/protobuf/saved_model.proto,
meta_graph.proto and framework/tensor_shape.proto / types.proto.
"""
from __future__ import annotations

import json
import re
import struct
from pathlib import Path

from mlconvert.errors import InputError
from mlconvert.formats import Format, register_format
from mlconvert.formats import _protobuf as pb

# tensorflow.DataType (types.proto) -> numpy-style names.
TF_DTYPES = {
    1: "float32", 2: "float64", 3: "int32", 4: "uint8", 5: "int16", 6: "int8",
    7: "string", 8: "complex64", 9: "int64", 10: "bool", 11: "qint8", 12: "quint8",
    13: "qint32", 14: "bfloat16", 15: "qint16", 16: "quint16", 17: "uint16",
    18: "complex128", 19: "float16", 20: "resource", 21: "variant", 22: "uint32",
    23: "uint64",
}
_INIT_OP_SIGNATURE = "__saved_model_init_op"
_HINT_CORRUPT = "saved_model.pb looks truncated or corrupt; copy the SavedModel directory again"


def sniff(head: bytes, path: Path) -> bool:
    path = Path(path)
    return path.is_dir() and ((path / "saved_model.pb").is_file() or (path / "saved_model.pbtxt").is_file())


def _tensor_info(key: str, value) -> dict:
    fields = pb.parse(value)
    dtype_code = pb.first(fields, 2, 0)
    info: dict = {"name": key, "dtype": TF_DTYPES.get(dtype_code, f"tf-dtype-{dtype_code}")}
    shape = None
    shape_bytes = pb.first(fields, 3)
    if shape_bytes is not None:
        shape_fields = pb.parse(shape_bytes)
        if not pb.first(shape_fields, 3, 0):  # unknown_rank
            shape = []
            for dim_bytes in shape_fields.get(2, []):
                size = pb.signed64(pb.first(pb.parse(dim_bytes), 1, 0))
                shape.append(size if size >= 0 else None)
    info["shape"] = shape
    if 1 in fields:
        info["tensor"] = pb.decode_string(pb.first(fields, 1))
    elif 4 in fields:
        info["encoding"] = "sparse"
    elif 5 in fields:
        info["encoding"] = "composite"
    return info


def _tensor_map(entries) -> list[dict]:
    out = []
    for entry in entries or ():
        fields = pb.parse(entry)
        out.append(_tensor_info(pb.decode_string(pb.first(fields, 1)), pb.first(fields, 2, b"")))
    return out


def _meta_graph(value) -> dict:
    meta = pb.parse(value)
    info_def = pb.parse(pb.first(meta, 1, b""))
    graph: dict = {
        "tags": [pb.decode_string(t) for t in info_def.get(4, [])],
    }
    for number, key in ((5, "tensorflow_version"), (6, "tensorflow_git_version"), (1, "meta_graph_version")):
        text = pb.decode_string(pb.first(info_def, number), strict=False)
        if text:
            graph[key] = text
    signatures = {}
    for entry in meta.get(5, []):
        fields = pb.parse(entry)
        name = pb.decode_string(pb.first(fields, 1))
        if name == _INIT_OP_SIGNATURE:  # TF's initialiser hook, not a model entry point
            continue
        sig = pb.parse(pb.first(fields, 2, b""))
        signatures[name] = {
            "method_name": pb.decode_string(pb.first(sig, 3), strict=False),
            "inputs": _tensor_map(sig.get(1)),
            "outputs": _tensor_map(sig.get(2)),
        }
    graph["signatures"] = signatures
    graph_def = pb.parse(pb.first(meta, 2, b""))
    graph["graph_nodes"] = len(graph_def.get(1, []))
    library = pb.first(graph_def, 2)
    if library is not None:
        graph["functions"] = len(pb.parse(library).get(1, []))
    graph["object_graph"] = 7 in meta  # TF2 object graph (tf.saved_model.save)
    return graph


def _keras_metadata(path: Path) -> dict:
    """keras_version and class of the root object in keras_metadata.pb (tf.keras 2.x)."""
    fields = pb.parse(path.read_bytes())
    for node_bytes in fields.get(1, []):
        node = pb.parse(node_bytes)
        if pb.decode_string(pb.first(node, 3), strict=False) != "root":
            continue
        try:
            meta = json.loads(pb.decode_string(pb.first(node, 5)))
        except ValueError:
            return {}
        return {key: meta[key] for key in ("keras_version", "class_name") if isinstance(meta.get(key), str)}
    return {}


def _pbtxt(path: Path) -> dict:
    """A text-format SavedModel: only the plain facts a regex can find reliably."""
    text = path.read_text(encoding="utf-8", errors="replace")
    tags = re.findall(r'^\s*tags:\s*"([^"]*)"', text, re.M)
    versions = re.findall(r'^\s*tensorflow_version:\s*"([^"]*)"', text, re.M)
    sigs = re.findall(r'signature_def\s*\{\s*key:\s*"([^"]*)"', text)
    return {
        "meta_graphs": [{"tags": tags, "signatures": {s: {} for s in sigs}, **({"tensorflow_version": versions[0]} if versions else {})}],
        "text_format": True,
    }


def _dir_size(path: Path) -> tuple[int, int]:
    files = [f for f in path.rglob("*") if f.is_file()] if path.is_dir() else []
    return sum(f.stat().st_size for f in files), len(files)


def _serve_graph(graphs: list[dict]) -> dict | None:
    """The meta graph converters load: the first tagged "serve", else the first."""
    return next((g for g in graphs if "serve" in g.get("tags", [])), graphs[0] if graphs else None)


def _serving_signature(signatures) -> str | None:
    """The signature converters call: "serving_default", else the first by name. Names
    starting with "_" are TensorFlow's own hooks, not entry points."""
    names = sorted(name for name in signatures if not name.startswith("_"))
    return "serving_default" if "serving_default" in names else (names[0] if names else None)


def serving_entry(path: Path) -> tuple[list[str], str | None]:
    """The tags of the meta graph and the name of the signature that conversion and
    verification use: what describe reports, chosen there and only there."""
    details = describe(path)["details"]
    graph = _serve_graph(details["meta_graphs"]) or {}
    return graph.get("tags") or ["serve"], details.get("signature")


def describe(path: Path) -> dict:
    path = Path(path)
    if not path.is_dir():
        raise InputError(
            f"{path} is not a directory; a SavedModel is a folder holding saved_model.pb",
            hint="pass the SavedModel directory itself, not a file inside it",
        )
    pb_path = path / "saved_model.pb"
    warnings: list[str] = []
    try:
        if pb_path.is_file():
            data = pb_path.read_bytes()
            if not data:
                raise InputError(f"{pb_path} is empty; expected a SavedModel protobuf", hint=_HINT_CORRUPT)
            model = pb.parse(data)
            if 2 not in model:
                raise pb.ProtobufError("no meta graphs (field 2)")
            details: dict = {
                "schema_version": pb.first(model, 1, 0),
                "meta_graphs": [_meta_graph(v) for v in model[2]],
            }
        elif (path / "saved_model.pbtxt").is_file():
            details = _pbtxt(path / "saved_model.pbtxt")
            warnings.append("text-format SavedModel (saved_model.pbtxt): signature shapes and dtypes not read")
        else:
            raise InputError(
                f"{path} holds neither saved_model.pb nor saved_model.pbtxt",
                hint="a SavedModel directory is written by tf.saved_model.save or model.export()",
            )
    except (ValueError, KeyError, IndexError, TypeError, struct.error, RecursionError) as exc:
        raise InputError(f"{pb_path} is not a readable SavedModel: {exc}", hint=_HINT_CORRUPT) from exc
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}", hint="check the permissions") from exc

    keras_meta_path = path / "keras_metadata.pb"
    details["keras_metadata"] = keras_meta_path.is_file()
    details["fingerprint"] = (path / "fingerprint.pb").is_file()
    details["variables_bytes"], details["variables_files"] = _dir_size(path / "variables")
    details["assets"] = _dir_size(path / "assets")[1]
    if details["keras_metadata"]:
        try:
            keras = _keras_metadata(keras_meta_path)
            if "keras_version" in keras:
                details["keras_version"] = keras["keras_version"]
            if "class_name" in keras:
                details["keras_class_name"] = keras["class_name"]
        except (OSError, ValueError, KeyError, IndexError, TypeError) as exc:
            warnings.append(f"keras_metadata.pb could not be read ({exc}); the graph itself is fine")

    graphs = details["meta_graphs"]
    serve = _serve_graph(graphs)
    if serve is None or "serve" not in serve.get("tags", []):
        warnings.append("no meta graph is tagged 'serve'; converters look for that tag")
    result: dict = {"flavor": "keras" if details["keras_metadata"] else "tf-graph", "kind": "neural-network"}
    tf_version = next((g["tensorflow_version"] for g in graphs if g.get("tensorflow_version")), None)
    result["producer"] = "tensorflow"
    if tf_version:
        result["producer_version"] = tf_version
    if serve is not None:
        usable = serve["signatures"]
        name = _serving_signature(usable)
        if name is None:
            warnings.append("the SavedModel has no signatures; converters need a serving signature")
        else:
            signature = usable[name]
            details["signature"] = name
            details["signatures"] = sorted(usable)
            if "inputs" in signature:
                result["inputs"] = signature["inputs"]
                result["outputs"] = signature["outputs"]
                if len(signature["inputs"]) == 1:
                    shape = signature["inputs"][0]["shape"]
                    if shape and len(shape) == 2 and isinstance(shape[-1], int):
                        result["n_features"] = shape[-1]
    if pb_path.is_file() and details["variables_files"] == 0 and any(g.get("graph_nodes") for g in graphs):
        # A frozen graph has constants only; otherwise the weights are missing.
        warnings.append("no variables/ directory: fine for a frozen graph, otherwise the weights are missing")
    result["details"] = details
    if warnings:
        result["warnings"] = warnings
    return result


def load(path: Path, *, trust: bool = False, **options):
    """The object tf.saved_model.load returns (its signatures are what converters use)."""
    from mlconvert.formats._tensorflow import load_savedmodel

    return load_savedmodel(path, *serving_entry(path))


def predictor(source, options: dict):
    from mlconvert.formats._tensorflow import serving_predictor

    return serving_predictor(source.model)


register_format(
    Format(
        id="savedmodel",
        title="TensorFlow SavedModel",
        extensions=(),
        sniff=sniff,
        describe=describe,
        load=load,
        predictor=predictor,
        runtime="tensorflow",
        layout="directory",
        family="tf",
        notes="a directory with saved_model.pb, variables/ and assets/",
    )
)
