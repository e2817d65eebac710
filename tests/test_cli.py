"""CLI transcripts: every command, every exit code, the stdout/stderr contract and the
--json envelope. Most run `main()` in this process (conftest.run_cli); the start-up
import checks and a few smoke tests run a real interpreter."""
from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import tempfile

import pytest

from conftest import ROOT, run_cli_subprocess

HEAVY = ("tensorflow", "keras", "torch", "onnx", "onnxruntime", "sklearn", "skl2onnx", "onnxmltools", "tf2onnx",
         "coremltools", "sklearn2pmml", "xgboost", "lightgbm", "catboost", "numpy", "pandas", "scipy", "joblib")
SCHEMA = ROOT / "docs" / "schema" / "mlconvert-output.schema.json"


def imported_after(*args) -> set[str]:
    code = (
        "import sys\nfrom mlconvert.cli import main\n"
        f"sys.argv = ['mlconvert', *{list(args)!r}]\n"
        "try:\n    main()\nexcept SystemExit:\n    pass\n"
        f"print('IMPORTED:', *[m for m in {HEAVY!r} if m in sys.modules])"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    return set(out.strip().splitlines()[-1].split()[1:])


def validate(document: dict) -> None:
    import jsonschema  # the dev extra

    jsonschema.Draft202012Validator(json.loads(SCHEMA.read_text())).validate(document)


# --- start-up: real interpreters ---


@pytest.mark.parametrize("args", [["--help"], ["plan", "--help"], ["convert", "--help"], ["--version"], ["formats"],
                                  ["graph"]])
def test_startup_imports_no_ml_library(args):
    assert imported_after(*args) == set()


def test_inspect_of_a_pickle_imports_nothing_heavy(fixtures):
    # Describing a pickle is a static opcode scan: the model's libraries stay unimported.
    assert imported_after("inspect", str(fixtures / "sklearn_rf_iris.pkl")) == set()


def test_smoke_convert_in_a_real_interpreter(fixtures, tmp_path):
    r = run_cli_subprocess(fixtures / "sklearn_logreg_iris.pkl", tmp_path / "m.onnx", "--json")
    assert r.code == 0, r
    assert r.json["verification"]["status"] == "verified"
    r = run_cli_subprocess("--help")
    assert r.code == 0 and "Exit codes:" in r.out and r.err == ""


def test_smoke_python_dash_m(fixtures):
    proc = subprocess.run([sys.executable, "-m", "mlconvert", "inspect", str(fixtures / "sklearn_rf_iris.pkl"),
                           "--json"], capture_output=True, text=True)
    assert proc.returncode == 0, proc.stderr
    assert json.loads(proc.stdout)["result"]["format"] == "pickle"


# --- main() in this process ---


def _fd_count() -> int:
    return len(os.listdir("/proc/self/fd"))


@pytest.mark.skipif(not os.path.isdir("/proc/self/fd"), reason="counts open descriptors through /proc")
def test_main_twice_in_one_process_keeps_stdout_and_leaks_nothing():
    from mlconvert.cli import main

    def call() -> int:
        try:
            main(["formats", "--json"])
        except SystemExit as exc:
            return exc.code
        raise AssertionError("main() must exit")

    saved_stdout, saved_fds = sys.stdout, (os.dup(1), os.dup(2))
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        try:
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            stream = open(1, "w", encoding="utf-8", buffering=1, closefd=False)
            sys.stdout = stream
            codes = [call()]
            before = _fd_count()
            codes.append(call())
            after = _fd_count()
            assert sys.stdout is stream  # put back
            assert os.path.sameopenfile(1, out.fileno())  # fd 1 points where it pointed before
            stream.flush()
        finally:
            sys.stdout = saved_stdout
            for fd, saved in zip((1, 2), saved_fds):
                os.dup2(saved, fd)
                os.close(saved)
        out.seek(0)
        err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    assert codes == [0, 0]
    assert after == before, "a descriptor leaked"
    documents = [json.loads(d) for d in re.split(r"(?<=\n})\n(?=\{)", stdout.strip())]
    assert [d["command"] for d in documents] == ["formats", "formats"]
    assert "{" not in stderr


def test_help_on_stdout_lists_the_exit_codes(cli):
    from mlconvert.errors import EXIT_CODES

    r = cli("--help")
    assert r.code == 0
    assert r.err == ""
    for code, text in EXIT_CODES.items():
        assert f"  {code}  {text}" in r.out


def test_exit_codes_come_from_the_error_classes():
    from mlconvert.errors import ERRORS, EXIT_CODES, MlconvertError

    codes = [cls.exit_code for cls in ERRORS]
    assert len(codes) == len(set(codes))  # one class per code
    assert set(EXIT_CODES) == {0, *codes}
    for cls in ERRORS:
        assert issubclass(cls, MlconvertError)
        assert EXIT_CODES[cls.exit_code] == cls.label


def test_readme_exit_code_table_is_the_table():
    from mlconvert.errors import EXIT_CODES

    readme = (ROOT / "README.md").read_text()
    section = readme.split("## Exit codes", 1)[1].split("\n## ", 1)[0]
    rows = re.findall(r"^\| (\d+) \| (.+?) \|$", section, flags=re.M)
    assert {int(code): text.replace("`", "") for code, text in rows} == EXIT_CODES


def test_version_lists_libraries(cli):
    import mlconvert
    from mlconvert import probe

    r = cli("--version")
    assert r.code == 0
    assert r.out.startswith(f"mlconvert {mlconvert.__version__}\n")
    for name in probe.library_versions():
        assert f"  {name} " in r.out


def test_convert_summary_on_stdout(cli, fixtures, tmp_path):
    from mlconvert import probe

    out = tmp_path / "rf.onnx"
    r = cli(fixtures / "sklearn_rf_iris.pkl", out)
    assert r.code == 0, r
    assert out.exists()
    assert f"skl2onnx (skl2onnx {probe.dist_version('skl2onnx')})" in r.out
    assert "verified on 512 rows" in r.out
    assert "labels agree 100.0%" in r.out
    assert "probabilities max abs" in r.out
    assert f"wrote    {out}" in r.out
    assert "verified" not in r.err  # stderr is for progress, warnings and errors


def test_convert_json_report(cli, fixtures, tmp_path):
    r = cli("convert", fixtures / "lgbm_regressor_diabetes.txt", tmp_path / "m.onnx", "--json", "-q")
    assert r.code == 0, r
    assert r.err == ""
    assert r.envelope["command"] == "convert" and r.envelope["ok"] and r.envelope["error"] is None
    report = r.json
    assert report["source"]["format"] == "lightgbm"
    assert [s["edge"] for s in report["steps"]] == ["onnxmltools-lightgbm"]
    assert report["verification"]["status"] == "verified"
    assert report["verification"]["tolerance_source"].startswith("onnxmltools-lightgbm:")
    assert len(report["target"]["sha256"]) == 64


def test_json_replaces_the_human_output(cli, fixtures):
    human = cli("inspect", fixtures / "sklearn_rf_iris.pkl")
    assert human.code == 0 and "sha256" in human.out and human.err == ""
    data = cli("inspect", fixtures / "sklearn_rf_iris.pkl", "--json")
    assert data.code == 0 and data.err == ""
    assert json.loads(data.out) == data.envelope  # one document and nothing else
    assert data.json["sha256"] in human.out


def test_quiet_hides_the_output_but_never_a_failure(cli, fixtures, tmp_path):
    r = cli("inspect", fixtures / "sklearn_rf_iris.pkl", "-q")
    assert (r.code, r.out, r.err) == (0, "", "")
    r = cli(tmp_path / "nope.pkl", tmp_path / "out.onnx", "-q")
    assert r.code == 3 and r.out == ""
    assert "does not exist" in r.err


def test_a_file_named_like_a_command(cli, fixtures, tmp_path):
    shutil.copy(fixtures / "sklearn_logreg_iris.pkl", tmp_path / "plan")
    r = cli("./plan", "out.onnx", cwd=tmp_path)
    assert r.code == 0, r
    assert (tmp_path / "out.onnx").exists()


def test_sample_csv(cli, fixtures, tmp_path):
    r = cli(fixtures / "sklearn_logreg_iris.pkl", tmp_path / "m.onnx", "--sample", fixtures / "iris_sample.csv",
            "--json")
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
    r = cli("plan", fixtures / "catboost_classifier_iris.pkl", "x.onnx", "--explain")
    assert "rejected" in r.out and "skl2onnx" in r.out and r.err == ""


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


def test_formats_doctor_and_graph_agree_with_the_registries(cli):
    from mlconvert import formats as registry
    from mlconvert import probe
    from mlconvert.edges import all_edges

    r = cli("formats", "--json")
    assert r.code == 0
    assert [f["id"] for f in r.json["formats"]] == [f.id for f in registry.all_formats()]
    expected = {e.name: e.unavailable_reason() for e in all_edges()}
    assert {e["edge"]: (None if e["available"] else e["reason"]) for e in r.json["edges"]} == expected
    doctor = cli("doctor", "--json")
    assert doctor.code == 0
    assert doctor.json["libraries"] == probe.library_versions()
    graph = cli("graph", "--json")
    assert graph.code == 0
    # One shape for an edge wherever it is listed.
    assert r.json["edges"] == doctor.json["edges"] == graph.json["edges"]
    assert [f["id"] for f in graph.json["formats"]] == [f["id"] for f in r.json["formats"]]


def test_verify_command_has_one_shape(cli, fixtures, tmp_path):
    out = tmp_path / "m.onnx"
    assert cli(fixtures / "xgb_classifier_iris.pkl", out).code == 0
    ok = cli("verify", fixtures / "xgb_classifier_iris.pkl", out, "--json")
    assert ok.code == 0, ok
    assert ok.json["verification"]["status"] == "verified"
    other = tmp_path / "other.onnx"
    assert cli(fixtures / "sklearn_logreg_iris.pkl", other).code == 0
    bad = cli("verify", fixtures / "xgb_classifier_iris.pkl", other, "--json")
    assert bad.code == 6, bad
    assert bad.envelope["error"]["type"] == "VerificationError"
    assert bad.json["verification"]["status"] == "mismatch"
    assert set(bad.json) == set(ok.json) and set(bad.json["verification"]) == set(ok.json["verification"])
    assert "mismatch" in bad.err


# --- the envelope, against docs/schema ---


def test_every_command_is_in_the_schema():
    from mlconvert.cli import cli as group

    commands = json.loads(SCHEMA.read_text())["properties"]["command"]["enum"]
    assert set(commands) - {None} == set(group.commands)


@pytest.fixture(scope="module")
def documents():
    """The --json output of every command, on success and failure, run once."""
    from conftest import FIXTURES, run_cli

    with tempfile.TemporaryDirectory() as tmp:
        models = os.path.join(tmp, "models")
        os.mkdir(models)
        for name in ("sklearn_rf_iris.pkl", "lgbm_classifier_iris.txt"):
            shutil.copy(FIXTURES / name, models)
        onnx = os.path.join(tmp, "rf.onnx")
        runs = {
            "convert": run_cli(FIXTURES / "sklearn_rf_iris.pkl", onnx, "--json"),
            "plan": run_cli("plan", FIXTURES / "catboost_classifier_iris.pkl", "x.onnx", "--explain", "--json"),
            "inspect": run_cli("inspect", onnx, "--json"),
            "formats": run_cli("formats", "--json"),
            "doctor": run_cli("doctor", "--json"),
            "verify": run_cli("verify", FIXTURES / "sklearn_rf_iris.pkl", onnx, "--json"),
            "graph": run_cli("graph", "--json"),
            "batch": run_cli("batch", models, "--to", "onnx", "--out", os.path.join(tmp, "out"), "-j", "1", "--json"),
            "verify-mismatch": run_cli("verify", FIXTURES / "sklearn_logreg_iris.pkl", onnx, "--json"),
            "no-path": run_cli("plan", FIXTURES / "sklearn_rf_iris.pkl", "m.cbm", "--json"),
            "not-a-model": run_cli("inspect", FIXTURES / "iris_sample.csv", "--json"),
            "usage": run_cli("plan", "only-one-argument", "--json"),
            "bad-option": run_cli("inspect", "--no-such-option", "--json"),
        }
        yield runs


@pytest.mark.parametrize("name,command,code", [
    ("convert", "convert", 0), ("plan", "plan", 0), ("inspect", "inspect", 0), ("formats", "formats", 0),
    ("doctor", "doctor", 0), ("verify", "verify", 0), ("graph", "graph", 0), ("batch", "batch", 0),
    ("verify-mismatch", "verify", 6), ("no-path", "plan", 4), ("not-a-model", "inspect", 3),
    ("usage", "plan", 2), ("bad-option", "inspect", 2),
])
def test_json_output_follows_the_schema(documents, name, command, code):
    r = documents[name]
    assert r.code == code, r
    doc = json.loads(r.out)  # stdout is exactly one JSON document
    validate(doc)
    assert (doc["command"], doc["exit_code"], doc["ok"]) == (command, code, code == 0)
    if code:
        assert doc["error"]["exit_code"] == code and doc["error"]["message"]
        assert doc["error"]["message"].splitlines()[0][:40] in r.err  # and said on stderr too


def test_schema_catches_a_renamed_field(documents):
    import jsonschema

    doc = documents["formats"].envelope
    doc["result"]["edges"][0]["name"] = doc["result"]["edges"][0].pop("edge")
    with pytest.raises(jsonschema.ValidationError):
        validate(doc)


# --- exit codes ---


def test_exit_1_internal_error_without_traceback(cli, fixtures, tmp_path, monkeypatch):
    import mlconvert.formats

    def boom(*_args, **_kwargs):
        raise ZeroDivisionError("boom")

    monkeypatch.setattr(mlconvert.formats, "detect", boom)
    r = cli(fixtures / "sklearn_rf_iris.pkl", tmp_path / "x.onnx", "--json")
    assert r.code == 1
    assert "internal error" in r.err and "Traceback" not in r.err
    error = r.envelope["error"]
    assert error["type"] == "InternalError" and "ZeroDivisionError: boom" in error["message"]
    r = cli(fixtures / "sklearn_rf_iris.pkl", tmp_path / "x.onnx", "-v")
    assert r.code == 1 and "Traceback" in r.err


@pytest.mark.parametrize("args", [["nope.xyz"], ["out.onnx", "--to", "nope"], ["out.onnx", "--via", "nope"]])
def test_exit_2_usage(cli, fixtures, tmp_path, args):
    r = cli(fixtures / "sklearn_rf_iris.pkl", *[tmp_path / a if i == 0 else a for i, a in enumerate(args)])
    assert r.code == 2, r
    assert "error" in r.err.lower()


def test_exit_2_missing_argument(cli):
    r = cli("convert", "only-one-arg")
    assert r.code == 2 and r.out == "" and "Missing argument" in r.err
    r = cli("convert", "only-one-arg", "--json")
    assert r.code == 2 and r.envelope["error"]["type"] == "UsageError"


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
    assert r.envelope["exit_code"] == 4 and r.envelope["result"] is None
    assert "catboost-save" in {e["edge"] for e in r.envelope["error"]["details"]["plan"]["edges"]}
    assert "nothing converts pickle (sklearn) to catboost" in r.err
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
    r = cli(fixtures / "xgb_regressor_diabetes.ubj", out, "--atol", "0", "--rtol", "0", "--json")
    assert r.code == 6, r
    assert "value max abs" in r.err  # the failed conversion is explained on stderr
    assert r.json["written"] is False and r.json["verification"]["status"] == "mismatch"
    assert "report" not in r.envelope["error"]["details"]  # the report is the result, once
    assert out.read_bytes() == b"precious"
    assert [p.name for p in tmp_path.iterdir()] == ["m.onnx"]  # no temporary left behind
    r = cli(fixtures / "xgb_regressor_diabetes.ubj", out, "--atol", "0", "--rtol", "0", "--keep-on-mismatch")
    assert r.code == 6
    assert out.read_bytes()[:1] != b"p"


def test_exit_7_malicious_pickle(cli, tmp_path):
    marker = tmp_path / "PWNED"
    payload = tmp_path / "evil.pkl"
    payload.write_bytes(b"\x80\x04cos\nsystem\n(V" + f"touch {marker}".encode() + b"\ntR.")
    r = cli(payload, tmp_path / "out.onnx", "--json")
    assert r.code == 7, r
    assert "os.system" in r.err
    assert r.envelope["error"]["details"]["untrusted"] == ["os.system"]
    assert not marker.exists()
    r = cli("inspect", payload, "--json")
    assert "os.system" in r.out and not marker.exists()


def test_exit_8_strict_when_the_runtime_is_missing(cli, fixtures, tmp_path):
    # onnxruntime hidden (a fresh interpreter): the conversion works but cannot be run to verify it.
    prelude = ("import sys, importlib.abc\n"
               "class Hide(importlib.abc.MetaPathFinder):\n"
               "    def find_spec(self, name, path=None, target=None):\n"
               "        if name.split('.')[0] == 'onnxruntime': raise ModuleNotFoundError(name)\n"
               "sys.meta_path.insert(0, Hide())")
    out = tmp_path / "m.onnx"
    r = cli(fixtures / "sklearn_logreg_iris.pkl", out, prelude=prelude)
    assert r.code == 0, r
    assert "unverified" in r.out and "onnxruntime is not installed" in r.out
    out.unlink()
    r = cli(fixtures / "sklearn_logreg_iris.pkl", out, "--strict", prelude=prelude)
    assert r.code == 8, r
    assert "onnxruntime is not installed" in r.err
    assert not out.exists()


def test_exit_130_is_documented(cli):
    assert "130  interrupted" in cli("--help").out


# --- graph ---


def test_graph_text_formats(cli):
    r = cli("graph")
    assert r.code == 0
    assert r.out.startswith("flowchart LR")
    assert 'pickle -->|"skl2onnx"| onnx' in r.out
    r = cli("graph", "--format", "dot")
    assert r.out.startswith("digraph mlconvert {")
    assert '"pickle" -> "onnx" [label="skl2onnx"' in r.out
    data = cli("graph", "--json").json
    from mlconvert import formats as registry

    assert [f["id"] for f in data["formats"]] == [f.id for f in registry.all_formats()]
    assert {"edge": "skl2onnx", "from": "pickle", "to": "onnx"}.items() <= next(
        e for e in data["edges"] if e["edge"] == "skl2onnx").items()


def test_graph_greys_unavailable_edges_with_the_reason():
    from mlconvert import graph_render
    from mlconvert.edges import Edge, Requirement, registered_edge

    def never_runs(source, dst, ctx):
        raise AssertionError("an unavailable edge is never run")

    missing = Edge(name="zz-missing", source="pmml", target="onnx", flavors=frozenset({"pmml"}),
                   output_flavor="onnx-ml", run=never_runs, library="nothing",
                   requires=(Requirement("a-package-that-is-not-here", extra="pmml"),))
    with registered_edge(missing):
        mermaid, dot = graph_render.mermaid(), graph_render.dot()
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
