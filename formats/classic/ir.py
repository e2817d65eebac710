"""The representation: a small graph of named values flowing through classic-model ops.

A `Graph` has named inputs, ops in topological order (each reads and writes named
values), and named outputs with a role. Every value is a 2-D batch: rows are samples,
columns are features (a scalar input is width 1). Numbers are float64 in the
semantics (`evaluate.py`); a writer decides its format's precision and says so.

Op vocabulary (the reference semantics are in evaluate.py):

- layout: `Concat`, `Select`, `Cast`, `Identity`
- preprocessing: `Scaler`, `Imputer`, `Normalizer`, `Binarizer`, `OneHot`,
  `LabelEncoder`, `ZeroToMissing`
- estimators: `TreeEnsemble`, `Linear`, `SVM`; each writes `(label, probabilities)` when
  its `classes` are set (a classifier) and one value otherwise. A classifier with one
  score column and two classes scores the second class: probabilities are
  `[1 - p, p]` after a logistic transform, `[-s, s]` without one.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Union

from mlconvert.errors import Unsupported  # noqa: F401  (readers and writers raise it)

# post_transform of an estimator: what turns raw scores into its output.
POST_TRANSFORMS = ("none", "logistic", "softmax", "exp")


@dataclass
class Value:
    """A named input: `dtype` is "float", "int" or "string"; `width` its column count."""

    name: str
    dtype: str = "float"
    width: int = 1


@dataclass
class Output:
    """A named graph output. `role`: "label", "probabilities", "value" (regression or
    transformer output) or "scores" (raw margins, e.g. an SVM without probabilities)."""

    name: str
    role: str
    classes: list | None = None


# ---- layout ------------------------------------------------------------------------

@dataclass
class Concat:
    """Columns of every input, left to right."""

    inputs: list[str]
    outputs: list[str]


@dataclass
class Select:
    """Columns `indices` of the input, in that order."""

    inputs: list[str]
    outputs: list[str]
    indices: list[int]


@dataclass
class Cast:
    """Change the value type (`to`: "float", "int", "string"); numbers are unchanged."""

    inputs: list[str]
    outputs: list[str]
    to: str = "float"


@dataclass
class Identity:
    inputs: list[str]
    outputs: list[str]


# ---- preprocessing -------------------------------------------------------------------

@dataclass
class Scaler:
    """y = (x - offset) * scale, per column (ONNX Scaler's convention)."""

    inputs: list[str]
    outputs: list[str]
    offset: list[float]
    scale: list[float]


@dataclass
class Imputer:
    """A column equal to `missing` (NaN when None) becomes `fill[column]`."""

    inputs: list[str]
    outputs: list[str]
    fill: list[float]
    missing: float | None = None


@dataclass
class Normalizer:
    """Each row divided by its norm: "l1", "l2" or "max" (of absolute values)."""

    inputs: list[str]
    outputs: list[str]
    norm: str


@dataclass
class Binarizer:
    """1 where x > threshold, else 0."""

    inputs: list[str]
    outputs: list[str]
    threshold: float = 0.0


@dataclass
class OneHot:
    """One input column becomes len(categories) indicator columns. A value in no category
    gives all zeros (`unknown="zeros"`) or is an error (`unknown="error"`)."""

    inputs: list[str]
    outputs: list[str]
    categories: list
    unknown: str = "zeros"


@dataclass
class LabelEncoder:
    """Maps each value through `mapping` (keys and values numbers or strings); a value not
    in it becomes `default`."""

    inputs: list[str]
    outputs: list[str]
    mapping: dict
    default: object = None


@dataclass
class ZeroToMissing:
    """Columns `columns` equal to 0 become NaN (LightGBM's "zero as missing"); with
    `within` > 0, every value with |x| <= within counts as 0 (LightGBM: 1e-35 as float32)."""

    inputs: list[str]
    outputs: list[str]
    columns: list[int]
    within: float = 0.0


# ---- estimators ----------------------------------------------------------------------

LEAF = "leaf"
SPLIT_OPS = ("lt", "le", "in")  # x < threshold, x <= threshold, x in categories: then `yes`


@dataclass
class Tree:
    """One tree as parallel node arrays; node 0 is the root.

    A split node i sends x[feature[i]] to `yes[i]` when the test `op[i]` holds, else to
    `no[i]`; a missing value (NaN) goes to `yes[i]` when `missing_yes[i]`. A leaf adds
    `leaf[i]`, a tuple of (target, value) pairs, to the ensemble's raw scores. A linear
    leaf (`linear[i]` set: (constant, ((feature, coefficient), ...))) adds
    constant + sum(coefficient * x[feature]) instead, unless one of those features is
    missing, where it adds `leaf[i]`."""

    feature: list[int] = field(default_factory=list)
    op: list[str] = field(default_factory=list)
    threshold: list[float] = field(default_factory=list)
    categories: list[tuple | None] = field(default_factory=list)
    yes: list[int] = field(default_factory=list)
    no: list[int] = field(default_factory=list)
    missing_yes: list[bool] = field(default_factory=list)
    leaf: list[tuple | None] = field(default_factory=list)
    linear: list[tuple | None] | None = None

    def add_split(self, feature: int, op: str, threshold: float = 0.0, *, categories=None,
                  missing_yes: bool = False) -> int:
        """Append a split node (children set later with `link`); returns its index."""
        if op not in SPLIT_OPS:
            raise ValueError(f"split op {op!r} is not one of {SPLIT_OPS}")
        return self._append(feature, op, float(threshold), tuple(categories) if categories is not None else None,
                            missing_yes, None)

    def add_leaf(self, values, linear=None) -> int:
        """Append a leaf; `values` is a sequence of (target, value) pairs."""
        index = self._append(-1, LEAF, 0.0, None, False, tuple((int(t), float(v)) for t, v in values))
        if linear is not None:
            if self.linear is None:
                self.linear = [None] * len(self.feature)
            self.linear[index] = linear
        return index

    def link(self, node: int, yes: int, no: int) -> None:
        self.yes[node], self.no[node] = yes, no

    def _append(self, feature, op, threshold, categories, missing_yes, leaf) -> int:
        self.feature.append(int(feature))
        self.op.append(op)
        self.threshold.append(threshold)
        self.categories.append(categories)
        self.yes.append(-1)
        self.no.append(-1)
        self.missing_yes.append(bool(missing_yes))
        self.leaf.append(leaf)
        if self.linear is not None:
            self.linear.append(None)
        return len(self.feature) - 1

    def __len__(self) -> int:
        return len(self.feature)


@dataclass
class TreeEnsemble:
    """raw[target] = base[target] + aggregate over trees of their leaf values, where
    "average" divides the sum by the number of trees; then `post_transform`."""

    inputs: list[str]
    outputs: list[str]
    n_targets: int
    trees: list[Tree]
    base: list[float] | None = None
    aggregate: str = "sum"
    post_transform: str = "none"
    classes: list | None = None


@dataclass
class Linear:
    """raw = x @ coefficients.T + intercepts (coefficients: n_targets rows); then
    `post_transform`."""

    inputs: list[str]
    outputs: list[str]
    coefficients: list[list[float]]
    intercepts: list[float]
    post_transform: str = "none"
    classes: list | None = None


@dataclass
class SVM:
    """libsvm's model. Regression (`classes` None): raw = sum(coef * K(sv, x)) - rho[0].
    Classification: one-vs-one decisions; `coefficients` is (n_classes - 1) rows over all
    support vectors, `n_support` the count per class (libsvm's layout), `rho` one per pair.
    With `prob_a`/`prob_b` probabilities follow libsvm's pairwise coupling; without
    them the label is the one-vs-one vote winner and the output role is "scores"."""

    inputs: list[str]
    outputs: list[str]
    kernel: str  # "linear", "poly", "rbf", "sigmoid"
    support_vectors: list[list[float]]
    coefficients: list[list[float]]
    rho: list[float]
    gamma: float = 0.0
    coef0: float = 0.0
    degree: int = 3
    n_support: list[int] | None = None
    classes: list | None = None
    prob_a: list[float] | None = None
    prob_b: list[float] | None = None


Op = Union[Concat, Select, Cast, Identity, Scaler, Imputer, Normalizer, Binarizer, OneHot, LabelEncoder,
           ZeroToMissing, TreeEnsemble, Linear, SVM]
ESTIMATORS = (TreeEnsemble, Linear, SVM)


@dataclass
class Graph:
    inputs: list[Value]
    ops: list
    outputs: list[Output]
    # Where the model came from and anything a writer should carry along (feature
    # names, producer, descriptions).
    metadata: dict = field(default_factory=dict)

    def check(self) -> "Graph":
        """Raise ValueError unless every op reads values defined before it and every
        output is defined: readers call it before handing a graph on."""
        defined = {v.name for v in self.inputs}
        for op in self.ops:
            missing = [name for name in op.inputs if name not in defined]
            if missing:
                raise ValueError(f"{type(op).__name__} reads undefined {missing}")
            if getattr(op, "post_transform", "none") not in POST_TRANSFORMS:
                raise ValueError(f"unknown post_transform {op.post_transform!r}")
            if isinstance(op, TreeEnsemble):
                for t, tree in enumerate(op.trees):
                    _check_tree(tree, t, op.n_targets)
            defined.update(op.outputs)
        undefined = [o.name for o in self.outputs if o.name not in defined]
        if undefined:
            raise ValueError(f"outputs {undefined} are not produced by any op")
        return self

    def estimator(self):
        """The graph's one estimator op, or None for a transformer-only graph."""
        found = [op for op in self.ops if isinstance(op, ESTIMATORS)]
        return found[-1] if found else None


def _check_tree(tree: Tree, t: int, n_targets: int) -> None:
    n = len(tree)
    for i in range(n):
        if tree.op[i] == LEAF:
            if not tree.leaf[i] or any(not 0 <= target < n_targets for target, _ in tree.leaf[i]):
                raise ValueError(f"tree {t} leaf {i}: no values or a target outside 0..{n_targets - 1}")
        elif not (0 <= tree.yes[i] < n and 0 <= tree.no[i] < n):
            raise ValueError(f"tree {t} node {i}: child outside the tree")
