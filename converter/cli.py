"""The command line: click commands over mlconvert.api, and the one place that exits.

Shared options are declared in options.py and everything shown is rendered by
console.py: what a command exists to produce goes to stdout (or, with --json, one JSON
document instead), progress, warnings and errors to stderr. Importing this module
imports no ML library.
"""
from __future__ import annotations

import os
import sys
import traceback
from pathlib import Path

import click

from mlconvert import __version__, console
from mlconvert.console import Session
from mlconvert.errors import EXIT_CODES, BatchError, InternalError, MlconvertError, UsageError
from mlconvert.options import (FormatChoice, conversion_options, expected_option, from_option, output_options,
                               pass_session, refuse_conflicts, sample_option, session_of, stack, to_option,
                               tolerance_options, trust_option, via_option)

INTERRUPTED = 130
EPILOG = "\b\nExit codes:\n" + "\n".join(f"  {code}  {text}" for code, text in EXIT_CODES.items()) + (
    f"\n  {INTERRUPTED}  interrupted (a batch continues with --resume)"
    "\n\n\bmlconvert IN OUT is short for mlconvert convert IN OUT (write ./plan for a"
    "\nfile named like a command)."
)


def _show_help(ctx: click.Context, _param, value) -> None:
    if not value or ctx.resilient_parsing:
        return
    session_of(ctx).data.write(ctx.get_help() + "\n")
    ctx.exit(0)


class _HelpOnStdout:
    """`--help` is what was asked for: it goes to stdout, like any command's output."""

    def get_help_option(self, ctx):
        option = super().get_help_option(ctx)
        if option is not None:
            option.callback = _show_help
        return option


class Command(_HelpOnStdout, click.Command):
    def parse_args(self, ctx, args):
        session_of(ctx).command = self.name  # known even when parsing fails
        return super().parse_args(ctx, args)


class DefaultGroup(_HelpOnStdout, click.Group):
    """`mlconvert IN OUT` runs `convert`; subcommand names win, so a file named `plan` is ./plan."""

    command_class = Command

    def with_default(self, args: list[str]) -> list[str]:
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h", "--version", "-V"):
            return ["convert", *args]
        return list(args)

    def mistyped(self, args: list[str]) -> str | None:
        """The command a first word was probably meant to be: a word that is no existing
        path and is close to a command name (`inpsect`, `fromats`), as git does."""
        if not args or args[0] in self.commands or args[0].startswith("-") or os.path.exists(args[0]):
            return None  # (os.path.exists: a name too long to exist is no path, not an OSError)
        if args[0] == "version":
            return "--version"
        if "/" in args[0] or "." in args[0] or os.sep in args[0]:
            return None  # a path with a typo: convert says it does not exist
        import difflib

        close = difflib.get_close_matches(args[0].lower(), sorted(self.commands), n=1, cutoff=0.6)
        return close[0] if close else None

    def parse_args(self, ctx, args):
        meant = self.mistyped(args)
        if meant:
            raise click.UsageError(f"No such command '{args[0]}'. Did you mean '{meant}'?", ctx)
        return super().parse_args(ctx, self.with_default(args))


def _print_version(ctx, _param, value):
    if not value or ctx.resilient_parsing:
        return
    from mlconvert import probe

    out = session_of(ctx).data
    out.write(f"mlconvert {__version__}\n")
    for name, version in probe.library_versions().items():
        out.write(f"  {name:<16} {version or '-'}\n")
    ctx.exit(0)


