"""The Python API: convert, plan, inspect, verify, doctor. The CLI is a thin layer over it.

Orchestration only: formats identify and load, the planner plans, the runner runs the
steps, verification compares, outputs writes. Every function returns a report object
and raises the typed errors of errors.py.
"""
from __future__ import annotations

import contextlib
import json
import platform
import sys
import time
from pathlib import Path

from mlconvert import formats, outputs, plugins, probe
from mlconvert._version import __version__
from mlconvert.edges import all_edges
from mlconvert.errors import ConversionError, MlconvertError, NoPathError, UnverifiedError, UntrustedInputError, \
    UsageError, VerificationError
from mlconvert.formats import Source
from mlconvert.planner import Plan, find_plan
from mlconvert.report import ConversionReport, InspectReport, StepRecord


# --- identifying inputs and outputs ---


def identify(path: Path, declared: str | None = None, *, trust: bool = False, options: dict | None = None) -> Source:
    """The input, detected and described; refuses untrusted pickles unless `trust`."""
    source = Source.open(Path(path), declared, trust=trust, options=options)
    untrusted = source.description.get("details", {}).get("untrusted") or []
    if untrusted and not trust:
        raise UntrustedInputError(
            f"{path} would import {len(untrusted)} global(s) outside the allow-list when loaded: "
            + ", ".join(untrusted),
            hint="loading it runs code from the file; check where it came from, then pass --trust to load it anyway",
            details={"untrusted": untrusted},
        )
    return source


def target_format(dst: Path, declared: str | None) -> formats.Format:
    """The output's format: --to if given (and the extension must not say otherwise), else the extension."""
    suggested = formats.by_extension(Path(dst))
    if declared:
        fmt = formats.get(declared)
        if suggested is not None and suggested.id != fmt.id and not any(
                Path(dst).name.lower().endswith(ext) for ext in fmt.extensions):
            raise UsageError(f"--to {fmt.id} would write {fmt.title} into {Path(dst).name!r}, "
                             f"whose extension says {suggested.id}",
                             hint=f"name the output with {' or '.join(fmt.extensions) or 'no extension'}, "
                                  f"or drop --to {fmt.id}")
        return fmt
    if suggested is None:
        raise UsageError(f"cannot tell the output format from {Path(dst).name!r}",
                         hint=formats.extension_hint(Path(dst)))
    return suggested


def refuse_unused_options(chosen: Plan, options: dict) -> None:
    """An option no step of the plan honours would be silently ignored: say so instead."""
    from mlconvert.edges import all_edges

    for name in ("double", "opset", "fp16"):
        if not options.get(name) or any(name in edge.options for edge in chosen.steps):
            continue
        flag = f"--{name}"
        honouring = sorted({f"{e.source} → {e.target}" for e in all_edges() if name in e.options})
        route = " → ".join([chosen.source_format] + [e.target for e in chosen.steps])
        raise UsageError(f"{flag} has no effect on this conversion ({route})",
                         hint=f"{flag} applies to {', '.join(honouring)}; drop {flag}")


def plan(src, dst, *, from_format: str | None = None, to_format: str | None = None, via: str | None = None,
         trust: bool = True) -> Plan:
    """The plan `convert` would follow, without running it. Planning never loads the model."""
    source = identify(Path(src), from_format, trust=trust)
    target = target_format(Path(dst), to_format)
    with _flavor_explained(source):
        return find_plan(source.format.id, source.flavor, target.id, via=via and formats.get(via).id)


@contextlib.contextmanager
def _flavor_explained(source: Source):
    """A refusal for an input whose flavor could not be told says what made it so."""
    try:
        yield
    except NoPathError as exc:
        reason = source.description.get("flavor_reason")
        if reason and reason not in exc.message:
            exc.message = f"{exc.message}: {reason}"
            exc.args = (exc.message,)
        raise


def inspect(path, *, from_format: str | None = None) -> InspectReport:
    """What a file is, without running code from it."""
    source = identify(Path(path), from_format, trust=True)  # describing is static: nothing runs
    from mlconvert import provenance

    description = source.description
    recorded = provenance.read(description)
    if recorded:
        description = {**description, "provenance": recorded}
    return InspectReport(str(path), source.format.id, source.format.title, outputs.size_of(source.path),
                         source.sha256, description)


# --- converting ---


def _mismatch_hint(report: ConversionReport, source: Source, chosen: Plan, options: dict) -> str:
    """What most likely explains a mismatch, from what the run knows."""
    hints = list(report.verification.get("notes", []))
    hints += [w for w in source.description.get("warnings", []) if "installed" in w]
    for edge in chosen.steps:
        if edge.mismatch_hint and not options.get(edge.mismatch_hint[0]):
            hints.append(edge.mismatch_hint[1])
    verification = report.verification or {}
    rejected = [s.error for s in report.failed_steps if s.error.startswith("verification:")]
    if len(rejected) > 1:
        hints.append(f"{len(rejected)} converters were tried and each disagreed")
    if str(verification.get("reason", "")).startswith("outputs do not correspond"):
        hints.append("the converted model computes something else than the source (see the reason); "
                     "a tolerance cannot fix that")
    elif _rounding_sized(verification):
        hints.append("--atol/--rtol loosen the tolerance if the difference is acceptable")
    else:
        hints.append("the difference is far larger than float32 rounding: the converter mis-translated the model "
                     "(please report it with the input); a looser tolerance would hide a wrong model")
    return "; ".join(hints)


