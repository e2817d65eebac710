"""TensorFlow and Keras models: safe loading, their serving function, and predictors.

The runtime of the keras-h5, keras and savedmodel formats, also used by the tf2onnx,
Keras and coremltools edges. The module top imports only the standard library:
TensorFlow (~8 s to import) is imported by the function that needs it.

A model's inputs and outputs are named once, here, and every artifact made from it
(ONNX graph, SavedModel signature, Core ML spec) carries the same names, so
verification can compare outputs by name.
"""
from __future__ import annotations

import contextlib
import importlib.util
import json
import os
import re
import sys
from pathlib import Path

from mlconvert.errors import ConversionError, InputError, NoPathError, UntrustedInputError
from mlconvert.formats._keras_config import is_custom_layer, summarize_config, walk_layers

_HINT_TF = "install it: pip install 'mlconvert[tf]'"


@contextlib.contextmanager
def _native_stderr_silenced():
    """File descriptor 2 points at /dev/null for the block: TensorFlow's C++ start-up lines
    (absl, oneDNN) are written there directly and TF_CPP_MIN_LOG_LEVEL no longer stops them.
    With MLCONVERT_VERBOSE=1 (mlconvert -v) they are shown."""
    if os.environ.get("MLCONVERT_VERBOSE") == "1":
        yield
        return
    with contextlib.suppress(OSError, ValueError, AttributeError):
        sys.stderr.flush()
    try:
        saved = os.dup(2)
        null = os.open(os.devnull, os.O_WRONLY)
    except OSError:
        yield
        return
    os.dup2(null, 2)
    os.close(null)
    try:
        yield
    finally:
        os.dup2(saved, 2)
        os.close(saved)


def import_tf():
    """tensorflow, imported quietly (TF's C++ start-up chatter goes nowhere)."""
    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    try:
        with _native_stderr_silenced():
            import tensorflow as tf
    except ImportError as exc:
        raise NoPathError("TensorFlow is not installed", hint=_HINT_TF) from exc
    import logging

    logging.getLogger("absl").setLevel(logging.ERROR)
    tf.get_logger().setLevel(logging.ERROR)
    return tf


def import_keras():
    import_tf()
    try:
        import keras
    except ImportError as exc:
        raise NoPathError("Keras is not installed", hint=_HINT_TF) from exc
    return keras


@contextlib.contextmanager
def stdout_to_stderr():
    """Converter libraries print progress to stdout; `--json` owns stdout."""
    with contextlib.redirect_stdout(sys.stderr):
        yield


def safe_name(name: str, fallback: str) -> str:
    """A name TensorFlow, ONNX and Core ML all accept."""
    name = re.sub(r"[^A-Za-z0-9_.\-/]", "_", str(name or "")).strip("/")
    if not name or not re.match(r"[A-Za-z0-9.]", name[0]):
        name = fallback if not name else f"{fallback}_{name}"
    return name


# --- loading Keras files: nothing from the file runs unless the user says so ---


def _custom_objects(module_path) -> dict:
    """The classes and functions a `--custom-objects module.py` defines (running that module)."""
    path = Path(module_path)
    if not path.is_file():
        raise InputError(f"--custom-objects {path} does not exist", hint="give the Python file that defines the layers")
    name = "mlconvert_custom_objects_" + re.sub(r"\W", "_", path.stem)
    spec = importlib.util.spec_from_file_location(name, path)
    module = importlib.util.module_from_spec(spec)
    # Registered under its name as Python's own import does: code that looks a class up
    # through its module (pickle, inspect.getsource, typing.get_type_hints) then finds it.
    sys.modules[name] = module
    try:
        spec.loader.exec_module(module)
    except Exception as exc:
        raise InputError(f"--custom-objects {path} failed to import: {type(exc).__name__}: {exc}",
                         hint="the module must import cleanly on its own") from exc
    return {k: v for k, v in vars(module).items() if not k.startswith("_") and callable(v)}


