"""Keras (.h5, .keras) and SavedModel -> Core ML with coremltools.

coremltools is given the model's serving function as a concrete function (it does
not recognise Keras 3 models). A .mlpackage is an ML program computed in float32
unless `--fp16` asks for float16; a .mlmodel is a neural-network spec (float32
weights). The precision of what was written is read back from the spec, so a
silent float16 downgrade fails the step instead of shipping.
"""
from __future__ import annotations

import contextlib
import warnings
from pathlib import Path
from typing import TYPE_CHECKING

from mlconvert.edges import Edge, Requirement, StepContext, Tolerance, register_edge
from mlconvert.edges._tf_sources import TF_SOURCES
from mlconvert.errors import ConversionError, UsageError

if TYPE_CHECKING:
    from mlconvert.formats import Source


# ML programs need a finite upper bound for a flexible dimension; neural networks don't.
MAX_FLEXIBLE = 1024


def _input_types(ct, serving, package: bool):
    """Named inputs with a flexible batch (and any other unknown) dimension."""
    import numpy as np

    upper = MAX_FLEXIBLE if package else -1
    types = []
    for spec in serving.inputs:
        if spec["shape"] is None:
            raise ConversionError(f"input {spec['name']!r} has no known rank; Core ML needs one")
        shape = tuple(d if isinstance(d, int) else ct.RangeDim(lower_bound=1, upper_bound=upper, default=1)
                      for d in spec["shape"])
        dtype = np.dtype(spec["dtype"])
        if np.issubdtype(dtype, np.integer):
            dtype = np.int32
        elif dtype == np.float64:
            dtype = np.float32
        types.append(ct.TensorType(name=spec["name"], shape=shape, dtype=dtype))
    return types


def precision(spec) -> str:
    """"float16" if any tensor in the written model is float16, else "float32"."""
    kind = spec.WhichOneof("Type")
    if kind == "mlProgram":
        from coremltools.proto import MIL_pb2

        fp16 = MIL_pb2.DataType.Value("FLOAT16")

        def ops(block):
            for op in block.operations:
                yield op
                for sub in op.blocks:
                    yield from ops(sub)

        for function in spec.mlProgram.functions.values():
            for block in function.block_specializations.values():
                for op in ops(block):
                    for out in op.outputs:
                        if out.type.WhichOneof("type") == "tensorType" and out.type.tensorType.dataType == fp16:
                            return "float16"
        return "float32"
    if kind in ("neuralNetwork", "neuralNetworkClassifier", "neuralNetworkRegressor"):
        network = getattr(spec, kind)
        for layer in network.layers:
            for field, value in layer.ListFields():
                for sub_field, sub_value in value.ListFields() if hasattr(value, "ListFields") else []:
                    if hasattr(sub_value, "float16Value") and sub_value.float16Value:
                        return "float16"
        return "float32"
    return "float32"


def _rename_output(ct, spec, old: str, new: str) -> None:
    """Rename an output everywhere. coremltools' rename_feature renames a neural network's
    interface but not the layer writing it, which Core ML then refuses to compile."""
    ct.utils.rename_feature(spec, old, new, rename_inputs=False, rename_outputs=True)
    kind = spec.WhichOneof("Type")
    if kind in ("neuralNetwork", "neuralNetworkClassifier", "neuralNetworkRegressor"):
        for layer in getattr(spec, kind).layers:
            for names in (layer.input, layer.output):
                for i, name in enumerate(names):
                    if name == old:
                        names[i] = new


def _declare_output_shapes(spec, output_specs: list[dict]) -> None:
    """Give a neural network's multi-array outputs the source's shape, its free dimensions
    (the batch) flexible: coremltools leaves the shape empty. (An ML program's outputs
    take their types from the program.)"""
    by_name = {o["name"]: o for o in output_specs}
    for out in spec.description.output:
        source = by_name.get(out.name, {}).get("shape")
        if out.type.WhichOneof("Type") != "multiArrayType" or not source or out.type.multiArrayType.shape:
            continue
        array = out.type.multiArrayType
        array.shape.extend(d if isinstance(d, int) else 1 for d in source)
        if any(not isinstance(d, int) for d in source):
            for d in source:
                size = array.shapeRange.sizeRanges.add()
                size.lowerBound, size.upperBound = (d, d) if isinstance(d, int) else (1, -1)