def _rounding_sized(verification: dict) -> bool:
    """Whether every numeric difference is of the size float32 rounding makes (relative 1e-3)."""
    outs = [o for o in verification.get("outputs", []) if not o.get("ok", True)]
    numeric = [o for o in outs if o.get("max_rel") is not None]
    return bool(numeric) and len(numeric) == len(outs) and all((o.get("max_rel") or 0.0) <= 1e-3 for o in numeric)


def _replan_after_mismatch(runner, source: Source, chosen: Plan, out: Source, result, target: str,
                           via: str | None, verify_args: dict):
    """Verification decides between converters: when the output of a plan disagrees with
    the source, the edge that wrote it is planned around and the next path is tried and
    verified in turn. The first verified result wins; when no other path exists (or
    every other fails), the first mismatch stands, with its output."""
    from mlconvert import verification

    report = runner.report
    first = (chosen, out, result, list(report.steps))
    aside = out.path.with_name(f"mismatch-{chosen.steps[-1].name}{out.path.suffix}")
    out.path.replace(aside)
    rejected: dict[str, str] = {}
    while result.status == "mismatch":
        edge = chosen.steps[-1]
        rejected[edge.name] = f"verification: {result.reason}"
        report.failed_steps.append(StepRecord(edge.name, edge.source, edge.target, edge.library,
                                              probe.dist_version(edge.library), edge.fidelity, status="failed",
                                              error=rejected[edge.name]))
        try:
            find_plan(source.format.id, source.flavor, target, via=via, failed=rejected)
            chosen, out = runner.run(target, via=via, rejected=rejected)
        except MlconvertError:
            break
        result = verification.verify(source, out, edges=chosen.steps, **verify_args)
        if result.status != "mismatch":
            return chosen, out, result
        out.path.unlink(missing_ok=True)
    chosen, out, result, report.steps = first
    aside.replace(out.path)
    return chosen, out, result


def _check_output_path(src: Path, dst: Path, dst_fmt: formats.Format) -> None:
    outputs.check_target(dst)
    if dst.exists() and src.resolve() == dst.resolve():
        raise UsageError("the output is the input file", hint="choose another output path")
    if dst.is_dir() and not dst_fmt.may_be_directory:
        raise UsageError(f"{dst} is a directory", hint="give the output file's name")
    _check_replaceable(dst)


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


def _stamp(out: Source, report: ConversionReport, result, options: dict) -> None:
    """Provenance into the output where its format has room, then proof that the stamped
    file still gives the verified outputs: the file written is the file verified."""
    if out.format.stamp is None:
        return
    from mlconvert import provenance, verification

    out.format.stamp(out.path, provenance.entries(report, __version__))
    if result is not None and not verification.same_outputs(result, Source(out.path, out.format, trust=True),
                                                            options):
        raise ConversionError("writing provenance into the output changed its predictions",
                              hint="this is a bug in mlconvert; please report it with the input file")


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
    refuse_unused: bool = False,
    expected=None,
    **extra_options,
) -> ConversionReport:
    """Convert `src` to `dst` along the cheapest working path, verify, and write atomically.

    Raises the typed errors of mlconvert.errors; on any failure `dst` is left as it was.
    Options beyond the named ones go to every step (Keras's `architecture` and
    `custom_objects` also to the loaders). With `refuse_unused`, an option that no step of
    the plan honours is a UsageError, raised before anything is loaded.
    """
    from mlconvert.runner import Runner

    started = time.perf_counter()
    src, dst = Path(src), Path(dst)
    if expected is not None and not verify:
        raise UsageError("--expected checks the converted model, which --no-verify skips",
                         hint="drop one of --expected and --no-verify")
    load_options = {k: extra_options[k] for k in ("architecture", "custom_objects") if extra_options.get(k)}
    source = identify(src, from_format, trust=trust, options=load_options)
    dst_fmt = target_format(dst, to_format)
    _check_output_path(src, dst, dst_fmt)
    via_id = via and formats.get(via).id
    description = source.description
    report = ConversionReport(
        source={"path": str(src), "format": source.format.id, "flavor": source.flavor,
                "sha256": source.sha256, "producer": description.get("producer"),
                "producer_version": description.get("producer_version"),
                "warnings": [w for w in description.get("warnings") or []
                             if not any(f"--{k.replace('_', '-')}" in w for k in load_options)]},
        target={"path": str(dst), "format": dst_fmt.id},
    )
    options = {**extra_options, "double": double, "opset": opset}
    if refuse_unused:
        refuse_unused_options(find_plan(source.format.id, source.flavor, dst_fmt.id, via=via_id), options)
    with outputs.scratch_dir(dst) as workdir:
        runner = Runner(source, dst, workdir, options, report)
        with _flavor_explained(source):
            chosen, out = runner.run(dst_fmt.id, via=via_id)
        result = None
        if verify:
            from mlconvert import verification

            result = verification.verify(source, out, edges=chosen.steps, sample=sample, atol=atol, rtol=rtol,
                                         options=options, expected=expected)
            if result.status == "mismatch":
                chosen, out, result = _replan_after_mismatch(runner, source, chosen, out, result, dst_fmt.id, via_id,
                                                             dict(sample=sample, atol=atol, rtol=rtol,
                                                                  options=options, expected=expected))
            report.verification = result.to_dict()
        else:
            report.verification = {"status": "unverified", "reason": "--no-verify"}
        status = report.verification["status"]
        mismatch = status == "mismatch"
        if mismatch and not keep_on_mismatch:
            raise VerificationError(
                f"the converted model disagrees with the source: {report.verification['reason']}",
                hint=_mismatch_hint(report, source, chosen, options)
                + "; nothing was written (--keep-on-mismatch writes it anyway)",
                details={"report": report.to_dict()})
        if status == "unverified" and strict and verify:
            raise UnverifiedError(f"the result could not be verified: {report.verification['reason']}",
                                  hint="drop --strict to accept an unverified result",
                                  details={"report": report.to_dict()})
        _stamp(out, report, result, options)
        _check_replaceable(dst)
        outputs.replace(out.path, dst)
        report.written = True
        report.target["sha256"] = outputs.sha256_of(dst)
        report.seconds = time.perf_counter() - started
        if mismatch:
            raise VerificationError(
                f"the converted model disagrees with the source: {report.verification['reason']}",
                hint=_mismatch_hint(report, source, chosen, options) + f"; written anyway to {dst} (--keep-on-mismatch)",
                details={"report": report.to_dict()})
        return report