def _missing_custom(config: dict, custom: dict) -> tuple[dict, list[str]]:
    """custom_objects keyed as Keras looks them up, and the custom layers still unresolved."""
    keras = import_keras()
    resolved, missing = dict(custom), []
    for layer in walk_layers(config):
        if not is_custom_layer(layer):
            continue
        registered = layer.get("registered_name")
        cls = layer.get("class_name")
        found = custom.get(cls) or (custom.get(registered.split(">")[-1]) if isinstance(registered, str) else None)
        if found is None and isinstance(registered, str):
            found = keras.saving.get_registered_object(registered)
        if found is None:
            missing.append(f"{layer.get('name') or (layer.get('config') or {}).get('name')} ({cls})")
        elif isinstance(registered, str):
            resolved[registered] = found
    return resolved, missing


def load_keras(path: Path, description: dict, *, trust: bool = False, architecture=None, custom_objects=None):
    """A Keras model from .h5 or .keras with safe_mode: Lambda layers and custom layers
    are refused (UntrustedInputError) unless `trust`; custom classes come from the
    `custom_objects` module; a weights-only .h5 needs the `architecture` JSON."""
    path = Path(path)
    details = description.get("details") or {}
    config = None
    if architecture is not None:
        arch = Path(architecture)
        try:
            config = json.loads(arch.read_text(encoding="utf-8"))
        except (OSError, ValueError) as exc:
            raise InputError(f"--architecture {arch} is not a readable JSON model config: {exc}",
                             hint="give the model.to_json() output") from exc
        if not isinstance(config, dict):
            raise InputError(f"--architecture {arch} is not a JSON object", hint="give the model.to_json() output")
        summary = summarize_config(config)
        lambdas, custom = summary["lambda_layers"], summary.get("custom_layers") or []
    elif details.get("weights_only"):
        raise InputError(
            f"{path} holds weights only: the model architecture (the model_config JSON) is missing, "
            "so Keras cannot build the model",
            hint="pass --architecture FILE.json with the model.to_json() output that matches these weights")
    else:
        lambdas, custom = details.get("lambda_layers") or [], details.get("custom_layers") or []
    if lambdas and not trust:
        raise UntrustedInputError(
            f"{path} has Lambda layers holding Python code: {', '.join(map(str, lambdas))}",
            hint="loading them runs code from the file (safe_mode=False); check where it came from, "
            "then pass --trust", details={"untrusted": list(map(str, lambdas))})
    keras = import_keras()
    objects = _custom_objects(custom_objects) if custom_objects else {}
    missing: list[str] = []
    if custom:
        if config is None:
            config = _read_config(path)
        if config is not None:
            objects, missing = _missing_custom(config, objects)
    if missing and not trust:
        raise UntrustedInputError(
            f"{path} has custom layers whose code is not in the file: {', '.join(missing)}",
            hint="pass --custom-objects module.py defining those classes (that module's code runs), "
            "or --trust to try loading anyway", details={"untrusted": missing})
    try:
        with stdout_to_stderr():
            if config is not None and architecture is not None:
                model = _model_from_config(keras, config, objects, safe=not trust)
                model.load_weights(str(path))
            else:
                model = keras.saving.load_model(str(path), custom_objects=objects or None, compile=False,
                                                safe_mode=not trust)
    except Exception as exc:  # Keras raises many kinds on bad files
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:400]
        hint = "the file may be corrupt, or written by a Keras this version cannot read"
        if missing or "Could not locate" in first or "Unknown layer" in first:
            hint = ("pass --custom-objects module.py defining the custom classes"
                    + (f" ({', '.join(missing)})" if missing else ""))
        raise InputError(f"{path} could not be loaded by Keras {keras.__version__}: {first}", hint=hint) from exc
    return model


def _read_config(path: Path) -> dict | None:
    """The model config of a .keras or .h5 file, read without Keras."""
    import zipfile

    try:
        if zipfile.is_zipfile(path):
            with zipfile.ZipFile(path) as archive:
                return json.loads(archive.read("config.json"))
        import h5py

        with h5py.File(path, "r") as handle:
            raw = handle.attrs.get("model_config")
            return json.loads(raw.decode() if isinstance(raw, bytes) else raw) if raw is not None else None
    except (OSError, KeyError, ValueError, zipfile.BadZipFile) as exc:
        # A config that cannot be read means no custom-layer check: that must not pass silently.
        raise InputError(f"cannot read the Keras model config of {path}: {type(exc).__name__}: {exc}",
                         hint="the file may be corrupt or truncated") from exc


