"""scikit-learn -> ONNX with skl2onnx."""
from __future__ import annotations

from pathlib import Path

from mlconvert.edges import load_input, n_features_of
from mlconvert.errors import ConversionError
from mlconvert.graph import Edge, Requirement, StepContext, register_edge


def target_opset(ctx: StepContext, double: bool) -> dict | int | None:
    opset = ctx.options.get("opset")
    if double:  # double-precision trees need ai.onnx.ml >= 3
        return {"": opset or 21, "ai.onnx.ml": 3}
    return opset


def _no_zipmap(model) -> dict:
    """Plain probability tensors, not a list of dicts, from every classifier in the model."""
    from sklearn.base import is_classifier

    options = {}
    candidates = [model] + [step for _, step in getattr(model, "steps", [])]
    for est in candidates:
        if is_classifier(est) and not hasattr(est, "steps"):
            options[id(est)] = {"zipmap": False}
    return options


def _initial_types(model, tensor) -> list:
    """One matrix input; or, for a model that picks DataFrame columns by name, one
    input per column (strings where an encoder learnt strings)."""
    from skl2onnx.common.data_types import StringTensorType

    from mlconvert.predict import EstimatorPredictor

    specs = EstimatorPredictor(model).input_specs()
    if specs is None:
        return [("input", tensor([None, n_features_of(model)]))]
    return [(s["name"], StringTensorType([None, 1]) if s["dtype"] == "object" else tensor([None, 1]))
            for s in specs]


def sklearn_to_onnx(src: Path, dst: Path, ctx: StepContext) -> dict:
    model = load_input(src, ctx)
    from skl2onnx import convert_sklearn
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType

    double = bool(ctx.options.get("double"))
    tensor = DoubleTensorType if double else FloatTensorType
    try:
        onx = convert_sklearn(
            model,
            initial_types=_initial_types(model, tensor),
            options=_no_zipmap(model),
            target_opset=target_opset(ctx, double),
        )
    except Exception as exc:  # skl2onnx raises bare RuntimeError/NameError for unsupported models
        raise ConversionError(
            f"skl2onnx cannot convert {type(model).__name__}: {str(exc).splitlines()[0]}",
            hint="skl2onnx supports most scikit-learn estimators; custom transformers need a registered converter",
        ) from exc
    dst.write_bytes(onx.SerializeToString())
    return {"input_dtype": "float64" if double else "float32"}


register_edge(
    Edge(
        name="skl2onnx",
        source="pickle",
        target="onnx",
        flavors=frozenset({"sklearn"}),
        output_flavor="onnx-ml",
        run="mlconvert.edges.via_skl2onnx:sklearn_to_onnx",
        library="skl2onnx",
        requires=(Requirement("skl2onnx", "1.17"), Requirement("scikit-learn", "1.4"), Requirement("onnx")),
        fidelity="float64 -> float32 (--double keeps float64)",
    )
)
