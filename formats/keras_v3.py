"""Keras 3 native format (.keras): a zip with config.json, metadata.json and
model.weights.h5. describe reads the two JSON members only; weights are never
loaded and no layer code runs.
"""
from __future__ import annotations

import json
import zipfile
from pathlib import Path

from mlconvert.errors import InputError
from mlconvert.formats import Format, register_format
from mlconvert.formats._keras_config import describe_from_config

ZIP_SIGNATURE = b"PK\x03\x04"
# A config.json or metadata.json larger than this is not something Keras wrote.
_MAX_JSON_BYTES = 64 * 1024 * 1024
_HINT_CORRUPT = "the .keras archive looks truncated or corrupt; save or download the model again"


def sniff(head: bytes, path: Path) -> bool:
    if not head.startswith(ZIP_SIGNATURE):
        return False
    try:
        with zipfile.ZipFile(path) as archive:
            names = set(archive.namelist())
    except Exception:  # a sniffer answers yes or no; a broken zip is a no
        return False
    return "config.json" in names and ("metadata.json" in names or "model.weights.h5" in names)


def _read_json(archive: zipfile.ZipFile, name: str):
    info = archive.getinfo(name)
    if info.file_size > _MAX_JSON_BYTES:
        raise InputError(f"{name} in the archive claims {info.file_size} bytes; refusing to read it", hint=_HINT_CORRUPT)
    return json.loads(archive.read(info).decode("utf-8"))


def describe(path: Path) -> dict:
    path = Path(path)
    try:
        with zipfile.ZipFile(path) as archive:
            infos = {info.filename: info for info in archive.infolist()}
            if "config.json" not in infos:
                raise InputError(
                    f"{path} is a zip archive but not a Keras model: it has no config.json",
                    hint="a .keras file is written by model.save('x.keras') (Keras 3)",
                )
            config = _read_json(archive, "config.json")
            metadata = _read_json(archive, "metadata.json") if "metadata.json" in infos else {}
    except InputError:
        raise
    except zipfile.BadZipFile as exc:
        raise InputError(f"{path} is not a readable zip archive: {exc}", hint=_HINT_CORRUPT) from exc
    except (OSError, EOFError, NotImplementedError, RuntimeError) as exc:
        # RuntimeError: encrypted member; NotImplementedError: unknown compression.
        raise InputError(f"cannot read {path}: {exc}", hint=_HINT_CORRUPT) from exc
    except (ValueError, UnicodeDecodeError) as exc:
        raise InputError(f"{path}: config.json or metadata.json is not valid JSON ({exc})", hint=_HINT_CORRUPT) from exc
    if not isinstance(config, dict):
        raise InputError(f"{path}: config.json is not a JSON object", hint=_HINT_CORRUPT)
    if not isinstance(metadata, dict):
        metadata = {}

    result = describe_from_config(config)
    details = result["details"]
    keras_version = metadata.get("keras_version")
    if isinstance(keras_version, str):
        result["producer"] = "keras"
        result["producer_version"] = keras_version
        details["keras_version"] = keras_version
    if isinstance(metadata.get("date_saved"), str):
        details["date_saved"] = metadata["date_saved"]
    details["members"] = sorted(infos)
    weights = [n for n in infos if n.startswith("model.weights")]
    details["weights_bytes"] = sum(infos[n].file_size for n in weights)
    if not weights:
        result.setdefault("warnings", []).append("the archive has no model.weights.* member: the weights are missing")
    if "compile_config" in config:
        details["compiled"] = True
    return result


def load(path: Path, *, trust: bool = False, architecture=None, custom_objects=None, **options):
    """A Keras 3 model, loaded with safe_mode: Lambda and custom layers are refused unless `trust`."""
    from mlconvert.formats._tensorflow import load_keras

    return load_keras(path, describe(path), trust=trust, custom_objects=custom_objects)


def predictor(source, options: dict):
    from mlconvert.formats._tensorflow import keras_predictor

    return keras_predictor(source.model)


register_format(
    Format(
        id="keras",
        title="Keras 3 (.keras)",
        extensions=(".keras",),
        sniff=sniff,
        describe=describe,
        load=load,
        predictor=predictor,
        runtime="keras",
        family="tf",
        notes="zip with config.json, metadata.json and model.weights.h5",
    )
)
