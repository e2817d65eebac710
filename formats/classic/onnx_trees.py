"""IR TreeEnsemble → ONNX nodes that decide exactly as the source model.

`tree_ensemble_nodes(op, x, outputs, ml_opset=..., double=...)` returns the nodes that
compute a TreeEnsemble op. The tree operator only sums leaves; everything around it is
plain ONNX so one recipe serves every source library:

    sum  = TreeEnsemble(x)                      (ai.onnx.ml opset 5, or opset-3 Regressor)
         [+ linear-leaf terms: extra targets * x, summed per target]
         [+ the sum of single-leaf trees]       (opset 5 cannot hold a tree without a split)
         [/ number of trees]                    (aggregate "average")
         [+ base]
    out  = Sigmoid | Softmax | Exp | identity   (post_transform)
    classifier: one score column and two classes -> [1 - p, p] (logistic) or [-s, s];
                label = classes[argmax(probabilities)]

Thresholds: with float32 inputs (`double=False`) each float64 threshold becomes the
float32 that decides every float32 input the same way: the largest float32 <= t for
`x <= t`, the smallest float32 >= t for `x < t`. With `double=True` the input, the
thresholds, leaf weights, sums and outputs are float64 (opset 5 only; the opset-3
regressor's output is float32 whatever its input).

Set membership (`in`): opset 5's BRANCH_MEMBER, or a chain of BRANCH_EQ nodes in opset 3.

Linear leaves (LightGBM linear trees) are exact: a linear leaf becomes a chain of
"x[f] < -inf" tests (true only for a missing value, which then reaches a leaf holding
the constant fallback), ending in a leaf that adds the constant to its target and each
coefficient to one extra target per (target, feature); the extra targets are then
multiplied by x (missing read as 0: a leaf whose feature is missing never adds its
coefficient) and summed into their target.

Outputs: [label, probabilities] for a classifier (label int64, or string when a class is
not an integer; probabilities [N, n_classes]) or [value] [N, n_targets]; the float
outputs are float32, float64 when `double`. Default-domain ops need opset >= 13.
"""
from __future__ import annotations

import functools
import math

from . import ir

# Default-domain opset the surrounding nodes need (ReduceSum takes axes as an input).
ONNX_OPSET = 13

_MODES5 = {"le": 0, "lt": 1, "eq": 4, "in": 6}
_MODES3 = {"le": "BRANCH_LEQ", "lt": "BRANCH_LT", "eq": "BRANCH_EQ"}


@functools.lru_cache(maxsize=None)
def ml_opset() -> int:
    """5 when the installed onnxruntime runs ai.onnx.ml TreeEnsemble (opset 5), else 3."""
    try:
        import onnxruntime  # noqa: F401
    except ImportError:
        return 3
    try:
        import numpy as np
        import onnx
        from onnx import helper

        tree = ir.Tree()
        root = tree.add_split(0, "in", categories=[1.0, 2.0])
        tree.link(root, tree.add_leaf([(0, 1.0)]), tree.add_leaf([(0, 2.0)]))
        op = ir.TreeEnsemble(["X"], ["Y"], n_targets=1, trees=[tree])
        graph = helper.make_graph(
            tree_ensemble_nodes(op, "X", ["Y"], ml_opset=5), "probe",
            [helper.make_tensor_value_info("X", onnx.TensorProto.FLOAT, [None, 1])],
            [helper.make_tensor_value_info("Y", onnx.TensorProto.FLOAT, [None, 1])])
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", ONNX_OPSET),
                                                        helper.make_opsetid("ai.onnx.ml", 5)])
        model.ir_version = 8
        got = _run(model, np.array([[2.0], [3.0]], dtype=np.float32))
        return 5 if got.ravel().tolist() == [1.0, 2.0] else 3
    except Exception:  # an onnxruntime without the opset-5 kernel refuses to load the model
        return 3


def _run(model, x):
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 4
    session = onnxruntime.InferenceSession(model.SerializeToString(), options, providers=["CPUExecutionProvider"])
    return session.run(None, {session.get_inputs()[0].name: x})[0]