def _model_from_config(keras, config: dict, objects: dict, safe: bool):
    try:
        return keras.saving.deserialize_keras_object(config, custom_objects=objects or None, safe_mode=safe)
    except (TypeError, ValueError, KeyError):
        # Keras 2 configs ("class_name": "Model", no module): Keras' own legacy reader.
        from keras.src.legacy.saving import saving_utils

        scope = keras.saving.custom_object_scope(objects) if objects else contextlib.nullcontext()
        with scope:
            return saving_utils.model_from_config(config, custom_objects=objects or None)


def load_savedmodel(path: Path, tags: list[str], signature_name: str | None):
    """The SavedModel's serving signature as a ServingFunction: `tags` name the meta graph
    and `signature_name` its signature, both chosen by the savedmodel format (serving_entry).

    TensorFlow 2 restores the saved objects; a SavedModel it cannot restore that way
    (tf.keras 2 `model.save(dir)` with optimizer state, for one) is opened like
    TensorFlow Serving does, as a graph in a session, and served from its signature_def.
    """
    tf = import_tf()
    try:
        with stdout_to_stderr():
            loaded = tf.saved_model.load(str(path))
    except Exception as exc:  # TF raises many kinds on directories it cannot restore
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        try:
            return GraphSignature(path, tags, signature_name, reason=f"{type(exc).__name__}: {first}")
        except InputError:
            raise
        except Exception as exc2:
            raise InputError(f"{path} could not be loaded as a SavedModel: {first}",
                             hint="copy the whole SavedModel directory again (saved_model.pb, variables/)") from exc2
    return ObjectSignature(loaded, path, tags, signature_name)


# --- the serving function: named inputs in, a dict of named outputs out ---


class ServingFunction:
    """A model's entry point with named inputs ({"name", "dtype", "shape"}) and a dict of
    named outputs. `function(*tensors)` (Keras) takes the inputs positionally, in
    `inputs` order, which is what tf2onnx's from_function wants; `specs` are its
    TensorSpecs. `run(feed)` maps {name: array} to {name: array}."""

    kind = "keras"

    def __init__(self, function, specs, inputs: list[dict]):
        self.function, self.specs, self.inputs = function, specs, inputs
        structured = function.get_concrete_function(*specs).structured_outputs
        self.outputs = list(structured)
        self.output_specs = [_spec(name, t) for name, t in structured.items()]

    def concrete(self):
        """A concrete function whose outputs are the model's, for coremltools."""
        return self.function.get_concrete_function(*self.specs)

    def output_map(self) -> dict[str, str]:
        """Graph output tensor name (without :0) -> output name, for the concrete function."""
        concrete = self.concrete()
        return {t.name.split(":")[0]: name for name, t in concrete.structured_outputs.items()}

    def run(self, feed: dict) -> dict:
        tf = import_tf()
        args = [tf.constant(feed[spec["name"]]) for spec in self.inputs]
        with stdout_to_stderr():
            result = self.function(*args)
        return {k: v.numpy() for k, v in result.items()}


def _spec(name: str, tensor) -> dict:
    shape = None if tensor.shape.rank is None else tensor.shape.as_list()
    return {"name": name, "dtype": tensor.dtype.name, "shape": shape}


def _keras_inputs(model) -> tuple[list[str], list, str]:
    """Input names, their tensors, and how the model takes them: "single", "dict" or "list"."""
    struct = getattr(model, "_inputs_struct", None)
    if isinstance(struct, dict):
        return [str(k) for k in struct], list(struct.values()), "dict"
    names = []
    for i, tensor in enumerate(model.inputs):
        history = getattr(tensor, "_keras_history", None)
        layer = getattr(history, "operation", None)
        names.append(getattr(layer, "name", None) or getattr(tensor, "name", None) or f"input_{i}")
    return names, list(model.inputs), ("single" if len(names) == 1 else "list")


