"""The Python API: convert, plan, inspect, verify, doctor. The CLI is a thin layer over it.

Every function returns a report object and raises the typed errors of errors.py.
"""
from __future__ import annotations

import json
import os
import platform
import shutil
import sys
import tempfile
import time
from pathlib import Path

from mlconvert import __version__, formats, plugins, probe
from mlconvert.errors import (ConversionError, InputError, MlconvertError, UnverifiedError, UntrustedInputError,
                              UsageError, VerificationError)
from mlconvert.graph import BROKEN_MODULES, Edge, StepContext, all_edges
from mlconvert.planner import Plan, find_plan
from mlconvert.report import ConversionReport, InspectReport, StepRecord, sha256_of, size_of


# --- identifying inputs and outputs ---


def identify(path: Path, declared: str | None = None, trust: bool = False) -> tuple[formats.Format, dict]:
    """(format, description) of an input; refuses untrusted pickles unless `trust`."""
    path = Path(path)
    fmt = formats.detect(path, declared)
    try:
        description = fmt.describe(path)
    except MlconvertError:
        raise
    except Exception as exc:  # a describe() that did not expect this file: still exit 3, not a traceback
        raise InputError(f"{path} could not be read as {fmt.title}: {exc}",
                         hint="the file may be corrupt; `mlconvert inspect -v` shows details") from exc
    untrusted = description.get("details", {}).get("untrusted") or []
    if untrusted and not trust:
        raise UntrustedInputError(
            f"{path} would import {len(untrusted)} global(s) outside the allow-list when loaded: "
            + ", ".join(untrusted),
            hint="loading it runs code from the file; check where it came from, then pass --trust to load it anyway",
            details={"untrusted": untrusted},
        )
    return fmt, description


def target_format(dst: Path, declared: str | None) -> formats.Format:
    if declared:
        return formats.get(declared)
    fmt = formats.by_extension(Path(dst))
    if fmt is None:
        raise UsageError(f"cannot tell the output format from {Path(dst).name!r}",
                         hint="use a known extension (.onnx, .pkl, .json, .ubj, .txt, .cbm, ...) or pass --to FORMAT")
    return fmt


def plan(src, dst, *, from_format: str | None = None, to_format: str | None = None, via: str | None = None,
         trust: bool = True) -> Plan:
    """The plan `convert` would follow, without running it. Planning never loads the model."""
    fmt, description = identify(Path(src), from_format, trust=trust)
    target = target_format(Path(dst), to_format)
    return find_plan(fmt.id, description["flavor"], target.id, via=via and formats.get(via).id)


def inspect(path, *, from_format: str | None = None) -> InspectReport:
    """What a file is, without running code from it."""
    path = Path(path)
    fmt, description = identify(path, from_format, trust=True)  # describing is static: nothing runs
    from mlconvert import provenance

    recorded = provenance.read(description)
    if recorded:
        description = {**description, "provenance": recorded}
    return InspectReport(str(path), fmt.id, fmt.title, size_of(path), sha256_of(path), description)


# --- running a plan ---


def _tolerance(steps: list[Edge], atol: float | None, rtol: float | None) -> tuple[float, float, str]:
    from mlconvert.verification import DEFAULT_ATOL, DEFAULT_RTOL

    declared = [e for e in steps if e.tolerance]
    a = max([DEFAULT_ATOL] + [e.tolerance.atol for e in declared])
    r = max([DEFAULT_RTOL] + [e.tolerance.rtol for e in declared])
    source = "; ".join(f"{e.name}: {e.tolerance.reason}" for e in declared) or "default"
    if atol is not None or rtol is not None:
        source = "--atol/--rtol" + (f" (other from {source})" if atol is None or rtol is None else "")
    return (a if atol is None else atol), (r if rtol is None else rtol), source


