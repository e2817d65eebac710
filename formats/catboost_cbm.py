"""CatBoost's binary model format (.cbm, starts with "CBM1").

The body is a FlatBuffers model (catboost/libs/model/flatbuffers/model.fbs): describing
reads it here, statically and with every offset checked, so a corrupt file cannot crash
CatBoost's native parser during `inspect`. Loading (conversion, verification) uses CatBoost.
"""
from __future__ import annotations

import json
import re
import struct
from pathlib import Path

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


class _FlatBuffer:
    """Just enough of FlatBuffers to read CatBoost's model core: tables, strings, vectors.
    Every offset is checked against the buffer (struct.error / ValueError when not)."""

    def __init__(self, buf: bytes):
        self.buf = buf

    def _u32(self, at: int) -> int:
        if not 0 <= at <= len(self.buf) - 4:
            raise ValueError(f"offset {at} outside the model")
        return struct.unpack_from("<I", self.buf, at)[0]

    def scalar(self, fmt: str, at: int):
        if not 0 <= at <= len(self.buf) - struct.calcsize(fmt):
            raise ValueError(f"offset {at} outside the model")
        return struct.unpack_from(fmt, self.buf, at)[0]

    def deref(self, at: int) -> int:
        return at + self._u32(at)

    def table(self, at: int) -> dict[int, int]:
        """{field index: where its value is} of the table at `at`."""
        vtable = at - self.scalar("<i", at)
        size = self.scalar("<H", vtable)
        if size < 4 or size % 2:
            raise ValueError("malformed vtable")
        fields = {}
        for i in range((size - 4) // 2):
            offset = self.scalar("<H", vtable + 4 + 2 * i)
            if offset:
                fields[i] = at + offset
        return fields

    def string(self, at: int) -> str:
        start = self.deref(at)
        n = self._u32(start)
        if start + 4 + n > len(self.buf):
            raise ValueError("string runs past the model")
        return self.buf[start + 4 : start + 4 + n].decode("utf-8", "replace")

    def vector(self, at: int, item_size: int = 4) -> tuple[int, int]:
        """(where the items start, how many) of a vector field."""
        start = self.deref(at)
        n = self._u32(start)
        if start + 4 + n * item_size > len(self.buf):
            raise ValueError("vector runs past the model")
        return start + 4, n

    def tables(self, at: int) -> list[dict[int, int]]:
        start, n = self.vector(at)
        return [self.table(self.deref(start + 4 * i)) for i in range(n)]


# Field numbers of model.fbs / features.fbs.
_CORE_TREES, _CORE_INFO = 1, 2
_TREES_APPROX_DIMENSION, _TREES_SIZES, _TREES_CAT, _TREES_FLOAT, _TREES_TEXT = 0, 2, 4, 5, 12
_FLOAT_FLAT_INDEX, _FLOAT_ID = 2, 4
_CAT_FLAT_INDEX, _CAT_ID = 1, 2


def read_core(path: Path) -> dict:
    """What the model core says: info map, tree count, features, approx dimension."""
    body = _check_size(path)
    with open(path, "rb") as fh:
        fh.seek(8)
        fb = _FlatBuffer(fh.read(body))
    try:
        core = fb.table(fb.deref(0))
        info = {}
        if _CORE_INFO in core:
            for pair in fb.tables(core[_CORE_INFO]):
                info[fb.string(pair[0])] = fb.string(pair[1])
        trees = fb.table(fb.deref(core[_CORE_TREES])) if _CORE_TREES in core else {}
        features: dict[int, tuple[str, str | None]] = {}  # flat index: (kind, name)
        for kind, field, index_field, id_field in (("float", _TREES_FLOAT, _FLOAT_FLAT_INDEX, _FLOAT_ID),
                                                    ("categorical", _TREES_CAT, _CAT_FLAT_INDEX, _CAT_ID),
                                                    ("text", _TREES_TEXT, _CAT_FLAT_INDEX, _CAT_ID)):
            if field in trees:
                for feature in fb.tables(trees[field]):
                    flat = fb.scalar("<i", feature[index_field]) if index_field in feature else -1
                    name = fb.string(feature[id_field]) if id_field in feature else None
                    features[flat] = (kind, name)
        return {
            "info": info,
            "trees": fb.vector(trees[_TREES_SIZES])[1] if _TREES_SIZES in trees else 0,
            "approx_dimension": fb.scalar("<i", trees[_TREES_APPROX_DIMENSION])
            if _TREES_APPROX_DIMENSION in trees else 1,
            "features": features,
        }
    except (ValueError, struct.error) as exc:
        raise InputError(f"{path} is not a readable CatBoost model: its model core is malformed ({exc})",
                         hint="the file is probably corrupt or truncated; copy or download it again") from None


def _json_field(info: dict, key: str) -> dict:
    try:
        value = json.loads(info.get(key) or "{}")
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _static_loss(info: dict) -> str:
    loss = _json_field(info, "params").get("loss_function")
    if isinstance(loss, dict):
        loss = loss.get("type")
    return loss if isinstance(loss, str) else ""


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
    core = read_core(path)
    info, features = core["info"], core["features"]
    loss = _static_loss(info)
    out: dict = {"flavor": "catboost", "producer": "catboost", "details": {"body_bytes": body}}
    classifier = loss.startswith(CLASSIFIER_LOSSES)
    out["kind"] = "classifier" if classifier else "regressor"
    flat = sorted(i for i in features if i >= 0)
    out["n_features"] = (flat[-1] + 1) if flat else None
    if classifier:
        params = _json_field(info, "class_params") or _json_field(info, "multiclass_params")
        names = params.get("class_names") or params.get("class_to_label")
        if isinstance(names, list) and names:
            out["n_classes"] = len(names)
        else:
            out["n_classes"] = max(core["approx_dimension"], 2)
    recorded = {k: v for k, v in info.items() if k.startswith("mlconvert.")}
    out["details"].update(
        metadata=recorded or None,
        loss_function=loss,
        trees=core["trees"],
        feature_names=[features.get(i, ("", None))[1] or str(i) for i in flat] or None,
        categorical_features=[i for i in flat if features[i][0] == "categorical"],
        text_features=[i for i in flat if features[i][0] == "text"],
    )
    release = re.search(r"release (\d+(?:\.\d+)+)", info.get("catboost_version_info", ""))
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


def probe_load(path: Path) -> None:
    """CatBoost's own load of the file, for a child process to try first."""
    model = load(path)  # an error here is the answer: the file cannot be loaded
    try:
        loss_function(model)
        model.get_metadata()
    except Exception:  # noqa: BLE001 - only crashes count after the load
        pass


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
        probe=probe_load,
        native="CatBoost",
    )
)
