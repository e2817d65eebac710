"""Keras legacy HDF5 (.h5): the model's JSON config in root attributes plus weights.

describe reads attributes and dataset shapes with h5py; nothing is deserialised by
Keras, so no layer code (Lambda functions, custom objects) runs. The config summary
helpers here are shared with the .keras (v3 zip) format.
"""
from __future__ import annotations

import json
from pathlib import Path

from mlconvert.errors import InputError
from mlconvert.formats import Format, register_format

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# HDF5 allows a user block before the superblock; it is a power of two >= 512.
_USERBLOCK_OFFSETS = (0, 512, 1024, 2048)
_HINT_CORRUPT = "the HDF5 file looks truncated or corrupt; save or download the model again"
_MODEL_CLASSES = {"Sequential", "Functional", "Model"}


def sniff(head: bytes, path: Path) -> bool:
    return any(head[offset : offset + 8] == HDF5_SIGNATURE for offset in _USERBLOCK_OFFSETS)


# --------------------------------------------------------- config summary (shared)


def _dtype_name(dtype) -> str | None:
    """Keras 2 writes "float32"; Keras 3 a DTypePolicy dict."""
    if isinstance(dtype, str):
        return dtype
    if isinstance(dtype, dict):
        return _dtype_name((dtype.get("config") or {}).get("name"))
    return None


def _layers(model_config: dict) -> list[dict]:
    config = model_config.get("config")
    if isinstance(config, list):  # Keras 1 / 2.0 Sequential: the config *is* the layer list
        return [layer for layer in config if isinstance(layer, dict)]
    if isinstance(config, dict):
        return [layer for layer in config.get("layers") or [] if isinstance(layer, dict)]
    return []


def _layer_name(layer: dict) -> str | None:
    return layer.get("name") or (layer.get("config") or {}).get("name")


def _walk_layers(model_config: dict):
    """Every layer config, including those of models nested as layers."""
    for layer in _layers(model_config):
        yield layer
        if layer.get("class_name") in _MODEL_CLASSES or isinstance((layer.get("config") or {}).get("layers"), list):
            yield from _walk_layers(layer)


def _endpoint_names(spec) -> list[str]:
    """input_layers / output_layers: [[name, 0, 0], ...], in Keras 3 [name, 0, 0] or, for
    dict inputs/outputs, {key: [name, 0, 0]}."""
    if isinstance(spec, dict):
        return [n for value in spec.values() for n in _endpoint_names(value)]
    if not isinstance(spec, list) or not spec:
        return []
    if isinstance(spec[0], str):
        return [spec[0]]
    return [entry[0] for entry in spec if isinstance(entry, list) and entry and isinstance(entry[0], str)]


def _shape(value) -> list | None:
    if isinstance(value, (list, tuple)):
        return [v if isinstance(v, int) else None for v in value]
    return None


