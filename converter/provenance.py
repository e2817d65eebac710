"""Provenance written into outputs that can hold it: where the model came from and
how it was checked. No timestamps or random names, so the same input gives the same bytes."""
from __future__ import annotations

import json
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


def entries(report, version: str) -> dict[str, str]:
    """The record as the {key: value} pairs a format's stamp() writes."""
    return {PREFIX + key: value for key, value in record(report, version).items()}


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
