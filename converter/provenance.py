"""Provenance written into outputs that can hold it: where the model came from and
how it was checked. No timestamps or random names, so the same input gives the same bytes."""
from __future__ import annotations

import json
import re
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


def read(description: dict) -> dict[str, str]:
    """The provenance a described file carries (ONNX metadata, XGBoost attributes,
    CatBoost metadata), as {key: value} without the prefix."""
    details = description.get("details") or {}
    found = {}
    for source in ("metadata_props", "attributes", "metadata", "user_defined"):
        for key, value in (details.get(source) or {}).items():
            if isinstance(key, str) and key.startswith(PREFIX):
                found[key[len(PREFIX):]] = value
    return found
