"""SavedModel -> TensorFlow Lite with TensorFlow's own TFLiteConverter.

float32 by default; `--fp16` stores the weights in float16 (the interpreter computes
in float32 after dequantizing them); `--quantize dynamic` stores the weights in int8
and quantizes activations on the fly (dynamic-range quantization). The precision the
written file really has is read back from it (formats.tflite) and reported, and a file
whose precision is not the one asked for fails the step. Keras files reach this edge
through Keras's own SavedModel export; ONNX networks through onnx2tf.
"""
from __future__ import annotations

import re
from pathlib import Path
from typing import TYPE_CHECKING

from mlconvert.edges import Edge, Requirement, StepContext, Tolerance, register_edge
from mlconvert.errors import ConversionError, UsageError

if TYPE_CHECKING:
    from mlconvert.formats import Source

_EXPECTED = {"float32": "float32", "fp16": "float16 weights", "dynamic": "dynamic-range int8"}


def requested_precision(options: dict) -> str:
    quantize, fp16 = options.get("quantize"), bool(options.get("fp16"))
    if quantize and fp16:
        raise UsageError("--fp16 and --quantize ask for two different precisions", hint="choose one")
    if quantize and quantize != "dynamic":
        raise UsageError(f"--quantize {quantize} is not supported for TFLite", hint="use --quantize dynamic")
    return "dynamic" if quantize else "fp16" if fp16 else "float32"


def to_tflite(source: Source, dst: Path, ctx: StepContext) -> dict:
    from mlconvert.formats import _tensorflow, tflite

    precision = requested_precision(ctx.options)
    serving = _tensorflow.step_serving(source)
    tf = _tensorflow.import_tf()
    try:
        with _tensorflow.stdout_to_stderr():
            converter = tf.lite.TFLiteConverter.from_saved_model(
                str(source.path), signature_keys=[serving.signature_name], tags=set(serving.tags))
            if precision != "float32":
                converter.optimizations = [tf.lite.Optimize.DEFAULT]
            if precision == "fp16":
                converter.target_spec.supported_types = [tf.float16]
            data = converter.convert()
    except Exception as exc:  # the converter raises ConverterError, ValueError...
        ops = sorted(set(re.findall(r"'tf\.(\w+)' op is neither a custom op nor a flex op", str(exc))))
        if ops:
            raise ConversionError(
                f"TFLite has no builtin operator for {len(ops)} TensorFlow op(s): {', '.join(ops)}",
                hint="the model uses operations TFLite's builtin kernels do not cover (e.g. lookup tables of "
                     "feature columns); export the model without them", details={"unsupported_ops": ops}) from exc
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ConversionError(f"TensorFlow's TFLite converter cannot convert this model: {type(exc).__name__}: "
                              f"{first}", hint="run with -v for the converter's log") from exc
    dst.write_bytes(data)
    written = tflite.describe(dst)["details"]["precision"]
    details = {"precision": written}
    if written == "float32" and precision != "float32":
        # The converter leaves small weight tensors (under 1024 values) in float32.
        details["note"] = f"asked for {_EXPECTED[precision]}; no weight tensor is large enough, so all stay float32"
    elif not written.startswith(_EXPECTED[precision]):
        raise ConversionError(f"asked for {_EXPECTED[precision]}, the TFLite converter wrote {written}")
    return details


_TOLERANCES = (
    ("quantize", Tolerance(atol=1e-1, rtol=1e-1, reason="--quantize dynamic: int8 weights, activations "
                                                        "quantized on the fly")),
    ("fp16", Tolerance(atol=1e-2, rtol=1e-2, reason="--fp16: float16 weights (about 3 significant digits)")),
)

register_edge(Edge(
    name="tflite-converter",
    source="savedmodel",
    target="tflite",
    flavors=frozenset({"keras", "tf-graph"}),
    output_flavor="tflite",
    run=to_tflite,
    library="tensorflow",
    requires=(Requirement("tensorflow", "2.13", extra="tf"),),
    fidelity="float32 (--fp16: float16 weights; --quantize dynamic: int8 weights)",
    tolerance=Tolerance(atol=1e-5, rtol=1e-4, reason="TFLite's float32 kernels sum in another order"),
    option_tolerances=_TOLERANCES,
    notes="TensorFlow's TFLiteConverter on the serving signature",
))
