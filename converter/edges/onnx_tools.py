"""ONNX -> ONNX with onnx's own tools, onnxruntime's optimiser and onnxconverter-common.

One step, whatever the options ask, in this order:
- `--opset N`: onnx.version_converter (the IR version is raised to what opset N needs);
- a cleanup: onnxruntime's *basic* graph optimisations (constant folding, redundant
  node elimination, fusions into standard ONNX ops only: the result runs on any
  runtime), then onnx's shape inference, which records the shapes it can prove;
- `--fp16`: weights and compute in float16 (onnxconverter-common), inputs and outputs
  kept float32 so callers feed and read the same arrays; classic ai.onnx.ml operators
  stay in float32/double (they have no float16 form).
The producer, doc string and metadata of the source are kept.
"""
from __future__ import annotations

import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from mlconvert.edges import Edge, Requirement, StepContext, Tolerance, register_edge
from mlconvert.errors import ConversionError, UsageError

if TYPE_CHECKING:
    from mlconvert.formats import Source

_DEFAULT_DOMAINS = ("", "ai.onnx")


def _first_line(exc: Exception) -> str:
    return (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]


def default_opset(model) -> int | None:
    return next((o.version for o in model.opset_import if o.domain in _DEFAULT_DOMAINS), None)


def _uses_default_domain(graph) -> bool:
    return any(node.domain in _DEFAULT_DOMAINS for node in graph.node)


def convert_opset(model, target: int):
    """The model at default-domain opset `target`, or ConversionError saying why not."""
    import onnx
    from onnx import helper, version_converter

    current = default_opset(model)
    if current == target:
        return model
    newest = onnx.defs.onnx_opset_version()
    if not 1 <= target <= newest:
        raise UsageError(f"--opset {target} is not an ONNX opset this onnx ({onnx.__version__}) knows",
                         hint=f"choose an opset between 1 and {newest}")
    out = onnx.ModelProto()
    out.CopyFrom(model)
    if not _uses_default_domain(out.graph):
        # Only ai.onnx.ml (or other domain) nodes: nothing to rewrite, just the import.
        del out.opset_import[:]
        out.opset_import.extend([o for o in model.opset_import if o.domain not in _DEFAULT_DOMAINS]
                                + [helper.make_opsetid("", target)])
    else:
        # IR < 4 required every initializer to be a graph input too; old exporters did not
        # always list them and the converter then calls them undefined. IR >= 4 allows it.
        out.ir_version = max(out.ir_version, 4)
        try:
            out = version_converter.convert_version(out, target)
        except Exception as exc:  # onnx raises ConvertError / RuntimeError from C++
            raise ConversionError(
                f"onnx's version converter cannot take this model from opset {current} to {target}: "
                f"{_first_line(exc)}",
                hint="some operators have no adapter between those opsets; try another --opset") from exc
    wanted = helper.find_min_ir_version_for(list(out.opset_import), ignore_unknown=True)
    out.ir_version = max(out.ir_version, wanted)
    return out


def weights_as_constants(model):
    """Drop graph inputs that only repeat an initializer's name (IR 3 required them, so old
    exporters list every weight as an input): the weights become constants that can be
    folded and converted, and the inputs left are the ones callers feed."""
    initializers = {t.name for t in model.graph.initializer}
    kept = [vi for vi in model.graph.input if vi.name not in initializers]
    if len(kept) == len(model.graph.input):
        return 0
    dropped = len(model.graph.input) - len(kept)
    del model.graph.input[:]
    model.graph.input.extend(kept)
    model.ir_version = max(model.ir_version, 4)  # IR 4 lets initializers stand alone
    return dropped


def optimise(model):
    """onnxruntime's basic (runtime-independent) optimisations, written back as ONNX."""
    import onnx
    import onnxruntime

    with tempfile.TemporaryDirectory(prefix="mlconvert-ort-") as tmp:
        src, out = Path(tmp) / "in.onnx", Path(tmp) / "out.onnx"
        onnx.save(model, str(src))
        options = onnxruntime.SessionOptions()
        options.log_severity_level = 3
        options.graph_optimization_level = onnxruntime.GraphOptimizationLevel.ORT_ENABLE_BASIC
        options.optimized_model_filepath = str(out)
        try:
            onnxruntime.InferenceSession(str(src), options, providers=["CPUExecutionProvider"])
            optimised, note = onnx.load(str(out)), "constant folding and shape inference"
        except Exception as exc:  # e.g. opset < 7, whose kernels onnxruntime no longer has
            optimised, note = model, f"shape inference only (onnxruntime cannot load the model: {_first_line(exc)})"
    try:
        return onnx.shape_inference.infer_shapes(optimised), note
    except Exception:  # inference is a bonus: a model it cannot follow is kept as it is
        return optimised, note.replace("and shape inference", "(shape inference failed)")


