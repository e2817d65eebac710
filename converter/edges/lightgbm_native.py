"""LightGBM's own save and load: pickle <-> text model."""
from __future__ import annotations

from mlconvert.edges import Edge, Requirement, register_edge, resave

_REQUIRES = (Requirement("lightgbm", "3.0"),)

register_edge(Edge(
    name="lightgbm-save", source="pickle", target="lightgbm", flavors=frozenset({"lightgbm"}),
    output_flavor="lightgbm", run=resave, library="lightgbm",
    requires=_REQUIRES, notes="Booster.save_model",
))
register_edge(Edge(
    name="lightgbm-load", source="lightgbm", target="pickle", flavors=frozenset({"lightgbm"}),
    output_flavor="lightgbm", run=resave, library="lightgbm",
    requires=_REQUIRES, notes="a pickled lightgbm.Booster (LightGBM has no way back to LGBMClassifier)",
))
