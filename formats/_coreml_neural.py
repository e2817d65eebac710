"""Neural Core ML off macOS: the rules Core ML's validator enforces, and a reference
evaluator in numpy for the layers and ML-program operations that Keras/TensorFlow
conversions produce.

Both read the protobuf spec (and an .mlpackage's weight file) directly; nothing here
uses coremltools' converter, so a conversion is checked by code that did not write it.
Ops the evaluator does not cover are named, and the conversion stays unverified.
"""
from __future__ import annotations

import struct
from pathlib import Path

NN_KINDS = ("neuralNetwork", "neuralNetworkClassifier", "neuralNetworkRegressor")


# -------------------------------------------------------------------- validation

def validate(spec, source_inputs: list[dict] | None = None, source_outputs: list[dict] | None = None) -> list[str]:
    """What breaks Core ML's rules in `spec` (a Model_pb2.Model), one line each; empty
    when it is valid. With the source's signature, also: a dimension the source leaves
    free (the batch) must be flexible in Core ML too, and declared ranks must agree."""
    kind = spec.WhichOneof("Type")
    problems: list[str] = []
    if kind in NN_KINDS:
        problems += _validate_network(spec, getattr(spec, kind))
    elif kind == "mlProgram":
        problems += _validate_program(spec)
    for feature in spec.description.input:
        problems += _validate_array_shape("input", feature)
    inputs = {f.name: flexible_shape(f) for f in spec.description.input}
    outputs = {f.name: flexible_shape(f) for f in spec.description.output}
    if kind == "mlProgram":  # the program's own output types are the honest shapes
        outputs.update(_program_output_shapes(spec))
    problems += _compare_shapes("input", source_inputs or [], inputs)
    problems += _compare_shapes("output", source_outputs or [], outputs)
    return problems


def _validate_network(spec, network) -> list[str]:
    problems = []
    produced = {f.name for f in spec.description.input}
    for layer in network.layers:
        for name in layer.input:
            if name not in produced:
                problems.append(f"layer {layer.name!r} reads {name!r}, which no input declares and no earlier layer "
                                "produces")
        for name in layer.output:
            if name in produced:
                problems.append(f"layer {layer.name!r} writes {name!r}, which is already defined")
            produced.add(name)
    classifier = spec.WhichOneof("Type") == "neuralNetworkClassifier"
    own = {spec.description.predictedFeatureName, spec.description.predictedProbabilitiesName} if classifier else set()
    for feature in spec.description.output:
        if feature.name not in produced and feature.name not in own:
            problems.append(f"interface output {feature.name!r} is not produced by any layer")
    return problems


def _validate_program(spec) -> list[str]:
    problems = []
    program = spec.mlProgram
    main = program.functions.get("main")
    if main is None:
        return ["the ML program has no 'main' function"]
    declared = [f.name for f in spec.description.input]
    if [i.name for i in main.inputs] != declared:
        problems.append(f"the program's inputs {[i.name for i in main.inputs]} differ from the interface's {declared}")
    block = main.block_specializations.get(main.opset)
    if block is None:
        return problems + [f"the main function has no block for its opset {main.opset!r}"]
    produced = {i.name for i in main.inputs}
    for op in block.operations:
        for name, argument in op.inputs.items():
            for binding in argument.arguments:
                if binding.WhichOneof("binding") == "name" and binding.name not in produced:
                    problems.append(f"operation {op.type} reads {binding.name!r} (as {name}), which nothing produces "
                                    "before it")
        produced.update(o.name for o in op.outputs)
    outputs = [f.name for f in spec.description.output]
    if list(block.outputs) != outputs:
        problems.append(f"the program returns {list(block.outputs)}, the interface declares {outputs}")
    problems += [f"interface output {name!r} is not produced by any operation"
                 for name in block.outputs if name not in produced]
    return problems


