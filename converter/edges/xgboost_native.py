"""XGBoost's own save and load: pickle <-> model file, and re-encoding between files."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mlconvert.edges import Edge, Requirement, StepContext, register_edge, resave

if TYPE_CHECKING:
    from mlconvert.formats import Source


def to_pickle(source: Source, dst: Path, ctx: StepContext) -> None:
    """A model file as the scikit-learn wrapper its objective calls for, pickled."""
    from mlconvert import formats
    from mlconvert.formats.xgboost_model import as_sklearn

    formats.get(ctx.target_format).save(as_sklearn(source.model), dst)


_REQUIRES = (Requirement("xgboost", "2.0"),)

register_edge(Edge(
    name="xgboost-save", source="pickle", target="xgboost", flavors=frozenset({"xgboost"}),
    output_flavor="xgboost", run=resave, library="xgboost",
    requires=_REQUIRES, notes="Booster.save_model: JSON for .json, UBJSON otherwise",
))
register_edge(Edge(
    name="xgboost-load", source="xgboost", target="pickle", flavors=frozenset({"xgboost"}),
    output_flavor="xgboost", run=to_pickle, library="xgboost",
    requires=_REQUIRES, notes="XGBClassifier / XGBRegressor when the objective says which, else a Booster",
))
register_edge(Edge(
    name="xgboost-resave", source="xgboost", target="xgboost", flavors=frozenset({"xgboost"}),
    output_flavor="xgboost", run=resave, library="xgboost",
    requires=_REQUIRES, notes="JSON <-> UBJSON; legacy binary -> JSON/UBJSON",
))
