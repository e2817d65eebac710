"""XGBoost, LightGBM and scikit-learn tree models → ONNX through the classic
representation: a reader per library (formats/classic/xgboost.py, lightgbm.py,
sklearn.py) and one tree writer (formats/classic/onnx_trees.py).

Which edge the planner takes: the converter libraries' edges (onnxmltools, skl2onnx)
cost less, so they run first for the models they convert right; for what they are known
to get wrong they refuse up front, raising Unsupported (XGBoost categorical splits,
vector leaves, objectives beyond regression/binary/multiclass; LightGBM linear trees,
rf averaging, zero-as-missing, objectives without an ONNX transform there; --double for
any tree model), and the runner re-plans onto these edges. Verification then decides:
a library result that disagrees with the source is re-planned around too (api.convert),
so a wrong file from a library edge ends here rather than as a refusal. These edges
refuse only what their readers cannot express (an unknown objective, a gblinear
booster), naming it, before converting anything.

XGBoost and LightGBM model files are read statically: converting them needs neither
library, only onnx (verifying them needs both runtimes, as always).
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import TYPE_CHECKING

from mlconvert.edges import Edge, Requirement, StepContext, Tolerance, register_edge
from mlconvert.errors import Unsupported

if TYPE_CHECKING:
    from mlconvert.formats import Source

# Default-domain opset of the files we write, unless --opset asks for another (>= 13).
DEFAULT_OPSET = 17


# ---- reading: each library's model as the classic representation --------------------------


def xgboost_document(source: Source) -> dict:
    """The model's XGBoost JSON document: from the file itself, or from a pickled model."""
    if source.format.id == "xgboost":
        from mlconvert.formats.xgboost_model import read_document

        return read_document(source.path)
    model = source.model
    booster = model.get_booster() if hasattr(model, "get_booster") else model
    return json.loads(bytes(booster.save_raw(raw_format="json")))


def lightgbm_text(source: Source) -> str:
    if source.format.id == "lightgbm":
        return Path(source.path).read_text(encoding="utf-8", errors="replace")
    model = source.model
    booster = getattr(model, "booster_", model)
    return booster.model_to_string()


def read_graph(source: Source):
    """The source model as a classic Graph (Unsupported when its reader cannot express it)."""
    from mlconvert.formats.classic import lightgbm, sklearn, xgboost

    flavor = source.flavor
    if flavor == "xgboost":
        graph = xgboost.read(xgboost_document(source))
    elif flavor == "lightgbm":
        graph = lightgbm.read_text(lightgbm_text(source))
    elif flavor == "sklearn":
        graph = sklearn.read(source.model)
    else:
        raise Unsupported([f"flavor {flavor}"], where="tree translator")
    if source.format.id == "pickle" and flavor in ("xgboost", "lightgbm"):
        _use_wrapper_classes(graph, source.model)
    return graph


def _use_wrapper_classes(graph, model) -> None:
    """A scikit-learn wrapper (XGBClassifier, LGBMClassifier) predicts its own classes_."""
    classes = getattr(model, "classes_", None)
    op = graph.estimator()
    if classes is None or op is None or op.classes is None:
        return
    classes = list(classes)
    if len(classes) != len(op.classes):
        raise Unsupported([f"{len(classes)} classes in the wrapper for a {len(op.classes)}-class booster"],
                          where="tree translator")
    op.classes = classes
    for out in graph.outputs:
        if out.classes is not None:
            out.classes = classes


# ---- writing: a classic Graph of tree ops as an ONNX model -----------------------------------


def graph_to_onnx(graph, *, double: bool = False, opset: int | None = None):
    """An ONNX ModelProto for a graph of one TreeEnsemble (and the ZeroToMissing before it)."""
    import onnx
    from onnx import TensorProto, helper

    from mlconvert.formats.classic import ir, onnx_trees

    opset = opset or DEFAULT_OPSET
    if opset < onnx_trees.ONNX_OPSET:
        raise Unsupported([f"--opset {opset}"], where="ONNX tree writer",
                          hint=f"the tree writer needs opset {onnx_trees.ONNX_OPSET} or later")
    ml_opset = onnx_trees.ML_OPSET
    ftype = TensorProto.DOUBLE if double else TensorProto.FLOAT
    (x,) = graph.inputs
    nodes = []
    for op in graph.ops:
        if isinstance(op, ir.ZeroToMissing):
            nodes += _zero_to_missing(op, x.width, double)
        elif isinstance(op, ir.TreeEnsemble):
            nodes += onnx_trees.tree_ensemble_nodes(op, op.inputs[0], op.outputs, ml_opset=ml_opset, double=double)
        else:
            raise Unsupported([type(op).__name__], where="ONNX tree writer")
    op = graph.estimator()
    outputs = []
    for out in graph.outputs:
        if out.role == "label":
            kind = {"int64": TensorProto.INT64, "double": TensorProto.DOUBLE,
                    "string": TensorProto.STRING}[onnx_trees.label_type(op.classes)]
            outputs.append(helper.make_tensor_value_info(out.name, kind, [None]))
        else:
            width = len(op.classes) if op.classes is not None else op.n_targets
            outputs.append(helper.make_tensor_value_info(out.name, ftype, [None, width]))
    onnx_graph = helper.make_graph(nodes, "trees", [helper.make_tensor_value_info(x.name, ftype, [None, x.width])],
                                   outputs)
    model = helper.make_model(onnx_graph, opset_imports=[helper.make_opsetid("", opset),
                                                         helper.make_opsetid("ai.onnx.ml", ml_opset)],
                              producer_name="mlconvert")
    model.ir_version = min(onnx.IR_VERSION, 10)
    names = graph.metadata.get("feature_names")
    if names:
        entry = model.metadata_props.add()
        entry.key, entry.value = "feature_names", json.dumps(list(names))
    onnx.checker.check_model(model)
    return model


