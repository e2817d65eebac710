"""Batch conversion: a directory tree of models, converted in parallel.

Each worker is a long-lived process, so each converter library is imported once per
worker, not once per model. The parent only dispatches, watches and records: a
worker that crashes, hangs past --timeout or is killed for memory costs its one
model, and a new worker takes its place. Every finished model is recorded in a
manifest beside the outputs, which is what --resume reads.
"""
from __future__ import annotations

import fnmatch
import json
import multiprocessing
import multiprocessing.connection
import os
import shutil
import signal
import time
import traceback
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

from mlconvert import formats, outputs
from mlconvert._version import __version__
from mlconvert.errors import InputError, MlconvertError, UsageError

MANIFEST = ".mlconvert-batch.json"
# Extensions that name other files too: a file with one of these that no format
# recognises is a stray file (skipped), not a broken model (a failure).
SHARED_EXTENSIONS = (".json", ".txt", ".xml", ".model", ".bin")


def _model_extensions() -> tuple[str, ...]:
    """Extensions that only ever name model files, from the registered formats."""
    return tuple(ext for fmt in formats.all_formats() for ext in fmt.extensions if ext not in SHARED_EXTENSIONS)
OK_STATUSES = ("converted", "unverified", "unchanged")


@dataclass
class Item:
    source: Path
    rel: str  # source path relative to the batch root, with / separators
    target: str  # target format id
    output: Path
    output_rel: str
    source_format: str | None = None


@dataclass
class ItemResult:
    source: str
    target: str
    output: str
    status: str  # converted | unverified | unchanged | failed
    exit_code: int = 0
    message: str = ""
    hint: str = ""
    seconds: float = 0.0
    source_format: str | None = None
    plan: list[str] = field(default_factory=list)
    verification: dict | None = None

    @property
    def ok(self) -> bool:
        return self.status in OK_STATUSES

    @property
    def max_abs(self) -> float | None:
        outs = (self.verification or {}).get("outputs") or []
        values = [o["max_abs"] for o in outs if o.get("max_abs") is not None]
        return max(values) if values else None

    def to_dict(self) -> dict:
        return {**self.__dict__, "max_abs": self.max_abs}


@dataclass
class BatchReport:
    root: str
    out: str
    targets: list[str]
    jobs: int
    results: list[ItemResult] = field(default_factory=list)
    skipped: list[dict] = field(default_factory=list)  # files that are no model, or already the target
    seconds: float = 0.0
    interrupted: bool = False

    @property
    def failed(self) -> list[ItemResult]:
        return [r for r in self.results if not r.ok]

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in ("converted", "unverified", "unchanged", "failed")}
        for r in self.results:
            out[r.status] += 1
        out["skipped"] = len(self.skipped)
        return out

    def to_dict(self) -> dict:
        return {
            "mlconvert": __version__,
            "root": self.root,
            "out": self.out,
            "targets": self.targets,
            "jobs": self.jobs,
            "seconds": round(self.seconds, 3),
            "interrupted": self.interrupted,
            "counts": self.counts(),
            "results": [r.to_dict() for r in self.results],
            "skipped": self.skipped,
        }


# --- finding the models ---


def _matches(rel: str, patterns: tuple[str, ...]) -> bool:
    name = rel.rsplit("/", 1)[-1]
    return any(fnmatch.fnmatch(rel, p) or fnmatch.fnmatch(name, p) for p in patterns)


def _output_name(rel: str, target: formats.Format, keep_suffix: bool) -> str:
    """a/model.pkl -> a/model.onnx; a/model.pkl.onnx when a/model.txt would collide."""
    suffix = Path(rel).suffix
    base = rel if keep_suffix or not suffix else rel[: -len(suffix)]
    return base + (target.extensions[0] if target.extensions else "")  # a SavedModel is a folder


def _special(path: Path) -> bool:
    try:
        return formats.special_kind(os.stat(path).st_mode) is not None
    except OSError:
        return False  # a dangling link: detection reports it


