"""One module per converter library; each declares its edges with `register_edge`.

Module tops import only the standard library: the converter library is imported by
the step function, when the step runs.
"""
from __future__ import annotations

from pathlib import Path

from mlconvert.graph import StepContext


def load_input(src: Path, ctx: StepContext):
    """The step's input model, loaded by its format module (pickles are scanned first)."""
    from mlconvert import formats

    return formats.get(ctx.source_format).load(src, trust=ctx.trust)


def resave(src: Path, dst: Path, ctx: StepContext) -> None:
    """A library's own save: load the input with its format, save with the target's."""
    from mlconvert import formats

    formats.get(ctx.target_format).save(load_input(src, ctx), dst)


def n_features_of(model) -> int:
    """How many input columns a fitted model takes."""
    for attr in ("n_features_in_",):
        if getattr(model, attr, None):
            return int(getattr(model, attr))
    if hasattr(model, "num_features"):  # xgboost.Booster
        return int(model.num_features())
    if hasattr(model, "num_feature"):  # lightgbm.Booster
        return int(model.num_feature())
    coef = getattr(model, "coef_", None)  # linear models pickled before n_features_in_ existed
    if coef is not None:
        return int(coef.shape[-1])
    from mlconvert.errors import ConversionError

    raise ConversionError(
        f"{type(model).__name__} does not record how many features it takes",
        hint="refit or re-save the model with a current library version",
    )