def _zero_to_missing(op, width: int, double: bool) -> list:
    """x becomes NaN where the column is listed and |x| <= op.within (the largest value of
    the input type that is <= within, so the float32 test decides as the float64 one)."""
    import numpy as np
    from onnx import helper, numpy_helper

    from mlconvert.formats.classic.onnx_trees import _split_value

    dtype = np.float64 if double else np.float32
    name = op.outputs[0]
    mask = np.zeros((1, width), dtype=bool)
    mask[0, op.columns] = True
    within = _split_value("le", float(op.within), double)

    def const(tag, value):
        return helper.make_node("Constant", [], [f"{name}_{tag}"], name=f"{name}_{tag}",
                                value=numpy_helper.from_array(value, f"{name}_{tag}"))

    def node(op_type, inputs, tag):
        return helper.make_node(op_type, inputs, [f"{name}_{tag}"], name=f"{name}_{tag}")

    return [
        const("mask", mask), const("within", np.full(1, within, dtype=dtype)),
        const("nan", np.full(1, np.nan, dtype=dtype)),
        node("Abs", [op.inputs[0]], "abs"),
        node("Greater", [f"{name}_abs", f"{name}_within"], "far"),
        node("Not", [f"{name}_far"], "near"),
        node("And", [f"{name}_near", f"{name}_mask"], "hole"),
        helper.make_node("Where", [f"{name}_hole", f"{name}_nan", op.inputs[0]], [name], name=name),
    ]


# ---- the step -------------------------------------------------------------------------------


def trees_to_onnx(source: Source, dst: Path, ctx: StepContext) -> dict:
    from mlconvert.formats.classic import onnx_trees

    graph = read_graph(source)
    double = bool(ctx.options.get("double"))
    model = graph_to_onnx(graph, double=double, opset=ctx.options.get("opset"))
    dst.write_bytes(model.SerializeToString())
    op = graph.estimator()
    if double and onnx_trees.ML_OPSET >= 5:
        fidelity = "float64 (--double): float64 inputs, thresholds, leaf values and sums"
    elif double:  # the opset-3 tree operator outputs float32 whatever its input
        fidelity = "float64 (--double) inputs and thresholds; this onnxruntime sums trees in float32"
    else:
        fidelity = "float32 inputs, thresholds chosen to decide exactly as the source; float32 sums"
    details = {"fidelity": f"{fidelity}; ai.onnx.ml opset {onnx_trees.ML_OPSET}", "trees": len(op.trees)}
    if graph.metadata.get("trees_in_file", len(op.trees)) != len(op.trees):
        details["best_iteration"] = f"{len(op.trees)} of {graph.metadata['trees_in_file']} trees (early stopping)"
    return details


_ONNX = Requirement("onnx")
_FLOAT32_SUMS = Tolerance(1e-5, 1e-4, "tree sums accumulate in float32 in ONNX Runtime")

for _name, _source, _flavor, _requires in (
    ("trees-xgboost", "xgboost", "xgboost", ()),
    ("trees-xgboost-pickle", "pickle", "xgboost", (Requirement("xgboost"),)),
    ("trees-lightgbm", "lightgbm", "lightgbm", ()),
    ("trees-lightgbm-pickle", "pickle", "lightgbm", (Requirement("lightgbm"),)),
    ("trees-sklearn", "pickle", "sklearn", (Requirement("scikit-learn"),)),
):
    register_edge(Edge(
        name=_name, source=_source, target="onnx", flavors=frozenset({_flavor}), output_flavor="onnx-ml",
        run=trees_to_onnx, library="onnx", requires=(_ONNX,) + _requires, cost=1.5,
        fidelity="exact splits (float32 thresholds chosen to decide as the source; --double keeps float64)",
        tolerance=_FLOAT32_SUMS,
        notes="mlconvert's own tree writer: every objective, categorical splits, linear trees, rf, --double",
        options=("double", "opset"),
    ))