def discover(root: Path, targets: list[str], out: Path, include: tuple[str, ...] = (),
             exclude: tuple[str, ...] = ()) -> tuple[list[Item], list[dict]]:
    """The models under `root` (a SavedModel or .mlpackage folder is one model) and what was skipped."""
    root, out = root.resolve(), out.resolve()
    target_formats = [formats.get(t) for t in targets]
    found: list[tuple[Path, str, str | None]] = []  # (path, rel, detected format or None if unreadable)
    skipped: list[dict] = []
    for dirpath, dirnames, filenames in os.walk(root):
        here = Path(dirpath)
        if here == out or out in here.parents:
            dirnames[:] = []
            continue
        for d in sorted(dirnames):
            if d.startswith(".") or _is_recorded(d):  # NAME.expected/: recorded outputs, not models
                dirnames.remove(d)
                continue
            try:
                fmt = formats.detect(here / d)
            except InputError:
                continue
            dirnames.remove(d)  # a model folder: one model, not a tree to walk
            rel = (here / d).relative_to(root).as_posix()
            if not include or _matches(rel, include):
                if not _matches(rel, exclude):
                    found.append((here / d, rel, fmt.id))
        for name in sorted(filenames):
            path = here / name
            rel = path.relative_to(root).as_posix()
            if name.startswith(".") or (include and not _matches(rel, include)) or _matches(rel, exclude):
                continue
            if _special(path):  # a pipe would block detection here, in the parent, before any timeout
                skipped.append({"source": rel, "reason": "not a regular file (a pipe, device or socket)"})
                continue
            if _is_recorded(name):
                skipped.append({"source": rel, "reason": "recorded predictions or inputs of a model beside it"})
                continue
            try:
                found.append((path, rel, formats.detect(path).id))
            except InputError:
                if name.lower().endswith(_model_extensions()):
                    found.append((path, rel, None))  # named like a model: its failure is reported
                else:
                    skipped.append({"source": rel, "reason": "not a model file"})
    items: list[Item] = []
    for target in target_formats:
        names = [_output_name(rel, target, False) for _, rel, _ in found]
        for (path, rel, fmt_id), name in zip(found, names):
            if fmt_id == target.id:
                skipped.append({"source": rel, "reason": f"already {target.id}"})
                continue
            out_rel = _output_name(rel, target, True) if names.count(name) > 1 else name
            items.append(Item(path, rel, target.id, out / out_rel, out_rel, fmt_id))
    return items, skipped


# --- the manifest, for --resume ---


# Recorded predictions and their inputs beside a model, by name: for `dir/NAME.pkl` (or
# NAME.model.pkl, NAME.json, ...) `dir/NAME.expected.{csv,npy,pkl}` (or a folder
# `NAME.expected/` of ONNX output_N.pb files) and `dir/NAME.sample.{csv,npy,npz}`: the
# converted model is then checked against the recorded predictions (--expected, --sample).
_EXPECTED_SUFFIXES = (".csv", ".npy", ".pkl", "")
_SAMPLE_SUFFIXES = (".csv", ".npy", ".npz")


def recorded_beside(model: Path) -> dict:
    """The --expected and --sample files the naming convention finds beside `model`."""
    model = Path(model)
    name = model.name
    for ext in sorted((e for fmt in formats.all_formats() for e in fmt.extensions), key=len, reverse=True):
        if name.lower().endswith(ext):
            name = name[: -len(ext)]
            break
    stem = name[: -len(".model")] if name.endswith(".model") else name
    found = {}
    for key, part, suffixes in (("expected", "expected", _EXPECTED_SUFFIXES), ("sample", "sample", _SAMPLE_SUFFIXES)):
        for suffix in suffixes:
            candidate = model.with_name(f"{stem}.{part}{suffix}")
            if candidate.exists() and (suffix or candidate.is_dir()):
                found[key] = str(candidate)
                break
    return found


def _is_recorded(name: str) -> bool:
    """A file of recorded predictions or inputs (the convention above), not a model."""
    return any(f".{part}." in name or name.endswith(f".{part}") for part in ("expected", "sample"))


def options_key(options: dict, target: str) -> str:
    return json.dumps({"target": target, "mlconvert": __version__, **options}, sort_keys=True, default=str)