def keras_output_names(model) -> list[str]:
    names = getattr(model, "output_names", None)
    if names:
        return [str(n) for n in names]
    return [model.layers[-1].name] if model.layers else ["output_0"]


def keras_outputs_dict(result, names: list[str]) -> dict:
    """A Keras call's result (tensor, list or dict) as {output name: tensor}."""
    if isinstance(result, dict):
        return {str(k): v for k, v in result.items()}
    if isinstance(result, (list, tuple)):
        return dict(zip(names, result))
    return {names[0]: result}


def keras_function(model) -> ServingFunction:
    tf = import_tf()
    if not getattr(model, "inputs", None):
        raise InputError("the Keras model has no defined inputs (a subclassed model that was never built)",
                         hint="save the model after calling it once, or as a functional/Sequential model")
    raw_names, tensors, style = _keras_inputs(model)
    inputs, specs = [], []
    for i, (name, tensor) in enumerate(zip(raw_names, tensors)):
        clean = safe_name(name, f"input_{i}")
        dtype = tf.as_dtype(str(getattr(tensor, "dtype", "float32")))
        shape = [d if isinstance(d, int) else None for d in tensor.shape]
        inputs.append({"name": clean, "dtype": dtype.name, "shape": shape})
        specs.append(tf.TensorSpec(shape, dtype, name=clean))
    out_names = [safe_name(n, f"output_{i}") for i, n in enumerate(keras_output_names(model))]

    def call(*args):
        if style == "single":
            feed = args[0]
        elif style == "dict":
            feed = dict(zip(raw_names, args))
        else:
            feed = list(args)
        result = keras_outputs_dict(model(feed, training=False), out_names)
        return {safe_name(k, f"output_{i}"): tf.identity(v) for i, (k, v) in enumerate(result.items())}

    serving = ServingFunction(tf.function(call, input_signature=specs, autograph=False), specs, inputs)
    serving.model = model
    return serving


def _signature(signatures, name: str | None, path: Path):
    """The chosen signature among those TensorFlow loaded."""
    if name is None:
        raise InputError(f"{path} has no signatures; converters need a serving signature",
                         hint="re-export it with a signature (model.export() or tf.saved_model.save(signatures=...))")
    if name not in signatures:
        raise InputError(f"{path}: TensorFlow finds no signature {name!r} in the serving graph",
                         hint="copy the whole SavedModel directory again (saved_model.pb, variables/)")
    return signatures[name]


class ObjectSignature(ServingFunction):
    """A SavedModel TensorFlow 2 restores: its serving signature, called directly."""

    kind = "savedmodel"

    def __init__(self, loaded, path: Path, tags: list[str], signature_name: str | None):
        tf = import_tf()
        self.loaded, self.path = loaded, Path(path)
        self.tags, self.signature_name = list(tags), signature_name
        self.signature = _signature(getattr(loaded, "signatures", None) or {}, signature_name, path)
        args, kwargs = self.signature.structured_input_signature
        if args:
            raise InputError(f"{path}: the serving signature takes positional inputs", hint="re-export with named inputs")
        self.inputs, self.specs = [], []
        for key in sorted(kwargs):
            spec = kwargs[key]
            if not isinstance(spec, tf.TensorSpec):
                raise InputError(f"{path}: signature input {key!r} is a {type(spec).__name__}, not a dense tensor",
                                 hint="sparse and ragged inputs are not supported")
            self.inputs.append(_spec(key, spec))
            self.specs.append(spec)
        outputs = self.signature.structured_outputs
        if not isinstance(outputs, dict):
            raise InputError(f"{path}: the serving signature does not return named outputs")
        self.outputs = sorted(outputs)
        self.output_specs = [_spec(k, outputs[k]) for k in self.outputs]

    def concrete(self):
        return self.signature

    def output_map(self) -> dict[str, str]:
        # A signature's flat outputs follow its output names in sorted order.
        tf = import_tf()
        tensors = [t for t in self.signature.outputs if t.dtype != tf.dtypes.resource]
        return {t.name.split(":")[0]: name for name, t in zip(self.outputs, tensors)}

    def run(self, feed: dict) -> dict:
        tf = import_tf()
        with stdout_to_stderr():
            result = self.signature(**{spec["name"]: tf.constant(feed[spec["name"]]) for spec in self.inputs})
        return {k: v.numpy() for k, v in result.items()}