def _run_steps(plan: Plan, src: Path, dst: Path, workdir: Path, options: dict, trust: bool,
               done: dict[tuple, Path], report: ConversionReport) -> Path:
    """Run each step; outputs of a prefix already run in an earlier attempt are reused."""
    current = src
    for i, edge in enumerate(plan.steps):
        key = tuple(e.name for e in plan.steps[: i + 1])
        last = i == len(plan.steps) - 1
        target_fmt = formats.get(edge.target)
        ext = "".join(dst.suffixes[-1:]) if last else (target_fmt.extensions[0] if target_fmt.extensions else "")
        out = workdir / (dst.name if last else f"step{i + 1}-{edge.name}{ext}")
        record = StepRecord(edge.name, edge.source, edge.target, edge.library, probe.dist_version(edge.library),
                            edge.fidelity)
        if key in done and not last:
            record.status = "reused"
            report.steps.append(record)
            current = done[key]
            continue
        ctx = StepContext(source_format=edge.source, target_format=edge.target, options=options, workdir=workdir,
                          trust=trust or current != src)
        started = time.perf_counter()
        try:
            edge.function()(current, out, ctx)
        except (InputError, UntrustedInputError, UsageError):
            raise
        except ConversionError as exc:
            record.status, record.error = "failed", exc.message
        except Exception as exc:  # a converter library's own failure: the step failed, not mlconvert
            first = str(exc).splitlines()[0] if str(exc) else ""
            record.status, record.error = "failed", f"{type(exc).__name__}: {first}"
        record.seconds = round(time.perf_counter() - started, 3)
        if record.status == "failed":
            report.failed_steps.append(record)
            raise _StepFailed(edge, record.error)
        if not out.exists():
            record.status, record.error = "failed", "the step wrote no output"
            report.failed_steps.append(record)
            raise _StepFailed(edge, record.error)
        report.steps.append(record)
        done[key] = out
        current = out
    return current


class _StepFailed(Exception):
    def __init__(self, edge: Edge, message: str):
        super().__init__(message)
        self.edge, self.message = edge, message


def _cannot_run(format_id: str) -> str | None:
    """Why models of this format cannot be run here, or None."""
    fmt = formats.get(format_id)
    if fmt.predictor is None:
        return f"mlconvert cannot run {fmt.title} models"
    if fmt.runtime and not probe.has_module(fmt.runtime):
        return f"{fmt.runtime} is not installed, so the {format_id} model cannot be run (pip install {fmt.runtime})"
    return None


def predictor(path: Path, format_id: str, options: dict):
    """A runnable view of a model file, for verification."""
    return formats.get(format_id).predictor(Path(path), options)


def _verify(src: Path, src_fmt: str, out: Path, out_fmt: str, steps: list[Edge], options: dict,
            sample, atol, rtol):
    from mlconvert import verification
    from mlconvert.predict import CannotRun

    a, r, source = _tolerance(steps, atol, rtol)

    def unverified(reason: str):
        return verification.Verification("unverified", reason=reason, atol=a, rtol=r, tolerance_source=source)

    missing = _cannot_run(src_fmt) or _cannot_run(out_fmt)
    if missing:
        return unverified(missing)
    try:
        source_model = predictor(src, src_fmt, options)
        try:
            # The source's view goes along: a target that cannot run (Core ML off macOS)
            # still checks its structure against it before saying so.
            target_model = predictor(out, out_fmt, {**options, "trust": True, "reference": source_model})
        except InputError as exc:
            raise ConversionError(f"the converted model does not load: {exc.message}",
                                  hint="this is a converter bug; please report it with the input file") from exc
    except CannotRun as exc:  # e.g. no Core ML runtime off macOS, after a structural check
        return unverified(str(exc))
    # Old pickles may not record their width; the converted model's declared input does.
    source_model.n_features = source_model.n_features or target_model.n_features
    if sample:
        X = verification.load_sample(Path(sample), source_model.n_features, source_model.feature_names,
                                     source_model.input_specs())
        how = f"sample {Path(sample).name}"
    elif not source_model.n_features and not source_model.input_specs():
        return verification.Verification(
            "unverified", reason="the model does not record how many features it takes; pass --sample FILE",
            atol=a, rtol=r, tolerance_source=source)
    else:
        X, how = verification.synthetic_inputs(source_model)
    try:
        result = verification.run(source_model, target_model, X, how, a, r, source)
        result.notes = list(getattr(source_model, "notes", []))
        return result
    except MlconvertError:
        raise
    except Exception as exc:
        raise ConversionError(f"running the models on the inputs failed: {type(exc).__name__}: {exc}",
                              hint="pass --sample FILE with rows the model accepts") from exc