class Manifest:
    def __init__(self, out: Path):
        self.path = out / MANIFEST
        try:
            self.entries = json.loads(self.path.read_text())["items"]
        except (OSError, ValueError, KeyError):
            self.entries = {}

    def up_to_date(self, item: Item, sha256: str, key: str) -> bool:
        entry = self.entries.get(item.output_rel)
        return (item.output.exists() and entry is not None and entry.get("sha256") == sha256
                and entry.get("options") == key and entry.get("status") in OK_STATUSES)

    def record(self, item: Item, sha256: str, key: str, result: ItemResult) -> None:
        self.entries[item.output_rel] = {"source": item.rel, "sha256": sha256, "options": key,
                                         "status": result.status, "exit_code": result.exit_code}
        self.path.parent.mkdir(parents=True, exist_ok=True)
        # Atomic: a kill between two models never leaves a torn manifest.
        outputs.write_text(self.path, json.dumps({"version": 1, "items": self.entries}, indent=1, sort_keys=True))


# --- workers ---


def _worker(conn, max_memory_mb: int | None) -> None:
    """Runs in a worker process: convert what the parent sends until it sends None."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    # Parallelism comes from the workers: one thread each, or they fight over the cores.
    for var in ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS"):
        os.environ.setdefault(var, "1")
    if max_memory_mb:
        import resource

        limit = max_memory_mb * 1024 * 1024
        resource.setrlimit(resource.RLIMIT_AS, (limit, limit))
    from mlconvert import api

    while True:
        try:
            task = conn.recv()
        except (EOFError, OSError):  # the parent is gone (killed): nothing more to do
            return
        if task is None:
            return
        started = time.perf_counter()
        result: dict = {"status": "failed", "exit_code": 1}
        try:
            # The format discovery detected goes along: the worker does not detect it again.
            report = api.convert(task["source"], task["output"], from_format=task["source_format"],
                                 to_format=task["target"], **task["options"])
            verified = (report.verification or {}).get("status") == "verified"
            result = {"status": "converted" if verified else "unverified", "exit_code": 0, "report": report.to_dict()}
        except MlconvertError as exc:
            result = {"status": "failed", "exit_code": exc.exit_code, "message": exc.message, "hint": exc.hint or "",
                      "report": exc.details.get("report")}
        except MemoryError:
            result["message"] = f"ran out of memory (limit {max_memory_mb} MB)"
        except Exception as exc:  # a bug: keep the traceback for the report
            result["message"] = f"internal error: {type(exc).__name__}: {exc}"
            result["hint"] = traceback.format_exc(limit=8)
        result["seconds"] = time.perf_counter() - started
        try:
            conn.send(result)
        except OSError:  # the parent was killed mid-conversion; the output was written atomically
            return


class _Worker:
    def __init__(self, ctx, max_memory_mb: int | None):
        self.conn, child = ctx.Pipe()
        self.process = ctx.Process(target=_worker, args=(child, max_memory_mb), daemon=True)
        self.process.start()
        child.close()
        self.item: Item | None = None
        self.started = 0.0

    def stop(self, kill: bool = False) -> None:
        if kill:
            self.process.kill()
        else:
            try:
                self.conn.send(None)
            except OSError:
                pass
        self.process.join(timeout=5)
        if self.process.is_alive():
            self.process.kill()
            self.process.join()


def _result_from(item: Item, raw: dict) -> ItemResult:
    report = raw.get("report") or {}
    return ItemResult(
        source=item.rel, target=item.target, output=item.output_rel, status=raw["status"],
        exit_code=raw["exit_code"], message=raw.get("message", ""), hint=raw.get("hint", ""),
        seconds=round(raw.get("seconds", 0.0), 3),
        source_format=(report.get("source") or {}).get("format") or item.source_format,
        plan=[s["edge"] for s in report.get("steps", [])], verification=report.get("verification"),
    )


def _remove_scratch(item: Item, pid: int) -> None:
    """A killed conversion leaves its scratch folder beside the target: remove exactly it."""
    from mlconvert.outputs import scratch_prefix

    for leftover in item.output.parent.glob(scratch_prefix(item.output, pid) + "*"):
        shutil.rmtree(leftover, ignore_errors=True)


def run(root, *, targets: list[str], out, jobs: int | None = None, include: tuple[str, ...] = (),
        exclude: tuple[str, ...] = (), resume: bool = False, timeout: float | None = None,
        max_memory_mb: int | None = None, options: dict | None = None, display=None) -> BatchReport:
    """Convert every model under `root` to each target format, mirroring the tree under `out`."""
    root, out = Path(root), Path(out)
    if not root.is_dir():
        raise UsageError(f"{root} is not a directory", hint="mlconvert batch SRC_DIR --to FORMAT --out DST_DIR")
    if not targets:
        raise UsageError("no target format", hint="give --to FORMAT (several are allowed)")
    options = dict(options or {})
    jobs = max(1, jobs or os.cpu_count() or 1)
    started = time.perf_counter()
    items, skipped = discover(root, targets, out, include, exclude)
    report = BatchReport(str(root), str(out), list(targets), jobs, skipped=skipped)
    manifest = Manifest(out)
    display = display or _NullDisplay()
    display.start(len(items), len(skipped))

    pending: deque[tuple[Item, str, str]] = deque()
    ctx = multiprocessing.get_context("spawn")  # no fork of a parent that runs a display thread
    workers: list[_Worker] = []
    keys: dict[int, tuple[str, str]] = {}

    def finish(worker: _Worker, raw: dict) -> None:
        item = worker.item
        result = _result_from(item, raw)
        report.results.append(result)
        digest, key = keys.pop(id(worker))
        # The hash of what was actually converted, as the conversion recorded it.
        converted = ((raw.get("report") or {}).get("source") or {}).get("sha256")
        manifest.record(item, converted or digest, key, result)
        worker.item = None
        display.finished(result)

    # Ctrl-C, or a KeyboardInterrupt raised by the display, stops the batch at any point
    # below: what finished is in the manifest, --resume continues.
    try:
        for item in items:
            key = options_key(options, item.target)
            # Hashing here only decides --resume; a conversion hashes its input itself.
            digest = outputs.sha256_of(item.source) if resume and item.output.exists() else ""
            if digest and manifest.up_to_date(item, digest, key):
                result = ItemResult(item.rel, item.target, item.output_rel, "unchanged",
                                    source_format=item.source_format, message="up to date (--resume)")
                report.results.append(result)
                display.finished(result)
            else:
                pending.append((item, digest, key))
        for _ in range(min(jobs, len(pending))):
            workers.append(_Worker(ctx, max_memory_mb))

        while pending or any(w.item for w in workers):
            for worker in workers:
                if worker.item is None and pending:
                    item, digest, key = pending.popleft()
                    worker.item, worker.started = item, time.monotonic()
                    keys[id(worker)] = (digest, key)
                    worker.conn.send({"source": str(item.source), "output": str(item.output),
                                      "target": item.target, "source_format": item.source_format,
                                      "options": {**options, **recorded_beside(item.source)}})
                    display.started(item)
            busy = [w for w in workers if w.item]
            multiprocessing.connection.wait([w.conn for w in busy] + [w.process.sentinel for w in busy], 0.5)
            for i, worker in enumerate(workers):
                if worker.item is None:
                    continue
                if worker.conn.poll():
                    try:
                        finish(worker, worker.conn.recv())
                        continue
                    except (EOFError, OSError):
                        pass  # died while answering: handled as a crash below
                crashed = not worker.process.is_alive()
                late = timeout and time.monotonic() - worker.started > timeout
                if not (crashed or late):
                    continue
                pid = worker.process.pid
                worker.stop(kill=True)
                if crashed:
                    code = worker.process.exitcode
                    why = f"signal {-code}" if code and code < 0 else f"exit status {code}"
                    message = f"the conversion process died ({why}): a crash or out of memory in a converter library"
                else:
                    message = f"timed out after {timeout:g} s"
                _remove_scratch(worker.item, pid)
                item_seconds = time.monotonic() - worker.started
                finish(worker, {"status": "failed", "exit_code": 5, "message": message, "seconds": item_seconds})
                workers[i] = _Worker(ctx, max_memory_mb)
    except KeyboardInterrupt:
        report.interrupted = True
        for worker in workers:
            if worker.item:
                pid = worker.process.pid
                worker.stop(kill=True)
                _remove_scratch(worker.item, pid)
                worker.item = None
    finally:
        for worker in workers:
            worker.stop(kill=report.interrupted)
        report.seconds = time.perf_counter() - started
        display.close(report)
    report.results.sort(key=lambda r: (r.source, r.target))
    return report


class _NullDisplay:
    def start(self, total: int, skipped: int) -> None: ...
    def started(self, item: Item) -> None: ...
    def finished(self, result: ItemResult) -> None: ...
    def close(self, report: BatchReport) -> None: ...
