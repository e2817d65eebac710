"""What the command line shows, and where.

stdout carries what a command exists to produce: the human output of `inspect`, `plan`,
`formats`, `doctor`, `verify`, `graph` and the convert / batch summaries, or with `--json`
one JSON document instead (the envelope below, docs/schema/mlconvert-output.schema.json).
stderr carries progress, warnings, errors and whatever converter libraries print.

A `Session` is one run of the command line: its flags, its result and its two rich
Consoles. It lives in click's context object, so nothing outlives the call. Every
renderer and the batch displays are here; cli.py only wires commands to them.
Importing this module imports no ML library (rich is imported when first printed).
"""
from __future__ import annotations

import contextlib
import json
import math
import os
import re
import sys

SCHEMA_VERSION = 1
"""Bumped when a field of the JSON output changes meaning or goes away (adding one does not)."""


class Session:
    """One run: -v / -q / --json as click parsed them, the result, and the two Consoles."""

    def __init__(self, data=None):
        self.json = False
        self.quiet = False
        self.verbose = False
        self.command: str | None = None
        self.result: dict | None = None
        self.moved: tuple[str, ...] = ()  # error details that became the result
        self._data = data
        self._out = None
        self._err = None

    @property
    def data(self):
        """The stream for what the command produces (the real stdout, see `data_stream`)."""
        return self._data if self._data is not None else sys.stdout

    @property
    def out(self):
        """The Console on stdout, for the command's human output."""
        if self._out is None:
            self._out = _console(file=self.data)
        return self._out

    @property
    def err(self):
        """The Console on stderr, for progress, warnings and errors."""
        if self._err is None:
            self._err = _console(stderr=True)
        return self._err

    def show(self, result: dict, render=None) -> None:
        """The command's result: rendered for people on stdout, unless --json or -q."""
        self.result = result
        if render is not None and not self.json and not self.quiet:
            render(self.out)

    def failed_with(self, result: dict | None, moved: str | None = None, render=None) -> None:
        """What a failing command still has to show: its partial result (in the JSON
        envelope; `moved` names the error detail it came from) and, on stderr unless -q,
        the details that explain the failure."""
        if result is not None:
            self.result = result
            self.moved = (moved,) if moved else ()
        if render is not None and not self.quiet:
            render(self.err)

    def progress(self, text: str) -> None:
        if not self.quiet:
            self.err.print(text)

    def warn(self, text: str) -> None:
        if not self.quiet:
            self.err.print(f"[yellow]warning[/]: {plain(text)}")

    def emit(self, exit_code: int, error: dict | None) -> None:
        """With --json, the one JSON document of this run on stdout."""
        if self.json:
            doc = envelope(self.command, exit_code, self.result, error)
            self.data.write(json.dumps(_finite(doc), indent=2, default=str) + "\n")
            self.data.flush()


_LOG_WIDTH = 10_000
"""Wide enough that no line of a log is ever wrapped or an identifier cut."""


def _console(**where):
    """A rich Console. On a terminal it wraps at the terminal's width; anywhere else (a CI log,
    a pipe, a file) a line is never wrapped mid-word and no cell is cut, so paths, URLs, edge
    names and hashes can be copied as they are."""
    from rich.console import Console

    console = Console(highlight=False, soft_wrap=False, **where)
    if not console.is_terminal:
        console = Console(highlight=False, soft_wrap=True, width=_LOG_WIDTH, **where)
    return console


@contextlib.contextmanager
def library_noise(verbose: bool):
    """Converter libraries' chatter (TensorFlow's start-up lines, coremltools' progress bars,
    their UserWarnings) is hidden unless -v: it would bury mlconvert's own messages and break
    `-q`. Set through the environment too, so batch workers (fresh interpreters) inherit it."""
    import warnings

    env = {"MLCONVERT_VERBOSE": "1"} if verbose else {"TQDM_DISABLE": "1", "PYTHONWARNINGS": "ignore"}
    saved = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        with warnings.catch_warnings():
            if not verbose:
                warnings.simplefilter("ignore")
            yield
    finally:
        for key, value in saved.items():
            if value is None:
                os.environ.pop(key, None)
            else:
                os.environ[key] = value


def envelope(command: str | None, exit_code: int, result: dict | None, error: dict | None) -> dict:
    """The JSON document of every command, success or failure."""
    return {"schema_version": SCHEMA_VERSION, "command": command, "ok": exit_code == 0, "exit_code": exit_code,
            "result": result, "error": error}


