"""The command line: a thin layer over mlconvert.api.

Human output goes to stderr through one rich Console; `--json` data goes to stdout.
Only this module prints and exits. Importing it imports no ML library.
"""
from __future__ import annotations

import json
import os
import sys
from pathlib import Path

import click

from mlconvert import __version__
from mlconvert.errors import EXIT_CODES, MlconvertError

EPILOG = "\b\nExit codes:\n" + "\n".join(f"  {code}  {text}" for code, text in EXIT_CODES.items()) + (
    "\n\n\bmlconvert IN OUT is short for mlconvert convert IN OUT; a file named like a"
    "\ncommand is written ./plan."
)

_console = None


def console():
    """The one Console for human output (stderr)."""
    global _console
    if _console is None:
        from rich.console import Console

        _console = Console(stderr=True, highlight=False, soft_wrap=False)
    return _console


# --- options, each defined once ---

json_option = click.option("--json", "as_json", is_flag=True, help="Print the report as JSON on stdout.")
verbose_option = click.option("-v", "--verbose", is_flag=True, help="Show tracebacks and more detail.")
quiet_option = click.option("-q", "--quiet", is_flag=True, help="No human output; only the exit code (and --json).")
from_option = click.option("--from", "from_format", metavar="FORMAT", help="Input format (default: detected from content).")
to_option = click.option("--to", "to_format", metavar="FORMAT", help="Output format (default: from the extension).")
via_option = click.option("--via", metavar="FORMAT", help="Force an intermediate format.")
trust_option = click.option("--trust", is_flag=True, help="Load models that run code from the file: pickles importing outside the allow-list, Keras Lambda layers.")
sample_option = click.option("--sample", type=click.Path(dir_okay=False, path_type=Path), help="Inputs for verification (.npy, .csv, or .npz of named arrays).")
atol_option = click.option("--atol", type=float, help="Absolute tolerance (default 1e-5, or what the edge declares).")
rtol_option = click.option("--rtol", type=float, help="Relative tolerance (default 1e-5, or what the edge declares).")


def _stack(*decorators):
    def apply(func):
        for deco in reversed(decorators):
            func = deco(func)
        return func

    return apply


common = _stack(json_option, quiet_option, verbose_option)


class DefaultGroup(click.Group):
    """`mlconvert IN OUT` runs `convert`; subcommand names win, so a file named `plan` is ./plan."""

    def parse_args(self, ctx, args):
        if args and args[0] not in self.commands and args[0] not in ("--help", "-h", "--version"):
            args = ["convert", *args]
        return super().parse_args(ctx, args)


def _print_version(ctx, _param, value):
    if not value or ctx.resilient_parsing:
        return
    from mlconvert import probe

    click.echo(f"mlconvert {__version__}")
    for name, version in probe.library_versions().items():
        click.echo(f"  {name:<16} {version or '-'}")
    ctx.exit(0)


