"""The format graph: edges (one conversion step each) and their registry.

An edge is declared once, by the module of the converter library that runs it, with
the flavors it accepts, what it requires, a cost and a fidelity note. Whether it is
usable here is decided without importing anything (see probe.py).
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

from mlconvert import plugins, probe

# Edge modules in mlconvert.edges, imported when the graph is first needed.
_EDGE_MODULES = ("via_skl2onnx", "via_onnxmltools", "xgboost_native", "lightgbm_native", "catboost_native",
                 "via_tf2onnx", "keras_native", "via_coremltools")


@dataclass(frozen=True)
class Requirement:
    """A distribution (with an optional version range) or an executable an edge needs."""

    dist: str
    minimum: str | None = None
    below: str | None = None
    extra: str = "classic"  # the mlconvert extra that installs it
    program: bool = False  # an executable on PATH rather than a Python distribution

    def problem(self) -> str | None:
        """Why this requirement is not met here, or None when it is."""
        if self.program:
            return None if probe.which(self.dist) else f"`{self.dist}` not found on PATH"
        version = probe.dist_version(self.dist)
        if version is None:
            return f"{self.dist} is not installed (pip install 'mlconvert[{self.extra}]')"
        if not probe.version_in_range(version, self.minimum, self.below):
            wanted = " and ".join(
                filter(None, [self.minimum and f">= {self.minimum}", self.below and f"< {self.below}"])
            )
            return f"{self.dist} {wanted} is needed, found {version}"
        return None

    def __str__(self) -> str:
        spec = ",".join(filter(None, [self.minimum and f">={self.minimum}", self.below and f"<{self.below}"]))
        return f"{self.dist}{spec}"


@dataclass(frozen=True)
class Tolerance:
    """A verification tolerance an edge declares for itself, and why."""

    atol: float
    rtol: float
    reason: str


@dataclass
class StepContext:
    """What a step gets besides its input and output paths."""

    source_format: str  # format id of the step's input
    options: dict[str, Any]
    workdir: Path
    trust: bool = False
    target_format: str = ""  # format id of the step's output


@dataclass(frozen=True)
class Edge:
    name: str  # unique, e.g. "skl2onnx"
    source: str  # format id
    target: str  # format id
    flavors: frozenset[str]  # source flavors accepted
    output_flavor: str
    run: str  # "module:function", imported only when the step runs
    library: str  # distribution whose version the report records
    requires: tuple[Requirement, ...] = ()
    cost: float = 1.0
    fidelity: str = "lossless"
    tolerance: Tolerance | None = None
    notes: str = ""

    def unavailable_reason(self) -> str | None:
        problems = [p for p in (r.problem() for r in self.requires) if p]
        return "; ".join(problems) or None

    def accepts(self, flavor: str) -> bool:
        return flavor in self.flavors

    def function(self) -> Callable[[Path, Path, StepContext], Any]:
        module, _, func = self.run.partition(":")
        return getattr(importlib.import_module(module), func)


_EDGES: dict[str, Edge] = {}
BROKEN_MODULES: dict[str, str] = {}  # edge modules that failed to import, and why (doctor shows them)
_loaded = False


def register_edge(edge: Edge) -> None:
    """Add an edge. A second edge with the same name is a bug, never a silent override."""
    if edge.name in _EDGES:
        raise ValueError(f"edge {edge.name!r} is already registered")
    _EDGES[edge.name] = edge


def all_edges() -> list[Edge]:
    global _loaded
    if not _loaded:
        _loaded = True
        for name in _EDGE_MODULES:
            try:
                importlib.import_module(f"mlconvert.edges.{name}")
            except Exception as exc:  # one broken module costs its edges, not the whole tool
                BROKEN_MODULES[name] = f"{type(exc).__name__}: {exc}"
        plugins.load()
    return sorted(_EDGES.values(), key=lambda e: e.name)
