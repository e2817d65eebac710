"""`-q` means quiet, failures are never silent, and converter libraries' chatter stays
hidden unless -v (transcripts)."""
from __future__ import annotations

import pickle
import re
import shutil
from pathlib import Path

import pytest

from conftest import ROOT, run_cli_subprocess


def _failing_tree(tmp_path: Path, fixtures: Path) -> Path:
    """A models folder with one good model and one pickle that imports a global outside the allow-list."""
    import collections

    tree = tmp_path / "models"
    tree.mkdir()
    shutil.copy(fixtures / "sklearn_logreg_iris.pkl", tree / "good.pkl")
    (tree / "bad.pkl").write_bytes(pickle.dumps(collections.Counter(a=1)))
    return tree


def test_quiet_batch_names_each_failed_model_and_the_final_error(cli, fixtures, tmp_path):
    # What the shipped pre-commit hook runs: a failing commit must say which model and why.
    tree = _failing_tree(tmp_path, fixtures)
    r = cli("batch", "--resume", "-q", tree, "--to", "onnx", "--out", tmp_path / "out")
    assert r.code == 9, r
    assert r.out == ""  # no summary with -q
    assert re.search(r"^failed bad\.pkl → onnx: exit 7: bad\.pkl would import 1 global", r.err, re.M), r.err
    assert "collections.Counter" in r.err
    assert "error (exit 9): 1 of 2 conversion(s) failed" in r.err
    assert "good.pkl" not in r.err  # successes stay quiet
    assert (tmp_path / "out" / "good.onnx").is_file()


def test_quiet_convert_prints_nothing_on_success_and_the_error_on_failure(cli, fixtures, tmp_path):
    r = cli(fixtures / "sklearn_logreg_iris.pkl", tmp_path / "m.onnx", "-q")
    assert (r.code, r.out, r.err) == (0, "", ""), r
    r = cli(fixtures / "sklearn_logreg_iris.pkl", tmp_path / "m.pmml", "-q")
    assert r.code == 4 and r.out == "" and r.err.startswith("error (exit 4)"), r


def test_library_warnings_are_hidden_unless_verbose(cli, fixtures, tmp_path):
    """A UserWarning a converter library raises while a command runs reaches the user only with -v."""
    prelude = ("import warnings, mlconvert.api as api\n"
               "_inspect = api.inspect\n"
               "def noisy(*a, **k):\n"
               "    warnings.warn('library chatter', UserWarning)\n"
               "    return _inspect(*a, **k)\n"
               "api.inspect = noisy\n")
    model = fixtures / "sklearn_logreg_iris.pkl"
    quiet = run_cli_subprocess("inspect", model, prelude=prelude)
    assert quiet.code == 0 and "library chatter" not in quiet.err, quiet
    loud = run_cli_subprocess("inspect", model, "-v", prelude=prelude)
    assert loud.code == 0 and "library chatter" in loud.err, loud


@pytest.mark.slow
def test_tensorflow_start_up_lines_are_hidden_with_q_and_json(fixtures, tmp_path):
    pytest.importorskip("tf2onnx")
    # A fresh interpreter: TensorFlow prints its start-up lines when it is first imported.
    r = run_cli_subprocess(fixtures / "keras_dense_iris.h5", tmp_path / "k.onnx", "-q")
    assert r.code == 0, r
    assert r.err == "", r.err  # no absl / oneDNN lines, no Keras UserWarning
    r = run_cli_subprocess(fixtures / "keras_dense_iris.h5", tmp_path / "k2.onnx", "--json")
    assert r.code == 0 and "absl" not in r.err and "oneDNN" not in r.err, r.err
    assert r.json["verification"]["status"] == "verified"


def test_pre_commit_hook_does_not_fire_on_manifests():
    yaml = pytest.importorskip("yaml")
    hook = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())[0]
    assert "-q" in hook["entry"]

    def fires(path: str) -> bool:
        # pre-commit: `files` and `exclude` are Python regexes searched in the path
        return bool(re.search(hook["files"], path)) and not re.search(hook.get("exclude", "^$"), path)

    for path in ("requirements.txt", "requirements-dev.txt", "web/package.json", "package-lock.json",
                 "docs/tsconfig.json", "constraints.txt"):
        assert not fires(path), path
    for path in ("models/m.pkl", "models/booster.json", "models/lgbm.txt", "m.ubj", "a/b.cbm", "x.onnx"):
        assert fires(path), path
