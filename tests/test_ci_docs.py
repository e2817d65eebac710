"""The documented CI jobs and pre-commit hook: their mlconvert commands run as written."""
from __future__ import annotations

import shlex
import shutil
import tomllib
import xml.etree.ElementTree as ET
from pathlib import Path

import pytest
import yaml

from conftest import FIXTURES, ROOT, Result, run_cli

pytestmark = pytest.mark.slow


def mlconvert_commands() -> dict[str, list[str]]:
    github = yaml.safe_load((ROOT / "docs" / "ci" / "github-actions.yml").read_text())
    gitlab = yaml.safe_load((ROOT / "docs" / "ci" / "gitlab-ci.yml").read_text())
    runs = [step["run"] for step in github["jobs"]["convert"]["steps"] if "run" in step]
    return {
        "github": [r for r in runs if r.startswith("mlconvert ")],
        "gitlab": [s for s in gitlab["convert-models"]["script"] if s.startswith("mlconvert ")],
    }


def project(tmp_path: Path) -> Path:
    """A repository with a models folder and a committed ONNX made from one of them."""
    models = tmp_path / "models"
    models.mkdir()
    for name in ("sklearn_rf_iris.pkl", "xgb_regressor_diabetes.ubj", "lgbm_classifier_iris.txt"):
        shutil.copy(FIXTURES / name, models / name)
    shutil.copy(FIXTURES / "sklearn_logreg_iris.pkl", models / "churn.pkl")
    (tmp_path / "deploy").mkdir()
    run(f"mlconvert {models / 'churn.pkl'} {tmp_path / 'deploy' / 'churn.onnx'}", tmp_path)
    return tmp_path


def run(command: str, cwd: Path, code: int = 0) -> Result:
    """A documented command line, as written, through the CLI's entry point (in this process)."""
    args = shlex.split(command)
    assert args[0] == "mlconvert"
    result = run_cli(*args[1:], cwd=cwd)
    assert result.code == code, f"{command}\n{result.err}"
    return result


@pytest.mark.parametrize("system", ["github", "gitlab"])
def test_ci_snippet_commands_run(system, tmp_path):
    commands = mlconvert_commands()[system]
    assert any(c.startswith("mlconvert batch ") for c in commands)
    assert any(c.startswith("mlconvert verify ") for c in commands)
    repo = project(tmp_path)
    for command in commands:
        run(command, repo)
    suites = ET.parse(repo / "junit.xml").getroot()
    assert suites.get("tests") == "4" and suites.get("failures") == "0"
    assert (repo / "summary.md").read_text().startswith("## mlconvert batch: all converted")
    assert (repo / "converted" / "churn.onnx").exists()


def test_verify_gate_fails_when_the_committed_model_drifts(tmp_path):
    repo = project(tmp_path)
    shutil.copy(FIXTURES / "sklearn_rf_iris.pkl", repo / "models" / "churn.pkl")  # retrained, ONNX not updated
    run("mlconvert verify models/churn.pkl deploy/churn.onnx", repo, code=6)


def test_pre_commit_hook(tmp_path):
    (hook,) = yaml.safe_load((ROOT / ".pre-commit-hooks.yaml").read_text())
    classic = tomllib.loads((ROOT / "pyproject.toml").read_text())["project"]["optional-dependencies"]["classic"]
    assert hook["additional_dependencies"] == classic  # the hook environment is the classic extra
    assert hook["pass_filenames"] is False
    repo = project(tmp_path)
    args = "models --to onnx --out converted"
    run(f"{hook['entry']} {args}", repo)
    second = run(f"{hook['entry']} {args} --json", repo)  # nothing changed: nothing converted again
    assert second.json["counts"]["unchanged"] == 4
