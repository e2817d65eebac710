"""The reference semantics of the classic representation, in numpy, float64.

`evaluate(graph, inputs)` runs a Graph on a batch: {input name: array} in, {output
name: array} out. Readers are tested against the source library through it, and writers
against it through their own runtime: it is the one definition of what each op means,
written for clarity rather than speed (trees are walked level by level, vectorised over
rows).
"""
from __future__ import annotations

import numpy as np

from . import ir


def evaluate(graph: ir.Graph, inputs: dict) -> dict[str, np.ndarray]:
    values: dict[str, np.ndarray] = {}
    for spec in graph.inputs:
        if spec.name not in inputs:
            raise KeyError(f"missing input {spec.name!r}")
        values[spec.name] = _as_batch(inputs[spec.name], spec.dtype)
    for op in graph.ops:
        results = _RUN[type(op)](op, *[values[name] for name in op.inputs])
        if not isinstance(results, tuple):
            results = (results,)
        for name, result in zip(op.outputs, results):
            values[name] = result
    return {out.name: values[out.name] for out in graph.outputs}


def _as_batch(x, dtype: str) -> np.ndarray:
    x = np.asarray(x, dtype=object if dtype == "string" else np.float64)
    return x.reshape(-1, 1) if x.ndim == 1 else x


# ---- layout and preprocessing ------------------------------------------------------

def _concat(op, *xs):
    return np.concatenate(xs, axis=1)


def _select(op, x):
    return x[:, op.indices]


def _cast(op, x):
    if op.to == "string":
        return x.astype(object)
    out = x.astype(np.float64)
    return np.trunc(out) if op.to == "int" else out


def _identity(op, x):
    return x


def _scaler(op, x):
    return (x - np.asarray(op.offset)) * np.asarray(op.scale)


def _imputer(op, x):
    fill = np.broadcast_to(np.asarray(op.fill, dtype=np.float64), x.shape)
    hole = np.isnan(x) if op.missing is None or np.isnan(op.missing) else x == op.missing
    return np.where(hole, fill, x)


def _normalizer(op, x):
    if op.norm == "l1":
        norm = np.abs(x).sum(axis=1, keepdims=True)
    elif op.norm == "l2":
        norm = np.sqrt((x * x).sum(axis=1, keepdims=True))
    elif op.norm == "max":
        norm = np.abs(x).max(axis=1, keepdims=True)
    else:
        raise ValueError(f"unknown norm {op.norm!r}")
    return x / np.where(norm == 0, 1.0, norm)


def _binarizer(op, x):
    return (x > op.threshold).astype(np.float64)


def _one_hot(op, x):
    column = x[:, 0]
    out = np.stack([_equal(column, c) for c in op.categories], axis=1).astype(np.float64)
    if op.unknown == "error" and not out.any(axis=1).all():
        raise ValueError("a value in no category reached a OneHot that refuses unknown values")
    return out


def _equal(column, category):
    if column.dtype == object:
        return np.array([v == category for v in column], dtype=bool)
    return column == float(category)


def _label_encoder(op, x):
    out = [op.mapping.get(_key(v), op.default) for v in x[:, 0]]
    numeric = all(isinstance(v, (int, float, np.number)) or v is None for v in out)
    if numeric:
        return np.array([np.nan if v is None else v for v in out], dtype=np.float64).reshape(-1, 1)
    return np.array(out, dtype=object).reshape(-1, 1)


def _key(v):
    """Numbers compare as numbers whatever their type (1.0 finds key 1)."""
    if isinstance(v, (float, np.floating)) and float(v).is_integer():
        return int(v)
    return v


def _zero_to_missing(op, x):
    out = x.copy()
    cols = out[:, op.columns]
    cols[np.abs(cols) <= op.within] = np.nan
    out[:, op.columns] = cols
    return out


# ---- estimators --------------------------------------------------------------------

def _tree_ensemble(op: ir.TreeEnsemble, x):
    raw = np.zeros((x.shape[0], op.n_targets))
    for tree in op.trees:
        leaves = _leaf_of(tree, x)
        for node in np.unique(leaves):
            rows = leaves == node
            linear = tree.linear[node] if tree.linear is not None else None
            for target, value in tree.leaf[node]:
                raw[rows, target] += _leaf_value(value, linear, x[rows])
    if op.aggregate == "average" and op.trees:
        raw /= len(op.trees)
    elif op.aggregate not in ("sum", "average"):
        raise ValueError(f"unknown aggregate {op.aggregate!r}")
    if op.base is not None:
        raw += np.asarray(op.base, dtype=np.float64)
    return _head(op, raw)


def _leaf_of(tree: ir.Tree, x) -> np.ndarray:
    """The leaf each row reaches."""
    node = np.zeros(x.shape[0], dtype=np.int64)
    is_leaf = np.array([op == ir.LEAF for op in tree.op])
    for _ in range(len(tree) + 1):
        active = ~is_leaf[node]
        if not active.any():
            return node
        for i in np.unique(node[active]):
            rows = node == i
            v = x[rows, tree.feature[i]]
            missing = np.isnan(v)
            if tree.op[i] == "lt":
                test = v < tree.threshold[i]
            elif tree.op[i] == "le":
                test = v <= tree.threshold[i]
            else:
                test = np.isin(v, np.asarray(tree.categories[i], dtype=np.float64))
            go_yes = np.where(missing, tree.missing_yes[i], test)
            node[rows] = np.where(go_yes, tree.yes[i], tree.no[i])
    raise ValueError("a tree has a cycle")


