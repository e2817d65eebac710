"""Planner unit tests on fake edges: cheapest path, ties, --via, re-planning, reasons."""
from __future__ import annotations

import pytest

from mlconvert.errors import NoPathError, UsageError
from mlconvert.edges import Edge, Requirement
from mlconvert.planner import find_plan


def never_run(source, dst, ctx):
    raise AssertionError("planner tests never run a step")


def edge(name, source, target, flavors=("x",), out="x", cost=1.0, requires=()):
    return Edge(name=name, source=source, target=target, flavors=frozenset(flavors), output_flavor=out,
                run=never_run, library="none", requires=tuple(requires), cost=cost)


MISSING = Requirement("a-distribution-that-is-not-installed")
TOO_OLD = Requirement("pytest", minimum="999.0")
TOO_NEW = Requirement("pytest", below="1.0")


def names(plan):
    return [e.name for e in plan.steps]


def test_direct_edge_is_cheapest():
    edges = [edge("direct", "a", "c"), edge("ab", "a", "b"), edge("bc", "b", "c")]
    assert names(find_plan("a", "x", "c", edges=edges)) == ["direct"]


def test_two_hops_when_the_direct_edge_is_unavailable():
    edges = [edge("direct", "a", "c", requires=[MISSING]), edge("ab", "a", "b"), edge("bc", "b", "c")]
    plan = find_plan("a", "x", "c", edges=edges)
    assert names(plan) == ["ab", "bc"]
    verdict = {v.edge: v for v in plan.verdicts}["direct"]
    assert verdict.status == "rejected"
    assert "a-distribution-that-is-not-installed is not installed" in verdict.reason
    assert "pip install" in verdict.reason


def test_two_hops_win_on_cost():
    edges = [edge("direct", "a", "c", cost=5), edge("ab", "a", "b"), edge("bc", "b", "c")]
    assert names(find_plan("a", "x", "c", edges=edges)) == ["ab", "bc"]


def test_ties_break_on_edge_names_deterministically():
    edges = [edge("z-path", "a", "c"), edge("a-path", "a", "c"), edge("m-path", "a", "c")]
    for order in (edges, list(reversed(edges))):
        assert names(find_plan("a", "x", "c", edges=order)) == ["a-path"]


def test_flavor_decides_which_edges_apply():
    edges = [edge("only-y", "a", "c", flavors=("y",)), edge("ab", "a", "b", out="y"), edge("bc", "b", "c", flavors=("x",))]
    with pytest.raises(NoPathError) as info:
        find_plan("a", "x", "c", edges=edges)
    verdicts = {v["edge"]: v for v in info.value.details["plan"]["edges"]}
    assert "flavor y; this one is x" in verdicts["only-y"]["reason"]
    assert "flavor x; this one is y" in verdicts["bc"]["reason"]


def test_version_ranges_are_reasons():
    edges = [edge("old", "a", "c", requires=[TOO_OLD]), edge("new", "a", "c", requires=[TOO_NEW])]
    with pytest.raises(NoPathError) as info:
        find_plan("a", "x", "c", edges=edges)
    reasons = {v["edge"]: v["reason"] for v in info.value.details["plan"]["edges"]}
    assert "pytest >= 999.0 is needed, found" in reasons["old"]
    assert "pytest < 1.0 is needed, found" in reasons["new"]
    assert info.value.exit_code == 4


def test_replanning_leaves_failed_edges_out():
    edges = [edge("direct", "a", "c"), edge("ab", "a", "b"), edge("bc", "b", "c")]
    plan = find_plan("a", "x", "c", edges=edges, failed={"direct": "boom"})
    assert names(plan) == ["ab", "bc"]
    assert {v.edge: v.reason for v in plan.verdicts}["direct"] == "failed in this run: boom"


def test_via_forces_an_intermediate():
    edges = [edge("direct", "a", "c"), edge("ab", "a", "b"), edge("bc", "b", "c")]
    assert names(find_plan("a", "x", "c", via="b", edges=edges)) == ["ab", "bc"]
    with pytest.raises(UsageError):
        find_plan("a", "x", "c", via="a", edges=edges)


def test_same_format_needs_a_real_step():
    edges = [edge("resave", "a", "a"), edge("ab", "a", "b")]
    assert names(find_plan("a", "x", "a", edges=edges)) == ["resave"]
    with pytest.raises(NoPathError):
        find_plan("b", "x", "b", edges=edges)


def test_unreachable_source_is_explained():
    edges = [edge("bc", "b", "c")]
    with pytest.raises(NoPathError) as info:
        find_plan("a", "x", "c", edges=edges)
    assert "no path reaches b" in info.value.details["plan"]["edges"][0]["reason"]


def test_real_graph_picks_two_hops_for_a_catboost_pickle():
    plan = find_plan("pickle", "catboost", "onnx")
    assert names(plan) == ["catboost-save", "catboost-onnx"]


def test_real_graph_refuses_sklearn_to_catboost():
    with pytest.raises(NoPathError) as info:
        find_plan("pickle", "sklearn", "catboost")
    reasons = {v["edge"]: v["reason"] for v in info.value.details["plan"]["edges"]}
    assert reasons["catboost-save"] == "accepts pickle models of flavor catboost; this one is sklearn"


def test_plugins_register_formats_and_edges(monkeypatch, tmp_path):
    """A module named in the mlconvert.plugins entry-point group is imported by both registries."""
    import importlib.metadata
    import sys

    from mlconvert import edges, formats, plugins

    (tmp_path / "toy_plugin.py").write_text(
        "from pathlib import Path\n"
        "from mlconvert.formats import Format, register_format\n"
        "from mlconvert.edges import Edge, register_edge\n"
        "def convert(source, dst, ctx): dst.write_bytes(b'')\n"
        "register_format(Format(id='toy', title='Toy model', extensions=('.toy',),\n"
        "    sniff=lambda head, path: head.startswith(b'TOY1'), describe=lambda path: {'flavor': 'toy'}))\n"
        "register_edge(Edge(name='toy-onnx', source='toy', target='onnx', flavors=frozenset({'toy'}),\n"
        "    output_flavor='onnx-ml', run=convert, library='toy-plugin'))\n")
    monkeypatch.syspath_prepend(str(tmp_path))
    entry = importlib.metadata.EntryPoint(name="toy", value="toy_plugin", group=plugins.GROUP)
    monkeypatch.setattr(plugins, "entry_points", lambda: [entry])
    monkeypatch.setattr(plugins, "_loaded", False)
    try:
        plugins.load()
        model = tmp_path / "m.toy"
        model.write_bytes(b"TOY1 weights")
        assert formats.detect(model).id == "toy"
        assert [e.name for e in find_plan("toy", "toy", "onnx").steps] == ["toy-onnx"]
    finally:
        formats._REGISTRY.pop("toy", None)
        edges._EDGES.pop("toy-onnx", None)
        sys.modules.pop("toy_plugin", None)
