"""scikit-learn -> ONNX with skl2onnx."""
from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

from mlconvert import probe
from mlconvert.edges import Edge, Requirement, StepContext, n_features_of, register_edge
from mlconvert.edges._skl2onnx_pmml import register_for, walk
from mlconvert.errors import ConversionError, Unsupported

if TYPE_CHECKING:
    from mlconvert.formats import Source


def target_opset(ctx: StepContext, double: bool, boosters: bool) -> dict | int | None:
    opset = ctx.options.get("opset")
    if double or boosters:  # double trees need ai.onnx.ml >= 3; onnxmltools' converters stop at 3
        return {"": opset or 21, "ai.onnx.ml": 3}
    return opset


def _register_booster_converters(model) -> bool:
    """XGBoost and LightGBM estimators inside a scikit-learn pipeline: skl2onnx needs
    onnxmltools' converters registered for them (registering twice is harmless).
    Returns whether the model holds any."""
    libraries = {type(est).__module__.split(".")[0] for est in walk(model)}
    if not libraries & {"xgboost", "lightgbm"}:
        return False
    if not probe.has_module("onnxmltools"):
        raise ConversionError("this pipeline holds an XGBoost or LightGBM model, which needs onnxmltools",
                              hint="pip install onnxmltools")
    from skl2onnx import update_registered_converter
    from skl2onnx.common.shape_calculator import (calculate_linear_classifier_output_shapes,
                                                  calculate_linear_regressor_output_shapes)

    classifier_options = {"nocl": [True, False], "zipmap": [True, False, "columns"]}
    if "xgboost" in libraries:
        import xgboost
        from onnxmltools.convert.xgboost.operator_converters.XGBoost import convert_xgboost

        update_registered_converter(xgboost.XGBClassifier, "XGBoostXGBClassifier",
                                    calculate_linear_classifier_output_shapes, convert_xgboost,
                                    options=classifier_options)
        update_registered_converter(xgboost.XGBRegressor, "XGBoostXGBRegressor",
                                    calculate_linear_regressor_output_shapes, convert_xgboost)
    if "lightgbm" in libraries:
        import lightgbm
        from onnxmltools.convert.lightgbm.operator_converters.LightGbm import convert_lightgbm

        update_registered_converter(lightgbm.LGBMClassifier, "LightGbmLGBMClassifier",
                                    calculate_linear_classifier_output_shapes, convert_lightgbm,
                                    options=classifier_options)
        update_registered_converter(lightgbm.LGBMRegressor, "LightGbmLGBMRegressor",
                                    calculate_linear_regressor_output_shapes, convert_lightgbm,
                                    options={"split": None})
    return True


def _positional_boosters(model):
    """A copy of the model whose XGBoost boosters name their features f0, f1, ...: the
    only names onnxmltools' converter reads (the ONNX model takes columns by position
    anyway). The loaded model itself is left as it is: verification runs it."""
    import copy

    if not any(type(est).__module__.startswith("xgboost") for est in walk(model)):
        return model
    model = copy.deepcopy(model)
    for est in walk(model):
        if type(est).__module__.startswith("xgboost") and hasattr(est, "get_booster"):
            booster = est.get_booster()
            booster.feature_names, booster.feature_types = None, None
    return model


def _no_zipmap(model) -> dict:
    """Plain probability tensors, not a list of dicts, from every classifier in the model."""
    from sklearn.base import is_classifier

    options = {}
    for est in walk(model):
        if is_classifier(est) and not hasattr(est, "steps"):
            options[id(est)] = {"zipmap": False}
    return options


def _initial_types(model, tensor) -> list:
    """One matrix input; or, for a model that picks DataFrame columns by name, one
    input per column (strings where an encoder learnt strings)."""
    from skl2onnx.common.data_types import StringTensorType

    from mlconvert.formats._sklearn_api import EstimatorPredictor

    specs = EstimatorPredictor(model).input_specs()
    if specs is None:
        return [("input", tensor([None, n_features_of(model)]))]
    return [(s["name"], StringTensorType([None, 1]) if s["dtype"] == "object" else tensor([None, 1]))
            for s in specs]


def _tree_limits(model, double: bool) -> list[str]:
    """What skl2onnx gets wrong for a tree model mlconvert's own tree writer reads: it
    refuses those, so the planner takes that writer (edge trees-sklearn) instead."""
    from mlconvert.formats.classic import sklearn as trees

    if not trees.handles(model):
        return []
    out = []
    if double:
        out.append("--double (float64) for tree models")
    categorical = getattr(model, "is_categorical_", None)
    if categorical is not None and bool(categorical.any()):
        out.append(f"categorical splits of {type(model).__name__}")
    return out


def sklearn_to_onnx(source: Source, dst: Path, ctx: StepContext) -> dict:
    model = source.model
    limits = _tree_limits(model, bool(ctx.options.get("double")))
    if limits:
        raise Unsupported(limits, where="skl2onnx", hint="mlconvert's own tree writer converts it (edge trees-sklearn)")
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    double = bool(ctx.options.get("double"))
    tensor = DoubleTensorType if double else FloatTensorType
    boosters = _register_booster_converters(model)
    if boosters:
        model = _positional_boosters(model)
    register_for(model)  # sklearn2pmml decorators, sklearn-pandas' DataFrameMapper
    try:
        onx = convert_sklearn(
            model,
            initial_types=_initial_types(model, tensor),
            options=_no_zipmap(model),
            target_opset=target_opset(ctx, double, boosters),
        )
    except Exception as exc:  # skl2onnx raises bare RuntimeError/NameError for unsupported models
        raise ConversionError(
            f"skl2onnx cannot convert {type(model).__name__}: {str(exc).splitlines()[0]}",
            hint="skl2onnx supports most scikit-learn estimators; custom transformers need a registered converter",
        ) from exc
    dst.write_bytes(onx.SerializeToString())
    return {"input_dtype": "float64" if double else "float32",
            **({"fidelity": "float64 kept (--double)"} if double else {})}


register_edge(
    Edge(
        name="skl2onnx",
        source="pickle",
        target="onnx",
        flavors=frozenset({"sklearn"}),
        output_flavor="onnx-ml",
        run=sklearn_to_onnx,
        library="skl2onnx",
        requires=(Requirement("skl2onnx", "1.17"), Requirement("scikit-learn", "1.4"), Requirement("onnx")),
        fidelity="float64 -> float32 (--double keeps float64)",
        mismatch_hint=("double", "the ONNX model computes in float32: --double keeps float64"),
        options=("double", "opset"),
    )
)
