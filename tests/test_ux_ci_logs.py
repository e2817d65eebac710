"""CI logs: when the output is not a terminal nothing is wrapped or cut, batch failures
are one `path → target: exit N: message` line each, and reports name paths relative to
the batch root (transcripts)."""
from __future__ import annotations

import shutil
import xml.etree.ElementTree as ET

import numpy as np

from conftest import run_cli_subprocess


def test_long_paths_and_hashes_are_never_wrapped(fixtures, tmp_path):
    deep = tmp_path / ("a_rather_long_folder_name_for_models_" * 3) / "xgb3_py_MultinomialClassificationIris"
    deep.mkdir(parents=True)
    out = deep / "model_with_a_long_name_that_would_be_cut.onnx"
    # COLUMNS=60 used to wrap everything at 60 columns in a log.
    r = run_cli_subprocess(fixtures / "sklearn_logreg_iris.pkl", out, env={"COLUMNS": "60"})
    assert r.code == 0, r
    assert f"wrote    {out}" in r.out, r.out  # the whole path on one line
    r = run_cli_subprocess("inspect", out, env={"COLUMNS": "60"})
    sha = r.out.split("sha256", 1)[1].split()[0]
    assert len(sha) == 64, r.out


def test_edge_names_are_never_cut(cli):
    r = cli("formats")
    names = [e["edge"] for e in cli("formats", "--json").json["edges"]]
    for name in names:
        assert name in r.out, name
    assert "…" not in r.out


def test_batch_failures_are_lines_relative_to_the_root(cli, fixtures, tmp_path):
    tree = tmp_path / "models"
    (tree / "sub").mkdir(parents=True)
    shutil.copy(fixtures / "sklearn_logreg_iris.pkl", tree / "good.pkl")
    np.save(tree / "sub" / "data.npy", np.zeros(3))
    (tree / "sub" / "data.pkl").write_bytes((fixtures / "sklearn_logreg_iris.pkl").read_bytes()[:40])  # truncated
    junit, markdown = tmp_path / "junit.xml", tmp_path / "summary.md"
    r = cli("batch", tree, "--to", "onnx", "--out", tmp_path / "out", "--junit", junit, "--markdown", markdown)
    assert r.code == 9, r
    failures = r.out.split("failed (1):", 1)[1].split("slowest", 1)[0]
    assert "┃" not in failures and len(failures.strip().splitlines()) == 1, r.out  # a line, not a box table
    line = next(l for l in r.out.splitlines() if l.strip().startswith("sub/data.pkl → onnx: exit 3: "))
    assert str(tmp_path) not in line, line
    for text in (r.out, r.err, junit.read_text(), markdown.read_text()):
        assert str(tree) + "/" not in text  # every path is relative to the batch root
    cases = {c.get("name"): c for c in ET.parse(junit).iter("testcase")}
    failed = cases["sub/data.pkl → onnx"].find("system-out").text
    assert "output: none (nothing was written)" in failed
    assert "output: good.onnx" in cases["good.pkl → onnx"].find("system-out").text


def test_interrupted_batch_says_how_to_continue():
    from mlconvert import batch_output
    from mlconvert.batch import BatchReport

    report = BatchReport("models", "out", ["onnx"], 2, interrupted=True)
    assert "rerun with `--resume`" in batch_output.markdown(report)

    class Console:
        is_terminal = False

        def __init__(self):
            self.lines = []

        def print(self, text="", *a, **k):
            self.lines.append(str(text))

    from mlconvert import console

    out = Console()
    console.batch_summary(out, report)
    assert any("rerun with --resume" in line for line in out.lines), out.lines
    assert not any("per conversion" in str(line) for line in out.lines)  # no empty table
