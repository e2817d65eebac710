"""Core ML: a protobuf `Model` in a .mlmodel file, or a .mlpackage directory that
holds that protobuf (Data/com.apple.CoreML/model.mlmodel) plus weight files.

sniff and describe read the wire format directly (formats._protobuf); coremltools
is only needed to load or save. Field numbers follow coremltools'
mlmodel/format/Model.proto and FeatureTypes.proto.

Core ML runs only on macOS. Elsewhere a converted model is first checked against the
rules Core ML's compiler enforces and against the source's signature (names, ranks,
flexible dimensions, dtypes), then run by mlconvert's own reference evaluator
(formats/_coreml_neural.py) where it covers the model's ops; otherwise it is reported
unverified naming the ops it could not run (`--strict` turns that into exit 8).
"""
from __future__ import annotations

import json
import platform
import struct
from pathlib import Path

from mlconvert.errors import ConversionError, InputError, NoPathError
from mlconvert.formats import Format, register_format
from mlconvert.formats import _protobuf as pb

# Model.Type oneof (Model.proto).
MODEL_TYPES = {
    200: "pipelineClassifier",
    201: "pipelineRegressor",
    202: "pipeline",
    300: "glmRegressor",
    301: "supportVectorRegressor",
    302: "treeEnsembleRegressor",
    303: "neuralNetworkRegressor",
    304: "bayesianProbitRegressor",
    400: "glmClassifier",
    401: "supportVectorClassifier",
    402: "treeEnsembleClassifier",
    403: "neuralNetworkClassifier",
    404: "kNearestNeighborsClassifier",
    500: "neuralNetwork",
    501: "itemSimilarityRecommender",
    502: "mlProgram",
    555: "customModel",
    556: "linkedModel",
    560: "classConfidenceThresholding",
    600: "oneHotEncoder",
    601: "imputer",
    602: "featureVectorizer",
    603: "dictVectorizer",
    604: "scaler",
    606: "categoricalMapping",
    607: "normalizer",
    609: "arrayFeatureExtractor",
    610: "nonMaximumSuppression",
    900: "identity",
    2000: "textClassifier",
    2001: "wordTagger",
    2002: "visionFeaturePrint",
    2003: "soundAnalysisPreprocessing",
    2004: "gazetteer",
    2005: "wordEmbedding",
    2006: "audioFeaturePrint",
    3000: "serializedModel",
}
_PIPELINES = {200, 201, 202}
_NN_TYPES = {"neuralNetwork", "neuralNetworkClassifier", "neuralNetworkRegressor", "mlProgram"}
# ArrayFeatureType.ArrayDataType
ARRAY_DTYPES = {65568: "float32", 65600: "float64", 131104: "int32", 131080: "int8", 65552: "float16"}
COLOR_SPACES = {10: "GRAYSCALE", 20: "RGB", 30: "BGR", 40: "GRAYSCALE_FLOAT16"}
# ModelDescription fields (input 1, output 10, state 13, functions 20, trainingInput 50
# are messages; 11, 12, 21 strings; metadata 100).
_DESCRIPTION_FIELDS = {1, 10, 11, 12, 13, 20, 21, 50, 100}

SPEC_PATH = Path("Data") / "com.apple.CoreML" / "model.mlmodel"
_HINT_CORRUPT = "the file looks truncated or corrupt; export or download the model again"


# --------------------------------------------------------------------------- sniff


