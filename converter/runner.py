"""Running a plan: each step in a scratch folder, re-planning around a step that fails.

A step that raises mlconvert's ConversionError (a converter library refused or failed,
wrapped by the edge) has failed: the runner records it and asks the planner for the
cheapest path without that edge. Anything else escaping a step is a bug in mlconvert
and propagates (exit 1).
"""
from __future__ import annotations

import time
from pathlib import Path

from mlconvert import formats, probe
from mlconvert.edges import Edge, StepContext
from mlconvert.errors import ConversionError, MlconvertError, NoPathError, Unsupported
from mlconvert.formats import Source
from mlconvert.planner import Plan, find_plan
from mlconvert.report import ConversionReport, StepRecord


class _StepFailed(Exception):
    def __init__(self, edge: Edge, message: str, unsupported: bool = False):
        super().__init__(message)
        self.edge, self.message, self.unsupported = edge, message, unsupported


def failure_summary(failed: dict[str, str]) -> str:
    """The failed steps' errors, each once (re-planned paths often fail for the same reason)."""
    if len(failed) == 1:
        name, message = next(iter(failed.items()))
        return f"{name}: {message}"
    by_message: dict[str, list[str]] = {}
    for name, message in failed.items():
        by_message.setdefault(message, []).append(name)
    reasons = "; ".join(f"{', '.join(names)}: {message}" for message, names in by_message.items())
    return f"every conversion path failed ({reasons})"


class Runner:
    """Runs plans for one conversion. Outputs of a prefix of steps already run in an
    earlier attempt are reused, and so is each intermediate model once loaded."""

    def __init__(self, source: Source, dst: Path, workdir: Path, options: dict, report: ConversionReport):
        self.source, self.dst, self.workdir = source, Path(dst), Path(workdir)
        self.options, self.report = options, report
        self.done: dict[tuple[str, ...], Source] = {}

    def run(self, target_format: str, via: str | None = None,
            rejected: dict[str, str] | None = None) -> tuple[Plan, Source]:
        """The plan that worked and its output, or ConversionError naming every failed step.
        `rejected` edges (e.g. whose output failed verification) are planned around."""
        failed: dict[str, str] = dict(rejected or {})
        unsupported: set[str] = set()  # failed steps that named what they cannot express
        while True:
            try:
                plan = find_plan(self.source.format.id, self.source.flavor, target_format, via=via, failed=failed)
            except MlconvertError as exc:
                if not failed:
                    raise
                # Every route refused the model for what it contains: that is "no path", not a crash.
                error = NoPathError if unsupported == set(failed) - set(rejected or {}) else ConversionError
                raise error(failure_summary(failed),
                            hint="run with -v for details; `mlconvert plan --explain` lists the edges",
                            details={"failed": failed}) from exc
            self.report.steps = []
            try:
                return plan, self._run_steps(plan)
            except _StepFailed as exc:
                failed[exc.edge.name] = exc.message
                if exc.unsupported:
                    unsupported.add(exc.edge.name)

    def _output_path(self, i: int, edge: Edge, last: bool) -> Path:
        if last:
            return self.workdir / self.dst.name
        extensions = formats.get(edge.target).extensions
        return self.workdir / f"step{i + 1}-{edge.name}{extensions[0] if extensions else ''}"

    def _run_steps(self, plan: Plan) -> Source:
        current = self.source
        for i, edge in enumerate(plan.steps):
            key = tuple(e.name for e in plan.steps[: i + 1])
            last = i == len(plan.steps) - 1
            record = StepRecord(edge.name, edge.source, edge.target, edge.library, probe.dist_version(edge.library),
                                edge.fidelity)
            if key in self.done and not last:
                record.status = "reused"
                self.report.steps.append(record)
                current = self.done[key]
                continue
            out = self._output_path(i, edge, last)
            ctx = StepContext(target_format=edge.target, workdir=self.workdir, options=self.options)
            started = time.perf_counter()
            unsupported = False
            try:
                details = edge.run(current, out, ctx)
            except ConversionError as exc:
                record.status, record.error = "failed", exc.message
                unsupported = isinstance(exc, Unsupported)
            record.seconds = round(time.perf_counter() - started, 3)
            if record.status != "failed" and not out.exists():
                record.status, record.error = "failed", "the step wrote no output"
            if record.status == "failed":
                self.report.failed_steps.append(record)
                raise _StepFailed(edge, record.error, unsupported)
            record.details = dict(details or {})
            # What the step did with the options given (float64 kept, float16 compute) beats the edge's generic note.
            record.fidelity = str(record.details.pop("fidelity", record.fidelity))
            self.report.steps.append(record)
            # mlconvert wrote this file itself: it is trusted; it loads with the source's options.
            current = Source(out, formats.get(edge.target), trust=True, options=self.source.options)
            self.done[key] = current
        return current
