"""XGBoost's own save and load: pickle <-> model file, and re-encoding between files."""
from __future__ import annotations

from mlconvert.graph import Edge, Requirement, register_edge

_REQUIRES = (Requirement("xgboost", "2.0"),)

register_edge(Edge(
    name="xgboost-save", source="pickle", target="xgboost", flavors=frozenset({"xgboost"}),
    output_flavor="xgboost", run="mlconvert.edges:resave", library="xgboost",
    requires=_REQUIRES, notes="Booster.save_model: JSON for .json, UBJSON otherwise",
))
register_edge(Edge(
    name="xgboost-load", source="xgboost", target="pickle", flavors=frozenset({"xgboost"}),
    output_flavor="xgboost", run="mlconvert.edges:resave", library="xgboost",
    requires=_REQUIRES, notes="XGBClassifier / XGBRegressor when the objective says which, else a Booster",
))
register_edge(Edge(
    name="xgboost-resave", source="xgboost", target="xgboost", flavors=frozenset({"xgboost"}),
    output_flavor="xgboost", run="mlconvert.edges:resave", library="xgboost",
    requires=_REQUIRES, notes="JSON <-> UBJSON; legacy binary -> JSON/UBJSON",
))
