"""Keras legacy HDF5 (.h5): the model's JSON config in root attributes plus weights.

describe reads attributes and dataset shapes with h5py; nothing is deserialised by
Keras, so no layer code (Lambda functions, custom objects) runs. The model config is
summarised by formats/_keras_config.py, shared with the .keras (v3 zip) format.
"""
from __future__ import annotations

import json
from pathlib import Path

from mlconvert.errors import InputError
from mlconvert.formats import Format, register_format
from mlconvert.formats._keras_config import describe_from_config

HDF5_SIGNATURE = b"\x89HDF\r\n\x1a\n"
# HDF5 allows a user block before the superblock; it is a power of two >= 512.
_USERBLOCK_OFFSETS = (0, 512, 1024, 2048)
_HINT_CORRUPT = "the HDF5 file looks truncated or corrupt; save or download the model again"


def sniff(head: bytes, path: Path) -> bool:
    return any(head[offset : offset + 8] == HDF5_SIGNATURE for offset in _USERBLOCK_OFFSETS)


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
        import h5py  # noqa: F401  (only whether it is there: the child reads the file)
    except ImportError:
        return {
            "flavor": "keras",
            "kind": "neural-network",
            "details": {},
            "warnings": ["h5py is not installed, so the layers inside were not read; pip install h5py for details"],
        }
    from mlconvert import isolation

    # The HDF5 library parses the file in C: a corrupt file can hang or crash it, so it
    # reads the file in a limited child process.
    return isolation.run("HDF5 (h5py)", read_h5, path, isolation.Limits.for_file(path).scaled(cpu=0.25))


def read_h5(path: Path) -> dict:
    """The description, read with h5py."""
    import h5py

    try:
        return _describe_h5(h5py, path)
    except InputError:
        raise
    except Exception as exc:  # h5py reports truncation as OSError ("truncated file: eof = ..."), and worse
        raise InputError(f"{path} is not a readable HDF5 model: {exc}", hint=_HINT_CORRUPT) from exc


def load(path: Path, *, trust: bool = False, architecture=None, custom_objects=None, **options):
    """A Keras model, loaded with safe_mode: Lambda and custom layers are refused
    unless `trust`; a weights-only file needs `architecture` (the model.to_json() file)."""
    from mlconvert.formats._tensorflow import load_keras

    return load_keras(path, describe(path), trust=trust, architecture=architecture, custom_objects=custom_objects)


def predictor(source, options: dict):
    from mlconvert.formats._tensorflow import keras_predictor

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
