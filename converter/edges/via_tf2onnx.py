"""Keras (.h5, .keras) and SavedModel -> ONNX with tf2onnx.

Keras models are wrapped in a tf.function with an explicit, named input signature
and converted with `from_function` (tf2onnx's `from_keras` does not work with
Keras 3); a SavedModel's serving signature is wrapped the same way. tf2onnx keeps
going past TensorFlow ops it cannot map and leaves them in the graph, so the result
is inspected: any node outside the ONNX operator sets fails the step, naming them.
"""
from __future__ import annotations

import logging
import re
from pathlib import Path
from typing import TYPE_CHECKING

from mlconvert.edges import Edge, Requirement, StepContext, register_edge
from mlconvert.edges._tf_sources import TF_SOURCES
from mlconvert.errors import ConversionError

if TYPE_CHECKING:
    from mlconvert.formats import Source


class _Collect(logging.Handler):
    """tf2onnx's own report of each op it could not convert."""

    def __init__(self):
        super().__init__(logging.ERROR)
        self.ops: list[str] = []
        self.errors: list[str] = []

    def emit(self, record):
        text = record.getMessage()
        match = re.search(r"Tensorflow op \[(.*?): (\w+)\] is not supported", text)
        if match:
            self.ops.append(match.group(2))
        else:
            self.errors.append(text.splitlines()[0] if text else "")


def _graph_ops(graph):
    for node in graph.node:
        yield node
        for attr in node.attribute:
            if attr.g is not None and attr.g.node:
                yield from _graph_ops(attr.g)
            for sub in attr.graphs:
                yield from _graph_ops(sub)


def unsupported_ops(model) -> list[str]:
    """Op types in the model that no ONNX operator set defines (tf2onnx's leftovers)."""
    import onnx

    found = []
    for node in _graph_ops(model.graph):
        domain = node.domain if node.domain not in ("", "ai.onnx") else ""
        if not onnx.defs.has(node.op_type, domain):
            label = node.op_type if not domain else f"{node.op_type} ({domain})"
            if label not in found:
                found.append(label)
    return found


def _from_savedmodel(tf2onnx, serving, opset):
    """tf2onnx's saved-model loader on the serving signature; a SavedModel TF 2 cannot
    restore is frozen from its session graph instead. Inputs and outputs keep the
    signature's names."""
    if serving.kind == "savedmodel-graph":
        frozen = serving.frozen_graph()
        rename = {serving.feeds[k]: k for k in serving.feeds}
        rename.update({serving.fetches[k]: k for k in serving.fetches})
        inputs, outputs = list(serving.feeds.values()), list(serving.fetches.values())
    else:
        from tf2onnx import tf_loader

        frozen, inputs, outputs, rename = tf_loader.from_saved_model(
            str(serving.path), None, None, tag=serving.tags, signatures=[serving.signature_name],
            return_tensors_to_rename=True)
        # tf2onnx names inputs after the TensorSpecs; the signature's keys are what callers use.
        by_spec = {spec.name: inp["name"] for spec, inp in zip(serving.specs, serving.inputs) if spec.name}
        rename = {t: by_spec.get(n, n) for t, n in rename.items()}
    return tf2onnx.convert.from_graph_def(frozen, input_names=inputs, output_names=outputs, opset=opset,
                                          tensors_to_rename=rename)


def to_onnx(source: Source, dst: Path, ctx: StepContext) -> dict:
    from mlconvert.formats import _tensorflow

    serving = _tensorflow.step_serving(source)
    _tensorflow.import_tf()
    import tf2onnx

    opset = ctx.options.get("opset")
    logger = logging.getLogger("tf2onnx")
    collect = _Collect()
    logger.addHandler(collect)
    propagate, logger.propagate = logger.propagate, False  # its log goes to the report, not the terminal
    try:
        with _tensorflow.stdout_to_stderr():
            if serving.kind == "keras":
                model, _ = tf2onnx.convert.from_function(serving.function, input_signature=serving.specs,
                                                         opset=opset)
            else:
                model, _ = _from_savedmodel(tf2onnx, serving, opset)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ConversionError(f"tf2onnx cannot convert this model: {type(exc).__name__}: {first}",
                              hint="run with -v for tf2onnx's log; --opset N may help") from exc
    finally:
        logger.removeHandler(collect)
        logger.propagate = propagate
    left = unsupported_ops(model)
    ops = list(dict.fromkeys(collect.ops + left))
    if ops:
        raise ConversionError(
            f"tf2onnx has no ONNX mapping for {len(ops)} TensorFlow op(s): {', '.join(ops)}",
            hint="the model uses operations ONNX cannot express here; a higher --opset may add some, "
            "otherwise replace those ops in the model",
            details={"unsupported_ops": ops})
    model.producer_name = "tf2onnx"
    dst.write_bytes(model.SerializeToString())
    return {"opset": next((o.version for o in model.opset_import if o.domain in ("", "ai.onnx")), None)}


_REQUIRES = (
    Requirement("tensorflow", "2.13", extra="tf"),
    Requirement("tf2onnx", "1.16", extra="tf"),
    Requirement("onnx"),
)

for source, flavors in TF_SOURCES:
    register_edge(
        Edge(
            name=f"tf2onnx-{source}",
            source=source,
            target="onnx",
            flavors=frozenset(flavors),
            output_flavor="onnx-nn",
            run=to_onnx,
            library="tf2onnx",
            requires=_REQUIRES,
            fidelity="float32, same ops (ONNX Runtime may fuse them)",
            notes="Keras through a tf.function with a named input signature; SavedModels through serving_default",
            options=("opset",),
        )
    )
