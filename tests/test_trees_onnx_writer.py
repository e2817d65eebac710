"""The tree writer (IR TreeEnsemble -> ONNX) agrees with the reference semantics through onnxruntime."""
import math

import numpy as np
import pytest

from mlconvert.formats.classic import ir, onnx_trees
from mlconvert.formats.classic.evaluate import evaluate

onnx = pytest.importorskip("onnx")
ort = pytest.importorskip("onnxruntime")
from onnx import TensorProto, helper  # noqa: E402

OPSETS = sorted({3, onnx_trees.ML_OPSET})


def to_onnx(op: ir.TreeEnsemble, width: int, *, ml_opset: int, double: bool = False):
    ftype = TensorProto.DOUBLE if double else TensorProto.FLOAT
    nodes = onnx_trees.tree_ensemble_nodes(op, "X", op.outputs, ml_opset=ml_opset, double=double)
    if op.classes is None:
        outs = [helper.make_tensor_value_info(op.outputs[0], ftype, [None, op.n_targets])]
    else:
        kind = {"int64": TensorProto.INT64, "double": TensorProto.DOUBLE,
                "string": TensorProto.STRING}[onnx_trees.label_type(op.classes)]
        outs = [helper.make_tensor_value_info(op.outputs[0], kind, [None]),
                helper.make_tensor_value_info(op.outputs[1], ftype, [None, len(op.classes)])]
    graph = helper.make_graph(nodes, "trees", [helper.make_tensor_value_info("X", ftype, [None, width])], outs)
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17),
                                                    helper.make_opsetid("ai.onnx.ml", ml_opset)])
    model.ir_version = 9
    onnx.checker.check_model(model)
    return model


def run(model, x, double=False):
    options = ort.SessionOptions()
    options.intra_op_num_threads = 1
    session = ort.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {"X": x.astype(np.float64 if double else np.float32)})


def reference(op, x, width):
    outputs = [ir.Output(op.outputs[0], "value")] if op.classes is None else [
        ir.Output(op.outputs[0], "label"), ir.Output(op.outputs[1], "probabilities", op.classes)]
    graph = ir.Graph([ir.Value("X", width=width)], [op], outputs).check()
    return [evaluate(graph, {"X": x})[o.name] for o in outputs]


def check(op, x, width, ml_opset, double=False, atol=1e-5):
    xq = x.astype(np.float64 if double else np.float32).astype(np.float64)
    want = reference(op, xq, width)
    got = run(to_onnx(op, width, ml_opset=ml_opset, double=double), x, double)
    if op.classes is None:
        assert got[0].dtype == (np.float64 if double else np.float32)
        np.testing.assert_allclose(got[0], want[0], atol=atol, rtol=1e-5)
    else:
        np.testing.assert_allclose(got[1], want[1], atol=atol, rtol=1e-5)
        assert got[0].ravel().tolist() == want[0].ravel().tolist()
    return got


def _stump(feature, op, threshold, left, right, missing_yes=False, categories=None):
    tree = ir.Tree()
    root = tree.add_split(feature, op, threshold, categories=categories, missing_yes=missing_yes)
    tree.link(root, tree.add_leaf(left), tree.add_leaf(right))
    return tree


@pytest.mark.parametrize("ml_opset", OPSETS)
@pytest.mark.parametrize("double", [False, True])
def test_thresholds_decide_as_float64(ml_opset, double):
    t = 0.1  # not a float32: nearest rounding would flip inputs between the two
    below, above = float(np.nextafter(np.float32(t), np.float32(-np.inf))), float(np.float32(t))
    assert below < t < above
    x = np.array([[below], [above], [np.nan], [t]], dtype=np.float64)
    for op_name in ("le", "lt"):
        op = ir.TreeEnsemble(["X"], ["y"], 1, [_stump(0, op_name, t, [(0, 1.0)], [(0, 2.0)], missing_yes=True)])
        got = check(op, x, 1, ml_opset, double)[0].ravel()
        assert got[:3].tolist() == [1.0, 2.0, 1.0]


