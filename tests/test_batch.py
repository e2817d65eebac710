"""Batch mode over a generated tree of real models, broken ones included."""
from __future__ import annotations

import json
import os
import pickle
import shutil
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import FIXTURES
from mlconvert.batch import MANIFEST
from mlconvert.batch import run as batch_run

pytestmark = pytest.mark.slow

MODEL_SUFFIXES = (".pkl", ".joblib", ".json", ".ubj", ".txt", ".cbm")
# --timeout for the hang test. It must cut the 120 s sleep short and still leave room for a
# good model's conversion in a fresh worker, which imports its converter libraries
# (about 1.5 s on an idle 2-core machine, several times that on a loaded one).
TIMEOUT = 10


class Sleeper:
    """Loading this (only with --trust) sleeps: a conversion that hangs."""

    def __reduce__(self):
        return (time.sleep, (120,))


class Hog:
    """Loading this (only with --trust) asks for 20 GiB."""

    def __reduce__(self):
        return (bytearray, (20 * 1024**3,))


class Crasher:
    """Loading this (only with --trust) kills its own process: a converter that crashes."""

    def __reduce__(self):
        return (os.abort, ())


def load_pickle(path: Path):
    with open(path, "rb") as fh:
        return pickle.load(fh)


def fixture_models() -> list[Path]:
    return sorted(p for p in FIXTURES.iterdir() if p.suffix in MODEL_SUFFIXES and p.name != "VERSIONS.json")


def make_tree(root: Path, copies: int = 2) -> dict:
    """copies x the fixture models in nested folders, plus stray files and broken models."""
    good = 0
    for i in range(copies):
        for model in fixture_models():
            dest = root / f"team{i}" / ("boosters" if model.name.startswith(("xgb", "lgbm", "catboost")) else "sk")
            dest.mkdir(parents=True, exist_ok=True)
            shutil.copy(model, dest / model.name)
            good += 1
    broken = root / "broken"
    broken.mkdir()
    (broken / "truncated.pkl").write_bytes((FIXTURES / "sklearn_rf_iris.pkl").read_bytes()[:200])
    (broken / "evil.pkl").write_bytes(b"\x80\x04cos\nsystem\n(Vtouch " + str(root / "PWNED").encode() + b"\ntR.")
    from sklearn.datasets import load_iris
    from sklearn.semi_supervised import LabelSpreading

    X, y = load_iris(return_X_y=True)
    with open(broken / "unsupported.pkl", "wb") as fh:
        pickle.dump(LabelSpreading().fit(X, y), fh)
    (root / "README.md").write_text("models of the month\n")
    shutil.copy(FIXTURES / "iris_sample.csv", root / "data.csv")
    return {"good": good, "broken": {"broken/truncated.pkl": 3, "broken/evil.pkl": 7, "broken/unsupported.pkl": 5},
            "stray": 2}


def batch(*args, cwd: Path, timeout: float = 600) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "mlconvert", "batch", *map(str, args)], cwd=cwd,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture(scope="module")
def tree(tmp_path_factory) -> tuple[Path, dict]:
    root = tmp_path_factory.mktemp("models")
    return root, make_tree(root)


