"""Edges: one conversion step each, declared by the module of the converter library
that runs it with `register_edge(Edge(...))` at its bottom.

An edge names the flavors it accepts, what it requires, a cost and a fidelity note.
Whether it is usable here is decided without importing anything (see probe.py).
Module tops import only the standard library: the converter library is imported by
the step function, when the step runs.
"""
from __future__ import annotations

import contextlib
import importlib
import inspect
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Iterator

from mlconvert import plugins, probe
from mlconvert.formats._sklearn_api import n_features_of  # noqa: F401  (the edges' import of it)

if TYPE_CHECKING:
    from mlconvert.formats import Source

# Edge modules in mlconvert.edges, imported when the graph is first needed. A module
# that fails to import is a bug in mlconvert and fails loudly (exit 1).
_EDGE_MODULES = ("via_skl2onnx", "via_onnxmltools", "xgboost_native", "lightgbm_native", "catboost_native",
                 "via_tf2onnx", "keras_native", "via_coremltools", "translate_trees", "onnx_tools", "via_tflite",
                 "via_onnx2tf")


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


@dataclass(frozen=True)
class Tolerance:
    """A verification tolerance an edge declares for itself, and why."""

    atol: float
    rtol: float
    reason: str


@dataclass
class StepContext:
    """What a step gets besides its input and output."""

    target_format: str  # format id of the step's output
    workdir: Path
    options: dict[str, Any] = field(default_factory=dict)


# A step: (the input model, where to write the output, context) -> details for the report or None.
StepFunction = Callable[["Source", Path, StepContext], "dict | None"]


@dataclass(frozen=True)
class Edge:
    name: str  # unique, e.g. "skl2onnx"
    source: str  # format id
    target: str  # format id
    flavors: frozenset[str]  # source flavors accepted
    output_flavor: str
    run: StepFunction
    library: str  # distribution whose version the report records
    requires: tuple[Requirement, ...] = ()
    cost: float = 1.0
    fidelity: str = "lossless"
    tolerance: Tolerance | None = None
    # Looser tolerances for options that ask for lower precision, checked in order,
    # e.g. (("fp16", Tolerance(1e-2, 1e-2, "float16 compute")),).
    option_tolerances: tuple[tuple[str, Tolerance], ...] = ()
    notes: str = ""
    # What most likely explains a verification mismatch after this edge, unless the
    # named option was given (e.g. ("double", "--double keeps float64")).
    mismatch_hint: tuple[str, str] | None = None
    # The options of `convert` this step honours ("double", "opset", "fp16"); given to a
    # plan with no step that honours it, an option is refused as having no effect.
    options: tuple[str, ...] = ()

    def unavailable_reason(self) -> str | None:
        problems = [p for p in (r.problem() for r in self.requires) if p]
        return "; ".join(problems) or None

    def tolerance_for(self, options: dict | None) -> Tolerance | None:
        """The tolerance this edge declares for a run with these options."""
        for option, tolerance in self.option_tolerances:
            if (options or {}).get(option):
                return tolerance
        return self.tolerance

    def accepts(self, flavor: str) -> bool:
        return flavor in self.flavors

    def to_dict(self) -> dict:
        reason = self.unavailable_reason()
        return {"edge": self.name, "from": self.source, "to": self.target, "library": self.library,
                "flavors": sorted(self.flavors), "fidelity": self.fidelity,
                "available": reason is None, "reason": reason or ""}


_EDGES: dict[str, Edge] = {}
_loaded = False


def _check(edge: Edge) -> None:
    """Refuse an edge whose step cannot be called as (source, dst, ctx): found at
    registration, not when a user's conversion reaches it."""
    if not callable(edge.run):
        raise TypeError(f"edge {edge.name!r}: run must be the step function, got {edge.run!r}")
    try:
        inspect.signature(edge.run).bind(None, None, None)
    except TypeError as exc:
        raise TypeError(f"edge {edge.name!r}: run must take (source, dst, ctx): {exc}") from None
    if not edge.flavors:
        raise TypeError(f"edge {edge.name!r} accepts no flavor")


def register_edge(edge: Edge) -> None:
    """Add an edge. A second edge with the same name is a bug, never a silent override."""
    _check(edge)
    if edge.name in _EDGES:
        raise ValueError(f"edge {edge.name!r} is already registered")
    _EDGES[edge.name] = edge


@contextlib.contextmanager
def registered_edge(edge: Edge) -> Iterator[Edge]:
    """An edge registered for the duration of a block (for tests and plugins' tests)."""
    all_edges()
    register_edge(edge)
    try:
        yield edge
    finally:
        _EDGES.pop(edge.name, None)


def all_edges() -> tuple[Edge, ...]:
    """Every registered edge, by name (a read-only view)."""
    global _loaded
    if not _loaded:
        _loaded = True
        for name in _EDGE_MODULES:
            importlib.import_module(f"mlconvert.edges.{name}")
        plugins.load()
    return tuple(sorted(_EDGES.values(), key=lambda e: e.name))


# --- helpers shared by the step functions ---


def resave(source: Source, dst: Path, ctx: StepContext) -> None:
    """A library's own save: the input as its format loaded it, saved by the target's."""
    from mlconvert import formats
    from mlconvert.errors import ConversionError

    target = formats.get(ctx.target_format)
    model = source.model
    try:
        target.save(model, dst)
    except (OSError, ValueError, TypeError, RuntimeError) as exc:  # the library's own save refused
        raise ConversionError(f"{type(model).__name__} could not be saved as {target.title}: "
                              f"{type(exc).__name__}: {exc}") from exc