@pytest.mark.parametrize("ml_opset", OPSETS)
@pytest.mark.parametrize("double", [False, True])
def test_membership_missing_base_average_and_single_leaf_trees(ml_opset, double):
    rng = np.random.default_rng(0)
    trees = [_stump(0, "in", 0, [(0, 1.5)], [(0, -2.0)], missing_yes=True, categories=[1, 3, 7]),
             _stump(1, "le", 0.25, [(0, 0.5)], [(0, 0.75)], missing_yes=False),
             _stump(0, "in", 0, [(0, 4.0)], [(0, 8.0)], missing_yes=False, categories=[2])]
    lone = ir.Tree()
    lone.add_leaf([(0, 3.0)])
    trees.append(lone)
    x = np.column_stack([rng.integers(0, 9, 200).astype(float), rng.normal(size=200)])
    x[::5, 0] = np.nan
    x[::7, 1] = np.nan
    for aggregate in ("sum", "average"):
        op = ir.TreeEnsemble(["X"], ["y"], 1, trees, base=[0.5], aggregate=aggregate)
        check(op, x, 2, ml_opset, double)
    op = ir.TreeEnsemble(["X"], ["y"], 1, [lone], base=[0.25], post_transform="exp")
    check(op, x, 2, ml_opset, double)


@pytest.mark.parametrize("ml_opset", OPSETS)
@pytest.mark.parametrize("double", [False, True])
def test_linear_leaves_and_their_missing_fallback(ml_opset, double):
    tree = ir.Tree()
    root = tree.add_split(0, "le", 0.0, missing_yes=False)
    a = tree.add_leaf([(0, 10.0)], linear=(1.0, ((1, 2.0), (2, -0.5))))
    b = tree.add_leaf([(0, -1.0)], linear=(3.0, ((1, 0.25),)))
    tree.link(root, a, b)
    single = ir.Tree()
    single.add_leaf([(0, 0.5)], linear=(0.125, ((2, 1.5),)))
    rng = np.random.default_rng(1)
    x = rng.normal(size=(300, 3))
    x[::4, 1] = np.nan
    x[::9, 2] = np.nan
    x[::11, 0] = np.nan
    op = ir.TreeEnsemble(["X"], ["y"], 1, [tree, single], base=[0.1])
    check(op, x, 3, ml_opset, double, atol=1e-4)


@pytest.mark.parametrize("ml_opset", OPSETS)
@pytest.mark.parametrize("double", [False, True])
@pytest.mark.parametrize("case", ["logistic1", "none1", "softmax", "multi-target-leaf", "strings"])
def test_classifier_heads(ml_opset, double, case):
    rng = np.random.default_rng(2)
    x = rng.normal(size=(200, 2))
    if case in ("logistic1", "none1"):
        op = ir.TreeEnsemble(["X"], ["label", "p"], 1, [_stump(0, "lt", 0.3, [(0, -1.0)], [(0, 2.0)]),
                                                      _stump(1, "lt", -0.2, [(0, 0.5)], [(0, -0.7)])],
                             base=[0.1], post_transform="logistic" if case == "logistic1" else "none",
                             classes=[0, 1])
    elif case == "softmax":
        trees = [_stump(k % 2, "le", 0.1 * k, [(k % 3, 1.0 + k)], [(k % 3, -k)]) for k in range(6)]
        op = ir.TreeEnsemble(["X"], ["label", "p"], 3, trees, base=[0.0, 0.5, -0.5], post_transform="softmax",
                             classes=[3, 5, 9])
    elif case == "multi-target-leaf":  # a random forest's leaves hold every class's share
        trees = [_stump(k % 2, "le", 0.2 * k - 0.3, [(0, 0.15), (1, 0.85)], [(0, 0.65), (1, 0.35)]) for k in range(4)]
        op = ir.TreeEnsemble(["X"], ["label", "p"], 2, trees, aggregate="average", classes=[0, 1])
    else:
        trees = [_stump(0, "le", 0.0, [(0, 0.2), (1, 0.7), (2, 0.1)], [(0, 0.5), (1, 0.2), (2, 0.3)])]
        op = ir.TreeEnsemble(["X"], ["label", "p"], 3, trees, classes=["a", "b", "c"])
    check(op, x, 2, ml_opset, double)


def test_ml_opset_is_probed():
    assert onnx_trees.ML_OPSET in (3, 5)
    assert onnx_trees.ML_OPSET == 5  # the pinned onnxruntime runs TreeEnsemble (ai.onnx.ml 5)
