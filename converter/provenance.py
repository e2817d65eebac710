"""Provenance written into outputs that can hold it: where the model came from and
how it was checked. No timestamps or random names, so the same input gives the same bytes."""
from __future__ import annotations

import json
import re
import uuid
from pathlib import Path

PREFIX = "mlconvert."


def record(report, version: str) -> dict[str, str]:
    return {
        "version": version,
        "source": Path(report.source["path"]).name,
        "source_sha256": report.source["sha256"],
        "plan": " -> ".join([report.source["format"]] + [s.target for s in report.steps]),
        "steps": json.dumps([{"edge": s.edge, "library": s.library, "version": s.version} for s in report.steps],
                            sort_keys=True),
        "verification": json.dumps(report.verification, sort_keys=True),
    }


def stamp(path: Path, format_id: str, report, version: str) -> None:
    """Write the record into the output, where its format has a place for it."""
    entries = {PREFIX + key: value for key, value in record(report, version).items()}
    if format_id == "xgboost":  # Booster attributes travel in JSON and UBJSON files
        import xgboost

        booster = xgboost.Booster(model_file=str(path))
        booster.set_attr(**entries)
        booster.save_model(str(path))
    elif format_id == "catboost":  # the model's metadata map
        import catboost

        model = catboost.CatBoost()
        model.load_model(str(path))
        metadata = model.get_metadata()
        for key, value in entries.items():
            metadata[key] = value
        model.save_model(str(path))
    elif format_id == "coreml":
        _stamp_coreml(Path(path), entries)
    elif format_id == "onnx":
        import onnx

        model = onnx.load(str(path))
        # skl2onnx names the graph with a random uuid: name it after the source instead.
        if re.fullmatch(r"[0-9a-f]{32}", model.graph.name):
            model.graph.name = re.sub(r"\W", "_", Path(report.source["path"]).stem) or "model"
        kept = [p for p in model.metadata_props if not p.key.startswith(PREFIX)]
        del model.metadata_props[:]
        model.metadata_props.extend(kept)
        for key, value in record(report, version).items():
            entry = model.metadata_props.add()
            entry.key, entry.value = PREFIX + key, value
        onnx.save(model, str(path))


def _stamp_coreml(path: Path, entries: dict[str, str]) -> None:
    """Core ML user-defined metadata. The spec is re-encoded deterministically (protobuf
    map order otherwise follows the process's hash seed) and an .mlpackage's manifest
    gets item ids derived from the item paths instead of random UUIDs."""
    from coremltools.proto import Model_pb2

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


def read(description: dict) -> dict[str, str]:
    """The provenance a described file carries (ONNX metadata, XGBoost attributes,
    CatBoost metadata, Core ML user-defined metadata), as {key: value} without the prefix."""
    details = description.get("details") or {}
    places = [details.get(k) or {} for k in ("metadata_props", "attributes", "metadata")]
    places.append((details.get("metadata") or {}).get("userDefined") or {})  # Core ML
    found = {}
    for place in places:
        for key, value in place.items():
            if isinstance(key, str) and key.startswith(PREFIX):
                found[key[len(PREFIX):]] = value
    return found
