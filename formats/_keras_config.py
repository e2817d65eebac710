"""Keras model configs (model.to_json(), the model_config of an .h5, config.json of a
.keras): facts read from the JSON without building the model, so no layer code runs.

Used by the keras-h5 and keras formats' describe and by the TensorFlow runtime
(formats/_tensorflow.py) when it decides which layers need --custom-objects or --trust.
"""
from __future__ import annotations

_MODEL_CLASSES = {"Sequential", "Functional", "Model"}


def is_architecture_json(head: bytes) -> bool:
    """Whether a file's first bytes are a Keras model.to_json(): an architecture without weights."""
    import re

    text = head.lstrip()
    if not text.startswith(b"{") or b'"learner"' in text:  # an XGBoost JSON model has "learner"
        return False
    model_class = re.search(rb'"class_name"\s*:\s*"(Sequential|Functional|Model)"', text)
    return bool(model_class) and b'"config"' in text and (b'"layers"' in text or b'"keras_version"' in text)


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


def layer_name(layer: dict) -> str | None:
    return layer.get("name") or (layer.get("config") or {}).get("name")


def walk_layers(model_config: dict):
    """Every layer config, including those of models nested as layers."""
    for layer in _layers(model_config):
        yield layer
        if layer.get("class_name") in _MODEL_CLASSES or isinstance((layer.get("config") or {}).get("layers"), list):
            yield from walk_layers(layer)


def is_custom_layer(layer: dict) -> bool:
    """A layer whose class is not Keras's own: registered as "package>Name", or from another module."""
    registered = layer.get("registered_name")
    module = layer.get("module")
    return (isinstance(registered, str) and ">" in registered) or (
        isinstance(module, str) and not module.startswith(("keras", "tf_keras")))


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
    by_name = {layer_name(layer): layer for layer in layers}
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
        inputs.append({"name": layer_name(layer), "dtype": _dtype_name(cfg.get("dtype")) or "float32", "shape": shape})
    if not inputs and layers:
        cfg = layers[0].get("config") or {}
        shape = _shape(cfg.get("batch_input_shape", cfg.get("batch_shape")))
        if shape is None:
            shape = _shape((model_config.get("build_config") or {}).get("input_shape"))
        if shape is not None:
            inputs.append({"name": layer_name(layers[0]), "dtype": _dtype_name(cfg.get("dtype")) or "float32", "shape": shape})
    summary["inputs"] = inputs

    output_names = _endpoint_names(config.get("output_layers"))
    out_layers = [by_name[n] for n in output_names if n in by_name] or layers[-1:]
    outputs = []
    for layer in out_layers:
        cfg = layer.get("config") or {}
        entry: dict = {"name": layer_name(layer), "class_name": layer.get("class_name")}
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
    for layer in walk_layers(model_config):
        if layer.get("class_name") == "Lambda":
            lambdas.append(layer_name(layer))
        if is_custom_layer(layer):
            custom.append(layer_name(layer))
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