class GraphSignature(ServingFunction):
    """A SavedModel run the TensorFlow Serving way: its graph in a session, fed and
    fetched through the signature_def's tensor names."""

    kind = "savedmodel-graph"

    def __init__(self, path: Path, tags: list[str], signature_name: str | None, reason: str):
        tf = import_tf()
        self.path, self.reason = Path(path), reason
        self.tags, self.signature_name = list(tags), signature_name
        self.graph = tf.Graph()
        self.session = tf.compat.v1.Session(graph=self.graph)
        with self.graph.as_default(), stdout_to_stderr():
            meta = tf.compat.v1.saved_model.loader.load(self.session, self.tags, str(self.path))
        signature = _signature(meta.signature_def, signature_name, path)
        self.inputs, self.feeds, self.fetches = [], {}, {}
        for key in sorted(signature.inputs):
            info = signature.inputs[key]
            if not info.name:
                raise InputError(f"{path}: signature input {key!r} is not a dense tensor",
                                 hint="sparse and ragged inputs are not supported")
            tensor = self.graph.get_tensor_by_name(info.name)
            self.inputs.append(_spec(key, tensor))
            self.feeds[key] = info.name
        self.outputs = sorted(signature.outputs)
        self.output_specs = []
        for key in self.outputs:
            tensor = self.graph.get_tensor_by_name(signature.outputs[key].name)
            self.output_specs.append(_spec(key, tensor))
            self.fetches[key] = tensor.name

    def concrete(self):
        raise ConversionError(f"{self.path} loads only as a TensorFlow 1 style graph ({self.reason}); "
                              "coremltools needs it to load in TensorFlow 2",
                              hint="re-export the model with TensorFlow 2 (model.export() or tf.saved_model.save)")

    def frozen_graph(self):
        """The serving graph with its variables folded into constants."""
        tf = import_tf()
        keep = [name.split(":")[0] for name in self.fetches.values()]
        with self.graph.as_default(), stdout_to_stderr():
            return tf.compat.v1.graph_util.convert_variables_to_constants(
                self.session, self.graph.as_graph_def(), keep)

    def run(self, feed: dict) -> dict:
        with stdout_to_stderr():
            values = self.session.run(self.fetches, {self.feeds[k]: feed[k] for k in self.feeds})
        return {k: v for k, v in values.items()}


# --- a conversion step's input ---


def step_serving(source) -> ServingFunction:
    """A step input's serving function (its Source's model, loaded once): named inputs
    in, a dict of named outputs out."""
    model = source.model
    return model if isinstance(model, ServingFunction) else keras_function(model)


# --- predictors, for verification ---


def serving_predictor(serving: ServingFunction):
    import numpy as np

    from mlconvert.predict import Predictor, named_inputs

    class ServingPredictor(Predictor):
        kind = "neural-network"

        def __init__(self):
            self.serving = serving
            first = serving.inputs[0]["shape"] if len(serving.inputs) == 1 else None
            if first and len(first) == 2 and isinstance(first[-1], int):
                self.n_features = first[-1]

        def input_specs(self):
            return [dict(spec) for spec in serving.inputs]

        def output_specs(self) -> list[dict]:
            return [dict(spec) for spec in serving.output_specs]

        def predict(self, X):
            feed = named_inputs(X, serving.inputs)
            return serving.run({s["name"]: np.asarray(feed[s["name"]]).astype(
                object if s["dtype"] == "string" else s["dtype"]) for s in serving.inputs})

    return ServingPredictor()


def keras_predictor(model):
    return serving_predictor(keras_function(model))


def keras_file_predictor(load, path: Path, options: dict):
    """A Keras file's predictor: `load` is its format's loader, given the loading options."""
    return keras_predictor(load(path, trust=bool(options.get("trust")), architecture=options.get("architecture"),
                                custom_objects=options.get("custom_objects")))
