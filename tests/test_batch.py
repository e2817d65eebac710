"""Batch mode over a generated tree of real models, broken ones included."""
from __future__ import annotations

import json
import os
import pickle
import shutil
import signal
import subprocess
import sys
import time
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

from conftest import FIXTURES

pytestmark = pytest.mark.slow

MODEL_SUFFIXES = (".pkl", ".joblib", ".json", ".ubj", ".txt", ".cbm")


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


def test_interrupted_batch_resumes(tree, tmp_path):
    root, facts = tree
    out = tmp_path / "out"
    cmd = [sys.executable, "-m", "mlconvert", "batch", str(root), "--to", "onnx", "--out", str(out), "-j", "1"]
    proc = subprocess.Popen(cmd, cwd=tmp_path, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    manifest = out / ".mlconvert-batch.json"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:  # wait until some, not all, models are done
        if manifest.exists() and len(json.loads(manifest.read_text())["items"]) >= 5:
            break
        time.sleep(0.1)
    proc.send_signal(signal.SIGINT)
    _, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    done = json.loads(manifest.read_text())["items"]
    assert 5 <= len(done) < facts["good"]
    assert not list(out.rglob(".*.mlconvert-*")), "the interrupted conversion left its scratch folder"
    r = batch(root, "--to", "onnx", "--out", out, "--resume", "--json", "-q", cwd=tmp_path)
    counts = json.loads(r.stdout)["result"]["counts"]
    ok_before = sum(1 for e in done.values() if e["status"] == "converted")
    assert counts["unchanged"] == ok_before
    assert counts["unchanged"] + counts["converted"] == facts["good"]


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
    started = time.monotonic()
    r = batch(root, "--to", "onnx", "--out", out, "-j", "2", "--trust", "--timeout", "20", "--max-memory", "4000",
              "--json", "-q", cwd=tmp_path)
    assert time.monotonic() - started < 110  # the 120 s sleep was cut short
    results = {x["source"]: x for x in json.loads(r.stdout)["result"]["results"]}
    assert r.returncode == 9
    assert results["hangs.pkl"]["message"] == "timed out after 20 s"
    assert results["crashes.pkl"]["message"].startswith("the conversion process died (signal 6)")
    assert "MemoryError" in results["hogs.pkl"]["message"]
    assert results["fine.pkl"]["status"] == results["fine_too.txt"]["status"] == "converted"
    assert not list(out.rglob(".*.mlconvert-*"))


def medium_models(root: Path, copies: int) -> int:
    """Models big enough that converting them, not starting workers, is the work."""
    import lightgbm
    import xgboost
    from sklearn.datasets import make_classification
    from sklearn.ensemble import RandomForestClassifier

    X, y = make_classification(n_samples=1500, n_features=20, n_informative=8, n_classes=3, random_state=0)
    models = {"rf.pkl": RandomForestClassifier(n_estimators=50, max_depth=8, random_state=0).fit(X, y),
              "xgb.pkl": xgboost.XGBClassifier(n_estimators=60, max_depth=5, random_state=0).fit(X, y),
              "lgbm.pkl": lightgbm.LGBMClassifier(n_estimators=60, random_state=0, verbose=-1).fit(X, y)}
    for i in range(copies):
        (root / f"set{i}").mkdir(parents=True)
        for name, model in models.items():
            with open(root / f"set{i}" / name, "wb") as fh:
                pickle.dump(model, fh)
    return copies * len(models)


def test_jobs_2_against_jobs_1(tree, tmp_path, capsys):
    """Both in the same run on the same machine; the ratios are reported, never asserted."""
    medium = tmp_path / "medium"
    root, facts = tree
    workloads = {"tiny fixtures": (root, facts["good"] + len(facts["broken"])),
                 "medium models": (medium, medium_models(medium, copies=4))}
    for label, (root, n) in workloads.items():
        seconds = {}
        for jobs in (1, 2):
            started = time.perf_counter()
            r = batch(root, "--to", "onnx", "--out", tmp_path / f"out-{label}-{jobs}", "-j", str(jobs), "-q",
                      cwd=tmp_path)
            seconds[jobs] = time.perf_counter() - started
            assert r.returncode in (0, 9)
        with capsys.disabled():
            print(f"\nbatch of {n} {label}: -j1 {n / seconds[1]:.1f} models/s, -j2 {n / seconds[2]:.1f} models/s, "
                  f"-j2 speed-up {seconds[1] / seconds[2]:.2f}x")