def to_float16(model):
    try:
        from onnxconverter_common import float16
    except ImportError as exc:
        raise ConversionError("--fp16 needs onnxconverter-common, which is not installed",
                              hint="pip install 'mlconvert[classic]'") from exc
    try:
        return float16.convert_float_to_float16(model, keep_io_types=True, disable_shape_infer=False)
    except Exception as exc:
        raise ConversionError(f"onnxconverter-common cannot convert the model to float16: {_first_line(exc)}") from exc


def _float_count(model, elem_type: int) -> int:
    return sum(1 for t in model.graph.initializer if t.data_type == elem_type)


def rewrite(source: Source, dst: Path, ctx: StepContext) -> dict:
    import onnx

    original = source.model
    model = original
    details: dict = {"opset_from": default_opset(original), "nodes_before": len(original.graph.node)}
    opset = ctx.options.get("opset")
    if opset:
        model = convert_opset(model, int(opset))
    if model is original:
        model = onnx.ModelProto()
        model.CopyFrom(original)
    dropped = weights_as_constants(model)
    if dropped:
        details["weight_inputs_dropped"] = dropped
    model, details["cleanup"] = optimise(model)
    if ctx.options.get("fp16"):
        if source.flavor != "onnx-nn":
            raise UsageError("--fp16 applies to neural networks; a classic model's ai.onnx.ml operators have "
                             "no float16 form", hint="drop --fp16")
        before = _float_count(model, onnx.TensorProto.FLOAT)
        model = to_float16(model)
        details["float16_initializers"] = _float_count(model, onnx.TensorProto.FLOAT16)
        details["float32_initializers_kept"] = _float_count(model, onnx.TensorProto.FLOAT)
        if before and not details["float16_initializers"]:
            details["note"] = "no weight could be stored in float16 (classic operators keep their precision)"
    # What the source says about itself stays (onnxruntime's writer drops it).
    model.producer_name, model.producer_version = original.producer_name, original.producer_version
    model.doc_string, model.model_version, model.domain = original.doc_string, original.model_version, original.domain
    del model.metadata_props[:]
    model.metadata_props.extend(original.metadata_props)
    try:
        onnx.checker.check_model(model)
    except Exception as exc:
        raise ConversionError(f"the rewritten model fails the ONNX checker: {_first_line(exc)}",
                              hint="try without --opset/--fp16 to see which rewrite breaks it") from exc
    try:
        onnx.save(model, str(dst))
    except (ValueError, OSError) as exc:  # e.g. over protobuf's 2 GB limit once external data is inlined
        raise ConversionError(f"the rewritten model cannot be saved as one file: {_first_line(exc)}") from exc
    details.update({"opset": default_opset(model), "ir_version": model.ir_version, "nodes_after": len(model.graph.node),
                    "precision": "float16 weights and compute, float32 inputs/outputs" if ctx.options.get("fp16")
                    else "as the source"})
    return details


_REQUIRES = (Requirement("onnx"), Requirement("onnxruntime"))
_FP16 = Tolerance(atol=1e-2, rtol=1e-2, reason="--fp16: float16 weights and compute (about 3 significant digits)")

for flavor in ("onnx-nn", "onnx-ml"):
    register_edge(Edge(
        name="onnx-rewrite" if flavor == "onnx-nn" else "onnx-rewrite-ml",
        source="onnx", target="onnx", flavors=frozenset({flavor}), output_flavor=flavor, run=rewrite,
        library="onnx",
        requires=_REQUIRES,
        fidelity="same precision (--opset N: opset conversion; --fp16: float16 weights and compute)",
        option_tolerances=(("fp16", _FP16),),
        notes="--opset N with onnx's version converter; constant folding and shape inference; "
              "--fp16 with onnxconverter-common (inputs and outputs stay float32)",
    ))