def __getattr__(name):  # ML_OPSET is probed on first use, not at import
    if name == "ML_OPSET":
        return ml_opset()
    raise AttributeError(name)


# ---- flattening: IR trees -> split/leaf node lists ready for either operator ------------


class _Plan:
    """Trees as ONNX sees them: (nodes, root) lists plus what surrounds the operator."""

    def __init__(self, op: ir.TreeEnsemble):
        self.n_targets = op.n_targets
        self.extra: dict[tuple[int, int], int] = {}  # (target, feature) -> extra column
        self.constant = [0.0] * op.n_targets  # sum of single-leaf trees
        self.trees: list[list[dict]] = []
        for tree in op.trees:
            self._add(tree)

    @property
    def width(self) -> int:
        return self.n_targets + len(self.extra)

    def extra_column(self, target: int, feature: int) -> int:
        key = (target, feature)
        if key not in self.extra:
            self.extra[key] = -1
        return key

    def _add(self, tree: ir.Tree) -> None:
        # IR node i stays node i; a linear leaf's test chain and leaves are appended.
        nodes: list[dict] = []
        for i in range(len(tree)):
            if tree.op[i] == ir.LEAF:
                nodes.append({"leaf": list(tree.leaf[i])})
            else:
                nodes.append({"feature": tree.feature[i], "op": tree.op[i], "threshold": tree.threshold[i],
                              "categories": tree.categories[i], "missing_yes": tree.missing_yes[i],
                              "yes": tree.yes[i], "no": tree.no[i]})
        for i in range(len(tree)):
            linear = tree.linear[i] if tree.linear is not None and tree.op[i] == ir.LEAF else None
            if linear is not None:
                self._linear_leaf(nodes, i, tree.leaf[i], linear)
        if "leaf" in nodes[0]:  # a tree without a split: opset 5 cannot hold it
            for t, v in nodes[0]["leaf"]:
                self.constant[t] += v
            return
        self.trees.append(nodes)

    def _linear_leaf(self, nodes: list[dict], i: int, values, linear) -> None:
        constant, terms = linear
        if not terms:  # the constant alone, never missing
            nodes[i] = {"leaf": [(t, float(constant)) for t, _ in values]}
            return
        fallback = len(nodes)
        nodes.append({"leaf": list(values)})
        weights = [(t, float(constant)) for t, _ in values]
        for t, _ in values:
            for f, c in terms:
                weights.append((self.extra_column(t, int(f)), float(c)))
        nxt = len(nodes)
        nodes.append({"leaf": weights})
        features = sorted({int(f) for f, _ in terms})
        # "x[f] < -inf" holds only for a missing x[f] (missing goes to yes): the fallback
        # is every test's yes branch, as onnxruntime lets a shared child be a true child only.
        for k, f in enumerate(reversed(features)):
            test = {"feature": f, "op": "lt", "threshold": -math.inf, "categories": None,
                    "missing_yes": True, "yes": fallback, "no": nxt}
            if k == len(features) - 1:
                nodes[i] = test
            else:
                nodes.append(test)
                nxt = len(nodes) - 1

    def finish(self) -> None:
        """Number the extra columns: grouped by target, then by feature."""
        for k, key in enumerate(sorted(self.extra)):
            self.extra[key] = self.n_targets + k
        for nodes in self.trees:
            for node in nodes:
                if "leaf" in node:
                    node["leaf"] = [(self.extra[t] if isinstance(t, tuple) else t, v) for t, v in node["leaf"]]


# ---- thresholds --------------------------------------------------------------------------


def _split_value(op: str, t: float, double: bool) -> float:
    """The threshold the runtime should compare with (see the module docstring)."""
    if double or math.isinf(t) or math.isnan(t):
        return t
    import numpy as np

    v = np.float32(t)
    if op == "le" and float(v) > t:
        v = np.nextafter(v, np.float32(-np.inf))
    elif op == "lt" and float(v) < t:
        v = np.nextafter(v, np.float32(np.inf))
    return float(v)


# ---- the tree operator -------------------------------------------------------------------


