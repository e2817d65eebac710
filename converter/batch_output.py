"""What a batch run leaves for people and CI systems: a summary, JSON, JUnit XML, Markdown."""
from __future__ import annotations

import json
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path

from mlconvert.batch import BatchReport, ItemResult
from mlconvert.errors import EXIT_CODES


def relative(root, text: str) -> str:
    """A message with the batch root's absolute path taken out: paths read as in the
    reports' model column (`a/m.pkl`), the same on every runner."""
    if not text:
        return text
    for base in (str(Path(root).resolve()), str(Path(root))):  # absolute first: it contains the other
        if base not in (".", ""):
            text = re.sub(r"(?<![\w/.~-])" + re.escape(base.rstrip(os.sep) + os.sep), "", text)
    return text


def message_of(report: BatchReport, r: ItemResult) -> str:
    return relative(report.root, r.message)


def failure_line(report: BatchReport, r: ItemResult) -> str:
    """One failed model on one line, for logs: `path → target: exit N: message`."""
    return f"{r.source} → {r.target}: exit {r.exit_code}: {message_of(report, r)}"


def summary(report: BatchReport, top: int = 5) -> dict:
    """Counts per status and per conversion, the slowest models and the largest differences."""
    per_route: dict[str, dict[str, int]] = {}
    for r in report.results:
        route = f"{r.source_format or '?'} → {r.target}"
        counts = per_route.setdefault(route, {"ok": 0, "failed": 0})
        counts["ok" if r.ok else "failed"] += 1
    ran = [r for r in report.results if r.status != "unchanged"]
    diffs = [r for r in report.results if r.max_abs is not None]
    return {
        "counts": report.counts(),
        "per_route": dict(sorted(per_route.items())),
        "slowest": sorted(ran, key=lambda r: -r.seconds)[:top],
        "largest_differences": sorted(diffs, key=lambda r: -r.max_abs)[:top],
        "failed": report.failed,
    }


def _atomic_write(path: Path, text: str) -> None:
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    os.replace(tmp, path)


def write_json(report: BatchReport, path: Path) -> None:
    _atomic_write(path, json.dumps(report.to_dict(), indent=2, default=str) + "\n")


def _case_name(r: ItemResult) -> str:
    return f"{r.source} → {r.target}"


def junit_xml(report: BatchReport) -> str:
    """One testsuite per target format, one testcase per model (skipped files are not models)."""
    root = ET.Element("testsuites", name="mlconvert batch", time=f"{report.seconds:.3f}")
    totals = {"tests": 0, "failures": 0}
    for target in report.targets:
        results = [r for r in report.results if r.target == target]
        failures = sum(not r.ok for r in results)
        suite = ET.SubElement(root, "testsuite", name=f"mlconvert → {target}", tests=str(len(results)),
                              failures=str(failures), errors="0", skipped="0",
                              time=f"{sum(r.seconds for r in results):.3f}")
        for r in results:
            case = ET.SubElement(suite, "testcase", classname=f"mlconvert.{target}", name=_case_name(r),
                                 time=f"{r.seconds:.3f}")
            if not r.ok:
                meaning = EXIT_CODES.get(r.exit_code, "")
                message = message_of(report, r)
                failure = ET.SubElement(case, "failure", type=f"exit {r.exit_code}: {meaning}", message=message)
                failure.text = "\n".join(filter(None, [message, r.hint and f"hint: {relative(report.root, r.hint)}"]))
            out = [f"status: {r.status}", f"output: {r.output}" if r.ok else "output: none (nothing was written)"]
            if r.plan:
                out.append("plan: " + " → ".join(r.plan))
            if r.max_abs is not None:
                out.append(f"max abs difference: {r.max_abs:.3g}")
            if r.status == "unverified" and r.verification:
                out.append(f"unverified: {r.verification.get('reason', '')}")
            ET.SubElement(case, "system-out").text = "\n".join(out)
        totals["tests"] += len(results)
        totals["failures"] += failures
    root.set("tests", str(totals["tests"]))
    root.set("failures", str(totals["failures"]))
    root.set("errors", "0")
    ET.indent(root)
    return '<?xml version="1.0" encoding="utf-8"?>\n' + ET.tostring(root, encoding="unicode") + "\n"


def write_junit(report: BatchReport, path: Path) -> None:
    _atomic_write(path, junit_xml(report))


def _cell(text) -> str:
    return str(text).replace("|", "\\|").replace("\n", " ")


def markdown(report: BatchReport) -> str:
    s = summary(report)
    c = s["counts"]
    verdict = "all converted" if not s["failed"] else f"{len(s['failed'])} failed"
    lines = [
        f"## mlconvert batch: {verdict}",
        "",
        f"`{report.root}` → `{report.out}` ({', '.join(report.targets)}), {report.jobs} jobs, {report.seconds:.1f} s"
        + (" — **interrupted**: rerun with `--resume` to continue" if report.interrupted else ""),
        "",
        "| converted | unverified | unchanged | failed | skipped |",
        "|---:|---:|---:|---:|---:|",
        f"| {c['converted']} | {c['unverified']} | {c['unchanged']} | {c['failed']} | {c['skipped']} |",
        "",
        "| conversion | ok | failed |",
        "|---|---:|---:|",
        *[f"| {route} | {n['ok']} | {n['failed']} |" for route, n in s["per_route"].items()],
    ]
    if s["failed"]:
        lines += ["", "### Failed", "", "| model | target | exit | message |", "|---|---|---:|---|"]
        lines += [f"| `{_cell(r.source)}` | {r.target} | {r.exit_code} | {_cell(message_of(report, r))} |"
                  for r in s["failed"]]
    if s["largest_differences"]:
        lines += ["", "### Largest verification differences", "", "| model | target | max abs |", "|---|---|---:|"]
        lines += [f"| `{_cell(r.source)}` | {r.target} | {r.max_abs:.3g} |" for r in s["largest_differences"]]
    if s["slowest"]:
        lines += ["", "### Slowest", "", "| model | target | seconds |", "|---|---|---:|"]
        lines += [f"| `{_cell(r.source)}` | {r.target} | {r.seconds:.2f} |" for r in s["slowest"]]
    return "\n".join(lines) + "\n"


def write_markdown(report: BatchReport, path: Path) -> None:
    _atomic_write(path, markdown(report))