def to_coreml(source: Source, dst: Path, ctx: StepContext) -> dict:
    from mlconvert.formats import _tensorflow
    from mlconvert.formats.coreml import import_coremltools

    fp16 = bool(ctx.options.get("fp16"))
    package = not dst.name.endswith(".mlmodel")
    if fp16 and not package:
        raise UsageError("--fp16 applies to ML programs (.mlpackage); a .mlmodel neural network keeps float32",
                         hint="write a .mlpackage to get float16 compute, or drop --fp16")
    serving = _tensorflow.step_serving(source)
    strings = [spec["name"] for spec in serving.inputs if spec["dtype"] == "string"]
    if strings:
        raise ConversionError(f"Core ML takes numbers and images; input(s) {', '.join(strings)} are string tensors",
                              hint="convert a model whose preprocessing (string lookups) happens outside it")
    concrete = serving.concrete()
    ct = import_coremltools()
    options = {"convert_to": "mlprogram" if package else "neuralnetwork", "source": "tensorflow",
               "inputs": _input_types(ct, serving, package)}
    if package:
        options["compute_precision"] = ct.precision.FLOAT16 if fp16 else ct.precision.FLOAT32
    try:
        with _tensorflow.stdout_to_stderr(), warnings.catch_warnings():
            warnings.simplefilter("ignore")
            mlmodel = ct.convert([concrete], **options)
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [type(exc).__name__])[0][:300]
        raise ConversionError(f"coremltools cannot convert this model: {type(exc).__name__}: {first}",
                              hint="Core ML supports a subset of TensorFlow ops; see the message for the one that failed"
                              ) from exc
    # The graph's outputs are Identity tensors: give them the model's output names, in the
    # interface and in the layer or operation that produces them.
    spec = mlmodel.get_spec()
    graph_names = serving.output_map()
    for out in list(spec.description.output):
        new = graph_names.get(out.name)
        if new and new != out.name:
            try:
                _rename_output(ct, spec, out.name, new)
            except ValueError as exc:  # e.g. an ONNX output named "3" is not a valid Core ML name
                raise ConversionError(f"coremltools cannot give output {out.name!r} the source's name {new!r}: {exc}",
                                      hint="Core ML feature names must be identifiers; rename the output in the source"
                                      ) from exc
    if not package:
        _declare_output_shapes(spec, serving.output_specs)
    # Same input, same bytes: no conversion date in the output.
    spec.description.metadata.userDefined.pop("com.github.apple.coremltools.conversion_date", None)
    mlmodel = ct.models.MLModel(spec, weights_dir=mlmodel.weights_dir if package else None,
                                skip_model_load=True)
    with contextlib.suppress(AttributeError):
        mlmodel.short_description = "converted by mlconvert"
    mlmodel.save(str(dst))
    written = ct.utils.load_spec(str(dst))
    from mlconvert.formats._coreml_neural import validate

    problems = validate(written, serving.inputs, serving.output_specs)
    if problems:
        raise ConversionError("coremltools wrote an invalid Core ML model: " + "; ".join(problems),
                              hint="Core ML would refuse to compile it; the output was not written")
    got, wanted = precision(written), ("float16" if fp16 else "float32")
    if got != wanted:
        raise ConversionError(f"coremltools wrote a {got} model where {wanted} was asked for",
                              hint="this is a coremltools bug; the output was not written")
    return {"precision": got, "model_type": written.WhichOneof("Type"),
            "fidelity": "float16 compute (--fp16)" if fp16 else "float32 compute"}


# float16 keeps about three significant digits.
FP16_TOLERANCE = Tolerance(atol=1e-2, rtol=1e-2, reason="--fp16: float16 compute keeps about 3 significant digits")

_REQUIRES = (
    Requirement("tensorflow", "2.13", extra="tf"),
    Requirement("coremltools", "7.0", extra="coreml"),
)

for source, flavors in TF_SOURCES:
    register_edge(Edge(
        name=f"coremltools-{source}",
        source=source,
        target="coreml",
        flavors=frozenset(flavors),
        output_flavor="coreml-nn",
        run=to_coreml,
        library="coremltools",
        requires=_REQUIRES,
        cost=1.5,  # heavier to import and run than tf2onnx
        fidelity="float32 (--fp16: float16 compute in an ML program)",
        option_tolerances=(("fp16", FP16_TOLERANCE),),
        notes="the serving function as a concrete function; .mlpackage ML program, .mlmodel neural network",
        options=("fp16",),
    ))