def summarize_config(model_config: dict) -> dict:
    """Facts from a Keras model config (model.to_json()), without building the model."""
    layers = _layers(model_config)
    config = model_config.get("config") if isinstance(model_config.get("config"), dict) else {}
    by_name = {_layer_name(layer): layer for layer in layers}
    summary: dict = {"class_name": model_config.get("class_name"), "layer_count": len(layers)}
    if config.get("name"):
        summary["name"] = config["name"]
    summary["layer_types"] = {}
    for layer in layers:
        cls = layer.get("class_name", "?")
        summary["layer_types"][cls] = summary["layer_types"].get(cls, 0) + 1

    # Inputs: InputLayer configs (named by input_layers for functional models), else
    # the first layer's batch_input_shape, else Keras 3's build_config.
    inputs = []
    input_names = _endpoint_names(config.get("input_layers"))
    candidates = [by_name[n] for n in input_names if n in by_name] or [
        layer for layer in layers if layer.get("class_name") == "InputLayer"
    ]
    for layer in candidates:
        cfg = layer.get("config") or {}
        shape = _shape(cfg.get("batch_shape", cfg.get("batch_input_shape")))
        inputs.append({"name": _layer_name(layer), "dtype": _dtype_name(cfg.get("dtype")) or "float32", "shape": shape})
    if not inputs and layers:
        cfg = layers[0].get("config") or {}
        shape = _shape(cfg.get("batch_input_shape", cfg.get("batch_shape")))
        if shape is None:
            shape = _shape((model_config.get("build_config") or {}).get("input_shape"))
        if shape is not None:
            inputs.append({"name": _layer_name(layers[0]), "dtype": _dtype_name(cfg.get("dtype")) or "float32", "shape": shape})
    summary["inputs"] = inputs

    output_names = _endpoint_names(config.get("output_layers"))
    out_layers = [by_name[n] for n in output_names if n in by_name] or layers[-1:]
    outputs = []
    for layer in out_layers:
        cfg = layer.get("config") or {}
        entry: dict = {"name": _layer_name(layer), "class_name": layer.get("class_name")}
        units = cfg.get("units")
        if isinstance(units, int):
            entry["units"] = units
            entry["shape"] = [None, units]
        activation = cfg.get("activation")
        if isinstance(activation, str):
            entry["activation"] = activation
        entry["dtype"] = _dtype_name(cfg.get("dtype")) or "float32"
        outputs.append(entry)
    summary["outputs"] = outputs

    lambdas, custom = [], []
    for layer in _walk_layers(model_config):
        if layer.get("class_name") == "Lambda":
            lambdas.append(_layer_name(layer))
        registered = layer.get("registered_name")
        module = layer.get("module")
        if (isinstance(registered, str) and ">" in registered) or (
            isinstance(module, str) and not module.startswith(("keras", "tf_keras"))
        ):
            custom.append(_layer_name(layer))
    summary["lambda_layers"] = lambdas
    if custom:
        summary["custom_layers"] = custom
    return summary


def describe_from_config(model_config: dict) -> dict:
    """The describe() dict parts that come from the model config."""
    summary = summarize_config(model_config)
    result: dict = {"flavor": "keras", "kind": "neural-network"}
    inputs = summary["inputs"]
    if len(inputs) == 1 and inputs[0]["shape"] and len(inputs[0]["shape"]) == 2:
        last = inputs[0]["shape"][-1]
        if isinstance(last, int):
            result["n_features"] = last
    outputs = summary["outputs"]
    if len(outputs) == 1 and outputs[0].get("activation") == "softmax" and outputs[0].get("units", 0) > 1:
        result["n_classes"] = outputs[0]["units"]
    result["inputs"] = inputs
    result["outputs"] = [
        {"name": o["name"], "dtype": o["dtype"], "shape": o.get("shape")} for o in outputs
    ]
    details = {k: v for k, v in summary.items() if k not in ("inputs", "outputs")}
    details["output_layers"] = outputs
    result["details"] = details
    warnings = []
    if summary["lambda_layers"]:
        warnings.append(
            "Lambda layers hold Python code ("
            + ", ".join(map(str, summary["lambda_layers"]))
            + "); loading them needs safe_mode=False, which mlconvert only does with --trust"
        )
    if summary.get("custom_layers"):
        warnings.append(
            "custom layers (" + ", ".join(map(str, summary["custom_layers"])) + ") need their Python classes to load"
        )
    if warnings:
        result["warnings"] = warnings
    return result


# ------------------------------------------------------------------------ describe


def _text(value) -> str | None:
    """An HDF5 string attribute: str, bytes or a numpy scalar/array of one of them."""
    if value is None or isinstance(value, str):
        return value
    if isinstance(value, bytes):
        return value.decode("utf-8", "replace")
    if hasattr(value, "tolist"):
        value = value.tolist()
        if isinstance(value, list):
            return _text(value[0]) if len(value) == 1 else None
        return _text(value)
    return str(value)


def _names(value) -> list[str]:
    if value is None:
        return []
    return [_text(v) for v in (value.tolist() if hasattr(value, "tolist") else value)]


def _count_parameters(group) -> int:
    total = 0

    def visit(_name, obj):
        nonlocal total
        shape = getattr(obj, "shape", None)
        if shape is not None:
            size = 1
            for dim in shape:
                size *= dim
            total += size

    group.visititems(visit)
    return total