def scratch_prefix(dst: Path, pid: int | None = None) -> str:
    """The name of a conversion's scratch folder beside its target: a process that kills
    a stuck conversion (batch --timeout) can find and remove exactly that folder."""
    return f".{Path(dst).name}.mlconvert-{os.getpid() if pid is None else pid}-"


def _failure_summary(failed: dict[str, str]) -> str:
    """The failed steps' errors, each once (re-planned paths often fail for the same reason)."""
    if len(failed) == 1:
        name, message = next(iter(failed.items()))
        return f"{name}: {message}"
    by_message: dict[str, list[str]] = {}
    for name, message in failed.items():
        by_message.setdefault(message, []).append(name)
    reasons = "; ".join(f"{', '.join(names)}: {message}" for message, names in by_message.items())
    return f"every conversion path failed ({reasons})"


def _mismatch_hint(report: ConversionReport, description: dict, double: bool) -> str:
    """What most likely explains a mismatch, from what the run knows."""
    hints = list(report.verification.get("notes", []))
    hints += [w for w in description.get("warnings", []) if "installed" in w]
    if any(s.edge == "skl2onnx" for s in report.steps) and not double:
        hints.append("the ONNX model computes in float32: --double keeps float64")
    hints.append("--atol/--rtol loosen the tolerance if the difference is acceptable")
    return "; ".join(hints)


def convert(
    src,
    dst,
    *,
    from_format: str | None = None,
    to_format: str | None = None,
    via: str | None = None,
    trust: bool = False,
    verify: bool = True,
    sample=None,
    atol: float | None = None,
    rtol: float | None = None,
    keep_on_mismatch: bool = False,
    strict: bool = False,
    double: bool = False,
    opset: int | None = None,
    **extra_options,
) -> ConversionReport:
    """Convert `src` to `dst` along the cheapest working path, verify, and write atomically.

    Raises the typed errors of mlconvert.errors; on any failure `dst` is left as it was.
    Options beyond the named ones are handed to every step and model loader.
    """
    started = time.perf_counter()
    src, dst = Path(src), Path(dst)
    src_fmt, description = identify(src, from_format, trust=trust)
    dst_fmt = target_format(dst, to_format)
    if dst.exists() and src.resolve() == dst.resolve():
        raise UsageError("the output is the input file", hint="choose another output path")
    if dst.is_dir() and not dst_fmt.may_be_directory:
        raise UsageError(f"{dst} is a directory", hint="give the output file's name")
    _check_replaceable(dst)
    via_id = via and formats.get(via).id
    report = ConversionReport(
        source={"path": str(src), "format": src_fmt.id, "flavor": description["flavor"],
                "sha256": sha256_of(src), "producer": description.get("producer"),
                "producer_version": description.get("producer_version"),
                "warnings": list(description.get("warnings") or [])},
        target={"path": str(dst), "format": dst_fmt.id},
    )
    options = {**extra_options, "double": double, "opset": opset}
    try:  # the scratch folder sits beside the target, so the final rename is atomic
        dst.parent.mkdir(parents=True, exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix=scratch_prefix(dst), dir=dst.parent))
    except OSError as exc:
        raise UsageError(f"cannot write beside {dst}: {exc.strerror or exc}",
                         hint="choose an output path in a folder you can write to") from exc
    try:
        failed: dict[str, str] = {}
        done: dict[tuple, Path] = {}
        while True:
            try:
                chosen = find_plan(src_fmt.id, description["flavor"], dst_fmt.id, via=via_id, failed=failed)
            except MlconvertError as exc:
                if not failed:
                    raise
                raise ConversionError(_failure_summary(failed),
                                      hint="run with -v for details; `mlconvert plan --explain` lists the edges",
                                      details={"failed": failed}) from exc
            report.steps = []
            try:
                out = _run_steps(chosen, src, dst, workdir, options, trust, done, report)
                break
            except _StepFailed as exc:
                failed[exc.edge.name] = exc.message
        if verify:
            result = _verify(src, src_fmt.id, out, dst_fmt.id, chosen.steps, {**options, "trust": trust},
                             sample, atol, rtol)
            report.verification = result.to_dict()
        else:
            report.verification = {"status": "unverified", "reason": "--no-verify"}
        status = report.verification["status"]
        if status == "mismatch" and not keep_on_mismatch:
            raise VerificationError(
                f"the converted model disagrees with the source: {report.verification['reason']}",
                hint=_mismatch_hint(report, description, double)
                + "; nothing was written (--keep-on-mismatch writes it anyway)",
                details={"report": report.to_dict()})
        if status == "unverified" and strict and verify:
            raise UnverifiedError(f"the result could not be verified: {report.verification['reason']}",
                                  hint="drop --strict to accept an unverified result",
                                  details={"report": report.to_dict()})
        from mlconvert import provenance

        provenance.stamp(out, dst_fmt.id, report, __version__)
        _replace(out, dst)
        report.written = True
        report.target["sha256"] = sha256_of(dst)
        report.seconds = time.perf_counter() - started
        if status == "mismatch":
            raise VerificationError(
                f"the converted model disagrees with the source: {report.verification['reason']}",
                hint=_mismatch_hint(report, description, double) + f"; written anyway to {dst} (--keep-on-mismatch)",
                details={"report": report.to_dict()})
        return report
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def _check_replaceable(dst: Path) -> None:
    """An existing directory is only ever replaced when it holds a model (never a user's folder)."""
    if dst.is_dir() and not dst.is_symlink() and any(dst.iterdir()):
        try:
            existing = formats.detect(dst)
        except MlconvertError:
            existing = None
        if existing is None or not existing.may_be_directory:
            raise UsageError(f"{dst} is a directory that holds no model; refusing to replace it",
                             hint="choose a new output path, or remove the directory first")


