"""XGBoost and LightGBM -> ONNX with onnxmltools."""
from __future__ import annotations

from pathlib import Path

from mlconvert.edges import load_input, n_features_of
from mlconvert.errors import ConversionError
from mlconvert.graph import Edge, Requirement, StepContext, Tolerance, register_edge


def _convert(model, ctx: StepContext, library: str):
    import onnxmltools
    from onnxmltools.convert.common.data_types import FloatTensorType

    types = [("input", FloatTensorType([None, n_features_of(model)]))]
    opset = ctx.options.get("opset")
    try:
        if library == "xgboost":
            return onnxmltools.convert_xgboost(model, initial_types=types, target_opset=opset)
        return onnxmltools.convert_lightgbm(model, initial_types=types, target_opset=opset, zipmap=False)
    except Exception as exc:  # onnxmltools raises assorted errors for unsupported models
        raise ConversionError(
            f"onnxmltools cannot convert this {library} model: {str(exc).splitlines()[0] if str(exc) else type(exc).__name__}",
            hint="objectives other than regression, binary and multiclass, and categorical splits, are not supported",
        ) from exc


def xgboost_to_onnx(src: Path, dst: Path, ctx: StepContext) -> None:
    model = load_input(src, ctx)
    dst.write_bytes(_convert(model, ctx, "xgboost").SerializeToString())


def lightgbm_to_onnx(src: Path, dst: Path, ctx: StepContext) -> dict:
    model = load_input(src, ctx)
    onx = _convert(model, ctx, "lightgbm")
    # LightGBM compares float64 thresholds; onnxmltools rounds them to the nearest float32.
    from mlconvert.edges._thresholds import fix_float32_thresholds
    from mlconvert.predict import LightGBMPredictor

    changed = fix_float32_thresholds(onx, LightGBMPredictor(getattr(model, "booster_", model)).thresholds())
    dst.write_bytes(onx.SerializeToString())
    return {"thresholds_rounded": changed}


_REQUIRES = (Requirement("onnxmltools", "1.13"), Requirement("onnx"))
_FLOAT32_SUMS = Tolerance(1e-5, 1e-4, "tree sums accumulate in float32 in ONNX Runtime")

for source, lib, func in (
    ("pickle", "xgboost", "xgboost_to_onnx"),
    ("xgboost", "xgboost", "xgboost_to_onnx"),
    ("pickle", "lightgbm", "lightgbm_to_onnx"),
    ("lightgbm", "lightgbm", "lightgbm_to_onnx"),
):
    register_edge(
        Edge(
            name=f"onnxmltools-{lib}" + ("-pickle" if source == "pickle" else ""),
            source=source,
            target="onnx",
            flavors=frozenset({lib}),
            output_flavor="onnx-ml",
            run=f"mlconvert.edges.via_onnxmltools:{func}",
            library="onnxmltools",
            requires=_REQUIRES + (Requirement(lib),),
            fidelity="float32 inputs; thresholds rounded to decide exactly" if lib == "lightgbm"
            else "lossless (XGBoost computes in float32)",
            tolerance=_FLOAT32_SUMS,
        )
    )