@click.group(cls=DefaultGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-V", "--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Show mlconvert's version and the converter libraries it finds.")
def cli():
    """Convert trained ML models between formats, verified.

    \b
      mlconvert model.pkl model.onnx        convert (and verify)
      mlconvert plan model.pkl model.onnx   show the path without running it
      mlconvert inspect model.ubj           what is inside, without running code
    """


# --- commands ---


@cli.command()
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("dst", type=click.Path(path_type=Path))
@stack(from_option, to_option, via_option, trust_option, sample_option, expected_option, tolerance_options,
       conversion_options)
@click.option("--keep-on-mismatch", is_flag=True, help="Write the output even when verification fails (still exits 6).")
@click.option("--fp16", is_flag=True, help="float16: Core ML ML program (.mlpackage) compute, ONNX and TFLite "
                                          "weights (inputs and outputs stay float32); default float32.")
@click.option("--quantize", type=click.Choice(["dynamic"]),
              help="TFLite: int8 weights, float activations (dynamic-range quantization).")
@click.option("--architecture", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Keras model JSON (model.to_json()) for a weights-only .h5.")
@click.option("--custom-objects", type=click.Path(exists=True, dir_okay=False, path_type=Path),
              help="Python module defining a Keras model's custom layers (its code runs).")
@output_options
@pass_session
def convert(session: Session, src, dst, from_format, to_format, via, trust, sample, expected, atol, rtol, no_verify,
            strict, double, opset, keep_on_mismatch, fp16, quantize, architecture, custom_objects):
    """Convert SRC to DST along the cheapest working path, then verify."""
    from mlconvert import api

    refuse_conflicts(no_verify, strict)
    extra = {k: v for k, v in (("fp16", fp16), ("quantize", quantize), ("architecture", architecture),
                               ("custom_objects", custom_objects)) if v}
    try:
        report = api.convert(src, dst, from_format=from_format, to_format=to_format, via=via, trust=trust,
                             verify=not no_verify, sample=sample, atol=atol, rtol=rtol, expected=expected,
                             keep_on_mismatch=keep_on_mismatch, strict=strict, double=double, opset=opset,
                             refuse_unused=True, **extra).to_dict()
    except MlconvertError as exc:
        partial, explained = exc.details.get("report"), exc.details.get("plan")
        if partial:
            console.conversion_notes(session, partial)

        def details(err):
            if partial:
                console.conversion(err, partial)
            if explained:
                console.plan(err, explained, explain=False)

        session.failed_with(partial, moved="report", render=details)
        raise
    console.conversion_notes(session, report)
    session.show(report, lambda out: console.conversion(out, report))


@cli.command()
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("dst", type=click.Path(path_type=Path))
@stack(from_option, to_option, via_option)
@click.option("--explain", is_flag=True, help="List every edge: used, usable, or rejected and why.")
@output_options
@pass_session
def plan(session: Session, src, dst, from_format, to_format, via, explain):
    """Show the path SRC → DST would take, without running it."""
    from mlconvert import api

    try:
        chosen = api.plan(src, dst, from_format=from_format, to_format=to_format, via=via).to_dict()
    except MlconvertError as exc:
        explained = exc.details.get("plan")
        if explained:
            session.failed_with(None, render=lambda err: console.plan(err, explained, explain))
        raise
    session.show(chosen, lambda out: console.plan(out, chosen, explain))


@cli.command()
@click.argument("paths", nargs=-1, required=True, type=click.Path(path_type=Path))
@from_option
@output_options
@pass_session
def inspect(session: Session, paths, from_format):
    """What one or several model files are, without running code from them."""
    from mlconvert import api

    if len(paths) == 1:
        report = api.inspect(paths[0], from_format=from_format).to_dict()
        session.show(report, lambda out: console.inspect(out, report))
        return
    reports, failed, first = [], [], None
    for path in paths:
        try:
            reports.append(api.inspect(path, from_format=from_format).to_dict())
        except MlconvertError as exc:
            first = first or exc
            failed.append({"path": str(path), **console.error_info(type(exc).__name__, exc.exit_code, exc.message,
                                                                   exc.hint)})
            if not session.json:
                console.error_line(session.err, exc.exit_code, exc.message, exc.hint)

    def show(out):
        for i, report in enumerate(reports):
            if i:
                out.print()
            console.inspect(out, report)

    session.show({"models": reports, "failed": failed}, show)
    if first is not None:
        raise type(first)(f"{len(failed)} of {len(paths)} file(s) could not be inspected", hint=first.hint)


@cli.command()
@output_options
@pass_session
def formats(session: Session):
    """List formats and edges, and which are available here."""
    from mlconvert import formats as registry
    from mlconvert.edges import all_edges

    data = {"formats": [{"id": f.id, "title": f.title, "extensions": list(f.extensions), "family": f.family,
                         "notes": f.notes} for f in registry.all_formats()],
            "edges": [e.to_dict() for e in all_edges()]}
    session.show(data, lambda out: console.formats(out, data))


@cli.command()
@output_options
@pass_session
def doctor(session: Session):
    """Installed converter libraries, Java, and which edges are available."""
    from mlconvert import api

    info = api.doctor()
    session.show(info, lambda out: console.doctor(out, info))


@cli.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("converted", type=click.Path(path_type=Path))
@stack(from_option, trust_option, sample_option, expected_option, tolerance_options)
@click.option("--strict", is_flag=True, help="A pair that cannot be verified (no runtime here) fails with exit 8.")
@output_options
@pass_session
def verify(session: Session, source, converted, from_format, trust, sample, expected, atol, rtol, strict):
    """Re-check CONVERTED against SOURCE on the same inputs (a CI gate)."""
    from mlconvert import api

    def result(verification: dict) -> dict:
        return {"source": {"path": str(source)}, "target": {"path": str(converted)}, "verification": verification}

    try:
        checked = result(api.verify(source, converted, sample=sample, atol=atol, rtol=rtol, trust=trust,
                                    from_format=from_format, strict=strict, expected=expected).to_dict())
    except MlconvertError as exc:
        if exc.details.get("verification"):
            for note in exc.details["verification"].get("notes") or []:
                session.warn(note)
            failed = result(exc.details["verification"])
            session.failed_with(failed, moved="verification", render=lambda err: console.verification(err, failed))
        raise
    for note in checked["verification"].get("notes") or []:
        session.warn(note)
    session.show(checked, lambda out: console.verification(out, checked))


@cli.command()
@click.option("--format", "kind", type=click.Choice(["mermaid", "dot", "png", "svg"]),
              help="Mermaid or DOT text, or a picture through Graphviz (default: from -o's extension, else mermaid).")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE.")
@output_options
@pass_session
def graph(session: Session, kind, output):
    """The format graph: edges available here solid, the others greyed with the reason."""
    from mlconvert import graph_render

    text = graph_render.render(kind or graph_render.kind_for(output), output)
    data = {**graph_render.as_data(), "output": None if output is None else str(output)}

    def show(out):
        if text is not None:
            session.data.write(text)
        else:
            out.print(f"wrote {console.plain(output)}")

    session.show(data, show)


@cli.command()
@click.argument("src_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--to", "targets", multiple=True, required=True, type=FormatChoice(),
              help="Target format; repeat for several.")
@click.option("--out", "out_dir", required=True, type=click.Path(file_okay=False, path_type=Path),
              help="Where the converted tree goes (mirrors SRC_DIR).")
@click.option("--include", multiple=True, metavar="GLOB", help="Only paths matching (repeatable).")
@click.option("--exclude", multiple=True, metavar="GLOB", help="Leave out paths matching (repeatable).")
@click.option("-j", "--jobs", type=int, help="Parallel workers (default: the number of cores).")
@click.option("--timeout", type=float, default=600.0, show_default=True, help="Seconds one model may take.")
@click.option("--max-memory", type=int, metavar="MB", help="Address-space limit per worker.")
@click.option("--resume", is_flag=True, help="Skip models whose output is up to date (same input hash and options).")
@click.option("--report", "report_path", type=click.Path(dir_okay=False, path_type=Path), help="Write the JSON report.")
@click.option("--junit", "junit_path", type=click.Path(dir_okay=False, path_type=Path), help="Write JUnit XML.")
@click.option("--markdown", "markdown_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a Markdown summary (for a CI job summary).")
@stack(trust_option, tolerance_options, conversion_options)
@output_options
@pass_session
def batch(session: Session, src_dir, targets, out_dir, include, exclude, jobs, timeout, max_memory, resume,
          report_path, junit_path, markdown_path, trust, atol, rtol, no_verify, strict, double, opset):
    """Convert every model under SRC_DIR, in parallel, mirroring the tree under --out."""
    from mlconvert import batch as batching
    from mlconvert import batch_output
    from mlconvert import formats as registry

    refuse_conflicts(no_verify, strict)
    targets = [registry.get(t).id for t in targets]
    options = {"trust": trust, "atol": atol, "rtol": rtol, "verify": not no_verify, "strict": strict,
               "double": double, "opset": opset}
    report = batching.run(src_dir, targets=targets, out=out_dir, jobs=jobs, include=include, exclude=exclude,
                          resume=resume, timeout=timeout, max_memory_mb=max_memory, options=options,
                          display=console.batch_display(session, src_dir))
    for path, write in ((report_path, batch_output.write_json), (junit_path, batch_output.write_junit),
                        (markdown_path, batch_output.write_markdown)):
        if path:
            write(report, path)
    session.show(report.to_dict(), lambda out: console.batch_summary(out, report))
    if report.interrupted:
        raise KeyboardInterrupt
    if report.failed:
        codes = sorted({r.exit_code for r in report.failed})
        raise BatchError(f"{len(report.failed)} of {len(report.results)} conversion(s) failed "
                         f"(exit codes {', '.join(map(str, codes))})",
                         hint="the per-model codes and messages are in the summary and the reports")


# --- entry point: the only place that exits ---


def main(argv: list[str] | None = None) -> None:
    """Run the command line once; exits with the code of EXIT_CODES. Safe to call again
    in the same process: stdout and its file descriptor are restored on the way out."""
    argv = list(sys.argv[1:] if argv is None else argv)
    if os.environ.get("_MLCONVERT_COMPLETE"):  # the shell asks for completions: click answers on stdout
        cli.main(args=argv, prog_name="mlconvert", obj=Session())
    with console.data_stream() as data:
        code = run(argv, Session(data))
    sys.exit(code)


def run(argv: list[str], session: Session) -> int:
    """One command: prints (and with --json emits the envelope), returns the exit code."""
    error = None
    verbose = any(a in ("-v", "--verbose") for a in argv) or os.environ.get("MLCONVERT_DEBUG") == "1"
    try:
        with console.library_noise(verbose):
            code = cli.main(args=argv, prog_name="mlconvert", standalone_mode=False, obj=session)
        code = code if isinstance(code, int) else 0
    except MlconvertError as exc:
        code = exc.exit_code
        if _debug(session):
            traceback.print_exc()
        console.error_line(session.err, code, exc.message, exc.hint)
        details = {k: v for k, v in exc.details.items() if k not in session.moved}
        error = console.error_info(type(exc).__name__, code, exc.message, exc.hint, details)
    except click.exceptions.ClickException as exc:  # a bad option, a missing argument...
        _parse_leniently(argv, session)
        code = UsageError.exit_code
        exc.show()
        error = console.error_info(UsageError.__name__, code, exc.format_message(),
                                   "`mlconvert --help` lists the commands and their options")
    except (KeyboardInterrupt, click.exceptions.Abort):
        code = INTERRUPTED
        message = "interrupted: no partial output is left behind (a batch continues with --resume)"
        session.err.print(message)
        error = console.error_info("Interrupted", code, message)
    except Exception as exc:  # a bug in mlconvert: say so, keep the traceback for -v
        code = InternalError.exit_code
        if _debug(session):
            traceback.print_exc()
        message = f"{type(exc).__name__}: {exc}"
        hint = "this is a bug in mlconvert; rerun with -v and report the traceback"
        console.error_line(session.err, code, message, hint, internal=True)
        error = console.error_info(InternalError.__name__, code, message, hint)
    session.emit(code, error)
    return code


def _debug(session: Session) -> bool:
    return session.verbose or os.environ.get("MLCONVERT_DEBUG") == "1"


def _parse_leniently(argv: list[str], session: Session) -> None:
    """After a usage error, read -v / -q / --json the way click does when it forgives
    errors, so that `mlconvert plan only-one-arg --json` still answers in JSON."""
    args = cli.with_default(argv)
    if cli.mistyped(argv):  # no command to parse the rest with
        session.json = "--json" in argv
        return
    if not args:
        return
    try:
        group = cli.make_context("mlconvert", [], resilient_parsing=True, obj=session)
        name, command, rest = cli.resolve_command(group, args)
        if command is not None:
            command.make_context(name, rest, parent=group, resilient_parsing=True, ignore_unknown_options=True)
    except (click.exceptions.ClickException, click.exceptions.Exit):
        pass  # nothing more to learn: the usage error is reported as it is


if __name__ == "__main__":
    main()
