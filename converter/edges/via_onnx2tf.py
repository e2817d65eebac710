"""ONNX (neural networks) -> TensorFlow SavedModel with onnx2tf.

onnx2tf rebuilds the graph as a (tf-keras) model; mlconvert saves it itself with one
`serving_default` signature whose inputs and outputs carry the ONNX names, so
verification (and every later step: TFLite, Core ML, back to ONNX) compares output by
output. Inputs keep the ONNX layout (onnx2tf would turn NCHW images into NHWC).

A batch size the exporter fixed at 1 (old exporters did) would fix it in TensorFlow
too: when the graph gives the same rows with a free batch dimension (checked with
onnxruntime on two rows against one row at a time), the batch is freed first.
Classic ai.onnx.ml models are not onnx2tf's: the edge accepts onnx-nn only.
"""
from __future__ import annotations

import contextlib
import io
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING

from mlconvert.edges import Edge, Requirement, StepContext, register_edge
from mlconvert.errors import ConversionError

if TYPE_CHECKING:
    from mlconvert.formats import Source


def _first_line(text: str, fallback: str) -> str:
    return (text.strip().splitlines() or [fallback])[0][:300]


def _graph_inputs(model) -> list:
    initializers = {t.name for t in model.graph.initializer}
    return [vi for vi in model.graph.input if vi.name not in initializers]


def _feed(model, batch: int, seed: int = 0) -> dict | None:
    """Random float inputs of the model's shapes with `batch` rows, or None if it takes other kinds."""
    import numpy as np

    rng = np.random.default_rng(seed)
    feed = {}
    for vi in _graph_inputs(model):
        tensor = vi.type.tensor_type
        if tensor.elem_type != 1 or not tensor.shape.dim:  # float32 tensors of known rank only
            return None
        dims = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None for d in tensor.shape.dim]
        if any(d is None for d in dims[1:]):
            return None
        feed[vi.name] = rng.normal(size=[batch, *dims[1:]]).astype(np.float32)
    return feed


def free_batch(model):
    """The model with a free batch dimension where it fixed 1 and the rows stay the same; else as it is."""
    import numpy as np
    import onnx
    import onnxruntime

    inputs = _graph_inputs(model)
    fixed = [vi for vi in inputs if vi.type.tensor_type.shape.dim
             and vi.type.tensor_type.shape.dim[0].HasField("dim_value")
             and vi.type.tensor_type.shape.dim[0].dim_value == 1]
    if not fixed or len(fixed) != len(inputs):
        return model, False
    freed = onnx.ModelProto()
    freed.CopyFrom(model)
    for vi in list(freed.graph.input) + list(freed.graph.output):
        dims = vi.type.tensor_type.shape.dim
        if dims and dims[0].HasField("dim_value") and dims[0].dim_value == 1 and (
                vi.name not in {t.name for t in freed.graph.initializer}):
            dims[0].dim_param = "batch"
    del freed.graph.value_info[:]  # inferred shapes that fixed the batch
    feed = _feed(model, 2)
    if feed is None:
        return model, False
    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    try:
        both = onnxruntime.InferenceSession(freed.SerializeToString(), options, providers=["CPUExecutionProvider"])
        one = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
        together = both.run(None, feed)
        apart = [one.run(None, {k: v[i:i + 1] for k, v in feed.items()}) for i in range(2)]
    except Exception:  # the graph really depends on its batch size (a Reshape to [1, ...])
        return model, False
    for k, out in enumerate(together):
        rows = np.concatenate([a[k] for a in apart])
        if out.shape != rows.shape or not np.allclose(out, rows, rtol=1e-5, atol=1e-6):
            return model, False
    return freed, True


@contextlib.contextmanager
def _quiet():
    """onnx2tf prints tables and progress to stdout; --json owns stdout. Its errors
    end in sys.exit(1) after printing the reason: keep the text for the message."""
    buffer = io.StringIO()
    with contextlib.redirect_stdout(buffer):
        try:
            yield buffer
        except SystemExit as exc:
            text = buffer.getvalue()
            errors = [line for line in text.splitlines() if "ERROR" in line or "Error" in line]
            raise ConversionError(
                f"onnx2tf cannot convert this model: {_first_line(errors[-1] if errors else text, 'it exited')}",
                hint="run with -v to see onnx2tf's log") from exc