def _describe_h5(h5py, path: Path) -> dict:
    with h5py.File(path, "r") as handle:
        attrs = handle.attrs
        keras_version = _text(attrs.get("keras_version"))
        backend = _text(attrs.get("backend"))
        raw_config = _text(attrs.get("model_config"))
        weights_group = handle["model_weights"] if "model_weights" in handle else handle
        layer_names = _names(attrs.get("layer_names"))
        if not layer_names and "model_weights" in handle:
            layer_names = _names(handle["model_weights"].attrs.get("layer_names"))
            keras_version = keras_version or _text(handle["model_weights"].attrs.get("keras_version"))
        keras3_weights = raw_config is None and "layers" in handle and "vars" in handle
        parameters = _count_parameters(weights_group)
        has_training = "training_config" in attrs
        has_optimizer = "optimizer_weights" in handle

    if raw_config is not None:
        try:
            model_config = json.loads(raw_config)
        except ValueError as exc:
            raise InputError(f"{path}: the model_config attribute is not valid JSON ({exc})", hint=_HINT_CORRUPT) from exc
        if not isinstance(model_config, dict):
            raise InputError(f"{path}: the model_config attribute is not a JSON object", hint=_HINT_CORRUPT)
        result = describe_from_config(model_config)
    elif layer_names or keras3_weights:
        result = {
            "flavor": "keras",
            "kind": "neural-network",
            "details": {"weights_only": True, "layer_names": layer_names},
            "warnings": [
                "this file holds weights only: the architecture JSON (model_config) is missing, "
                "so converting it needs `--architecture FILE.json` (the model.to_json() output)"
            ],
        }
        if keras3_weights:
            result["details"]["keras3_weights_file"] = True
    else:
        raise InputError(
            f"{path} is an HDF5 file but holds no Keras model: no model_config and no layer_names attribute",
            hint="it may be a data file rather than a model; Keras .h5 models are written by model.save('x.h5')",
        )
    details = result["details"]
    if keras_version:
        result["producer"] = "keras"
        result["producer_version"] = keras_version
        details["keras_version"] = keras_version
    if backend:
        details["backend"] = backend
    details["parameters"] = parameters
    details["training_config"] = has_training
    details["optimizer_weights"] = has_optimizer
    if not result.get("warnings"):
        result.pop("warnings", None)
    return result


def describe(path: Path) -> dict:
    path = Path(path)
    try:
        with open(path, "rb") as fh:
            head = fh.read(4096)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}", hint="check the path and permissions") from exc
    if not sniff(head, path):
        raise InputError(f"{path} is not an HDF5 file (no HDF5 signature at its start)", hint=_HINT_CORRUPT)
    try:
        import h5py
    except ImportError:
        return {
            "flavor": "keras",
            "kind": "neural-network",
            "details": {},
            "warnings": ["h5py is not installed, so the layers inside were not read; pip install h5py for details"],
        }
    try:
        return _describe_h5(h5py, path)
    except InputError:
        raise
    except (OSError, KeyError, ValueError, TypeError, RuntimeError) as exc:
        # h5py reports truncation as OSError ("truncated file: eof = ...").
        raise InputError(f"{path} is not a readable HDF5 model: {exc}", hint=_HINT_CORRUPT) from exc


def load(path: Path, *, trust: bool = False, architecture=None, custom_objects=None, **options):
    """A Keras model, loaded with safe_mode: Lambda and custom layers are refused
    unless `trust`; a weights-only file needs `architecture` (the model.to_json() file)."""
    from mlconvert.tf_models import load_keras

    return load_keras(path, describe(path), trust=trust, architecture=architecture, custom_objects=custom_objects)


def predictor(source, options: dict):
    from mlconvert.tf_models import keras_predictor

    return keras_predictor(source.model)


register_format(
    Format(
        id="keras-h5",
        title="Keras HDF5",
        extensions=(".h5", ".hdf5", ".keras.h5"),
        sniff=sniff,
        describe=describe,
        load=load,
        predictor=predictor,
        runtime="keras",
        family="tf",
        notes="legacy Keras HDF5 (model.save('x.h5')); weights-only files need the architecture JSON",
    )
)