def _per_target(nodes: list[dict]) -> list[list[dict]]:
    """Opset 5 holds one (target, weight) per leaf: a tree whose leaves add to several
    targets becomes one copy per target."""
    targets = sorted({t for n in nodes if "leaf" in n for t, _ in n["leaf"]})
    if all(len(n["leaf"]) == 1 for n in nodes if "leaf" in n) and len(targets) == 1:
        return [nodes]
    copies = []
    for target in targets:
        copy = []
        for n in nodes:
            if "leaf" in n:
                copy.append({"leaf": [(target, sum(v for t, v in n["leaf"] if t == target))]})
            else:
                copy.append(n)
        copies.append(copy)
    return copies


def _opset5_node(plan: _Plan, x: str, out: str, double: bool):
    import numpy as np
    from onnx import helper, numpy_helper

    dtype = np.float64 if double else np.float32
    feature, modes, splits, true_ids, true_leaf, false_ids, false_leaf, missing = ([] for _ in range(8))
    membership, leaf_targets, leaf_weights, roots = [], [], [], []
    for nodes in (c for tree in plan.trees for c in _per_target(tree)):
        splits_at, leaves_at = {}, {}
        for i, n in enumerate(nodes):  # node and leaf arrays are indexed separately
            if "leaf" in n:
                leaves_at[i] = len(leaf_targets) + len(leaves_at)
            else:
                splits_at[i] = len(feature) + len(splits_at)
        roots.append(splits_at[0])
        for i, n in enumerate(nodes):
            if "leaf" in n:
                (target, weight), = n["leaf"]
                leaf_targets.append(target)
                leaf_weights.append(weight)
                continue
            feature.append(n["feature"])
            modes.append(_MODES5[n["op"]])
            if n["op"] == "in":
                splits.append(0.0)
                membership.extend(float(c) for c in n["categories"])
                membership.append(math.nan)
            else:
                splits.append(_split_value(n["op"], n["threshold"], double))
            missing.append(int(n["missing_yes"]))
            for child, ids, is_leaf in ((n["yes"], true_ids, true_leaf), (n["no"], false_ids, false_leaf)):
                if "leaf" in nodes[child]:
                    ids.append(leaves_at[child])
                    is_leaf.append(1)
                else:
                    ids.append(splits_at[child])
                    is_leaf.append(0)
    attrs = dict(
        n_targets=plan.width, aggregate_function=1, post_transform=0, tree_roots=roots,
        nodes_featureids=feature, nodes_modes=numpy_helper.from_array(np.array(modes, dtype=np.uint8), "modes"),
        nodes_splits=numpy_helper.from_array(np.array(splits, dtype=dtype), "splits"),
        nodes_truenodeids=true_ids, nodes_trueleafs=true_leaf, nodes_falsenodeids=false_ids,
        nodes_falseleafs=false_leaf, nodes_missing_value_tracks_true=missing,
        leaf_targetids=leaf_targets, leaf_weights=numpy_helper.from_array(np.array(leaf_weights, dtype=dtype), "w"),
    )
    if membership:
        attrs["membership_values"] = numpy_helper.from_array(np.array(membership, dtype=dtype), "members")
    return [helper.make_node("TreeEnsemble", [x], [out], name=out, domain="ai.onnx.ml", **attrs)]


