"""'No conversion path' says the structural reason in one line; only the relevant edges
show without --explain, and the full table only with it (transcripts)."""
from __future__ import annotations

import pytest

from mlconvert.edges import Edge, Requirement
from mlconvert.errors import NoPathError
from mlconvert.planner import find_plan


def _edge_lines(text: str) -> list[str]:
    return [line for line in text.splitlines() if line.strip().startswith(("used", "usable", "rejected", "│"))]


def test_nothing_converts_to_pmml_in_one_line(cli, fixtures, tmp_path):
    r = cli(fixtures / "sklearn_logreg_iris.pkl", tmp_path / "out.pmml")
    assert r.code == 4, r
    assert "error (exit 4): nothing converts to pmml (PMML files can only be inspected)" in r.err
    assert "in this environment" not in r.err and "doctor" not in r.err  # installing would not help
    assert _edge_lines(r.err) == []  # no table of 22 unrelated edges
    assert len(r.err.splitlines()) == 2, r.err  # the error and its hint


def test_a_classic_onnx_model_is_not_taken_for_a_network(cli, fixtures, tmp_path):
    onnx = tmp_path / "m.onnx"
    assert cli(fixtures / "sklearn_logreg_iris.pkl", onnx, "-q").code == 0
    r = cli(onnx, tmp_path / "m.keras")
    assert r.code == 4 and "nothing converts onnx (onnx-ml) to keras" in r.err, r


def test_keras_is_not_written_as_h5(cli, fixtures, tmp_path):
    r = cli("plan", fixtures / "keras_dense_iris.keras", tmp_path / "m.h5")
    assert r.code == 4 and "nothing converts to keras-h5 (mlconvert reads Keras HDF5 but does not write it)" in r.err


def test_only_the_edges_rejected_for_this_input_are_shown(cli, fixtures, tmp_path):
    r = cli(fixtures / "sklearn_rf_iris.pkl", tmp_path / "m.cbm")
    assert r.code == 4, r
    assert "nothing converts pickle (sklearn) to catboost: catboost-save take(s) pickle models of flavor catboost" \
        in r.err
    lines = _edge_lines(r.err)
    assert len(lines) == 1 and "catboost-save" in lines[0] and "this one is sklearn" in lines[0], r.err


def test_plan_without_explain_prints_no_table(cli, fixtures, tmp_path):
    r = cli("plan", fixtures / "sklearn_logreg_iris.pkl", tmp_path / "out.onnx")
    assert r.code == 0 and r.out.strip().splitlines()[0].startswith("plan: pickle (sklearn) → onnx, 1 step(s)")
    assert _edge_lines(r.out) == [] and r.err == ""
    r = cli("plan", fixtures / "sklearn_logreg_iris.pkl", tmp_path / "out.pmml")
    assert r.code == 4 and _edge_lines(r.err) == [] and "--explain" not in r.out


def test_explain_lists_every_edge_the_used_one_first(cli, fixtures, tmp_path):
    r = cli("plan", fixtures / "sklearn_logreg_iris.pkl", tmp_path / "out.onnx", "--explain")
    assert r.code == 0, r
    rows = [line for line in r.out.splitlines() if line.startswith("│")]
    assert len(rows) == len(cli("formats", "--json").json["edges"])
    assert "skl2onnx" in rows[0] and "used" in rows[0]


def test_an_edge_that_cannot_reach_the_target_is_not_called_usable_for_it(cli, fixtures, tmp_path):
    r = cli("plan", fixtures / "xgb_regressor_diabetes.ubj", tmp_path / "again.json", "--explain", "--json")
    assert r.code == 0, r
    edges = {e["edge"]: e for e in r.json["edges"]}
    assert edges["onnxmltools-xgboost"]["reason"] == "leads to onnx, from which nothing reaches xgboost"
    assert not edges["onnxmltools-xgboost"]["relevant"]


def _step(source, dst, ctx):
    return None


def test_install_advice_only_when_installing_opens_a_path():
    missing = Requirement("no-such-dist-mlconvert", extra="classic")
    edges = [Edge("ab", "a", "b", frozenset({"x"}), "x", _step, "lib", requires=(missing,)),
             Edge("bc", "b", "c", frozenset({"x"}), "x", _step, "lib")]
    with pytest.raises(NoPathError) as info:
        find_plan("a", "x", "c", edges=edges)
    assert "in this environment: ab: no-such-dist-mlconvert is not installed" in info.value.message
    assert "install" in info.value.hint
    with pytest.raises(NoPathError) as info:  # nothing leads to d: no advice to install anything
        find_plan("a", "x", "d", edges=edges)
    assert info.value.message == "nothing converts to d (d files can only be inspected)"
    assert "install" not in info.value.hint


def test_formats_says_which_formats_are_targets_or_inspected_only(cli):
    r = cli("formats")
    assert r.code == 0, r
    assert "tflite: a target only (no edge converts from it)" in r.out
    assert "onnx:" not in r.out  # read and written