def _package_spec(path: Path) -> Path | None:
    """The protobuf inside a .mlpackage: the manifest's root item, else the usual path."""
    manifest = path / "Manifest.json"
    if not manifest.is_file():
        return None
    default = path / SPEC_PATH
    if default.is_file():
        return default
    try:
        info = json.loads(manifest.read_text(encoding="utf-8"))
        entry = info["itemInfoEntries"][info["rootModelIdentifier"]]
        spec = path / "Data" / entry["path"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return spec if spec.is_file() else None


def _looks_like_feature(value) -> bool:
    """A FeatureDescription prefix: name (1) first and text, type (3) a FeatureType."""
    fields = list(pb.iter_fields(value, partial=True))
    if not fields:
        return False
    number, wire, name = fields[0]
    if number != 1 or wire != pb.LEN or not name or not pb.is_text(name, allow_newlines=False, partial=True):
        return False
    for number, wire, sub in fields[1:]:
        if number == 2:
            if wire != pb.LEN or not pb.is_text(sub, partial=True):
                return False
        elif number == 3:
            if wire != pb.LEN:
                return False
            for kind, kind_wire, _ in pb.iter_fields(sub, partial=True):
                if not ((1 <= kind <= 8 and kind_wire == pb.LEN) or (kind == 1000 and kind_wire == pb.VARINT)):
                    return False
        else:
            return False
    return True


def _looks_like_description(value) -> bool:
    seen_feature = False
    for number, wire, sub in pb.iter_fields(value, partial=True):
        if number not in _DESCRIPTION_FIELDS or wire != pb.LEN:
            return False
        if number in (1, 10):
            if not _looks_like_feature(sub):
                return False
            seen_feature = True
        elif number in (11, 12, 21) and not pb.is_text(sub, allow_newlines=False, partial=True):
            return False
    return seen_feature


def sniff(head: bytes, path: Path) -> bool:
    path = Path(path)
    if path.is_dir():
        return _package_spec(path) is not None
    if not head or head[0] != 0x08:
        return False
    try:
        fields = list(pb.iter_fields(head, partial=True))
        if not fields or fields[0][:2] != (1, pb.VARINT) or not 1 <= fields[0][2] <= 32:
            return False
        has_type = has_description = False
        for number, wire, value in fields[1:]:
            if number == 2 and wire == pb.LEN:
                # ONNX has a producer-name string here; Core ML a description message.
                if not _looks_like_description(value):
                    return False
                has_description = True
            elif number == 10 and wire == pb.VARINT:
                continue
            elif number in MODEL_TYPES and wire == pb.LEN:
                has_type = True
            else:
                return False
    except pb.ProtobufError:
        return False
    if has_type or has_description:
        return True
    return path.suffix.lower() == ".mlmodel"


# ------------------------------------------------------------------------ describe


def _feature(value) -> dict:
    fields = pb.parse(value)
    out: dict = {"name": pb.decode_string(pb.first(fields, 1))}
    short = pb.decode_string(pb.first(fields, 2), strict=False)
    ftype = pb.parse(pb.first(fields, 3, b""))
    dtype, shape, kind = "unknown", None, "unknown"
    extra: dict = {}
    if 1 in ftype:
        kind, dtype = "int64", "int64"
    elif 2 in ftype:
        kind, dtype = "double", "float64"
    elif 3 in ftype:
        kind, dtype = "string", "string"
    elif 4 in ftype:
        image = pb.parse(pb.first(ftype, 4))
        kind, dtype = "image", "image"
        width, height = pb.signed64(pb.first(image, 1, 0)), pb.signed64(pb.first(image, 2, 0))
        shape = [height, width]
        extra["color_space"] = COLOR_SPACES.get(pb.first(image, 3, 0), "unknown")
    elif 5 in ftype or 8 in ftype:
        array_bytes = pb.first(ftype, 5)
        kind = "multiArray"
        if array_bytes is None:  # stateType wraps an array type
            kind = "state"
            array_bytes = pb.first(pb.parse(pb.first(ftype, 8)), 1, b"")
        array = pb.parse(array_bytes)
        dtype = ARRAY_DTYPES.get(pb.first(array, 2, 0), "unknown")
        shape = [pb.signed64(v) for v in pb.varints(array.get(1))]
        if 21 in array or 31 in array:
            extra["flexible_shape"] = True
        ranges = [pb.parse(r) for r in pb.parse(pb.first(array, 31, b"")).get(1, [])]
        if shape and len(ranges) == len(shape):  # a dimension that may vary shows as None
            shape = [None if pb.first(r, 1, 0) != pb.first(r, 2, 0) else d for d, r in zip(shape, ranges)]
    elif 6 in ftype:
        dictionary = pb.parse(pb.first(ftype, 6))
        key = "int64" if 1 in dictionary else "string"
        kind, dtype = "dictionary", f"dict({key},float64)"
    elif 7 in ftype:
        sequence = pb.parse(pb.first(ftype, 7))
        key = "int64" if 1 in sequence else "string"
        kind, dtype = "sequence", f"seq({key})"
    out.update({"dtype": dtype, "shape": shape, "type": kind})
    out.update(extra)
    if pb.first(ftype, 1000, 0):
        out["optional"] = True
    if short:
        out["description"] = short
    return out


def _class_labels(type_number: int, body) -> list | None:
    """Class labels of a classifier body: stringClassLabels 100 / int64ClassLabels 101."""
    if not 400 <= type_number <= 404:
        return None
    fields = pb.parse(body)
    if 100 in fields:
        return [pb.decode_string(s, strict=False) for s in pb.parse(pb.first(fields, 100)).get(1, [])]
    if 101 in fields:
        return [pb.signed64(v) for v in pb.varints(pb.parse(pb.first(fields, 101)).get(1))]
    return None


def _model_type(model: dict) -> tuple[int, object]:
    found = [(number, model[number][-1]) for number in model if number in MODEL_TYPES]
    if not found:
        unknown = sorted(n for n in model if n >= 200)
        if unknown:
            return unknown[0], model[unknown[0]][-1]
        raise pb.ProtobufError("no model type field; the file ends before the model itself")
    return found[0]


def _walk(model_bytes, depth: int = 0) -> dict:
    """Type, sub-models (for pipelines) and class labels of one Model message."""
    if depth > 16:
        raise pb.ProtobufError("pipelines nested more than 16 deep")
    model = pb.parse(model_bytes)
    number, body = _model_type(model)
    info: dict = {"type": MODEL_TYPES.get(number, f"unknown-{number}")}
    if number in _PIPELINES:
        pipeline = pb.parse(body) if number == 202 else pb.parse(pb.first(pb.parse(body), 1, b""))
        info["models"] = [_walk(sub, depth + 1) for sub in pipeline.get(1, [])]
        names = [pb.decode_string(n, strict=False) for n in pipeline.get(2, [])]
        if names:
            info["names"] = names
    else:
        labels = _class_labels(number, body)
        if labels is not None:
            info["class_labels"] = labels
    return info


def _flatten(info: dict) -> list[dict]:
    out = [info]
    for sub in info.get("models", []):
        out.extend(_flatten(sub))
    return out


def _read_spec(data: bytes) -> dict:
    model = pb.parse(data)
    if pb.first(model, 1) is None:
        raise pb.ProtobufError("no specificationVersion (field 1)")
    if 2 not in model:
        raise pb.ProtobufError("no model description (field 2)")
    spec_version = pb.first(model, 1)
    description = pb.parse(pb.first(model, 2))
    tree = _walk(data)
    all_models = _flatten(tree)
    model_type = tree["type"]

    inputs = [_feature(v) for v in description.get(1, [])]
    outputs = [_feature(v) for v in description.get(10, [])]
    functions = []
    for fn_bytes in description.get(20, []):  # multi-function ML programs
        fn = pb.parse(fn_bytes)
        functions.append(
            {
                "name": pb.decode_string(pb.first(fn, 1)),
                "inputs": [_feature(v) for v in fn.get(2, [])],
                "outputs": [_feature(v) for v in fn.get(3, [])],
            }
        )
    if not inputs and functions:
        default = pb.decode_string(pb.first(description, 21)) or functions[0]["name"]
        chosen = next((f for f in functions if f["name"] == default), functions[0])
        inputs, outputs = chosen["inputs"], chosen["outputs"]

    metadata_fields = pb.parse(pb.first(description, 100, b""))
    metadata = {}
    for number, key in ((1, "shortDescription"), (2, "versionString"), (3, "author"), (4, "license")):
        text = pb.decode_string(pb.first(metadata_fields, number), strict=False)
        if text:
            metadata[key] = text
    user_defined = pb.string_map(metadata_fields.get(100))
    if user_defined:
        metadata["userDefined"] = user_defined

    types = [m["type"] for m in all_models]
    flavor = "coreml-nn" if any(t in _NN_TYPES for t in types) else "coreml-classic"
    # A pipeline's kind is its last stage's (the predictor), unless it says so itself.
    last = tree
    while last.get("models"):
        last = last["models"][-1]
    probe = model_type if model_type in ("pipelineClassifier", "pipelineRegressor") else last["type"]
    if "Classifier" in probe:
        kind = "classifier"
    elif "Regressor" in probe:
        kind = "regressor"
    elif probe in _NN_TYPES:
        kind = "neural-network"
    else:
        kind = "transformer"

    result: dict = {"flavor": flavor, "kind": kind}
    tools_version = user_defined.get("com.github.apple.coremltools.version")
    if tools_version:
        result["producer"] = "coremltools"
        result["producer_version"] = tools_version
    scalar = [f for f in inputs if f["type"] in ("double", "int64")]
    if inputs and len(scalar) == len(inputs):
        result["n_features"] = len(inputs)
    elif len(inputs) == 1 and inputs[0]["type"] == "multiArray" and inputs[0]["shape"]:
        last_dim = inputs[0]["shape"][-1]
        if last_dim > 0:
            result["n_features"] = last_dim
    labels = next((m["class_labels"] for m in all_models if "class_labels" in m), None)
    if labels:
        result["n_classes"] = len(labels)
    result["inputs"] = inputs
    result["outputs"] = outputs

    details: dict = {"specification_version": spec_version, "model_type": model_type}
    if "models" in tree:
        details["pipeline"] = [m["type"] for m in tree["models"]]
        if "names" in tree:
            details["pipeline_names"] = tree["names"]
    if labels:
        details["class_labels"] = labels[:50]
    for number, key in ((11, "predicted_feature_name"), (12, "predicted_probabilities_name")):
        text = pb.decode_string(pb.first(description, number), strict=False)
        if text:
            details[key] = text
    if pb.first(model, 10, 0):
        details["is_updatable"] = True
    if functions:
        details["functions"] = [f["name"] for f in functions]
    details["metadata"] = metadata
    source = user_defined.get("com.github.apple.coremltools.source")
    if source:
        details["source"] = source
    result["details"] = details
    return result


def describe(path: Path) -> dict:
    path = Path(path)
    package = path.is_dir()
    spec_path = _package_spec(path) if package else path
    if spec_path is None:
        raise InputError(
            f"{path} is a directory but not a Core ML package: expected Manifest.json and {SPEC_PATH}",
            hint="a .mlpackage must be copied whole, with its Manifest.json and Data folder",
        )
    try:
        data = spec_path.read_bytes()
    except OSError as exc:
        raise InputError(f"cannot read {spec_path}: {exc.strerror or exc}", hint="check the path and permissions") from exc
    if not data:
        raise InputError(f"{spec_path} is empty; expected a Core ML model specification", hint=_HINT_CORRUPT)
    try:
        result = _read_spec(data)
    except (ValueError, KeyError, IndexError, TypeError, struct.error, RecursionError) as exc:
        raise InputError(
            f"{spec_path} is not a readable Core ML model ({len(data)} bytes): {exc}", hint=_HINT_CORRUPT
        ) from exc
    if package:
        result["details"]["package"] = True
        weights = spec_path.parent / "weights"
        if weights.is_dir():
            result["details"]["weights_bytes"] = sum(f.stat().st_size for f in weights.rglob("*") if f.is_file())
    elif result["details"]["model_type"] == "mlProgram":
        result.setdefault("warnings", []).append(
            "an ML program in a bare .mlmodel file has no weights beside it; ML programs are normally saved as .mlpackage"
        )
    return result


# -------------------------------------------------------------------- load / save


def import_coremltools():
    """coremltools, imported quietly: it announces every converter it switches off
    (scikit-learn, XGBoost...) and warns about untested library versions."""
    import logging
    import warnings

    logging.getLogger("coremltools").setLevel(logging.ERROR)
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("ignore")
            import coremltools
    except ImportError as exc:
        raise NoPathError(
            "coremltools is not installed", hint="install it: pip install 'mlconvert[coreml]'"
        ) from exc
    return coremltools


def load(path: Path, *, trust: bool = False, **options):
    """A coremltools MLModel (spec only on Linux: Core ML cannot predict there)."""
    ct = import_coremltools()
    try:
        return ct.models.MLModel(str(path), skip_model_load=True)
    except Exception as exc:  # coremltools raises many kinds on bad specs
        raise InputError(f"{path} is not a valid Core ML model: {exc}", hint=_HINT_CORRUPT) from exc


def save(model, path: Path) -> None:
    """model: an MLModel or a Model_pb2 spec (steps write into a scratch folder)."""
    ct = import_coremltools()
    if hasattr(model, "save"):
        model.save(str(path))
    else:
        ct.utils.save_spec(model, str(path))


def stamp(path: Path, entries: dict[str, str]) -> None:
    """Provenance in the user-defined metadata. The spec is re-encoded deterministically
    (protobuf map order otherwise follows the process's hash seed) and an .mlpackage's
    manifest gets item ids derived from the item paths instead of random UUIDs."""
    import json
    import uuid

    from coremltools.proto import Model_pb2

    path = Path(path)
    manifest = path / "Manifest.json"
    data = json.loads(manifest.read_text()) if path.is_dir() else None
    if data is not None:
        root = data["itemInfoEntries"][data["rootModelIdentifier"]]
        spec_path = path / "Data" / root["path"]
    else:
        spec_path = path
    spec = Model_pb2.Model()
    spec.ParseFromString(spec_path.read_bytes())
    for key, value in entries.items():
        spec.description.metadata.userDefined[key] = value
    spec_path.write_bytes(spec.SerializeToString(deterministic=True))
    if data is not None:
        ids = {old: str(uuid.uuid5(uuid.NAMESPACE_URL, "mlconvert:" + item["path"]))
               for old, item in data["itemInfoEntries"].items()}
        data["itemInfoEntries"] = {ids[old]: item for old, item in data["itemInfoEntries"].items()}
        data["rootModelIdentifier"] = ids[data["rootModelIdentifier"]]
        manifest.write_text(json.dumps(data, indent=4, sort_keys=True) + "\n")


# -------------------------------------------------------------------- verification

# Core ML multi-array dtypes that carry a source dtype.
_COMPATIBLE = {
    "float32": {"float32", "float16", "float64"},
    "float64": {"float32", "float64"},
    "float16": {"float16", "float32"},
    "int32": {"int32"},
    "int64": {"int32"},
    "int8": {"int32", "int8"},
    "uint8": {"int32"},
}


def _weights_dir(path: Path) -> str | None:
    weights = Path(path) / "Data" / "com.apple.CoreML" / "weights"
    return str(weights) if weights.is_dir() else None


def structural_check(path: Path, reference) -> tuple[str, dict]:
    """What agrees between the Core ML model at `path` and the source's predictor
    `reference`, and the model's description; raises ConversionError when the spec breaks
    a rule Core ML enforces or disagrees with the source."""
    from mlconvert.formats._coreml_neural import validate

    ct = import_coremltools()
    try:
        spec = ct.utils.load_spec(str(path))
        ct.models.MLModel(spec, weights_dir=_weights_dir(path), skip_model_load=True)
    except Exception as exc:  # coremltools raises many kinds on bad specs
        raise ConversionError(f"the converted Core ML model does not load in coremltools: {exc}",
                              hint="this is a converter bug; please report it with the input file") from exc
    description = describe(path)
    problems, checked = [], []
    got_in = {f["name"]: f for f in description.get("inputs", [])}
    got_out = {f["name"]: f for f in description.get("outputs", [])}
    want_in = reference.input_specs() or [] if reference is not None else []
    want_out = reference.output_specs() if reference is not None and hasattr(reference, "output_specs") else []
    for kind, want, got in (("input", want_in, got_in), ("output", want_out, got_out)):
        if not want:
            continue
        if set(got) != {w["name"] for w in want}:
            problems.append(f"{kind}s are {sorted(got)}, the source has {sorted(w['name'] for w in want)}")
            continue
        for w in want:
            g = got[w["name"]]
            if g.get("type") == "multiArray" and g.get("dtype") not in _COMPATIBLE.get(str(w.get("dtype")),
                                                                                     {str(w.get("dtype"))}):
                problems.append(f"{kind} {w['name']} is {g.get('dtype')}, the source {w.get('dtype')}")
        checked.append(f"{len(want)} {kind}(s) {', '.join(w['name'] for w in want)}")
    problems += validate(spec, want_in, want_out)
    if problems:
        raise ConversionError("the converted Core ML model is not valid or does not match the source: "
                              + "; ".join(problems), hint="this is a converter bug; please report it with the input file")
    kind = spec.WhichOneof("Type")
    return f"spec valid ({kind}), " + ("; ".join(checked) + " match by name, rank, shape and dtype" if checked
                                       else "no source signature to compare with"), description


def _macos_predictor(path: Path, description: dict):
    """A predictor that runs the model with Core ML (macOS only), one row at a time."""
    import numpy as np

    from mlconvert.predict import Predictor, named_inputs

    ct = import_coremltools()

    class CoreMLPredictor(Predictor):
        kind = "neural-network"

        def __init__(self):
            self.model = ct.models.MLModel(str(path))
            self.specs = [{"name": f["name"], "dtype": "float32" if f["dtype"] in ("float64", "float16") else f["dtype"],
                           "shape": f.get("shape")} for f in description.get("inputs", [])]

        def input_specs(self):
            return [dict(s) for s in self.specs]

        def predict(self, X):
            feed = named_inputs(X, self.specs)
            rows = len(next(iter(feed.values())))
            outs: dict[str, list] = {}
            for i in range(rows):  # one row at a time: the batch dimension's range is the model's business
                result = self.model.predict({k: np.asarray(v[i: i + 1]).astype(
                    next(s["dtype"] for s in self.specs if s["name"] == k)) for k, v in feed.items()})
                for name, value in result.items():
                    outs.setdefault(name, []).append(np.asarray(value))
            return {k: np.concatenate(v, axis=0) for k, v in outs.items()}

    return CoreMLPredictor()


def _reference_predictor(path: Path, description: dict, run, kind: str):
    """A predictor that runs the spec with mlconvert's reference evaluator."""
    from mlconvert.predict import Predictor, named_inputs

    specs = [{"name": f["name"], "dtype": "float32" if f["dtype"] in ("float64", "float16") else f["dtype"],
              "shape": f.get("shape")} for f in description.get("inputs", [])]

    class ReferencePredictor(Predictor):
        def input_specs(self):
            return [dict(s) for s in specs]

        def predict(self, X):
            return run(named_inputs(X, specs))

    predictor = ReferencePredictor()
    predictor.kind = kind
    return predictor


def predictor(source, options: dict):
    """On macOS, Core ML itself. Elsewhere, after a structural check against
    options["reference"], mlconvert's reference evaluator for the neural-network layers
    and ML-program operations it covers; CannotRun naming the rest."""
    from mlconvert.formats import _coreml_neural
    from mlconvert.predict import CannotRun

    path = source.path
    checked, description = structural_check(path, options.get("reference"))
    if platform.system() == "Darwin":
        return _macos_predictor(path, description)
    spec = import_coremltools().utils.load_spec(str(path))
    package = Path(path) if Path(path).is_dir() else None
    try:
        run = _coreml_neural.evaluator(spec, package)
    except _coreml_neural.Uncovered as exc:
        raise CannotRun(f"no Core ML runtime on this platform, and mlconvert's reference evaluator does not cover "
                        f"{exc}; structural check passed: {checked}") from exc
    return _reference_predictor(path, description, run, "neural-network")


register_format(
    Format(
        id="coreml",
        title="Core ML",
        extensions=(".mlmodel", ".mlpackage"),
        sniff=sniff,
        describe=describe,
        load=load,
        save=save,
        predictor=predictor,
        stamp=stamp,
        runtime="coremltools",
        layout="file-or-directory",
        family="coreml",
        notes=".mlmodel is a file, .mlpackage a directory; both are recognised",
    )
)
