"""LightGBM's own save and load: pickle <-> text model."""
from __future__ import annotations

from pathlib import Path

from mlconvert.edges import load_input, save_pickle
from mlconvert.graph import Edge, Requirement, StepContext, register_edge


def save_text(src: Path, dst: Path, ctx: StepContext) -> None:
    from mlconvert.formats import lightgbm_text

    lightgbm_text.save(load_input(src, ctx), dst)


def to_pickle(src: Path, dst: Path, ctx: StepContext) -> None:
    save_pickle(load_input(src, ctx), dst)


_REQUIRES = (Requirement("lightgbm", "3.0"),)

register_edge(Edge(
    name="lightgbm-save", source="pickle", target="lightgbm", flavors=frozenset({"lightgbm"}),
    output_flavor="lightgbm", run="mlconvert.edges.lightgbm_native:save_text", library="lightgbm",
    requires=_REQUIRES, notes="Booster.save_model",
))
register_edge(Edge(
    name="lightgbm-load", source="lightgbm", target="pickle", flavors=frozenset({"lightgbm"}),
    output_flavor="lightgbm", run="mlconvert.edges.lightgbm_native:to_pickle", library="lightgbm",
    requires=_REQUIRES, notes="a pickled lightgbm.Booster (LightGBM has no way back to LGBMClassifier)",
))