def _leaf_value(value: float, linear, rows):
    if linear is None:
        return value
    constant, terms = linear
    out = np.full(rows.shape[0], float(constant))
    for feature, coefficient in terms:
        out += coefficient * rows[:, feature]
    return np.where(np.isnan(out), value, out)


def _linear(op: ir.Linear, x):
    raw = x @ np.asarray(op.coefficients, dtype=np.float64).T + np.asarray(op.intercepts, dtype=np.float64)
    return _head(op, raw)


def _head(op, raw):
    """Apply post_transform; for a classifier also expand one score column to two
    classes and pick the label."""
    transform = op.post_transform
    if transform == "logistic":
        out = 1.0 / (1.0 + np.exp(-raw))
    elif transform == "softmax":
        e = np.exp(raw - raw.max(axis=1, keepdims=True))
        out = e / e.sum(axis=1, keepdims=True)
    elif transform == "exp":
        out = np.exp(raw)
    elif transform == "none":
        out = raw
    else:
        raise ValueError(f"unknown post_transform {transform!r}")
    if op.classes is None:
        return out
    if out.shape[1] == 1 and len(op.classes) == 2:
        out = np.hstack([1.0 - out, out]) if transform == "logistic" else np.hstack([-out, out])
    return _labels(op.classes, out.argmax(axis=1)), out


def _labels(classes, index):
    return np.asarray(classes, dtype=object)[index].reshape(-1, 1)


def _svm(op: ir.SVM, x):
    sv = np.asarray(op.support_vectors, dtype=np.float64)
    k = _kernel(op, x, sv)  # rows x support vectors
    coef = np.asarray(op.coefficients, dtype=np.float64)
    if op.classes is None:
        return (k @ coef[0] - op.rho[0]).reshape(-1, 1)
    n_classes = len(op.classes)
    starts = np.concatenate([[0], np.cumsum(op.n_support)])
    decisions, votes, pairs = [], np.zeros((x.shape[0], n_classes)), []
    p = 0
    for i in range(n_classes):
        for j in range(i + 1, n_classes):
            si, sj = slice(starts[i], starts[i + 1]), slice(starts[j], starts[j + 1])
            d = k[:, si] @ coef[j - 1, si] + k[:, sj] @ coef[i, sj] - op.rho[p]
            decisions.append(d)
            votes[:, i] += d > 0
            votes[:, j] += d <= 0
            pairs.append((i, j))
            p += 1
    label = _labels(op.classes, votes.argmax(axis=1))
    if op.prob_a is None:
        return label, np.stack(decisions, axis=1)
    return label, _coupled_probabilities(decisions, pairs, op.prob_a, op.prob_b, n_classes)


def _kernel(op: ir.SVM, x, sv):
    if op.kernel == "linear":
        return x @ sv.T
    if op.kernel == "poly":
        return (op.gamma * (x @ sv.T) + op.coef0) ** op.degree
    if op.kernel == "rbf":
        d2 = (x * x).sum(axis=1)[:, None] - 2 * x @ sv.T + (sv * sv).sum(axis=1)[None, :]
        return np.exp(-op.gamma * np.maximum(d2, 0.0))
    if op.kernel == "sigmoid":
        return np.tanh(op.gamma * (x @ sv.T) + op.coef0)
    raise ValueError(f"unknown kernel {op.kernel!r}")


def _coupled_probabilities(decisions, pairs, prob_a, prob_b, n_classes):
    """libsvm: Platt-scaled pairwise probabilities, coupled into one distribution per row
    (Wu, Lin and Weng's method 2, libsvm's multiclass_probability). scikit-learn's libsvm
    couples two classes this way too, rather than taking the pairwise value directly."""
    rows = decisions[0].shape[0]
    out = np.zeros((rows, n_classes))
    for row in range(rows):
        r = np.zeros((n_classes, n_classes))
        for p, (i, j) in enumerate(pairs):
            f = decisions[p][row] * prob_a[p] + prob_b[p]
            pij = np.exp(-f) / (1.0 + np.exp(-f)) if f >= 0 else 1.0 / (1.0 + np.exp(f))
            pij = min(max(pij, 1e-7), 1 - 1e-7)
            r[i, j], r[j, i] = pij, 1 - pij
        out[row] = _couple(r, n_classes)
    return out


def _couple(r, k):
    q = np.zeros((k, k))
    for t in range(k):
        q[t, t] = sum(r[j, t] ** 2 for j in range(k) if j != t)
        for j in range(k):
            if j != t:
                q[t, j] = -r[j, t] * r[t, j]
    p = np.full(k, 1.0 / k)
    for _ in range(max(100, k)):
        qp = q @ p
        pqp = p @ qp
        if np.max(np.abs(qp - pqp)) < 0.005 / k:
            break
        for t in range(k):
            diff = (-qp[t] + pqp) / q[t, t]
            p[t] += diff
            pqp = (pqp + diff * (diff * q[t, t] + 2 * qp[t])) / (1 + diff) / (1 + diff)
            qp = (qp + diff * q[t]) / (1 + diff)
            p /= 1 + diff
    return p


_RUN = {
    ir.Concat: _concat, ir.Select: _select, ir.Cast: _cast, ir.Identity: _identity,
    ir.Scaler: _scaler, ir.Imputer: _imputer, ir.Normalizer: _normalizer, ir.Binarizer: _binarizer,
    ir.OneHot: _one_hot, ir.LabelEncoder: _label_encoder, ir.ZeroToMissing: _zero_to_missing,
    ir.TreeEnsemble: _tree_ensemble, ir.Linear: _linear, ir.SVM: _svm,
}
