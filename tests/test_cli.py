"""CLI transcripts: every command, every exit code, through a real interpreter."""
from __future__ import annotations

import shutil
import subprocess
import sys

import pytest

HEAVY = ("tensorflow", "keras", "torch", "onnx", "onnxruntime", "sklearn", "skl2onnx", "onnxmltools", "tf2onnx",
         "coremltools", "sklearn2pmml", "xgboost", "lightgbm", "catboost", "numpy", "pandas", "scipy", "joblib")


def imported_after(*args) -> set[str]:
    code = (
        "import sys\nfrom mlconvert.cli import main\n"
        f"sys.argv = ['mlconvert', *{list(args)!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print('IMPORTED:', *[m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.strip().splitlines()[-1].split()[1:])


@pytest.mark.parametrize("args", [["--help"], ["plan", "--help"], ["convert", "--help"], ["--version"], ["formats"]])
def test_startup_imports_no_ml_library(args):
    assert imported_after(*args) == set()


def test_inspect_of_a_pickle_imports_nothing_heavy(fixtures):
    # Describing a pickle is a static opcode scan: the model's libraries stay unimported.
    assert imported_after("inspect", str(fixtures / "sklearn_rf_iris.pkl")) == set()


def test_help_lists_exit_codes(cli):
    r = cli("--help")
    assert r.code == 0
    assert r.out == ""  # help is human output: stderr, like the rest
    for code in range(10):
        assert f"  {code}  " in r.err


def test_version_lists_libraries(cli):
    r = cli("--version")
    assert r.code == 0
    assert r.err.startswith("mlconvert 0.")
    assert "scikit-learn" in r.err and "skl2onnx" in r.err


def test_convert_prints_plan_and_verification(cli, fixtures, tmp_path):
    out = tmp_path / "rf.onnx"
    r = cli(fixtures / "sklearn_rf_iris.pkl", out)
    assert r.code == 0, r
    assert out.exists()
    assert "skl2onnx (skl2onnx 1.20.0)" in r.err
    assert "verified on 512 rows" in r.err
    assert "labels agree 100.0%" in r.err
    assert "probabilities max abs" in r.err
    assert r.out == ""  # human output is stderr only


def test_convert_json_report(cli, fixtures, tmp_path):
    r = cli("convert", fixtures / "lgbm_regressor_diabetes.txt", tmp_path / "m.onnx", "--json", "-q")
    assert r.code == 0, r
    assert r.err == ""
    report = r.json
    assert report["source"]["format"] == "lightgbm"
    assert [s["edge"] for s in report["plan"]] == ["onnxmltools-lightgbm"]
    assert report["verification"]["status"] == "verified"
    assert report["verification"]["tolerance_source"].startswith("onnxmltools-lightgbm:")
    assert len(report["target"]["sha256"]) == 64


def test_a_file_named_like_a_command(cli, fixtures, tmp_path):
    shutil.copy(fixtures / "sklearn_logreg_iris.pkl", tmp_path / "plan")
    r = cli("./plan", "out.onnx", cwd=tmp_path)
    assert r.code == 0, r
    assert (tmp_path / "out.onnx").exists()


def test_sample_csv(cli, fixtures, tmp_path):
    r = cli(fixtures / "sklearn_logreg_iris.pkl", tmp_path / "m.onnx", "--sample", fixtures / "iris_sample.csv", "--json")
    assert r.code == 0, r
    assert r.json["verification"]["rows"] == 30
    assert r.json["verification"]["inputs"] == "sample iris_sample.csv"


def test_sample_npy(cli, fixtures, tmp_path):
    r = cli(fixtures / "xgb_regressor_diabetes.ubj", tmp_path / "m.onnx", "--sample", fixtures / "diabetes_sample.npy",
            "--json")
    assert r.code == 0, r
    assert r.json["verification"]["rows"] == 45


def test_plan_and_explain(cli, fixtures):
    r = cli("plan", fixtures / "catboost_classifier_iris.pkl", "x.onnx", "--explain", "--json")
    assert r.code == 0, r
    plan = r.json
    assert [s["edge"] for s in plan["steps"]] == ["catboost-save", "catboost-onnx"]
    reasons = {e["edge"]: e for e in plan["edges"]}
    assert reasons["skl2onnx"]["status"] == "rejected"
    assert "flavor sklearn; this one is catboost" in reasons["skl2onnx"]["reason"]
    assert "rejected" in r.err and "skl2onnx" in r.err


def test_plan_via(cli, fixtures):
    r = cli("plan", fixtures / "lgbm_classifier_iris.pkl", "x.onnx", "--via", "lightgbm", "--json")
    assert [s["edge"] for s in r.json["steps"]] == ["lightgbm-save", "onnxmltools-lightgbm"]


def test_inspect_formats(cli, fixtures):
    for name, fmt, flavor in [("sklearn_rf_iris.pkl", "pickle", "sklearn"),
                              ("xgb_regressor_diabetes.ubj", "xgboost", "xgboost"),
                              ("lgbm_classifier_iris.txt", "lightgbm", "lightgbm"),
                              ("catboost_classifier_iris.cbm", "catboost", "catboost")]:
        r = cli("inspect", fixtures / name, "--json")
        assert r.code == 0, r
        assert (r.json["format"], r.json["flavor"]) == (fmt, flavor)
        assert r.json["sha256"] and r.json["size"] > 0


def test_formats_and_doctor(cli):
    r = cli("formats", "--json")
    assert r.code == 0
    assert len(r.json["formats"]) == 10
    assert all(e["available"] for e in r.json["edges"])
    r = cli("doctor", "--json")
    assert r.code == 0
    assert r.json["libraries"]["scikit-learn"] == "1.9.0"
    assert r.json["broken_edge_modules"] == {}
    assert {e["edge"] for e in r.json["edges"] if e["usable"]} >= {"skl2onnx", "catboost-onnx"}


def test_verify_command(cli, fixtures, tmp_path):
    out = tmp_path / "m.onnx"
    assert cli(fixtures / "xgb_classifier_iris.pkl", out).code == 0
    r = cli("verify", fixtures / "xgb_classifier_iris.pkl", out, "--json")
    assert r.code == 0, r
    assert r.json["status"] == "verified"
    other = tmp_path / "other.onnx"
    assert cli(fixtures / "sklearn_logreg_iris.pkl", other).code == 0
    r = cli("verify", fixtures / "xgb_classifier_iris.pkl", other)
    assert r.code == 6, r


# --- exit codes ---


def test_exit_1_internal_error_without_traceback(cli, fixtures, tmp_path):
    prelude = "import mlconvert.formats as f\ndef boom(*a, **k): raise ZeroDivisionError('boom')\nf.detect = boom"
    r = cli(fixtures / "sklearn_rf_iris.pkl", tmp_path / "x.onnx", prelude=prelude)
    assert r.code == 1
    assert "internal error" in r.err and "Traceback" not in r.err
    r = cli(fixtures / "sklearn_rf_iris.pkl", tmp_path / "x.onnx", "-v", prelude=prelude)
    assert "Traceback" in r.err


@pytest.mark.parametrize("args", [["nope.xyz"], ["out.onnx", "--to", "nope"], ["out.onnx", "--via", "nope"]])
def test_exit_2_usage(cli, fixtures, tmp_path, args):
    r = cli(fixtures / "sklearn_rf_iris.pkl", *[tmp_path / a if i == 0 else a for i, a in enumerate(args)])
    assert r.code == 2, r
    assert "error" in r.err.lower()


def test_exit_2_missing_argument(cli):
    assert cli("convert", "only-one-arg").code == 2


@pytest.mark.parametrize("name,content,message", [
    ("model.pkl", b"", "is empty"),
    ("model.onnx", b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n", "Git LFS pointer"),
    ("model.pkl", b"<!DOCTYPE html><html><body>Sign in</body></html>", "HTML page"),
    ("model", b"\x00\x01\x02 not a model at all", "not a model file mlconvert recognises"),
    ("model.pkl", b"\x00\x01\x02 not a model at all", "has the extension of a pickle / joblib file but its content"),
])
def test_exit_3_not_a_model(cli, tmp_path, name, content, message):
    bad = tmp_path / name
    bad.write_bytes(content)
    r = cli(bad, tmp_path / "out.onnx")
    assert r.code == 3, r
    assert message in r.err
    assert "Traceback" not in r.err
    assert not (tmp_path / "out.onnx").exists()


@pytest.mark.parametrize("name", ["sklearn_rf_iris.pkl", "lgbm_classifier_iris.txt", "xgb_classifier_iris.json",
                                  "xgb_regressor_diabetes.ubj", "catboost_classifier_iris.cbm",
                                  "sklearn_columns_pipeline.joblib"])
def test_exit_3_truncated(cli, fixtures, tmp_path, name):
    data = (fixtures / name).read_bytes()
    bad = tmp_path / name
    bad.write_bytes(data[: len(data) // 2])
    r = cli(bad, tmp_path / "out.onnx")
    assert r.code == 3, r
    assert "Traceback" not in r.err


def test_exit_3_missing_file(cli, tmp_path):
    r = cli(tmp_path / "nope.pkl", tmp_path / "out.onnx")
    assert r.code == 3 and "does not exist" in r.err


def test_exit_4_no_path(cli, fixtures, tmp_path):
    r = cli(fixtures / "sklearn_rf_iris.pkl", tmp_path / "m.cbm", "--json")
    assert r.code == 4, r
    assert r.json["exit_code"] == 4
    assert "no conversion path from pickle (sklearn) to catboost" in r.err
    assert "catboost-save" in r.err  # the rejected edges are shown with their reasons


def test_exit_5_step_failed(cli, tmp_path):
    import catboost

    model = catboost.CatBoostClassifier(iterations=5, verbose=False, allow_writing_files=False)
    model.fit([[1.0, "a"], [2.0, "b"], [3.0, "a"], [4.0, "b"]], [0, 1, 0, 1], cat_features=[1])
    model.save_model(str(tmp_path / "cat.cbm"))
    r = cli(tmp_path / "cat.cbm", tmp_path / "cat.onnx")
    assert r.code == 5, r
    assert "categorical features" in r.err
    assert not (tmp_path / "cat.onnx").exists()


def test_exit_6_mismatch_keeps_no_output_and_existing_file(cli, fixtures, tmp_path):
    out = tmp_path / "m.onnx"
    out.write_bytes(b"precious")
    r = cli(fixtures / "xgb_regressor_diabetes.ubj", out, "--atol", "0", "--rtol", "0")
    assert r.code == 6, r
    assert "value max abs" in r.err
    assert out.read_bytes() == b"precious"
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # no temporary left behind
    r = cli(fixtures / "xgb_regressor_diabetes.ubj", out, "--atol", "0", "--rtol", "0", "--keep-on-mismatch")
    assert r.code == 6
    assert out.read_bytes()[:1] != b"p"


def test_exit_7_malicious_pickle(cli, tmp_path):
    marker = tmp_path / "PWNED"
    payload = tmp_path / "evil.pkl"
    payload.write_bytes(b"\x80\x04cos\nsystem\n(V" + f"touch {marker}".encode() + b"\ntR.")
    r = cli(payload, tmp_path / "out.onnx")
    assert r.code == 7, r
    assert "os.system" in r.err
    assert not marker.exists()
    r = cli("inspect", payload, "--json")
    assert "os.system" in r.out and not marker.exists()


def test_exit_8_strict_when_the_runtime_is_missing(cli, fixtures, tmp_path):
    # onnxruntime hidden: the conversion works but cannot be run to verify it.
    prelude = ("import sys, importlib.abc\n"
               "class Hide(importlib.abc.MetaPathFinder):\n"
               "    def find_spec(self, name, path=None, target=None):\n"
               "        if name.split('.')[0] == 'onnxruntime': raise ModuleNotFoundError(name)\n"
               "sys.meta_path.insert(0, Hide())")
    out = tmp_path / "m.onnx"
    r = cli(fixtures / "sklearn_logreg_iris.pkl", out, prelude=prelude)
    assert r.code == 0, r
    assert "unverified" in r.err and "onnxruntime is not installed" in r.err
    out.unlink()
    r = cli(fixtures / "sklearn_logreg_iris.pkl", out, "--strict", prelude=prelude)
    assert r.code == 8, r
    assert not out.exists()


def test_graph_text_formats(cli):
    r = cli("graph")
    assert r.code == 0
    assert r.out.startswith("flowchart LR")
    assert 'pickle -->|"skl2onnx"| onnx' in r.out
    r = cli("graph", "--format", "dot")
    assert r.out.startswith("digraph mlconvert {")
    assert '"pickle" -> "onnx" [label="skl2onnx"' in r.out
    assert imported_after("graph") == set()
    data = cli("graph", "--json").json
    assert len(data["nodes"]) == 10
    assert {"name": "skl2onnx", "from": "pickle", "to": "onnx"}.items() <= next(
        e for e in data["edges"] if e["name"] == "skl2onnx").items()


def test_graph_greys_unavailable_edges_with_the_reason():
    from mlconvert import graph_render
    from mlconvert.graph import _EDGES, Edge, Requirement, register_edge

    missing = Edge(name="zz-missing", source="pmml", target="onnx", flavors=frozenset({"pmml"}),
                   output_flavor="onnx-ml", run="x:y", library="nothing",
                   requires=(Requirement("a-package-that-is-not-here", extra="pmml"),))
    register_edge(missing)
    try:
        mermaid, dot = graph_render.mermaid(), graph_render.dot()
    finally:
        _EDGES.pop(missing.name)
    assert "pmml -.->|\"zz-missing: a-package-that-is-not-here is not installed" in mermaid
    assert "linkStyle" in mermaid and "stroke:#aaa" in mermaid
    assert 'style=dashed' in dot and "pip install 'mlconvert[pmml]'" in dot


def test_graph_picture(cli, tmp_path):
    out = tmp_path / "graph.svg"
    r = cli("graph", "--format", "svg", "-o", out)
    if shutil.which("dot") is None:
        assert r.code == 2 and "Graphviz" in r.err
    else:
        assert r.code == 0, r
        assert out.read_text().lstrip().startswith(("<?xml", "<svg"))


def test_exit_2_unwritable_output(cli, fixtures):
    r = cli(fixtures / "sklearn_rf_iris.pkl", "/proc/no-such-folder/m.onnx")
    assert r.code == 2, r
    assert "cannot write beside" in r.err and "Traceback" not in r.err