def test_batch_counts_reports_and_exit_code(tree, tmp_path):
    root, facts = tree
    assert facts["good"] + len(facts["broken"]) >= 30
    out = tmp_path / "out"
    r = batch(root, "--to", "onnx", "--out", out, "-j", "2", "--report", tmp_path / "r.json",
              "--junit", tmp_path / "junit.xml", "--markdown", tmp_path / "summary.md", cwd=tmp_path)
    assert r.returncode == 9, r.stderr
    assert not (root / "PWNED").exists()
    report = json.loads((tmp_path / "r.json").read_text())
    counts = report["counts"]
    assert counts["converted"] == facts["good"]
    assert counts["failed"] == len(facts["broken"])
    assert counts["skipped"] == facts["stray"]
    codes = {r["source"]: r["exit_code"] for r in report["results"] if r["status"] == "failed"}
    assert codes == facts["broken"]
    # the output tree mirrors the source tree
    assert (out / "team1" / "sk" / "sklearn_rf_iris.onnx").exists()
    assert (out / "team0" / "boosters" / "lgbm_classifier_iris.pkl.onnx").exists()  # .pkl and .txt would collide
    assert (out / "team0" / "boosters" / "lgbm_classifier_iris.txt.onnx").exists()
    assert not list(out.rglob(".*.mlconvert-*")), "no scratch folders left behind"

    suites = ET.parse(tmp_path / "junit.xml").getroot()
    assert suites.tag == "testsuites"
    assert suites.get("tests") == str(facts["good"] + len(facts["broken"]))
    assert suites.get("failures") == str(len(facts["broken"]))
    (suite,) = suites.findall("testsuite")
    cases = suite.findall("testcase")
    assert len(cases) == int(suite.get("tests")) == facts["good"] + len(facts["broken"])
    failures = {c.get("name"): c.find("failure") for c in cases if c.find("failure") is not None}
    assert set(failures) == {f"{name} → onnx" for name in facts["broken"]}
    assert failures["broken/evil.pkl → onnx"].get("type").startswith("exit 7")
    assert "os.system" in failures["broken/evil.pkl → onnx"].get("message")

    md = (tmp_path / "summary.md").read_text()
    assert md.startswith("## mlconvert batch: 3 failed")
    assert "| `broken/evil.pkl` | onnx | 7 |" in md
    assert "pickle → onnx" in md
    assert "failed" in r.stdout and "per conversion" in r.stdout  # the summary table


def test_several_targets_and_filters(tree, tmp_path):
    root, _ = tree
    out = tmp_path / "out"
    r = batch(root, "--to", "onnx", "--to", "xgboost", "--out", out, "--include", "team0/*",
              "--exclude", "*.joblib", "--json", "-q", cwd=tmp_path)
    report = json.loads(r.stdout)["result"]
    assert r.returncode == 9  # sklearn and lightgbm models have no path to xgboost (exit 4)
    sources = {x["source"] for x in report["results"]}
    assert all(s.startswith("team0/") and not s.endswith(".joblib") for s in sources)
    by_target = {(x["source"], x["target"]): x for x in report["results"]}
    assert by_target[("team0/boosters/xgb_classifier_iris.pkl", "xgboost")]["status"] == "converted"
    assert by_target[("team0/sk/sklearn_rf_iris.pkl", "xgboost")]["exit_code"] == 4
    assert by_target[("team0/sk/sklearn_rf_iris.pkl", "onnx")]["status"] == "converted"
    assert (out / "team0" / "boosters" / "xgb_classifier_iris.pkl.ubj").exists()
    assert "per conversion" not in r.stdout + r.stderr and "[1/" not in r.stderr  # -q: failures only


def test_resume_skips_what_is_up_to_date(tmp_path):
    root = tmp_path / "src"
    for name in ("sklearn_rf_iris.pkl", "lgbm_regressor_diabetes.txt", "xgb_regressor_diabetes.ubj"):
        (root / "m").mkdir(parents=True, exist_ok=True)
        shutil.copy(FIXTURES / name, root / "m" / name)
    out = tmp_path / "out"
    assert batch(root, "--to", "onnx", "--out", out, "-j", "1", cwd=tmp_path).returncode == 0
    stamps = {p: p.stat().st_mtime_ns for p in out.rglob("*.onnx")}
    r = batch(root, "--to", "onnx", "--out", out, "--resume", "--json", "-q", cwd=tmp_path)
    assert r.returncode == 0
    assert json.loads(r.stdout)["result"]["counts"]["unchanged"] == 3
    assert {p: p.stat().st_mtime_ns for p in out.rglob("*.onnx")} == stamps
    # a changed input, or changed options, is converted again
    shutil.copy(FIXTURES / "sklearn_logreg_iris.pkl", root / "m" / "sklearn_rf_iris.pkl")
    r = batch(root, "--to", "onnx", "--out", out, "--resume", "--json", "-q", cwd=tmp_path)
    assert json.loads(r.stdout)["result"]["counts"] == {"converted": 1, "unverified": 0, "unchanged": 2, "failed": 0,
                                              "skipped": 0}
    r = batch(root, "--to", "onnx", "--out", out, "--resume", "--atol", "1e-4", "--json", "-q", cwd=tmp_path)
    assert json.loads(r.stdout)["result"]["counts"]["converted"] == 3


