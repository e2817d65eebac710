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
        "source": text(Path(report.source["path"]).name),
        "source_sha256": report.source["sha256"],
        "plan": " -> ".join([report.source["format"]] + [s.target for s in report.steps]),
        "steps": json.dumps([{"edge": s.edge, "library": s.library, "version": s.version} for s in report.steps],
                            sort_keys=True),
        "verification": json.dumps(report.verification, sort_keys=True),
    }


def text(value: str) -> str:
    """A name as UTF-8 can store it: bytes of a file name that are not UTF-8 become U+FFFD."""
    return re.sub("[\ud800-\udfff]", "\ufffd", str(value))


def entries(report, version: str) -> dict[str, str]:
    """The record as the {key: value} pairs a format's stamp() writes."""
    return {PREFIX + key: value for key, value in record(report, version).items()}


def read(description: dict) -> dict[str, str]:
    """The provenance a described file carries (ONNX metadata, XGBoost attributes,
    CatBoost metadata, Core ML user-defined metadata), as {key: value} without the prefix.
    The places come from the file, so anything but a {str: str} map is ignored."""
    details = description.get("details")
    details = details if isinstance(details, dict) else {}
    places = [details.get(k) for k in ("metadata_props", "attributes", "metadata")]
    metadata = details.get("metadata")
    places.append(metadata.get("userDefined") if isinstance(metadata, dict) else None)  # Core ML
    found = {}
    for place in places:
        if not isinstance(place, dict):
            continue
        for key, value in place.items():
            if isinstance(key, str) and key.startswith(PREFIX) and isinstance(value, str):
                found[key[len(PREFIX):]] = value
    return found


def recorded_verification(description: dict) -> dict:
    """The verification record a converted file carries, or {} when it has none or it
    is not a JSON object (the file may have been edited)."""
    try:
        recorded = json.loads(read(description).get("verification") or "{}")
    except ValueError:
        return {}
    if not isinstance(recorded, dict):
        return {}
    return {k: v for k, v in recorded.items()
            if k not in ("atol", "rtol") or (isinstance(v, (int, float)) and not isinstance(v, bool))}
