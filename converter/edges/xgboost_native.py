"""XGBoost's own save and load: pickle <-> model file, and re-encoding between files."""
from __future__ import annotations

from pathlib import Path

from mlconvert.edges import load_input, save_pickle
from mlconvert.graph import Edge, Requirement, StepContext, register_edge


def save_file(src: Path, dst: Path, ctx: StepContext) -> None:
    from mlconvert.formats import xgboost_model

    xgboost_model.save(load_input(src, ctx), dst)


def to_pickle(src: Path, dst: Path, ctx: StepContext) -> None:
    save_pickle(load_input(src, ctx), dst)


_REQUIRES = (Requirement("xgboost", "2.0"),)

register_edge(Edge(
    name="xgboost-save", source="pickle", target="xgboost", flavors=frozenset({"xgboost"}),
    output_flavor="xgboost", run="mlconvert.edges.xgboost_native:save_file", library="xgboost",
    requires=_REQUIRES, notes="Booster.save_model: JSON for .json, UBJSON otherwise",
))
register_edge(Edge(
    name="xgboost-load", source="xgboost", target="pickle", flavors=frozenset({"xgboost"}),
    output_flavor="xgboost", run="mlconvert.edges.xgboost_native:to_pickle", library="xgboost",
    requires=_REQUIRES, notes="XGBClassifier / XGBRegressor when the objective says which, else a Booster",
))
register_edge(Edge(
    name="xgboost-resave", source="xgboost", target="xgboost", flavors=frozenset({"xgboost"}),
    output_flavor="xgboost", run="mlconvert.edges.xgboost_native:save_file", library="xgboost",
    requires=_REQUIRES, notes="JSON <-> UBJSON; legacy binary -> JSON/UBJSON",
))