def _array_ranges(feature) -> tuple[list[int], list[tuple[int, int]] | None] | None:
    """(default shape, [(lower, upper)] per dimension or None) of a multi-array feature."""
    if feature.type.WhichOneof("Type") != "multiArrayType":
        return None
    array = feature.type.multiArrayType
    ranges = None
    if array.WhichOneof("ShapeFlexibility") == "shapeRange":
        ranges = [(r.lowerBound, r.upperBound) for r in array.shapeRange.sizeRanges]
    elif array.WhichOneof("ShapeFlexibility") == "enumeratedShapes":
        shapes = [list(s.shape) for s in array.enumeratedShapes.shapes]
        if shapes and len({len(s) for s in shapes}) == 1:
            ranges = [(min(d), max(d)) for d in zip(*shapes)]
    return list(array.shape), ranges


def flexible_shape(feature) -> list[int | None] | None:
    """A multi-array feature's shape with None for each dimension that may vary."""
    found = _array_ranges(feature)
    if found is None or not found[0]:
        return None
    shape, ranges = found
    if ranges is None or len(ranges) != len(shape):
        return shape
    return [None if lo != hi else size for size, (lo, hi) in zip(shape, ranges)]


def _validate_array_shape(what: str, feature) -> list[str]:
    found = _array_ranges(feature)
    if found is None:
        return []
    shape, ranges = found
    if ranges is not None and shape and len(ranges) != len(shape):
        return [f"{what} {feature.name!r} has rank {len(shape)} but {len(ranges)} flexible ranges"]
    if ranges is not None and any(not (lo <= size and (hi < 0 or size <= hi)) for size, (lo, hi) in zip(shape, ranges)):
        return [f"{what} {feature.name!r}: default shape {shape} lies outside its ranges {ranges}"]
    return []


def _program_output_shapes(spec) -> dict:
    main = spec.mlProgram.functions.get("main")
    block = main.block_specializations.get(main.opset) if main is not None else None
    if block is None:
        return {}
    types = {o.name: o.type for op in block.operations for o in op.outputs}
    shapes = {}
    for name in block.outputs:
        if name in types and types[name].WhichOneof("type") == "tensorType":
            dims = types[name].tensorType.dimensions
            shapes[name] = [d.constant.size if d.WhichOneof("dimension") == "constant" else None for d in dims]
    return shapes


def _compare_shapes(what: str, want: list[dict], got: dict) -> list[str]:
    """Ranks and fixed dimensions agree, and a dimension the source leaves free is not
    fixed. A Core ML feature that declares no shape has nothing to compare."""
    problems = []
    for spec in want:
        source, shape = spec.get("shape"), got.get(spec.get("name"))
        if source is None or shape is None:
            continue
        name = spec["name"]
        if len(shape) != len(source):
            problems.append(f"{what} {name!r} has rank {len(shape)} ({_show(shape)}), the source {_show(source)}")
            continue
        for axis, (s, c) in enumerate(zip(source, shape)):
            if s is None and c is not None:
                problems.append(f"{what} {name!r} fixes dimension {axis} at {c}; the source leaves it free "
                                f"({_show(source)})")
            elif s is not None and c is not None and s != c:
                problems.append(f"{what} {name!r} has shape {_show(shape)}, the source {_show(source)}")
    return problems


def _show(shape) -> str:
    return "[" + ", ".join("None" if d is None else str(d) for d in shape) + "]"


# -------------------------------------------------------------------- evaluation

class Uncovered(Exception):
    """The evaluator does not implement these ops (names in .ops)."""

    def __init__(self, ops):
        self.ops = sorted(set(ops))
        super().__init__(", ".join(self.ops))


def evaluator(spec, package: Path | None = None):
    """A function {input name: array with a leading batch} -> {output name: array}, or
    Uncovered naming every op it cannot run. Rows are run one at a time, as an app does
    and as the converter's fixed reshape targets assume."""
    import numpy as np

    kind = spec.WhichOneof("Type")
    if kind in NN_KINDS:
        run_one = _network_runner(spec, getattr(spec, kind))
    elif kind == "mlProgram":
        run_one = _program_runner(spec, package)
    else:
        raise Uncovered([kind or "empty spec"])
    shapes = {f.name: list(f.type.multiArrayType.shape) for f in spec.description.input}

    def run(feeds: dict) -> dict:
        rows = len(next(iter(feeds.values())))
        outs: dict[str, list] = {}
        for i in range(rows):
            feed = {}
            for name, value in feeds.items():
                row = np.asarray(value[i:i + 1], dtype=np.float32)
                shape = shapes.get(name)
                feed[name] = row.reshape(shape) if shape and int(np.prod(shape)) == row.size else row
            for name, value in run_one(feed).items():
                outs.setdefault(name, []).append(np.asarray(value).reshape(1, -1) if np.ndim(value) <= 1
                                                 else np.asarray(value))
        return {name: np.concatenate(values, axis=0) for name, values in outs.items()}

    return run