def _opset3_node(plan: _Plan, x: str, out: str, double: bool):
    import numpy as np
    from onnx import TensorProto, helper, numpy_helper

    tree_ids, node_ids, feature, modes, values, true_ids, false_ids, missing = ([] for _ in range(8))
    t_tree, t_node, t_id, t_weight = [], [], [], []
    for k, nodes in enumerate(plan.trees):
        # A membership test becomes a chain of equality tests: the first node keeps the
        # node's index, the others are appended after the tree's own nodes.
        chain_next = len(nodes)
        rows = []
        for i, n in enumerate(nodes):
            if "leaf" in n:
                rows.append((i, 0, "LEAF", 0.0, 0, 0, 0))
                for target, weight in n["leaf"]:
                    t_tree.append(k), t_node.append(i), t_id.append(target), t_weight.append(weight)
            elif n["op"] == "in":
                cats = list(n["categories"]) or [math.nan]  # an empty set never matches
                ids = [i] + list(range(chain_next, chain_next + len(cats) - 1))
                chain_next += len(cats) - 1
                for j, (node_id, c) in enumerate(zip(ids, cats)):
                    false = ids[j + 1] if j + 1 < len(ids) else n["no"]
                    rows.append((node_id, n["feature"], "BRANCH_EQ", float(c), n["yes"], false, int(n["missing_yes"])))
            else:
                rows.append((i, n["feature"], _MODES3[n["op"]], _split_value(n["op"], n["threshold"], double),
                             n["yes"], n["no"], int(n["missing_yes"])))
        for node_id, f, mode, value, yes, no, miss in sorted(rows):
            tree_ids.append(k), node_ids.append(node_id), feature.append(f), modes.append(mode)
            values.append(value), true_ids.append(yes), false_ids.append(no), missing.append(miss)
    attrs = dict(
        n_targets=plan.width, aggregate_function="SUM", post_transform="NONE",
        nodes_treeids=tree_ids, nodes_nodeids=node_ids, nodes_featureids=feature, nodes_modes=modes,
        nodes_truenodeids=true_ids, nodes_falsenodeids=false_ids, nodes_missing_value_tracks_true=missing,
        target_treeids=t_tree, target_nodeids=t_node, target_ids=t_id,
    )
    if double:
        attrs["nodes_values_as_tensor"] = numpy_helper.from_array(np.array(values, dtype=np.float64), "v")
        attrs["target_weights_as_tensor"] = numpy_helper.from_array(np.array(t_weight, dtype=np.float64), "w")
    else:
        attrs["nodes_values"] = values
        attrs["target_weights"] = t_weight
    if not double:
        return [helper.make_node("TreeEnsembleRegressor", [x], [out], name=out, domain="ai.onnx.ml", **attrs)]
    raw = out + "_f32"
    return [helper.make_node("TreeEnsembleRegressor", [x], [raw], name=raw, domain="ai.onnx.ml", **attrs),
            helper.make_node("Cast", [raw], [out], name=out, to=TensorProto.DOUBLE)]


# ---- the whole op -------------------------------------------------------------------------


