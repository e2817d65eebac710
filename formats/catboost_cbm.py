"""CatBoost's binary model format (.cbm, starts with "CBM1").

The body is a FlatBuffers model: the header is checked here, the details come from
CatBoost itself (parsing a .cbm runs no code from the file).
"""
from __future__ import annotations

import json
import re
import struct
from pathlib import Path

from mlconvert import probe
from mlconvert.errors import InputError
from mlconvert.formats import Format, register_format

MAGIC = b"CBM1"
CLASSIFIER_LOSSES = ("Logloss", "CrossEntropy", "MultiClass", "MultiClassOneVsAll")


def sniff(head: bytes, path: Path) -> bool:
    return head.startswith(MAGIC)


def _check_size(path: Path) -> int:
    """The body size the header promises, checked against the file's size (8 bytes read)."""
    with open(path, "rb") as fh:
        data = fh.read(8)
    size = Path(path).stat().st_size
    if len(data) < 8:
        raise InputError(f"{path} is a truncated CatBoost model ({size} bytes)")
    (body,) = struct.unpack("<I", data[4:8])
    if 8 + body > size:
        raise InputError(
            f"{path} is a truncated CatBoost model: header promises {body} bytes, file has {size - 8}",
            hint="copy or download the file again",
        )
    return body


def loss_function(model) -> str:
    """The training loss; models from CatBoost < 1.0 lack what get_all_params() needs."""
    loss = (model.get_params() or {}).get("loss_function")
    if not loss:
        try:
            loss = (model.get_all_params() or {}).get("loss_function", "")
        except Exception:  # CatBoostError from old metadata: fall back to the recorded params
            params = dict(model.get_metadata() or {}).get("params", "{}")
            loss = json.loads(params).get("loss_function", {}).get("type", "")
    return str(loss)


def load(path: Path, *, trust: bool = False, **options):
    """A CatBoostClassifier or CatBoostRegressor, chosen by the recorded loss; the file
    is loaded once."""
    _check_size(path)
    import catboost

    generic = catboost.CatBoost()
    try:
        generic.load_model(str(path), format="cbm")
    except catboost.CatBoostError as exc:
        raise InputError(f"CatBoost cannot load {path}: {exc}") from exc
    loss = loss_function(generic)
    cls = catboost.CatBoostClassifier if loss.startswith(CLASSIFIER_LOSSES) else catboost.CatBoostRegressor
    # The two classes add methods, not state, to a loaded model: the same model, re-classed.
    model = cls.__new__(cls)
    model.__dict__.update(generic.__dict__)
    return model


def describe(path: Path) -> dict:
    body = _check_size(path)
    out: dict = {"flavor": "catboost", "producer": "catboost", "details": {"body_bytes": body}}
    if not probe.has_module("catboost"):
        out["warnings"] = ["catboost is not installed: install it for the model's details"]
        return out
    model = load(path)
    loss = loss_function(model)
    out.update(
        kind="classifier" if loss.startswith(CLASSIFIER_LOSSES) else "regressor",
        n_features=len(model.feature_names_) if model.feature_names_ else None,
    )
    info = getattr(model, "get_metadata", lambda: {})()
    classes = list(getattr(model, "classes_", None) if getattr(model, "classes_", None) is not None else [])
    if classes:
        out["n_classes"] = len(classes)
    recorded = {k: v for k, v in dict(info or {}).items() if k.startswith("mlconvert.")}
    out["details"].update(
        metadata=recorded or None,
        loss_function=loss,
        trees=model.tree_count_,
        feature_names=list(model.feature_names_ or []) or None,
        categorical_features=list(model.get_cat_feature_indices()),
        text_features=list(getattr(model, "get_text_feature_indices", lambda: [])()),
    )
    build = dict(info).get("catboost_version_info", "") if info else ""
    release = re.search(r"release (\d+(?:\.\d+)+)", build)
    if release:
        out["producer_version"] = release.group(1)
    return out


def save(model, path: Path) -> None:
    model.save_model(str(path), format="cbm")


def stamp(path: Path, entries: dict[str, str]) -> None:
    """Provenance in the model's metadata map."""
    import catboost

    model = catboost.CatBoost()
    model.load_model(str(path))
    metadata = model.get_metadata()
    for key, value in entries.items():
        metadata[key] = value
    model.save_model(str(path))


def predictor(source, options: dict):
    from mlconvert.formats._sklearn_api import EstimatorPredictor

    return EstimatorPredictor(source.model)


register_format(
    Format(
        id="catboost",
        title="CatBoost model",
        extensions=(".cbm",),
        sniff=sniff,
        describe=describe,
        load=load,
        save=save,
        predictor=predictor,
        stamp=stamp,
        runtime="catboost",
        family="classic",
    )
)