# ---- shared numerics (NCHW on the last three axes) ----------------------------------

def _same_pads(size: int, kernel: int, stride: int, dilation: int, lower: bool = False) -> tuple[int, int]:
    effective = (kernel - 1) * dilation + 1
    out = -(-size // stride)
    total = max((out - 1) * stride + effective - size, 0)
    before = -(-total // 2) if lower else total // 2
    return before, total - before


def _conv2d(x, w, b, strides, pads, dilations, groups):
    """x [..., C, H, W], w [O, C/groups, kH, kW], pads ((top, bottom), (left, right))."""
    import numpy as np

    lead = x.shape[:-3]
    x = x.reshape((-1,) + x.shape[-3:]).astype(np.float64)
    x = np.pad(x, ((0, 0), (0, 0), pads[0], pads[1]))
    n, c, h, wd = x.shape
    o, cg, kh, kw = w.shape
    sh, sw = strides
    dh, dw = dilations
    oh = (h - (kh - 1) * dh - 1) // sh + 1
    ow = (wd - (kw - 1) * dw - 1) // sw + 1
    out = np.zeros((n, o, oh, ow))
    per_group = o // groups
    for g in range(groups):
        xs = x[:, g * cg:(g + 1) * cg]
        ws = w[g * per_group:(g + 1) * per_group].astype(np.float64)
        for i in range(kh):
            for j in range(kw):
                patch = xs[:, :, i * dh: i * dh + sh * (oh - 1) + 1: sh, j * dw: j * dw + sw * (ow - 1) + 1: sw]
                out[:, g * per_group:(g + 1) * per_group] += np.einsum("nchw,oc->nohw", patch, ws[:, :, i, j])
    if b is not None:
        out += np.asarray(b, dtype=np.float64).reshape(1, -1, 1, 1)
    return out.reshape(lead + out.shape[1:])


def _pool2d(x, kind: str, kernel, strides, pads, exclude_padding: bool):
    import numpy as np

    lead = x.shape[:-3]
    x = x.reshape((-1,) + x.shape[-3:]).astype(np.float64)
    fill = -np.inf if kind == "max" else 0.0
    padded = np.pad(x, ((0, 0), (0, 0), pads[0], pads[1]), constant_values=fill)
    counts = np.pad(np.ones(x.shape[-2:]), (pads[0], pads[1]))
    kh, kw = kernel
    sh, sw = strides
    oh = (padded.shape[2] - kh) // sh + 1
    ow = (padded.shape[3] - kw) // sw + 1
    out = np.zeros(x.shape[:2] + (oh, ow))
    for r in range(oh):
        for c in range(ow):
            window = padded[:, :, r * sh: r * sh + kh, c * sw: c * sw + kw]
            if kind == "max":
                out[:, :, r, c] = window.max(axis=(2, 3))
            else:
                n = counts[r * sh: r * sh + kh, c * sw: c * sw + kw].sum() if exclude_padding else kh * kw
                out[:, :, r, c] = window.sum(axis=(2, 3)) / max(n, 1)
    return out.reshape(lead + out.shape[1:])


def _softmax(x, axis):
    import numpy as np

    e = np.exp(x - x.max(axis=axis, keepdims=True))
    return e / e.sum(axis=axis, keepdims=True)


# ---- neural-network specs ----------------------------------------------------------

def _weights(params, shape=None):
    import numpy as np

    if len(params.floatValue):
        values = np.asarray(params.floatValue, dtype=np.float32)
    elif params.float16Value:
        values = np.frombuffer(params.float16Value, dtype="<f2").astype(np.float32)
    elif params.rawValue or params.int8RawValue:
        raise Uncovered(["quantized weights"])
    else:
        values = np.zeros(0, dtype=np.float32)
    return values.reshape(shape) if shape is not None else values


def _activation(params, x):
    import numpy as np

    kind = params.WhichOneof("NonlinearityType")
    p = getattr(params, kind)
    simple = {
        "ReLU": lambda: np.maximum(x, 0), "tanh": lambda: np.tanh(x), "sigmoid": lambda: 1 / (1 + np.exp(-x)),
        "linear": lambda: p.alpha * x + p.beta, "leakyReLU": lambda: np.where(x >= 0, x, p.alpha * x),
        "ELU": lambda: np.where(x >= 0, x, p.alpha * (np.exp(x) - 1)), "softsign": lambda: x / (1 + np.abs(x)),
        "softplus": lambda: np.log1p(np.exp(x)), "scaledTanh": lambda: p.alpha * np.tanh(p.beta * x),
        "sigmoidHard": lambda: np.clip(p.alpha * x + p.beta, 0, 1),
        "thresholdedReLU": lambda: np.where(x > p.alpha, x, 0),
    }
    if kind not in simple:
        raise Uncovered([f"activation {kind}"])
    return simple[kind]()


def _network_runner(spec, network):
    import numpy as np

    def inner_product(layer, x):
        p = layer.innerProduct
        w = _weights(p.weights, (p.outputChannels, p.inputChannels))
        channel_last = not (x.ndim >= 3 and x.shape[-2:] == (1, 1))
        v = x if channel_last else x.reshape(x.shape[:-2])
        y = v @ w.T + (_weights(p.bias) if p.hasBias else 0)
        return y if channel_last else y.reshape(y.shape + (1, 1))

    def batched_matmul(layer, *xs):
        p = layer.batchedMatmul
        a = np.swapaxes(xs[0], -1, -2) if p.transposeA else xs[0]
        if len(xs) == 2:
            b = np.swapaxes(xs[1], -1, -2) if p.transposeB else xs[1]
            return a @ b
        w = _weights(p.weights, (p.weightMatrixSecondDimension, p.weightMatrixFirstDimension)).T
        return a @ w + (_weights(p.bias) if p.hasBias else 0)

    def convolution(layer, x):
        p = layer.convolution
        if p.isDeconvolution:
            raise Uncovered(["convolution (deconvolution)"])
        kh, kw = list(p.kernelSize) or [3, 3]
        strides = list(p.stride) or [1, 1]
        dilations = list(p.dilationFactor) or [1, 1]
        w = _weights(p.weights, (p.outputChannels, p.kernelChannels, kh, kw))
        pads = _nn_pads(p, x.shape[-2:], (kh, kw), strides, dilations)
        return _conv2d(x, w, _weights(p.bias) if p.hasBias else None, strides, pads, dilations, p.nGroups or 1)

    def pooling(layer, x):
        p = layer.pooling
        kind = {0: "max", 1: "average"}.get(p.type)
        if kind is None:
            raise Uncovered(["pooling L2"])
        if p.globalPooling:
            return (x.max(axis=(-2, -1), keepdims=True) if kind == "max" else x.mean(axis=(-2, -1), keepdims=True))
        kernel, strides = list(p.kernelSize) or [3, 3], list(p.stride) or [1, 1]
        pads = _nn_pads(p, x.shape[-2:], kernel, strides, [1, 1])
        return _pool2d(x, kind, kernel, strides, pads, p.avgPoolExcludePadding)

    def batchnorm(layer, x):
        p = layer.batchnorm
        if p.computeMeanVar or p.instanceNormalization:
            raise Uncovered(["batchnorm computing its own statistics"])
        shape = (-1, 1, 1) if x.ndim >= 3 else (-1,)
        g, b, m, v = (_weights(w).reshape(shape) for w in (p.gamma, p.beta, p.mean, p.variance))
        return g * (x - m) / np.sqrt(v + p.epsilon) + b

    def add(layer, *xs):
        out = xs[0]
        for x in xs[1:]:
            out = out + x
        return out + layer.add.alpha if len(xs) == 1 else out

    def multiply(layer, *xs):
        out = xs[0]
        for x in xs[1:]:
            out = out * x
        return out * layer.multiply.alpha if len(xs) == 1 else out

    def reshape_static(layer, x):
        target = [int(d) for d in layer.reshapeStatic.targetShape]
        return x.reshape(target)

    def flatten(layer, x):
        """[..., C, H, W] -> [..., C*H*W, 1, 1], channel-first or channel-last order."""
        v = x if x.ndim >= 3 else x.reshape(x.shape + (1,) * (3 - x.ndim))
        if layer.flatten.mode == 1:  # CHANNEL_LAST
            v = np.moveaxis(v, -3, -1)
        return v.reshape(v.shape[:-3] + (-1, 1, 1))

    def flatten_to_2d(layer, x):
        axis = layer.flattenTo2D.axis % x.ndim if x.ndim else 0
        return x.reshape(int(np.prod(x.shape[:axis])), -1)

    def squeeze(layer, x):
        p = layer.squeeze
        return np.squeeze(x) if p.squeezeAll else np.squeeze(x, axis=tuple(p.axes))

    def expand_dims(layer, x):
        for axis in sorted(layer.expandDims.axes):
            x = np.expand_dims(x, axis)
        return x

    def unary(layer, x):
        p = layer.unary
        v = (p.scale or 1.0) * x + p.shift  # an unset scale means 1
        ops = {0: lambda: np.sqrt(v), 1: lambda: 1 / np.sqrt(v + p.epsilon), 2: lambda: 1 / (v + p.epsilon),
               3: lambda: np.power(v, p.alpha), 4: lambda: np.exp(v), 5: lambda: np.log(v + p.epsilon),
               6: lambda: np.abs(v), 7: lambda: np.maximum(v, p.alpha)}
        return ops[p.type]()

    def reduce(name):
        def run(layer, x):
            p = getattr(layer, layer.WhichOneof("layer"))
            axis = None if p.reduceAll else tuple(p.axes)
            return getattr(np, name)(x, axis=axis, keepdims=p.keepDims)
        return run

    def load_constant_nd(layer):
        p = layer.loadConstantND
        return _weights(p.data, tuple(p.shape))

    handlers = {
        "innerProduct": inner_product, "batchedMatmul": batched_matmul, "convolution": convolution,
        "pooling": pooling, "batchnorm": batchnorm, "add": add, "multiply": multiply,
        "activation": lambda layer, x: _activation(layer.activation, x),
        "softmax": lambda layer, x: _softmax(x, -3 if x.ndim >= 3 else -1),
        "softmaxND": lambda layer, x: _softmax(x, layer.softmaxND.axis),
        "transpose": lambda layer, x: np.transpose(x, list(layer.transpose.axes)),
        "reshapeStatic": reshape_static, "flatten": flatten, "flattenTo2D": flatten_to_2d, "squeeze": squeeze,
        "expandDims": expand_dims, "loadConstantND": load_constant_nd,
        "concatND": lambda layer, *xs: np.concatenate(xs, axis=layer.concatND.axis),
        "concat": lambda layer, *xs: np.concatenate(xs, axis=-3 if xs[0].ndim >= 3 else -1),
        "addBroadcastable": lambda layer, a, b: a + b,
        "subtractBroadcastable": lambda layer, a, b: a - b,
        "multiplyBroadcastable": lambda layer, a, b: a * b,
        "divideBroadcastable": lambda layer, a, b: a / b,
        "identity": lambda layer, x: x, "unary": unary,
        "reduceMean": reduce("mean"), "reduceSum": reduce("sum"), "reduceMax": reduce("max"),
        "reduceMin": reduce("min"),
    }
    missing = [layer.WhichOneof("layer") for layer in network.layers if layer.WhichOneof("layer") not in handlers]
    missing += [f"activation {layer.activation.WhichOneof('NonlinearityType')}" for layer in network.layers
                if layer.WhichOneof("layer") == "activation" and layer.activation.WhichOneof("NonlinearityType")
                not in ("ReLU", "tanh", "sigmoid", "linear", "leakyReLU", "ELU", "softsign", "softplus",
                        "scaledTanh", "sigmoidHard", "thresholdedReLU")]
    if spec.WhichOneof("Type") != "neuralNetwork":
        missing.append(f"{spec.WhichOneof('Type')} (its class-label head)")
    if missing:
        raise Uncovered(missing)
    outputs = [f.name for f in spec.description.output]

    def run_one(feed):
        values = {k: np.asarray(v, dtype=np.float32) for k, v in feed.items()}
        for layer in network.layers:
            result = handlers[layer.WhichOneof("layer")](layer, *[values[name] for name in layer.input])
            values[layer.output[0]] = np.asarray(result, dtype=np.float32)
        return {name: values[name] for name in outputs}

    return run_one


def _nn_pads(params, size, kernel, strides, dilations):
    """((top, bottom), (left, right)) for a convolution or pooling layer's padding."""
    kind = params.WhichOneof("ConvolutionPaddingType" if hasattr(params, "isDeconvolution") else "PoolingPaddingType")
    if kind == "same":
        lower = params.same.asymmetryMode == 1  # TOP_LEFT_HEAVY
        return tuple(_same_pads(size[i], kernel[i], strides[i], dilations[i], lower) for i in range(2))
    if kind == "valid":
        amounts = list(params.valid.paddingAmounts.borderAmounts)
        if not amounts:
            return ((0, 0), (0, 0))
        return tuple((a.startEdgeSize, a.endEdgeSize) for a in amounts[:2])
    raise Uncovered([f"padding {kind}"])


# ---- ML programs -------------------------------------------------------------------

_MIL_NUMPY = {"FLOAT16": "float16", "FLOAT32": "float32", "FLOAT64": "float64", "INT8": "int8", "INT16": "int16",
              "INT32": "int32", "INT64": "int64", "UINT8": "uint8", "UINT16": "uint16", "UINT32": "uint32",
              "UINT64": "uint64", "BOOL": "bool"}
_CAST = {"fp16": "float16", "fp32": "float32", "fp64": "float64", "int32": "int32", "int64": "int64",
         "int16": "int16", "int8": "int8", "uint8": "uint8", "bool": "bool"}


def _mil_dtype(value_type) -> str | None:
    from coremltools.proto import MIL_pb2

    tensor = value_type.tensorType
    return _MIL_NUMPY.get(MIL_pb2.DataType.Name(tensor.dataType))


def _mil_shape(value_type) -> list[int]:
    return [d.constant.size for d in value_type.tensorType.dimensions]


def _mil_value(value, package: Path | None):
    """A MIL Value (immediate or in the package's weight file) as a numpy array or str."""
    import numpy as np

    dtype, shape = _mil_dtype(value.type), _mil_shape(value.type)
    which = value.WhichOneof("value")
    if which == "immediateValue":
        tensor = value.immediateValue.tensor
        kind = tensor.WhichOneof("value")
        items = getattr(tensor, kind).values
        if kind == "strings":
            return items[0] if len(items) == 1 and not shape else list(items)
        if kind == "bytes":
            data = np.frombuffer(items, dtype=np.dtype(dtype).newbyteorder("<"))
        else:
            data = np.asarray(list(items), dtype=dtype)
        return data.reshape(shape) if shape else (data.reshape(()) if data.size == 1 else data)
    if which == "blobFileValue":
        return _read_blob(package, value.blobFileValue, dtype, shape)
    raise Uncovered([f"MIL value kind {which}"])


def _read_blob(package: Path | None, blob, dtype: str, shape: list[int]):
    """One tensor from an ML package's weight file: a 64-byte metadata record at `offset`
    (sentinel 0xDEADBEEF, data type, size in bytes, data offset) points at the data."""
    import numpy as np

    if package is None:
        raise Uncovered(["weights in a file (an ML program outside its package)"])
    name = blob.fileName.replace("@model_path/", "", 1)
    path = (package / name).resolve()
    if package.resolve() not in path.parents:
        raise Uncovered([f"weight file outside the package ({blob.fileName})"])
    with open(path, "rb") as fh:
        fh.seek(blob.offset)
        sentinel, _kind, size, offset = struct.unpack("<IIQQ", fh.read(24))
        if sentinel != 0xDEADBEEF:
            raise ValueError(f"weight record at offset {blob.offset} of {name} is damaged")
        fh.seek(offset)
        data = np.frombuffer(fh.read(size), dtype=np.dtype(dtype).newbyteorder("<"))
    return data.reshape(shape)


def _program_runner(spec, package: Path | None):
    import numpy as np

    main = spec.mlProgram.functions["main"]
    block = main.block_specializations[main.opset]
    weights = None if package is None else package / "Data" / "com.apple.CoreML"
    missing = [op.type for op in block.operations if op.type not in _MIL_OPS]
    if missing:
        raise Uncovered(missing)
    input_types = {i.name: _mil_dtype(i.type) for i in main.inputs}

    def run_one(feed):
        values = {name: np.asarray(v).astype(input_types.get(name) or "float32") for name, v in feed.items()}
        for op in block.operations:
            args = {}
            for name, argument in op.inputs.items():
                bound = [values[b.name] if b.WhichOneof("binding") == "name" else _mil_value(b.value, weights)
                         for b in argument.arguments]
                args[name] = bound if name == "values" else bound[0]
            if op.type == "const":
                result = _mil_value(op.attributes["val"], weights)
            else:
                result = _MIL_OPS[op.type](**args)
            outputs = result if isinstance(result, tuple) else (result,)
            for out, value in zip(op.outputs, outputs):
                dtype = _mil_dtype(out.type)
                values[out.name] = np.asarray(value).astype(dtype) if dtype and not isinstance(value, str) else value
        return {name: values[name] for name in block.outputs}

    return run_one


def _mil_pads(pad_type, pad, size, kernel, strides, dilations):
    pad_type = str(pad_type)
    if pad_type == "valid":
        return ((0, 0), (0, 0))
    if pad_type in ("same", "same_lower"):
        return tuple(_same_pads(size[i], kernel[i], strides[i], dilations[i], pad_type == "same_lower")
                     for i in range(2))
    if pad_type == "custom":
        p = [int(v) for v in pad]
        return ((p[0], p[1]), (p[2], p[3]))
    raise Uncovered([f"pad_type {pad_type}"])


def _mil_conv(x, weight, bias=None, strides=None, pad_type="valid", pad=None, dilations=None, groups=1, **_):
    import numpy as np

    if x.ndim != 4:
        raise Uncovered([f"conv on rank {x.ndim}"])
    kernel = weight.shape[-2:]
    strides = [int(s) for s in (strides if strides is not None else [1, 1])]
    dilations = [int(d) for d in (dilations if dilations is not None else [1, 1])]
    pads = _mil_pads(pad_type, pad, x.shape[-2:], kernel, strides, dilations)
    return _conv2d(x, np.asarray(weight, dtype=np.float64), bias, strides, pads, dilations, int(groups))


def _mil_pool(kind):
    def pool(x, kernel_sizes, strides=None, pad_type="valid", pad=None, ceil_mode=False,
             exclude_padding_from_average=False, **_):
        if x.ndim != 4 or bool(ceil_mode):
            raise Uncovered([f"{kind}_pool on rank {x.ndim}" if x.ndim != 4 else f"{kind}_pool with ceil_mode"])
        kernel = [int(k) for k in kernel_sizes]
        strides = [int(s) for s in (strides if strides is not None else [1, 1])]
        pads = _mil_pads(pad_type, pad, x.shape[-2:], kernel, strides, [1, 1])
        return _pool2d(x, "max" if kind == "max" else "average", kernel, strides, pads,
                       bool(exclude_padding_from_average))
    return pool


def _mil_reshape(x, shape, **_):
    target = [int(d) for d in shape]
    target = [x.shape[i] if d == 0 and i < x.ndim else d for i, d in enumerate(target)]
    return x.reshape(target)


def _mil_matmul(x, y, transpose_x=False, transpose_y=False, **_):
    import numpy as np

    a = np.swapaxes(x, -1, -2) if bool(transpose_x) else x
    b = np.swapaxes(y, -1, -2) if bool(transpose_y) else y
    return np.matmul(a.astype(np.float64), b.astype(np.float64))


def _mil_linear(x, weight, bias=None, **_):
    import numpy as np

    out = x.astype(np.float64) @ np.asarray(weight, dtype=np.float64).T
    return out + bias if bias is not None else out


def _mil_batch_norm(x, mean, variance, gamma=None, beta=None, epsilon=1e-5, **_):
    import numpy as np

    shape = (1, -1) + (1,) * (x.ndim - 2)
    out = (x - mean.reshape(shape)) / np.sqrt(variance.reshape(shape) + float(epsilon))
    if gamma is not None:
        out = out * gamma.reshape(shape)
    return out + beta.reshape(shape) if beta is not None else out


def _mil_concat(values, axis, interleave=False, **_):
    import numpy as np

    if bool(interleave):
        raise Uncovered(["concat with interleave"])
    return np.concatenate(values, axis=int(axis))


def _mil_squeeze(x, axes=None, **_):
    import numpy as np

    return np.squeeze(x) if axes is None else np.squeeze(x, axis=tuple(int(a) for a in np.atleast_1d(axes)))


def _mil_expand_dims(x, axes, **_):
    import numpy as np

    for axis in sorted(int(a) for a in np.atleast_1d(axes)):
        x = np.expand_dims(x, axis)
    return x


def _mil_reduce(name):
    def reduce(x, axes=None, keep_dims=False, **_):
        np = _np()
        axis = None if axes is None else tuple(int(a) for a in np.atleast_1d(axes))
        return getattr(np, name)(x, axis=axis, keepdims=bool(keep_dims))
    return reduce


def _mil_layer_norm(x, axes, gamma=None, beta=None, epsilon=1e-5, **_):
    np = _np()
    axis = tuple(int(a) for a in np.atleast_1d(axes))
    mean = x.mean(axis=axis, keepdims=True)
    out = (x - mean) / np.sqrt(((x - mean) ** 2).mean(axis=axis, keepdims=True) + float(epsilon))
    if gamma is not None:
        out = out * gamma
    return out + beta if beta is not None else out


def _np():
    import numpy as np

    return np


_MIL_OPS = {
    "const": None,
    "linear": _mil_linear,
    "matmul": _mil_matmul,
    "conv": _mil_conv,
    "max_pool": _mil_pool("max"),
    "avg_pool": _mil_pool("avg"),
    "batch_norm": _mil_batch_norm,
    "reshape": _mil_reshape,
    "transpose": lambda x, perm, **_: _np().transpose(x, [int(p) for p in perm]),
    "concat": _mil_concat,
    "squeeze": _mil_squeeze,
    "expand_dims": _mil_expand_dims,
    "identity": lambda x, **_: x,
    "cast": lambda x, dtype, **_: x.astype(_CAST[str(dtype)]),
    "relu": lambda x, **_: _np().maximum(x, 0),
    "relu6": lambda x, **_: _np().clip(x, 0, 6),
    "sigmoid": lambda x, **_: 1 / (1 + _np().exp(-x.astype("float64"))),
    "tanh": lambda x, **_: _np().tanh(x),
    "softmax": lambda x, axis=-1, **_: _softmax(x.astype("float64"), int(axis)),
    "elu": lambda x, alpha=1.0, **_: _np().where(x >= 0, x, float(alpha) * (_np().exp(x) - 1)),
    "leaky_relu": lambda x, alpha=0.01, **_: _np().where(x >= 0, x, float(alpha) * x),
    "softplus": lambda x, **_: _np().log1p(_np().exp(x.astype("float64"))),
    "silu": lambda x, **_: x / (1 + _np().exp(-x.astype("float64"))),
    "clip": lambda x, alpha, beta, **_: _np().clip(x, alpha, beta),
    "exp": lambda x, **_: _np().exp(x),
    "sqrt": lambda x, **_: _np().sqrt(x),
    "rsqrt": lambda x, epsilon=1e-12, **_: 1 / _np().sqrt(x + float(epsilon)),
    "square": lambda x, **_: x * x,
    "abs": lambda x, **_: _np().abs(x),
    "pow": lambda x, y, **_: _np().power(x, y),
    "reduce_mean": _mil_reduce("mean"),
    "reduce_sum": _mil_reduce("sum"),
    "reduce_max": _mil_reduce("max"),
    "reduce_min": _mil_reduce("min"),
    "layer_norm": _mil_layer_norm,
    "add": lambda x, y, **_: x + y,
    "sub": lambda x, y, **_: x - y,
    "mul": lambda x, y, **_: x * y,
    "real_div": lambda x, y, **_: x / y,
    "maximum": lambda x, y, **_: _np().maximum(x, y),
    "minimum": lambda x, y, **_: _np().minimum(x, y),
}
