"""Reports: what happened, as data. The CLI renders them; `--json` prints `to_dict()` as the
envelope's "result" (docs/schema/mlconvert-output.schema.json). Field names are shared
across commands: an edge is "edge" with "from" and "to", a format is "id", whether
something can be used here is "available" (bool) with its "reason"."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class StepRecord:
    edge: str
    source: str
    target: str
    library: str
    version: str | None
    fidelity: str
    seconds: float = 0.0
    status: str = "ok"  # "ok" | "failed" | "reused"
    error: str = ""
    details: dict = field(default_factory=dict)  # what the step reported (opset, thresholds rounded...)

    def to_dict(self) -> dict:
        return {"edge": self.edge, "from": self.source, "to": self.target, "library": self.library,
                "version": self.version, "fidelity": self.fidelity, "seconds": self.seconds, "status": self.status,
                "error": self.error, "details": self.details}


@dataclass
class ConversionReport:
    source: dict
    target: dict
    steps: list[StepRecord] = field(default_factory=list)
    failed_steps: list[StepRecord] = field(default_factory=list)
    verification: dict | None = None
    written: bool = False
    seconds: float = 0.0

    def to_dict(self) -> dict:
        return {
            "source": self.source,
            "target": self.target,
            "steps": [s.to_dict() for s in self.steps],
            "failed_steps": [s.to_dict() for s in self.failed_steps],
            "verification": self.verification,
            "written": self.written,
            "seconds": round(self.seconds, 3),
        }


@dataclass
class InspectReport:
    path: str
    format: str
    title: str
    size: int
    sha256: str
    description: dict

    def to_dict(self) -> dict:
        return {"path": self.path, "format": self.format, "title": self.title, "size": self.size,
                "sha256": self.sha256, **self.description}