@click.group(cls=DefaultGroup, epilog=EPILOG, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("--version", is_flag=True, expose_value=False, is_eager=True, callback=_print_version,
              help="Show mlconvert's version and the converter libraries it finds.")
def cli():
    """Convert trained ML models between formats, verified.

    \b
      mlconvert model.pkl model.onnx        convert (and verify)
      mlconvert plan model.pkl model.onnx   show the path without running it
      mlconvert inspect model.ubj           what is inside, without running code
    """


# --- rendering ---


_emitted = False  # one JSON document per run: an error after the report adds none
_data_out = None  # the real stdout, for mlconvert's data only (--json, graph text); see main()


def _emit(as_json: bool, data: dict) -> None:
    global _emitted
    if as_json:
        click.echo(json.dumps(data, indent=2, sort_keys=False, default=str), file=_data_out or sys.stdout)
        _emitted = True


def _plain(text: str) -> str:
    """Text shown as it is: `pip install 'mlconvert[tf]'` is not rich markup."""
    from rich.markup import escape

    return escape(str(text))


def _fmt_num(x) -> str:
    return "-" if x is None else f"{x:.3g}"


def _render_verification(v: dict) -> str:
    if v["status"] != "verified" and not v.get("outputs"):
        return f"[yellow]{v['status']}[/] ({v.get('reason', '')})"
    parts = []
    for o in v.get("outputs", []):
        if o["name"] == "label":
            ties = f", {o['ties']} ties" if o.get("ties") else ""
            parts.append(f"labels agree {o.get('agreement', 0) * 100:.1f}%{ties}")
        else:
            parts.append(f"{o['name']} max abs {_fmt_num(o.get('max_abs'))}, max rel {_fmt_num(o.get('max_rel'))}")
    colour = {"verified": "green", "mismatch": "red"}.get(v["status"], "yellow")
    return (f"[{colour}]{v['status']}[/] on {v['rows']} rows, {v['inputs']}\n           " + "; ".join(parts)
            + f"\n           atol {v['atol']:g}, rtol {v['rtol']:g} ({v['tolerance_source']})"
            + (f"\n           [red]{v['reason']}[/]" if v.get("reason") else ""))


def _without_provenance(value):
    if isinstance(value, dict):
        return {k: _without_provenance(v) for k, v in value.items() if not str(k).startswith("mlconvert.")}
    return value


def _render_conversion(report: dict) -> None:
    c = console()
    src, dst = report["source"], report["target"]
    producer = f" · {src['producer']} {src.get('producer_version') or ''}".rstrip() if src.get("producer") else ""
    c.print(f"[bold]{src['path']}[/] → [bold]{dst['path']}[/]")
    c.print(f"  input    {src['format']} ({src['flavor']}){producer}")
    for warning in src.get("warnings") or []:
        c.print(f"  [yellow]note[/]     {warning}")
    for rec in report.get("failed_steps", []):
        c.print(f"  [red]failed[/]   {rec['edge']} ({rec['source']} → {rec['target']}): {rec['error']} — re-planned")
    for i, rec in enumerate(report["plan"], 1):
        c.print(f"  step {i}   {rec['edge']} [dim]({rec['library']} {rec['version'] or '?'})[/] "
                f"{rec['source']} → {rec['target']}  {rec['seconds']:.2f} s  [dim]{rec['fidelity']}[/]")
    if report.get("verification"):
        c.print(f"  verify   {_render_verification(report['verification'])}")
    if report.get("written"):
        c.print(f"  [green]wrote[/]    {dst['path']}")


def _render_plan(plan: dict, explain: bool) -> None:
    c = console()
    src = plan["source"]
    c.print(f"plan: {src['format']} ({src['flavor']}) → {plan['target']}, {len(plan['steps'])} step(s)")
    for i, s in enumerate(plan["steps"], 1):
        c.print(f"  {i}. {s['edge']} ({s['library']}): {s['from']} → {s['to']}  [dim]{s['fidelity']}[/]")
    if explain:
        from rich.table import Table

        table = Table(title="edges", show_lines=False)
        for col in ("edge", "from → to", "status", "why"):
            table.add_column(col)
        for e in plan["edges"]:
            colour = {"used": "green", "usable": "cyan", "rejected": "red"}[e["status"]]
            table.add_row(e["edge"], f"{e['from']} → {e['to']}", f"[{colour}]{e['status']}[/]", _plain(e["reason"]))
        c.print(table)


# --- commands ---


@cli.command()
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("dst", type=click.Path(path_type=Path))
@_stack(from_option, to_option, via_option, trust_option, sample_option, atol_option, rtol_option)
@click.option("--no-verify", is_flag=True, help="Skip verification (the report says unverified).")
@click.option("--keep-on-mismatch", is_flag=True, help="Write the output even when verification fails (still exits 6).")
@click.option("--strict", is_flag=True, help="Exit 8 when the result cannot be verified.")
@click.option("--double", is_flag=True, help="Keep float64 inputs and thresholds where the converter can (skl2onnx).")
@click.option("--opset", type=int, help="Target ONNX opset.")
@click.option("--fp16", is_flag=True, help="Core ML ML program (.mlpackage) computing in float16 (default float32).")
@click.option("--architecture", type=click.Path(dir_okay=False, path_type=Path),
              help="Keras model JSON (model.to_json()) for a weights-only .h5.")
@click.option("--custom-objects", type=click.Path(dir_okay=False, path_type=Path),
              help="Python module defining a Keras model's custom layers (its code runs).")
@common
def convert(src, dst, from_format, to_format, via, trust, sample, atol, rtol, no_verify, keep_on_mismatch, strict,
            double, opset, fp16, architecture, custom_objects, as_json, quiet, verbose):
    """Convert SRC to DST along the cheapest working path, then verify."""
    from mlconvert import api

    extra = {k: v for k, v in (("fp16", fp16), ("architecture", architecture), ("custom_objects", custom_objects))
             if v}
    try:
        report = api.convert(src, dst, from_format=from_format, to_format=to_format, via=via, trust=trust,
                             verify=not no_verify, sample=sample, atol=atol, rtol=rtol,
                             keep_on_mismatch=keep_on_mismatch, strict=strict, double=double, opset=opset, **extra)
    except MlconvertError as exc:
        if not quiet and exc.details.get("report"):
            _render_conversion(exc.details["report"])
        if not quiet and exc.details.get("plan"):
            _render_plan(exc.details["plan"], explain=True)
        raise
    if not quiet:
        _render_conversion(report.to_dict())
    _emit(as_json, report.to_dict())


@cli.command()
@click.argument("src", type=click.Path(path_type=Path))
@click.argument("dst", type=click.Path(path_type=Path))
@_stack(from_option, to_option, via_option)
@click.option("--explain", is_flag=True, help="List every edge: used, usable, or rejected and why.")
@common
def plan(src, dst, from_format, to_format, via, explain, as_json, quiet, verbose):
    """Show the path SRC → DST would take, without running it."""
    from mlconvert import api

    try:
        chosen = api.plan(src, dst, from_format=from_format, to_format=to_format, via=via)
    except MlconvertError as exc:
        if exc.details.get("plan") and not quiet:
            _render_plan(exc.details["plan"], explain=True)
        raise
    if not quiet:
        _render_plan(chosen.to_dict(), explain)
    _emit(as_json, chosen.to_dict())


@cli.command()
@click.argument("path", type=click.Path(path_type=Path))
@from_option
@common
def inspect(path, from_format, as_json, quiet, verbose):
    """What a model file is, without running code from it."""
    from mlconvert import api

    report = api.inspect(path, from_format=from_format).to_dict()
    if not quiet:
        c = console()
        c.print(f"[bold]{report['path']}[/]  {report['title']} ({report['format']}), {report['size']:,} bytes")
        c.print(f"  sha256     {report['sha256']}")
        for key in ("flavor", "kind", "producer", "producer_version", "n_features", "n_classes"):
            if report.get(key) is not None:
                c.print(f"  {key:<10} {report[key]}")
        for io in ("inputs", "outputs"):
            for item in report.get(io) or []:
                c.print(f"  {io[:-1]:<10} {item.get('name')}  {item.get('dtype', '')} {item.get('shape', '')}")
        for key, value in (report.get("details") or {}).items():
            value = _without_provenance(value)  # provenance is shown on its own lines
            if value not in (None, [], {}, ""):
                text = value if isinstance(value, str) else json.dumps(value, default=str)
                c.print(f"  [dim]{key:<10}[/] {text[:200]}")
        for key, value in (report.get("provenance") or {}).items():
            c.print(f"  [cyan]mlconvert.{key}[/] {value[:200]}")
        for w in report.get("warnings") or []:
            c.print(f"  [yellow]warning[/]    {w}")
    _emit(as_json, report)


@cli.command()
@common
def formats(as_json, quiet, verbose):
    """List formats and edges, and which are available here."""
    from mlconvert import formats as registry
    from mlconvert.edges import all_edges

    fmts = [{"id": f.id, "title": f.title, "extensions": list(f.extensions) or ["(directory)"],
             "family": f.family, "notes": f.notes} for f in registry.all_formats()]
    edges = [{"edge": e.name, "from": e.source, "to": e.target, "library": e.library, "flavors": sorted(e.flavors),
              "fidelity": e.fidelity, "available": e.unavailable_reason() is None,
              "reason": e.unavailable_reason() or ""} for e in all_edges()]
    if not quiet:
        from rich.table import Table

        t = Table(title="formats")
        for col in ("id", "title", "extensions"):
            t.add_column(col)
        for f in fmts:
            t.add_row(f["id"], f["title"], " ".join(f["extensions"]))
        console().print(t)
        t = Table(title="edges")
        for col in ("edge", "from → to", "accepts", "here"):
            t.add_column(col)
        for e in edges:
            here = "[green]available[/]" if e["available"] else f"[red]no[/]: {_plain(e['reason'])}"
            t.add_row(e["edge"], f"{e['from']} → {e['to']}", ", ".join(e["flavors"]), here)
        console().print(t)
    _emit(as_json, {"formats": fmts, "edges": edges})


@cli.command()
@common
def doctor(as_json, quiet, verbose):
    """Installed converter libraries, Java, and which edges are usable."""
    from mlconvert import api

    info = api.doctor()
    if not quiet:
        c = console()
        c.print(f"mlconvert {info['mlconvert']} on Python {info['python']} ({info['platform']})")
        for name, version in info["libraries"].items():
            c.print(f"  {name:<16} {version or '[dim]not installed[/]'}")
        c.print(f"  {'java':<16} {info['java']['path'] or '[dim]not found[/]'}")
        usable = sum(e["usable"] for e in info["edges"])
        c.print(f"edges usable here: {usable} of {len(info['edges'])}")
        for e in info["edges"]:
            if not e["usable"]:
                c.print(f"  [red]✗[/] {e['edge']}: {_plain(e['reason'])}")
        for name, status in info["plugins"].items():
            c.print(f"  plugin {name}: {status}")
        for module, error in info["broken_edge_modules"].items():
            c.print(f"  [red]broken[/] edge module {module}: {error} (a bug: please report it)")
    _emit(as_json, info)


@cli.command()
@click.argument("source", type=click.Path(path_type=Path))
@click.argument("converted", type=click.Path(path_type=Path))
@_stack(from_option, trust_option, sample_option, atol_option, rtol_option)
@common
def verify(source, converted, from_format, trust, sample, atol, rtol, as_json, quiet, verbose):
    """Re-check CONVERTED against SOURCE on the same inputs (a CI gate)."""
    from mlconvert import api

    try:
        result = api.verify(source, converted, sample=sample, atol=atol, rtol=rtol, trust=trust,
                            from_format=from_format).to_dict()
    except MlconvertError as exc:
        if exc.details.get("verification") and not quiet:
            console().print(f"  verify   {_render_verification(exc.details['verification'])}")
        raise
    if not quiet:
        console().print(f"  verify   {_render_verification(result)}")
    _emit(as_json, result)


@cli.command()
@click.option("--format", "kind", type=click.Choice(["mermaid", "dot", "png", "svg"]), default="mermaid",
              show_default=True, help="Mermaid or DOT text, or a picture through Graphviz.")
@click.option("-o", "--output", type=click.Path(dir_okay=False, path_type=Path), help="Write to FILE.")
@json_option
def graph(kind, output, as_json):
    """The format graph: edges usable here solid, the others greyed with the reason."""
    from mlconvert import graph_render

    if as_json:
        _emit(True, graph_render.as_data())
        return
    text = graph_render.render(kind, output)
    if text is not None:
        click.echo(text, nl=False, file=_data_out or sys.stdout)
    else:
        console().print(f"wrote {output}")


class _PlainDisplay:
    """One line per finished model: what CI logs want."""

    def __init__(self):
        self.done = 0
        self.total = 0

    def start(self, total: int, skipped: int) -> None:
        self.total = total
        console().print(f"batch: {total} conversion(s), {skipped} file(s) skipped")

    def started(self, item) -> None:
        pass

    def finished(self, result) -> None:
        self.done += 1
        detail = result.message if not result.ok else (
            f"max abs {result.max_abs:.3g}" if result.max_abs is not None else result.message)
        console().print(f"[{self.done}/{self.total}] {result.status:<10} {result.source} → {result.target}"
                        f"  {result.seconds:.2f} s  {detail}".rstrip())

    def close(self, report) -> None:
        pass


class _LiveDisplay:
    """A progress bar with the files in flight and running counts, on a terminal."""

    def __init__(self):
        from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn, \
            TimeRemainingColumn

        self.progress = Progress(TextColumn("[bold]batch"), BarColumn(), MofNCompleteColumn(), TextColumn("{task.fields[counts]}"),
                                 TimeElapsedColumn(), TextColumn("ETA"), TimeRemainingColumn(),
                                 TextColumn("[dim]{task.fields[current]}"), console=console(), transient=False)
        self.counts = {"ok": 0, "failed": 0, "skipped": 0}
        self.current: list[str] = []
        self.task = None

    def _fields(self) -> dict:
        c = self.counts
        return {"counts": f"[green]{c['ok']} ok[/] [red]{c['failed']} failed[/] {c['skipped']} skipped",
                "current": ", ".join(self.current)[:60]}

    def start(self, total: int, skipped: int) -> None:
        self.counts["skipped"] = skipped
        self.progress.start()
        self.task = self.progress.add_task("batch", total=total, **self._fields())

    def started(self, item) -> None:
        self.current.append(item.rel)
        self.progress.update(self.task, **self._fields())

    def finished(self, result) -> None:
        if result.source in self.current:
            self.current.remove(result.source)
        self.counts["ok" if result.ok else "failed"] += 1
        self.progress.update(self.task, advance=1, **self._fields())
        if not result.ok:
            self.progress.console.print(f"[red]failed[/] {result.source} → {result.target}: "
                                        f"exit {result.exit_code}, {result.message}")

    def close(self, report) -> None:
        self.progress.stop()


def _render_batch_summary(report) -> None:
    from rich.table import Table

    from mlconvert.batch_output import summary

    s = summary(report)
    c = console()
    counts = s["counts"]
    c.print(" · ".join(f"{n} {k}" for k, n in counts.items()) + f" · {report.seconds:.1f} s with {report.jobs} job(s)")
    t = Table(title="per conversion")
    for col in ("conversion", "ok", "failed"):
        t.add_column(col)
    for route, n in s["per_route"].items():
        t.add_row(route, str(n["ok"]), f"[red]{n['failed']}[/]" if n["failed"] else "0")
    c.print(t)
    if s["failed"]:
        t = Table(title="failed")
        for col in ("model", "target", "exit", "why"):
            t.add_column(col)
        for r in s["failed"]:
            t.add_row(r.source, r.target, str(r.exit_code), r.message)
        c.print(t)
    for title, rows, value in (("slowest", s["slowest"], lambda r: f"{r.seconds:.2f} s"),
                               ("largest verification differences", s["largest_differences"],
                                lambda r: f"{r.max_abs:.3g}")):
        if rows:
            t = Table(title=title)
            for col in ("model", "target", "seconds" if title == "slowest" else "max abs"):
                t.add_column(col)
            for r in rows:
                t.add_row(r.source, r.target, value(r))
            c.print(t)


@cli.command()
@click.argument("src_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option("--to", "targets", multiple=True, required=True, metavar="FORMAT",
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
@_stack(trust_option, atol_option, rtol_option)
@click.option("--no-verify", is_flag=True, help="Skip verification.")
@click.option("--strict", is_flag=True, help="An unverified result fails (exit 8 for that model).")
@click.option("--double", is_flag=True, help="Keep float64 where the converter can.")
@click.option("--opset", type=int, help="Target ONNX opset.")
@common
def batch(src_dir, targets, out_dir, include, exclude, jobs, timeout, max_memory, resume, report_path, junit_path,
          markdown_path, trust, atol, rtol, no_verify, strict, double, opset, as_json, quiet, verbose):
    """Convert every model under SRC_DIR, in parallel, mirroring the tree under --out."""
    from mlconvert import batch as batching
    from mlconvert import batch_output
    from mlconvert import formats as registry
    from mlconvert.errors import BatchError

    targets = [registry.get(t).id for t in targets]
    options = {"trust": trust, "atol": atol, "rtol": rtol, "verify": not no_verify, "strict": strict,
               "double": double, "opset": opset}
    display = None if quiet else (_LiveDisplay() if console().is_terminal else _PlainDisplay())
    report = batching.run(src_dir, targets=targets, out=out_dir, jobs=jobs, include=include, exclude=exclude,
                          resume=resume, timeout=timeout, max_memory_mb=max_memory, options=options, display=display)
    for path, write in ((report_path, batch_output.write_json), (junit_path, batch_output.write_junit),
                        (markdown_path, batch_output.write_markdown)):
        if path:
            write(report, path)
    if not quiet:
        _render_batch_summary(report)
    _emit(as_json, report.to_dict())
    if report.interrupted:
        raise KeyboardInterrupt
    if report.failed:
        codes = sorted({r.exit_code for r in report.failed})
        raise BatchError(f"{len(report.failed)} of {len(report.results)} conversion(s) failed "
                         f"(exit codes {', '.join(map(str, codes))})",
                         hint="the per-model codes and messages are in the summary and the reports")


# --- entry point: the only place that exits ---


def _wants(flag: str, argv: list[str]) -> bool:
    return flag in argv


def _stdout_for_data_only():
    """Everything that is not mlconvert's data goes to stderr: help, human output, and
    what converter libraries print (LightGBM's logger from Python, native code to file
    descriptor 1). Returns the stream to restore when the run ends."""
    global _data_out
    original = sys.stdout
    try:
        real = os.dup(1)
        os.dup2(2, 1)
        _data_out = os.fdopen(real, "w", buffering=1, encoding=sys.stdout.encoding or "utf-8", errors="replace")
    except (OSError, AttributeError, ValueError):  # no usable descriptors (an unusual embedding)
        _data_out = original
    sys.stdout = sys.stderr
    return _data_out


def main(argv: list[str] | None = None) -> None:
    argv = list(sys.argv[1:] if argv is None else argv)
    restore = _stdout_for_data_only()
    try:
        _run(argv)
    finally:
        sys.stdout = restore


def _run(argv: list[str]) -> None:
    debug = _wants("-v", argv) or _wants("--verbose", argv) or os.environ.get("MLCONVERT_DEBUG") == "1"
    try:
        code = cli.main(args=argv, prog_name="mlconvert", standalone_mode=False)
        sys.exit(code if isinstance(code, int) else 0)
    except MlconvertError as exc:
        if debug:
            import traceback

            traceback.print_exc()
        if not _wants("-q", argv) and not _wants("--quiet", argv):
            console().print(f"[red]error[/] ({exc.exit_code}, {exc.label}): {_plain(exc.message)}")
            if exc.hint:
                console().print(f"[dim]hint:[/] {_plain(exc.hint)}")
        if _wants("--json", argv) and not _emitted:
            click.echo(json.dumps(exc.to_dict(), indent=2, default=str), file=_data_out or sys.stdout)
        sys.exit(exc.exit_code)
    except click.exceptions.UsageError as exc:
        exc.show()
        sys.exit(2)
    except click.exceptions.Abort:
        console().print("aborted")
        sys.exit(130)
    except KeyboardInterrupt:
        console().print("interrupted: no partial output is left behind (a batch continues with --resume)")
        sys.exit(130)
    except Exception as exc:  # a bug in mlconvert: say so, keep the traceback for -v
        if debug:
            raise
        console().print(f"[red]internal error[/] (1): {type(exc).__name__}: {exc}")
        console().print("[dim]hint:[/] this is a bug in mlconvert; rerun with -v and report the traceback")
        sys.exit(1)


if __name__ == "__main__":
    main()