class InterruptAfter:
    """A batch display that presses Ctrl-C when the n-th model has finished."""

    def __init__(self, n: int):
        self.n, self.finished_results, self.closed_with = n, [], None

    def start(self, total: int, skipped: int) -> None:
        self.total = total

    def started(self, item) -> None: ...

    def finished(self, result) -> None:
        self.finished_results.append(result)
        if len(self.finished_results) == self.n:
            raise KeyboardInterrupt

    def close(self, report) -> None:
        self.closed_with = report


def test_interrupted_batch_resumes(tree, tmp_path):
    root, facts = tree
    out = tmp_path / "out"
    display = InterruptAfter(5)
    # With -j2 the other worker is usually mid-conversion then: it is stopped, and only finished models count.
    report = batch_run(root, targets=["onnx"], out=out, jobs=2, display=display)
    assert report.interrupted and display.closed_with is report
    assert len(report.results) == len(display.finished_results) == 5 < display.total
    done = json.loads((out / MANIFEST).read_text())["items"]
    assert sorted(e["source"] for e in done.values()) == sorted(r.source for r in report.results)
    assert not list(out.rglob(".*.mlconvert-*")), "the interrupted conversion left its scratch folder"

    resumed = batch_run(root, targets=["onnx"], out=out, jobs=2, resume=True)
    counts = resumed.counts()
    assert not resumed.interrupted
    assert counts["unchanged"] == sum(1 for e in done.values() if e["status"] == "converted")
    assert counts["unchanged"] + counts["converted"] == facts["good"]
    assert counts["failed"] == len(facts["broken"])
    assert len(json.loads((out / MANIFEST).read_text())["items"]) == facts["good"] + len(facts["broken"])

    # interrupted while --resume is still sorting out what is up to date: no worker has started
    again = batch_run(root, targets=["onnx"], out=out, jobs=2, resume=True, display=InterruptAfter(2))
    assert again.interrupted
    assert [r.status for r in again.results] == ["unchanged", "unchanged"]


def test_a_hanging_a_crashing_and_a_greedy_model_do_not_stop_the_batch(tmp_path):
    root = tmp_path / "src"
    root.mkdir()
    shutil.copy(FIXTURES / "sklearn_logreg_iris.pkl", root / "fine.pkl")
    shutil.copy(FIXTURES / "lgbm_classifier_iris.txt", root / "fine_too.txt")
    # scikit-learn models carrying a payload that runs when loaded (hence --trust)
    for name, payload in (("hangs.pkl", Sleeper()), ("crashes.pkl", Crasher()), ("hogs.pkl", Hog())):
        model = load_pickle(FIXTURES / "sklearn_logreg_iris.pkl")
        model.payload = payload
        with open(root / name, "wb") as fh:
            pickle.dump(model, fh)
    out = tmp_path / "out"
    r = batch(root, "--to", "onnx", "--out", out, "-j", "2", "--trust", "--timeout", str(TIMEOUT),
              "--max-memory", "4000", "--json", "-q", cwd=tmp_path)
    results = {x["source"]: x for x in json.loads(r.stdout)["result"]["results"]}
    assert r.returncode == 9
    assert results["hangs.pkl"]["exit_code"] == 5
    assert results["hangs.pkl"]["message"] == f"timed out after {TIMEOUT} s"
    assert results["crashes.pkl"]["exit_code"] == 5
    assert results["crashes.pkl"]["message"].startswith("the conversion process died (signal 6)")
    assert "MemoryError" in results["hogs.pkl"]["message"]
    assert results["fine.pkl"]["status"] == results["fine_too.txt"]["status"] == "converted"
    assert not list(out.rglob(".*.mlconvert-*"))
