"""Mistyped commands, formats and extensions get a did-you-mean; the format options are
choices that --help and shell completion list (transcripts)."""
from __future__ import annotations

import pytest

from conftest import run_cli_subprocess


@pytest.mark.parametrize("typo, meant", [("inpsect", "inspect"), ("fromats", "formats"), ("docter", "doctor"),
                                         ("version", "--version")])
def test_a_mistyped_command_gets_did_you_mean(cli, tmp_path, typo, meant):
    r = cli(typo, "m.pkl", cwd=tmp_path)
    assert r.code == 2, r
    assert f"No such command '{typo}'. Did you mean '{meant}'?" in r.err
    r = cli(typo, "m.pkl", "--json", cwd=tmp_path)
    assert r.envelope["command"] is None and "Did you mean" in r.envelope["error"]["message"]


def test_an_existing_file_named_like_a_typo_is_still_converted(cli, fixtures, tmp_path):
    (tmp_path / "inpsect").write_bytes((fixtures / "sklearn_logreg_iris.pkl").read_bytes())
    r = cli("inpsect", "m.onnx", cwd=tmp_path)
    assert r.code == 0, r
    assert (tmp_path / "m.onnx").is_file()


def test_version_short_option(cli):
    r = cli("-V")
    assert r.code == 0 and r.out.startswith("mlconvert ")


@pytest.mark.parametrize("args, message", [
    (["--to", "onx"], "'onx' is not a format mlconvert knows; did you mean 'onnx'?"),
    (["--from", "pikle"], "did you mean 'pickle'?"),
    (["--via", "xgbost"], "did you mean 'xgboost'?"),
])
def test_a_mistyped_format_gets_did_you_mean(cli, fixtures, tmp_path, args, message):
    r = cli(fixtures / "sklearn_logreg_iris.pkl", tmp_path / "m.onnx", *args)
    assert r.code == 2 and message in r.err, r


def test_a_mistyped_extension_gets_did_you_mean(cli, fixtures, tmp_path):
    r = cli(fixtures / "sklearn_logreg_iris.pkl", tmp_path / "m.onx")
    assert r.code == 2 and "did you mean m.onnx?" in r.err, r
    r = cli(fixtures / "sklearn_logreg_iris.pkl", tmp_path / "logreg_sm")
    assert r.code == 2 and "needs --to (savedmodel)" in r.err, r


def test_help_lists_the_formats(cli):
    from mlconvert import formats

    text = cli("convert", "--help").out
    ids = sorted(f.id for f in formats.all_formats())
    for option in ("--from", "--to", "--via"):
        assert f"{option} [{'|'.join(ids)}]" in text
    assert "[" + "|".join(ids) + "]" in cli("batch", "--help").out


def test_shell_completion_lists_the_formats(fixtures):
    # Completion is answered by click from the environment, as a shell would ask it.
    r = run_cli_subprocess(env={"_MLCONVERT_COMPLETE": "bash_complete",
                                "COMP_WORDS": "mlconvert convert m.pkl m.onnx --to ", "COMP_CWORD": "5"})
    values = {line.split(",", 1)[1] for line in r.out.splitlines() if "," in line}
    assert {"onnx", "pickle", "coreml", "savedmodel"} <= values, r
