"""Verification of classic models: structure before numbers, no "unverified" for want of
comparable outputs, inputs that understand the model, and a converter whose output
disagrees planned around."""
from __future__ import annotations

import numpy as np
import pytest

from conftest import FIXTURES
from mlconvert import api, verification
from mlconvert.edges import Edge, Requirement, registered_edge
from mlconvert.errors import VerificationError
from mlconvert.planner import Plan
from mlconvert.predict import Predictor
from mlconvert.report import ConversionReport

TREES = FIXTURES / "trees"


class Outputs(Predictor):
    """A predictor that answers fixed outputs: what structure() compares."""

    def __init__(self, kind, outputs):
        self.kind, self.outputs, self.n_features = kind, outputs, 2

    def predict(self, X):
        return self.outputs


def _run(source_outputs, target_outputs, kinds=("regressor", "regressor")):
    X = np.zeros((3, 2))
    return verification.run(Outputs(kinds[0], source_outputs), Outputs(kinds[1], target_outputs), X, "test",
                            1e-5, 1e-5, "default")


def test_a_regressor_turned_classifier_is_a_mismatch_not_unverified():
    # What onnxmltools once made of an XGBoost survival:aft model: labels and logistic
    # probabilities instead of survival times.
    result = _run({"value": np.array([1.5, 2.0, 9.0])},
                  {"label": np.array([1, 1, 1]), "probabilities": np.full((3, 2), 0.5)},
                  kinds=("regressor", "classifier"))
    assert result.status == "mismatch"
    assert "outputs do not correspond" in result.reason and "regressor" in result.reason


def test_class_count_and_widths_must_agree():
    result = _run({"label": np.array([0, 1, 2]), "probabilities": np.eye(3)},
                  {"label": np.array([0, 1, 1]), "probabilities": np.eye(3)[:, :2]}, ("classifier", "classifier"))
    assert result.status == "mismatch" and "3 classes in the source, 2" in result.reason
    result = _run({"value": np.ones((3, 2))}, {"value": np.ones((3, 1))})
    assert result.status == "mismatch" and "2 columns in the source, 1" in result.reason


def test_labels_compare_as_numbers():
    # XGBoost's binary:hinge predicts 0.0/1.0; the ONNX label is int64.
    result = _run({"label": np.array([0.0, 1.0, 1.0])},
                  {"label": np.array([0, 1, 1]), "probabilities": np.array([[1, -1], [-1, 1], [-2, 2]])},
                  ("classifier", "classifier"))
    assert result.status == "verified", result.reason


def test_string_labels_against_numbers_are_named():
    result = _run({"label": np.array(["a", "b", "a"], dtype=object)}, {"label": np.array([0, 1, 0])},
                  ("classifier", "classifier"))
    assert result.status == "mismatch" and "strings in the source, numbers" in result.reason


def test_synthetic_inputs_understand_categories_thresholds_and_missing_values():
    class Trees(Predictor):
        n_features = 3

        def thresholds(self):
            return {0: [0.1, 2.5]}

        def categories(self):
            return {2: [0.0, 1.0, 4.0]}

        def missing_features(self):
            return {0, 2}

    X, how = verification.synthetic_inputs(Trees())
    cats = X[:, 2][~np.isnan(X[:, 2])]
    assert set(cats) == {0.0, 1.0, 4.0, 5.0}  # the real categories and one unseen
    assert np.isnan(X[:, 2]).any() and np.isnan(X[:, 0]).any() and not np.isnan(X[:, 1]).any()
    t = np.float32(0.1)
    on_both_sides = {np.nextafter(t, np.float32(-1)), t, np.nextafter(t, np.float32(1))}
    assert on_both_sides <= set(X[:, 0].astype(np.float32))
    assert "1 categorical" in how and "missing values in 2" in how


def _wrong_xgboost(source, dst, ctx):
    """A real converter that is wrong: the tree writer with every prediction shifted."""
    from mlconvert.edges.translate_trees import graph_to_onnx, read_graph

    graph = read_graph(source)
    op = graph.estimator()
    op.base = [b + 1.0 for b in op.base]
    dst.write_bytes(graph_to_onnx(graph).SerializeToString())


def test_an_output_that_disagrees_is_planned_around(tmp_path):
    wrong = Edge(name="test-wrong-trees", source="xgboost", target="onnx", flavors=frozenset({"xgboost"}),
                 output_flavor="onnx-ml", run=_wrong_xgboost, library="onnx", requires=(Requirement("onnx"),),
                 cost=0.1)
    with registered_edge(wrong):
        report = api.convert(TREES / "xgb_gamma.json", tmp_path / "out.onnx")
    assert report.verification["status"] == "verified"
    assert [s.edge for s in report.steps] == ["onnxmltools-xgboost"]
    (failed,) = [s for s in report.failed_steps if s.edge == "test-wrong-trees"]
    assert failed.error.startswith("verification: outputs differ beyond tolerance")
    assert not list(tmp_path.glob("mismatch-*")) and (tmp_path / "out.onnx").is_file()


def test_a_mismatch_hint_names_the_cause_not_a_looser_tolerance():
    report = ConversionReport(source={}, target={})
    plan = Plan("xgboost", "xgboost", "onnx", [], 1.0)

    class Src:
        description = {}

    report.verification = {"status": "mismatch", "reason": "outputs differ beyond tolerance: value",
                           "outputs": [{"name": "value", "max_abs": 16.7, "max_rel": 0.8, "ok": False}]}
    hint = api._mismatch_hint(report, Src(), plan, {})
    assert "--atol" not in hint and "mis-translated" in hint
    report.verification["outputs"][0].update(max_abs=2e-5, max_rel=3e-6)
    assert "--atol/--rtol" in api._mismatch_hint(report, Src(), plan, {})
    report.verification = {"status": "mismatch", "reason": "outputs do not correspond: the source is a regressor",
                           "outputs": []}
    assert "a tolerance cannot fix that" in api._mismatch_hint(report, Src(), plan, {})


def test_every_route_disagreeing_is_a_verification_failure(tmp_path):
    """When every route to ONNX writes a wrong model (here each tree converter is given the
    same wrong step), the first mismatch stands: exit 6, a hint that names the cause, and
    nothing written."""
    import dataclasses

    import mlconvert.edges as edges_module
    from mlconvert.edges import all_edges

    routes = [e for e in all_edges() if e.target == "onnx" and "xgboost" in e.flavors]
    saved = {e.name: e for e in routes}
    try:
        for e in routes:
            edges_module._EDGES[e.name] = dataclasses.replace(e, run=_wrong_xgboost)
        with pytest.raises(VerificationError) as info:
            api.convert(TREES / "xgb_gamma.json", tmp_path / "out.onnx")
    finally:
        edges_module._EDGES.update(saved)
    assert "converters were tried and each disagreed" in info.value.hint
    assert "mis-translated" in info.value.hint and "--atol" not in info.value.hint
    assert not (tmp_path / "out.onnx").exists()