def error_info(kind: str, exit_code: int, message: str, hint: str | None = None, details: dict | None = None) -> dict:
    return {"type": kind, "exit_code": exit_code, "message": message, "hint": hint, "details": details or {}}


def _finite(value):
    """JSON has no NaN or infinity: such a figure is written as null."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _finite(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_finite(v) for v in value]
    return value


@contextlib.contextmanager
def data_stream():
    """Keep stdout for mlconvert's own output while a command runs.

    Converter libraries print from Python and from native code straight to file
    descriptor 1. For the run, fd 1 and `sys.stdout` point at stderr, and the stream
    yielded here writes to the saved, real stdout. On the way out everything is flushed,
    fd 1 and `sys.stdout` are put back and the duplicate is closed.
    """
    original = sys.stdout
    try:
        real_stdout = original.fileno() == 1
    except (AttributeError, OSError, ValueError):  # not a file (an embedding, a capture): leave fd 1 alone
        real_stdout = False
    with contextlib.suppress(OSError, ValueError, AttributeError):
        original.flush()
    saved = None
    try:
        saved = os.dup(1)
        os.dup2(2, 1)
    except OSError:  # no usable descriptors
        if saved is not None:
            os.close(saved)
        saved = None
    data = original
    if saved is not None and real_stdout:
        data = open(saved, "w", encoding=getattr(original, "encoding", None) or "utf-8", errors="replace",
                    buffering=1, closefd=False)
    sys.stdout = sys.stderr
    try:
        yield data
    finally:
        with contextlib.suppress(OSError, ValueError):
            sys.stderr.flush()
        if data is not original:
            with contextlib.suppress(OSError, ValueError):  # a closed pipe (`| head`) is not an error
                data.flush()
            with contextlib.suppress(OSError, ValueError):
                data.close()
        sys.stdout = original
        if saved is not None:
            _flush_c_stdio()  # what native code buffered belongs to stderr, not to the restored stdout
            os.dup2(saved, 1)
            os.close(saved)


def _flush_c_stdio() -> None:
    with contextlib.suppress(Exception):
        import ctypes

        ctypes.CDLL(None).fflush(None)


# --- text ---


_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f]")
"""C0 and C1 control characters but newline and tab: escape sequences, bells, carriage returns."""
_SURROGATE = re.compile("[\ud800-\udfff]")
"""What Python makes of bytes in a file name that are not UTF-8: no terminal can show them."""


def plain(text) -> str:
    """Text shown as it is, the one escaping of everything rendered: a file's own strings,
    paths and library messages are not rich markup, and their control characters (a
    terminal's escape sequences) are dropped. Undecodable bytes in a name become U+FFFD."""
    from rich.markup import escape

    return escape(_CONTROL.sub("", _SURROGATE.sub("\ufffd", str(text))))


def _num(x) -> str:
    return "-" if x is None else f"{x:.3g}"


def error_line(console, exit_code: int, message: str, hint: str | None, internal: bool = False) -> None:
    console.print(f"[red]{'internal error' if internal else 'error'}[/] (exit {exit_code}): {plain(message)}")
    if hint:
        console.print(f"[dim]hint:[/] {plain(hint)}")


# --- renderers: each takes the Console to print on and the command's result ---


def verification_text(v: dict) -> str:
    if v["status"] != "verified" and not v.get("outputs"):
        return f"[yellow]{plain(v['status'])}[/] ({plain(v.get('reason', ''))})"
    parts = []
    for o in v.get("outputs", []):
        if o["name"] == "label":
            ties = f", {o['ties']} ties" if o.get("ties") else ""
            parts.append(f"labels agree {o.get('agreement', 0) * 100:.1f}%{ties}")
        else:
            parts.append(f"{plain(o['name'])} max abs {_num(o.get('max_abs'))}, max rel {_num(o.get('max_rel'))}")
    colour = {"verified": "green", "mismatch": "red"}.get(v["status"], "yellow")
    return (f"[{colour}]{v['status']}[/] on {v['rows']} rows, {plain(v['inputs'])}\n           " + "; ".join(parts)
            + f"\n           atol {v['atol']:g}, rtol {v['rtol']:g} ({plain(v['tolerance_source'])})"
            + (f"\n           [red]{plain(v['reason'])}[/]" if v.get("reason") else ""))


def conversion(console, report: dict) -> None:
    src, dst = report["source"], report["target"]
    producer = f" · {src['producer']} {src.get('producer_version') or ''}".rstrip() if src.get("producer") else ""
    console.print(f"[bold]{plain(src['path'])}[/] → [bold]{plain(dst['path'])}[/]")
    console.print(f"  input    {src['format']} ({plain(src['flavor'])}){plain(producer)}")
    for i, rec in enumerate(report["steps"], 1):
        library = plain(f"{rec['library']} {rec['version'] or '?'}")
        console.print(f"  step {i}   {plain(rec['edge'])} [dim]({library})[/] {plain(rec['from'])} → {plain(rec['to'])}  "
                      f"{rec['seconds']:.2f} s  [dim]{plain(rec['fidelity'])}[/]")
        for key in ("precision", "note"):  # what the step itself reports about the written model
            if (rec.get("details") or {}).get(key):
                console.print(f"           {key}: {plain(rec['details'][key])}")
    if report.get("verification"):
        console.print(f"  verify   {verification_text(report['verification'])}")
    if report.get("written"):
        console.print(f"  [green]wrote[/]    {plain(dst['path'])}")


def conversion_notes(session: Session, report: dict) -> None:
    """What a conversion warns about (stderr): the source's warnings and re-planned steps."""
    for warning in report["source"].get("warnings") or []:
        session.warn(warning)
    for rec in report.get("failed_steps", []):
        session.warn(f"{rec['edge']} ({rec['from']} → {rec['to']}) failed: {rec['error']}; re-planned")


_STATUS_ORDER = {"used": 0, "usable": 1, "rejected": 2}
_STATUS_COLOUR = {"used": "green", "usable": "cyan", "rejected": "red"}


def plan(console, data: dict, explain: bool) -> None:
    """The plan's steps; with --explain every edge, the used ones first. A plan that found no
    path shows, without --explain, only the edges that touch this input's way to the target."""
    src = data["source"]
    if data["steps"]:
        console.print(f"plan: {src['format']} ({plain(src['flavor'])}) → {data['target']['format']}, "
                      f"{len(data['steps'])} step(s)")
    for i, s in enumerate(data["steps"], 1):
        console.print(f"  {i}. {s['edge']} ({s['library']}): {s['from']} → {s['to']}  [dim]{plain(s['fidelity'])}[/]")
    edges = sorted(data["edges"], key=lambda e: (_STATUS_ORDER[e["status"]], e["edge"]))
    if explain:
        from rich.table import Table

        table = Table(title="edges", show_lines=False)
        table.add_column("edge", overflow="fold")  # an edge name is never cut
        table.add_column("from → to", overflow="fold")
        table.add_column("status")
        table.add_column("why")
        for e in edges:
            table.add_row(e["edge"], f"{e['from']} → {e['to']}", f"[{_STATUS_COLOUR[e['status']]}]{e['status']}[/]",
                          plain(e["reason"]))
        console.print(table)
    elif not data["steps"]:
        for e in edges:
            if e.get("relevant", True):
                console.print(f"  [{_STATUS_COLOUR[e['status']]}]{e['status']:<8}[/] {e['edge']} "
                              f"({e['from']} → {e['to']}): {plain(e['reason'])}")


def _without_provenance(value):
    if isinstance(value, dict):
        return {k: _without_provenance(v) for k, v in value.items() if not str(k).startswith("mlconvert.")}
    return value


_INSPECT_KEYS = ("flavor", "kind", "producer", "producer_version", "n_features", "feature_names", "n_classes")
_VALUE_LIMIT = 400
"""Characters of a long value shown on a terminal; the full value is in --json (and in logs)."""


def _shown(value, limit: int | None) -> str:
    """A value on one line, never cut inside a token: a long list stops at an item, with
    how many are left; a long text at a word."""
    if isinstance(value, (bool, type(None))):
        return json.dumps(value)
    if isinstance(value, dict):
        items = [f"{k}: {json.dumps(v, default=str) if not isinstance(v, str) else v}" for k, v in value.items()]
    elif isinstance(value, (list, tuple)):
        items = [v if isinstance(v, str) else json.dumps(v, default=str) for v in value]
    else:
        text = str(value)
        if limit is None or len(text) <= limit:
            return text
        cut = text.rfind(" ", 0, limit)
        return text[: cut if cut > 0 else limit] + " … (--json has all of it)"
    shown, size = [], 0
    for item in items:
        if limit is not None and shown and size + len(item) > limit:
            return ", ".join(shown) + f", … ({len(items) - len(shown)} more; --json lists all)"
        shown.append(item)
        size += len(item) + 2
    return ", ".join(shown)


def inspect(console, report: dict) -> None:
    limit = _VALUE_LIMIT if console.is_terminal else None
    console.print(f"[bold]{plain(report['path'])}[/]  {plain(report['title'])} ({report['format']}), "
                  f"{report['size']:,} bytes")
    rows: list[tuple[str, str, str]] = [("sha256", report["sha256"], "")]
    for key in _INSPECT_KEYS:
        if report.get(key) is not None:
            rows.append((key, _shown(report[key], limit), ""))
    for io in ("inputs", "outputs"):
        for item in report.get(io) or []:
            shape = item.get("shape", "")
            rows.append((io[:-1], f"{item.get('name')}  {item.get('dtype', '')} "
                                  f"{json.dumps(shape) if isinstance(shape, list) else shape}".rstrip(), ""))
    for key, value in (report.get("details") or {}).items():
        value = _without_provenance(value)  # provenance is shown on its own lines
        if value not in (None, [], {}, ""):
            rows.append((key, _shown(value, limit), "dim"))
    for key, value in (report.get("provenance") or {}).items():
        rows.append((f"mlconvert.{key}", _shown(value, limit), "cyan"))
    width = max(10, *(len(key) for key, _, _ in rows))
    for key, value, style in rows:
        label = f"{plain(key):<{width}}"
        console.print(f"  {f'[{style}]{label}[/]' if style else label} {plain(value)}")
    for w in report.get("warnings") or []:
        console.print(f"  [yellow]{'warning':<{width}}[/] {plain(w)}")


def _here(e: dict) -> str:
    return "[green]available[/]" if e["available"] else f"[red]no[/]: {plain(e['reason'])}"


def formats(console, data: dict) -> None:
    from rich.table import Table

    t = Table(title="formats")
    for col in ("id", "title", "extensions"):
        t.add_column(col)
    for f in data["formats"]:
        t.add_row(f["id"], f["title"], " ".join(f["extensions"]) or "(directory)")
    console.print(t)
    t = Table(title="edges")
    t.add_column("edge", overflow="fold")  # an edge name is never cut
    for col in ("from → to", "accepts", "here"):
        t.add_column(col)
    for e in data["edges"]:
        t.add_row(e["edge"], f"{e['from']} → {e['to']}", ", ".join(e["flavors"]), _here(e))
    console.print(t)
    read = {e["from"] for e in data["edges"]}
    written = {e["to"] for e in data["edges"]}
    for f in data["formats"]:
        if f["id"] not in read and f["id"] not in written:
            console.print(f"{f['id']}: inspected only (no edge reads or writes it)")
        elif f["id"] not in read:
            console.print(f"{f['id']}: a target only (no edge converts from it)")


def doctor(console, info: dict) -> None:
    console.print(f"mlconvert {info['mlconvert']} on Python {info['python']} ({plain(info['platform'])})")
    for name, version in info["libraries"].items():
        console.print(f"  {name:<16} {version or '[dim]not installed[/]'}")
    java = info["java"]
    console.print(f"  {'java':<16} {plain(java['path']) if java['available'] else '[dim]not found[/]'}")
    available = sum(e["available"] for e in info["edges"])
    console.print(f"edges available here: {available} of {len(info['edges'])}")
    for e in info["edges"]:
        if not e["available"]:
            console.print(f"  [red]✗[/] {e['edge']}: {plain(e['reason'])}")
    for p in info["plugins"]:
        state = "loaded" if p["available"] else f"[red]{plain(p['reason'])}[/]"
        console.print(f"  plugin {plain(p['name'])}: {state}")


def verification(console, result: dict) -> None:
    console.print(f"  verify   {verification_text(result['verification'])}")


def batch_summary(console, report) -> None:
    from rich.table import Table

    from mlconvert.batch_output import failure_line, message_of, summary

    s = summary(report)
    counts = s["counts"]
    console.print(" · ".join(f"{n} {k}" for k, n in counts.items())
                  + f" · {report.seconds:.1f} s with {report.jobs} job(s)")
    if report.interrupted:
        console.print(f"[yellow]interrupted[/] after {len(report.results)} conversion(s): "
                      "rerun with --resume to continue where it stopped")
    if s["per_route"]:
        t = Table(title="per conversion")
        for col in ("conversion", "ok", "failed"):
            t.add_column(col)
        for route, n in s["per_route"].items():
            t.add_row(route, str(n["ok"]), f"[red]{n['failed']}[/]" if n["failed"] else "0")
        console.print(t)
    if s["failed"] and console.is_terminal:
        t = Table(title="failed")
        t.add_column("model", overflow="fold")
        for col in ("target", "exit", "why"):
            t.add_column(col)
        for r in s["failed"]:
            t.add_row(plain(r.source), r.target, str(r.exit_code), plain(message_of(report, r)))
        console.print(t)
    elif s["failed"]:  # a log: one line per failure, to grep and to copy
        console.print(f"failed ({len(s['failed'])}):")
        for r in s["failed"]:
            console.print(f"  {plain(failure_line(report, r))}")
    for title, rows, column, value in (("slowest", s["slowest"], "seconds", lambda r: f"{r.seconds:.2f} s"),
                                       ("largest verification differences", s["largest_differences"], "max abs",
                                        lambda r: f"{r.max_abs:.3g}")):
        if rows:
            t = Table(title=title)
            for col in ("model", "target", column):
                t.add_column(col)
            for r in rows:
                t.add_row(plain(r.source), r.target, value(r))
            console.print(t)


# --- batch displays: progress on stderr while the batch runs ---


def _failure(result, root) -> str:
    from mlconvert.batch_output import relative

    return (f"[red]failed[/] {plain(result.source)} → {result.target}: exit {result.exit_code}: "
            f"{plain(relative(root, result.message) if root else result.message)}")


class FailuresDisplay:
    """-q: no progress, but each failed model still says so."""

    def __init__(self, console, root=None):
        self.console = console
        self.root = root  # messages name paths relative to it

    def start(self, total: int, skipped: int) -> None:
        pass

    def started(self, item) -> None:
        pass

    def finished(self, result) -> None:
        if not result.ok:
            self.console.print(_failure(result, self.root))

    def close(self, report) -> None:
        pass


class PlainDisplay(FailuresDisplay):
    """One line per finished model: what CI logs want."""

    def __init__(self, console, root=None):
        super().__init__(console, root)
        self.done = 0
        self.total = 0

    def start(self, total: int, skipped: int) -> None:
        self.total = total
        self.console.print(f"batch: {total} conversion(s), {skipped} file(s) skipped")

    def finished(self, result) -> None:
        self.done += 1
        if not result.ok:
            self.console.print(f"[{self.done}/{self.total}] {_failure(result, self.root)}")
            return
        detail = f"max abs {result.max_abs:.3g}" if result.max_abs is not None else result.message
        self.console.print(f"[{self.done}/{self.total}] {result.status:<10} {plain(result.source)} → "
                           f"{result.target}  {result.seconds:.2f} s  {plain(detail)}".rstrip())


class LiveDisplay(FailuresDisplay):
    """A progress bar with the files in flight and running counts, on a terminal."""

    def __init__(self, console, root=None):
        super().__init__(console, root)
        from rich.progress import (BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn,
                                   TimeRemainingColumn)

        self.progress = Progress(TextColumn("[bold]batch"), BarColumn(), MofNCompleteColumn(),
                                 TextColumn("{task.fields[counts]}"), TimeElapsedColumn(), TextColumn("ETA"),
                                 TimeRemainingColumn(), TextColumn("[dim]{task.fields[current]}"), console=console,
                                 transient=False)
        self.counts = {"ok": 0, "failed": 0, "skipped": 0}
        self.current: list[str] = []
        self.task = None

    def _fields(self) -> dict:
        c = self.counts
        return {"counts": f"[green]{c['ok']} ok[/] [red]{c['failed']} failed[/] {c['skipped']} skipped",
                "current": plain(", ".join(self.current)[:60])}

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
            self.progress.console.print(_failure(result, self.root))

    def close(self, report) -> None:
        self.progress.stop()


def batch_display(session: Session, root=None):
    if session.quiet:
        return FailuresDisplay(session.err, root)
    return LiveDisplay(session.err, root) if session.err.is_terminal else PlainDisplay(session.err, root)