def _strip_ansi(text: str) -> str:
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", text)


def to_savedmodel(source: Source, dst: Path, ctx: StepContext) -> dict:
    import onnx

    from mlconvert.formats import _tensorflow

    from mlconvert.edges.onnx_tools import convert_opset, default_opset

    model = source.model
    opset = default_opset(model)
    if opset is not None and opset < 7:  # onnxruntime (which onnx2tf runs inside) dropped these opsets
        model = convert_opset(model, 13)
    model, freed = free_batch(model)
    tf = _tensorflow.import_tf()
    inputs = _graph_inputs(model)
    # Image-like inputs (rank 3 to 5) keep their channels-first layout.
    names = [vi.name for vi in inputs if 3 <= len(vi.type.tensor_type.shape.dim) <= 5]
    with tempfile.TemporaryDirectory(prefix="mlconvert-onnx2tf-") as tmp:
        path = Path(tmp) / "model.onnx"
        onnx.save(model, str(path))
        try:
            import onnx2tf

            with _quiet():
                keras_model = onnx2tf.convert(
                    input_onnx_file_path=str(path), output_folder_path=str(Path(tmp) / "out"),
                    disable_model_save=True, not_use_onnxsim=True, non_verbose=True, verbosity="error",
                    keep_ncw_or_nchw_or_ncdhw_input_names=names or None)
        except ConversionError:
            raise
        except Exception as exc:  # onnx2tf raises whatever its op builders raise
            raise ConversionError(f"onnx2tf cannot convert this model: {type(exc).__name__}: "
                                  f"{_first_line(_strip_ansi(str(exc)), type(exc).__name__)}",
                                  hint="run with -v to see onnx2tf's log") from exc
    output_names = [vi.name for vi in model.graph.output]
    specs = []
    for vi, keras_input in zip(inputs, keras_model.inputs):
        shape = [d.dim_value if d.HasField("dim_value") and d.dim_value > 0 else None
                 for d in vi.type.tensor_type.shape.dim]
        # TensorFlow names placeholders itself when a name starts with a digit (PyTorch's "0").
        name = _tensorflow.safe_name(vi.name, "input")
        specs.append(tf.TensorSpec(shape, keras_input.dtype, name=f"input_{name}" if name[0].isdigit() else name))

    @tf.function(input_signature=specs)
    def serve(*args):
        outs = keras_model(list(args) if len(args) > 1 else args[0], training=False)
        outs = outs if isinstance(outs, (list, tuple)) else [outs]
        return {name: tf.identity(out) for name, out in zip(output_names, outs)}

    module = tf.Module()
    module.model = keras_model
    module.serve = serve
    try:
        with _tensorflow.stdout_to_stderr():
            tf.saved_model.save(module, str(dst), signatures={"serving_default": serve})
    except Exception as exc:
        raise ConversionError(f"TensorFlow could not save onnx2tf's model: {type(exc).__name__}: "
                              f"{_first_line(str(exc), type(exc).__name__)}") from exc
    return {"batch": "freed (the exporter had fixed it at 1)" if freed else "as in the ONNX model",
            "inputs": [spec.name for spec in specs], "opset_read": default_opset(model)}


_REQUIRES = (
    Requirement("onnx2tf", "1.28", "1.29", extra="onnx2tf"),
    Requirement("tf-keras", extra="onnx2tf"),
    Requirement("onnx-graphsurgeon", extra="onnx2tf"),
    Requirement("sng4onnx", extra="onnx2tf"),
    Requirement("ai-edge-litert", extra="onnx2tf"),
    Requirement("psutil", extra="onnx2tf"),
    Requirement("tensorflow", "2.13", extra="tf"),
    Requirement("onnxruntime"),
)

register_edge(Edge(
    name="onnx2tf",
    source="onnx",
    target="savedmodel",
    flavors=frozenset({"onnx-nn"}),
    output_flavor="tf-graph",
    run=to_savedmodel,
    library="onnx2tf",
    requires=_REQUIRES,
    cost=1.5,
    fidelity="float32, same ops rebuilt in TensorFlow",
    notes="onnx2tf's model saved with serving_default named as the ONNX inputs and outputs; inputs keep "
          "the ONNX layout (NCHW)",
))