def _refuse_incompatible(src: Source, out: Source, source, converted) -> None:
    """Two models that cannot take the same inputs are not a conversion of each other."""
    a, b = src.description, out.description
    for key, what in (("n_features", "features"),):
        if isinstance(a.get(key), int) and isinstance(b.get(key), int) and a[key] != b[key]:
            raise VerificationError(
                f"{converted} has {b[key]} {what} and {source} has {a[key]}: they are not the same model",
                hint=f"check that {Path(converted).name} was converted from {Path(source).name}")


def verify(source, converted, *, sample=None, atol: float | None = None, rtol: float | None = None,
           trust: bool = False, from_format: str | None = None, strict: bool = False, expected=None):
    """Re-check a converted artifact against its source: the gate a CI pipeline needs.

    A mismatch and models that cannot take the same inputs raise VerificationError (exit 6);
    with `strict`, a result that could not be verified raises UnverifiedError (exit 8).
    `expected`: predictions recorded where the model was made decide the result.
    """
    from mlconvert import provenance, verification

    src = identify(Path(source), from_format, trust=trust)
    out = identify(Path(converted), None, trust=trust)
    _refuse_incompatible(src, out, source, converted)
    recorded_all = provenance.read(out.description)
    # The tolerance the conversion was verified with, if the artifact records it.
    recorded = provenance.recorded_verification(out.description)
    use_atol = atol if atol is not None else recorded.get("atol")
    use_rtol = rtol if rtol is not None else recorded.get("rtol")
    try:
        result = verification.verify(src, out, sample=sample, atol=use_atol, rtol=use_rtol, expected=expected)
    except ConversionError as exc:
        if not exc.message.startswith("running the converted model"):
            raise
        raise VerificationError(f"{converted} does not take the inputs {source} takes: {exc.message}",
                                hint=f"check that {Path(converted).name} was converted from {Path(source).name}"
                                ) from exc
    if recorded_all.get("source_sha256") and recorded_all["source_sha256"] != src.sha256:
        result.notes.append(f"{Path(converted).name} records a source with sha256 "
                            f"{recorded_all['source_sha256']} ({recorded_all.get('source', '?')}); "
                            f"{Path(source).name} has {src.sha256}: it was converted from another file")
    if recorded and atol is None and rtol is None:
        result.tolerance_source = f"recorded in {Path(converted).name} ({recorded.get('tolerance_source', '')})"
    if result.status == "mismatch":
        raise VerificationError(f"{converted} disagrees with {source}: {result.reason}",
                                details={"verification": result.to_dict()})
    if result.status == "unverified" and strict:
        raise UnverifiedError(f"{converted} could not be verified against {source}: {result.reason}",
                              hint="drop --strict to accept an unverified result",
                              details={"verification": result.to_dict()})
    return result


# --- the environment ---


def doctor() -> dict:
    """What this environment can do: libraries, Java, each edge and plugin, available or why not."""
    java_path = probe.which("java")
    return {
        "mlconvert": __version__,
        "python": sys.version.split()[0],
        "platform": platform.platform(),
        "libraries": probe.library_versions(),
        "java": {"path": java_path, "available": bool(java_path), "reason": "" if java_path else "java not found"},
        "edges": [edge.to_dict() for edge in all_edges()],
        "plugins": [{"name": e.name, "available": e.name not in plugins.FAILED,
                     "reason": plugins.FAILED.get(e.name, "")} for e in plugins.entry_points()],
    }