def _replace(out: Path, dst: Path) -> None:
    """Move the finished output onto `dst`. An existing model directory (SavedModel,
    .mlpackage) is renamed aside first and removed only once the new one is in place."""
    if not (dst.is_dir() or out.is_dir()) or not dst.exists():
        os.replace(out, dst)
        return
    _check_replaceable(dst)
    aside = dst.with_name(f".{dst.name}.replaced-{os.getpid()}")
    os.replace(dst, aside)
    try:
        os.replace(out, dst)
    except OSError:
        os.replace(aside, dst)  # put the old one back
        raise
    if aside.is_dir() and not aside.is_symlink():
        shutil.rmtree(aside, ignore_errors=True)
    else:
        aside.unlink()


def verify(source, converted, *, sample=None, atol: float | None = None, rtol: float | None = None,
           trust: bool = False, from_format: str | None = None):
    """Re-check a converted artifact against its source: the gate a CI pipeline needs."""
    from mlconvert import provenance

    src_fmt, _ = identify(Path(source), from_format, trust=trust)
    out_fmt, out_description = identify(Path(converted), None, trust=trust)
    # The tolerance the conversion was verified with, if the artifact records it.
    recorded = json.loads(provenance.read(out_description).get("verification", "{}") or "{}")
    use_atol = atol if atol is not None else recorded.get("atol")
    use_rtol = rtol if rtol is not None else recorded.get("rtol")
    result = _verify(Path(source), src_fmt.id, Path(converted), out_fmt.id, [], {"trust": trust}, sample,
                     use_atol, use_rtol)
    if recorded and atol is None and rtol is None:
        result.tolerance_source = f"recorded in {Path(converted).name} ({recorded.get('tolerance_source', '')})"
    if result.status == "mismatch":
        raise VerificationError(f"{converted} disagrees with {source}: {result.reason}",
                                details={"verification": result.to_dict()})
    return result


# --- the environment ---


def java() -> dict:
    path = probe.which("java")
    return {"path": path, "found": bool(path)}


def doctor() -> dict:
    """What this environment can do: libraries, Java, each edge and plugin, available or why not."""
    from mlconvert.report import edge_summary

    java_path = probe.which("java")
    return {
        "mlconvert": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "libraries": probe.library_versions(),
        "java": {"path": java_path, "available": bool(java_path), "reason": "" if java_path else "java not found"},
        "edges": [edge_summary(edge) for edge in all_edges()],
        "broken_edge_modules": dict(BROKEN_MODULES),
        "plugins": [{"name": e.name, "available": e.name not in plugins.FAILED,
                     "reason": plugins.FAILED.get(e.name, "")} for e in plugins.entry_points()],
    }