def tree_ensemble_nodes(op: ir.TreeEnsemble, x: str, outputs: list[str], *, ml_opset: int,
                        double: bool = False) -> list:
    """ONNX nodes computing `op` from the float matrix `x` into `outputs` (see the module
    docstring). Helper value names start with outputs[0]."""
    import numpy as np
    from onnx import helper, numpy_helper

    if ml_opset < 3:
        raise ir.Unsupported(["ai.onnx.ml opset < 3"], where="ONNX tree writer",
                             hint="tree ensembles need ai.onnx.ml opset 3 or later")
    if op.aggregate not in ("sum", "average"):
        raise ir.Unsupported([f"aggregate {op.aggregate!r}"], where="ONNX tree writer")
    dtype = np.float64 if double else np.float32
    p = outputs[0] + "_te_"
    nodes: list = []
    count = [0]

    def name(tag: str) -> str:
        count[0] += 1
        return f"{p}{tag}{count[0]}"

    def const(values, np_dtype=dtype) -> str:
        n = name("c")
        nodes.append(helper.make_node("Constant", [], [n], name=n,
                                      value=numpy_helper.from_array(np.asarray(values, dtype=np_dtype), n)))
        return n

    def node(op_type, inputs, **attrs) -> str:
        n = name(op_type.lower())
        nodes.append(helper.make_node(op_type, inputs, [n], name=n, **attrs))
        return n

    plan = _Plan(op)
    plan.finish()
    if plan.trees:
        raw = name("sum")
        nodes += (_opset5_node if ml_opset >= 5 else _opset3_node)(plan, x, raw, double)
    else:  # every tree is a single leaf: a zero row per input row
        shape = node("Concat", [node("Slice", [node("Shape", [x]), const([0], np.int64), const([1], np.int64)]),
                                const([plan.width], np.int64)], axis=0)
        raw = name("zeros")
        nodes.append(helper.make_node("ConstantOfShape", [shape], [raw], name=raw,
                                      value=numpy_helper.from_array(np.zeros(1, dtype=dtype), raw + "_v")))
    if plan.extra:
        scores = node("Slice", [raw, const([0], np.int64), const([op.n_targets], np.int64), const([1], np.int64)])
        coefs = node("Slice", [raw, const([op.n_targets], np.int64), const([plan.width], np.int64),
                               const([1], np.int64)])
        keys = sorted(plan.extra, key=plan.extra.get)
        # Missing read as 0 (x == x is false only for NaN): a leaf that uses a missing
        # feature took its fallback branch and added no coefficient for it.
        present = node("Where", [node("Equal", [x, x]), x, const(0.0)])
        xs = node("Gather", [present, const([f for _, f in keys], np.int64)], axis=1)
        terms = node("Mul", [coefs, xs])
        per_target = []
        for target in range(op.n_targets):
            cols = [plan.extra[k] - op.n_targets for k in keys if k[0] == target]
            if not cols:
                per_target.append(None)
                continue
            part = node("Slice", [terms, const([cols[0]], np.int64), const([cols[-1] + 1], np.int64),
                                  const([1], np.int64)])
            per_target.append(node("ReduceSum", [part, const([1], np.int64)], keepdims=1))
        if any(pt is None for pt in per_target):
            zero = node("Mul", [node("Slice", [scores, const([0], np.int64), const([1], np.int64),
                                               const([1], np.int64)]), const(0.0)])
            per_target = [pt if pt is not None else zero for pt in per_target]
        linear = per_target[0] if len(per_target) == 1 else node("Concat", per_target, axis=1)
        raw = node("Add", [scores, linear])
    if any(plan.constant):
        raw = node("Add", [raw, const([plan.constant])])
    if op.aggregate == "average" and op.trees:
        raw = node("Div", [raw, const(float(len(op.trees)))])
    if op.base is not None and any(b != 0.0 for b in op.base):
        raw = node("Add", [raw, const([list(map(float, op.base))])])
    transform = op.post_transform
    if transform == "logistic":
        out = node("Sigmoid", [raw])
    elif transform == "softmax":
        out = node("Softmax", [raw], axis=1)
    elif transform == "exp":
        out = node("Exp", [raw])
    elif transform == "none":
        out = raw
    else:
        raise ir.Unsupported([f"post_transform {transform!r}"], where="ONNX tree writer")
    if op.classes is None:
        nodes.append(helper.make_node("Identity", [out], [outputs[0]], name=outputs[0]))
        return nodes
    classes = list(op.classes)
    if op.n_targets == 1 and len(classes) == 2:
        other = node("Sub", [const(1.0), out]) if transform == "logistic" else node("Neg", [out])
        out = node("Concat", [other, out], axis=1)
    nodes.append(helper.make_node("Identity", [out], [outputs[1]], name=outputs[1]))
    index = node("ArgMax", [outputs[1]], axis=1, keepdims=0)
    nodes.append(helper.make_node("Gather", [_class_constant(classes, const), index], [outputs[0]],
                                  name=outputs[0], axis=0))
    return nodes


def label_type(classes) -> str:
    """"int64", "double" or "string": the element type of the label output."""
    if all(isinstance(c, (int, bool)) or (isinstance(c, float) and c.is_integer()) or _np_integral(c)
           for c in classes):
        return "int64"
    if all(_is_number(c) for c in classes):
        return "double"
    return "string"


def _np_integral(c) -> bool:
    try:
        import numpy as np
    except ImportError:
        return False
    return isinstance(c, (np.integer, np.bool_)) or (isinstance(c, np.floating) and float(c).is_integer())


def _is_number(c) -> bool:
    import numbers

    return isinstance(c, numbers.Real) and not isinstance(c, bool)


def _class_constant(classes, const) -> str:
    import numpy as np

    kind = label_type(classes)
    if kind == "int64":
        return const([int(c) for c in classes], np.int64)
    if kind == "double":
        return const([float(c) for c in classes], np.float64)
    return const(np.array([str(c) for c in classes], dtype=object), object)
