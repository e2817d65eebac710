"""skl2onnx converters for sklearn2pmml's decorators and sklearn-pandas' DataFrameMapper.

Pipelines built for PMML export wrap scikit-learn steps in objects that no converter
library knows: `PMMLPipeline` (a Pipeline), the domain decorators (`ContinuousDomain`,
`CategoricalDomain`, `OrdinalDomain`, `MultiDomain`: at prediction time a pass-through
that treats missing, invalid and outlier values as configured), `Alias` /
`MultiAlias` (rename a transformer's output), `SelectorProxy` (wraps a feature
selector) and sklearn-pandas' `DataFrameMapper` (a ColumnTransformer by column name).
`register_for(model)` registers them with skl2onnx when a model holds any; via_skl2onnx
calls it before converting.

Wrappers that only delegate get a parser (skl2onnx's mechanism for containers); the
domains get a shape calculator and a converter that build the treatment as ONNX nodes.

Rows that the source refuses (a domain's "return_invalid" treatment raises on an
invalid or missing value) pass through unchanged in ONNX, which cannot raise: the
converted model is defined on every row the source accepts, and on more.

Only the standard library is imported at module level.
"""
from __future__ import annotations

from typing import Any

from mlconvert.errors import ConversionError

__all__ = ["WRAPPER_MODULES", "holds_wrappers", "register_for", "walk"]

# Packages whose classes this module converts.
WRAPPER_MODULES = ("sklearn2pmml", "sklearn_pandas")


def walk(model: Any, budget: int = 10000):
    """Every estimator inside `model` (itself included): pipeline steps, mapper
    features, wrapped transformers, domains."""
    seen: set[int] = set()
    todo = [model]
    while todo and budget > 0:
        obj = todo.pop()
        if obj is None or isinstance(obj, (str, bytes, int, float)) or id(obj) in seen:
            continue
        seen.add(id(obj))
        budget -= 1
        if isinstance(obj, (list, tuple)):
            todo.extend(obj)
            continue
        if not hasattr(obj, "get_params"):
            continue
        yield obj
        for attr in ("steps", "built_features", "built_default", "transformers_", "domains",
                     "transformer_", "selector", "estimator_", "estimators_"):
            value = getattr(obj, attr, None)
            if value is not None and not isinstance(value, (str, bool)):
                todo.append(value)


def holds_wrappers(model: Any) -> bool:
    return any(type(est).__module__.split(".")[0] in WRAPPER_MODULES for est in walk(model))


# --- ONNX building blocks -------------------------------------------------------------


def _elem(var) -> tuple[int, str]:
    """(ONNX element type, numpy dtype) of a variable; strings are ("string", object)."""
    from onnx import TensorProto
    from skl2onnx.common.data_types import DoubleTensorType, FloatTensorType, Int64TensorType, StringTensorType

    typ = var.type
    if isinstance(typ, StringTensorType):
        return TensorProto.STRING, "object"
    if isinstance(typ, DoubleTensorType):
        return TensorProto.DOUBLE, "float64"
    if isinstance(typ, FloatTensorType):
        return TensorProto.FLOAT, "float32"
    if isinstance(typ, Int64TensorType):
        return TensorProto.INT64, "int64"
    raise ConversionError(f"a domain decorator cannot take inputs of type {type(typ).__name__}")


class _Nodes:
    """A small graph builder over skl2onnx's scope and container."""

    def __init__(self, scope, container, elem: int, dtype: str):
        self.scope, self.container, self.elem, self.dtype = scope, container, elem, dtype

    def name(self, hint: str) -> str:
        return self.scope.get_unique_variable_name(hint)

    def const(self, value, hint: str = "c", elem: int | None = None) -> str:
        import numpy as np

        elem = self.elem if elem is None else elem
        name = self.name(hint)
        arr = np.asarray(value, dtype=object if elem == 8 else None)
        if elem == 8:  # TensorProto.STRING
            values = [str(v).encode() for v in arr.ravel()]
        else:
            values = arr.astype(self.dtype if elem == self.elem else "int64").ravel().tolist()
        self.container.add_initializer(name, elem, list(arr.shape), values)
        return name

    def node(self, op: str, inputs: list[str], hint: str, **attrs) -> str:
        out = self.name(hint)
        self.container.add_node(op, inputs, [out], name=self.scope.get_unique_operator_name(op), **attrs)
        return out

    def where(self, mask: str, value, x: str) -> str:
        """x with `value` where mask holds."""
        return self.node("Where", [mask, value if isinstance(value, str) else self.const(value, "repl"), x], "where")

    def both(self, a: str, b: str) -> str:
        return self.node("And", [a, b], "and")

    def either(self, a: str, b: str) -> str:
        return self.node("Or", [a, b], "or")

    def negate(self, a: str) -> str:
        return self.node("Not", [a], "not")


def _is_missing_value(value) -> bool:
    try:
        import math

        return value is None or (isinstance(value, float) and math.isnan(value))
    except TypeError:
        return False


def _missing_mask(g: _Nodes, domain, x: str, string: bool) -> str | None:
    """Where x is missing, as the domain defines it; None when it can never be (strings
    carry no missing marker in ONNX)."""
    declared = domain.missing_values
    values = declared if isinstance(declared, list) else [declared]
    masks = []
    for value in values:
        if _is_missing_value(value):
            if not string:
                masks.append(g.node("IsNaN", [x], "isnan"))
        else:
            masks.append(g.node("Equal", [x, g.const([value], "missing")], "is_missing"))
    if not masks:
        return None
    mask = masks[0]
    for m in masks[1:]:
        mask = g.either(mask, m)
    return mask


def _missing_marker(domain):
    declared = domain.missing_values
    value = declared[0] if isinstance(declared, list) else declared
    return float("nan") if _is_missing_value(value) else value


def _isin(g: _Nodes, x: str, per_column: list, ncols: int) -> str:
    """Whether each cell of x [N, ncols] is among its column's values."""
    import numpy as np

    width = max(len(v) for v in per_column)
    # Pad each column's list by repeating its first value: duplicates change nothing.
    table = [list(v) + [v[0]] * (width - len(v)) for v in per_column]
    values = g.const(np.asarray(table, dtype=object if g.dtype == "object" else g.dtype).reshape(1, ncols, width), "values")
    cells = g.node("Unsqueeze", [x, g.const([2], "axis", elem=7)], "cells")
    eq = g.node("Equal", [cells, values], "eq")
    hits = g.node("ReduceMax", [g.node("Cast", [eq], "eq_int", to=6), g.const([2], "axis", elem=7)], "hits", keepdims=0)
    return g.node("Cast", [hits], "isin", to=9)


def _per_column(values, ncols: int) -> list:
    """A domain's per-column list (a 1-D domain fitted on one column holds one array)."""
    import numpy as np

    if ncols == 1 and (len(values) == 0 or np.ndim(values[0]) == 0):
        return [list(values)]
    return [list(v) for v in values]


def _domain_nodes(g: _Nodes, domain, x: str, ncols: int) -> str:
    """The ONNX form of `domain.transform` on x [N, ncols]."""
    import numpy as np

    name = type(domain).__name__
    string = g.dtype == "object"
    declared = getattr(domain, "dtype", None)
    if declared is not None and not string:
        try:
            kind = np.dtype(declared).kind
        except (TypeError, ValueError):  # pandas' "category", CategoricalDtype...: values as they are
            kind = "O"
        if kind in "iu":
            # Casting to an integer type truncates towards zero: the model saw whole numbers.
            x = g.node("Cast", [g.node("Cast", [x], "as_int", to=7)], "as_float", to=g.elem)
        elif kind not in "fcbO":
            raise ConversionError(f"{name} casts its input to {declared}, which has no ONNX counterpart here")

    missing = _missing_mask(g, domain, x, string)
    if missing is not None:
        nonmissing = g.negate(missing)
    # The valid values: inside the fitted interval, or among the fitted categories.
    valid = None
    if hasattr(domain, "data_min_") and hasattr(domain, "data_max_"):
        low = g.const(np.broadcast_to(np.asarray(domain.data_min_, dtype=float), (ncols,)).reshape(1, ncols), "data_min")
        high = g.const(np.broadcast_to(np.asarray(domain.data_max_, dtype=float), (ncols,)).reshape(1, ncols), "data_max")
        valid = g.both(g.node("GreaterOrEqual", [x, low], "ge"), g.node("LessOrEqual", [x, high], "le"))
    elif getattr(domain, "data_values_", None) is not None:
        valid = _isin(g, x, _per_column(domain.data_values_, ncols), ncols)
    if valid is not None and missing is not None:
        valid = g.both(valid, nonmissing)
    invalid = None
    if valid is not None:
        invalid = g.negate(valid) if missing is None else g.both(g.negate(valid), nonmissing)

    def treat_missing(x: str, where: str) -> str:
        if domain.missing_value_replacement is not None:
            return g.where(where, [domain.missing_value_replacement], x)
        return x

    def to_missing(x: str, where: str) -> str:
        marker = _missing_marker(domain)
        if string and _is_missing_value(marker):
            raise ConversionError(f"{name} turns string values into missing ones, which ONNX strings cannot hold")
        return treat_missing(g.where(where, [marker], x), where)

    # The order of Domain.transform: missing values, then valid (outliers), then invalid.
    if missing is not None:
        x = treat_missing(x, missing)
    outliers = getattr(domain, "outlier_treatment", "as_is")
    if outliers != "as_is":
        in_range = valid if valid is not None else (nonmissing if missing is not None else None)
        below = g.node("Less", [x, g.const([domain.low_value], "low")], "below")
        above = g.node("Greater", [x, g.const([domain.high_value], "high")], "above")
        if in_range is not None:
            below, above = g.both(below, in_range), g.both(above, in_range)
        if outliers == "as_missing_values":
            x = to_missing(x, g.either(below, above))
        else:  # as_extreme_values
            x = g.where(below, [domain.low_value], x)
            above = g.node("Greater", [x, g.const([domain.high_value], "high")], "above")
            if in_range is not None:
                above = g.both(above, in_range)
            x = g.where(above, [domain.high_value], x)
    if invalid is not None:
        treatment = domain.invalid_value_treatment
        if treatment == "as_missing":
            x = to_missing(x, invalid)
        elif treatment == "as_value":
            x = g.where(invalid, [domain.invalid_value_replacement], x)
        # "as_is" keeps them; "return_invalid" makes the source raise: they pass through.
    return x


def _inputs_as_one(g: _Nodes, operator) -> tuple[str, int]:
    """The operator's input(s) as one [N, ncols] tensor (columns given one per input are
    concatenated; they must share a type)."""
    names = [v.full_name for v in operator.inputs]
    kinds = {type(v.type) for v in operator.inputs}
    if len(kinds) > 1:
        raise ConversionError("a domain decorator over columns of different types (strings and numbers) "
                              "cannot be expressed as one ONNX tensor")
    ncols = sum(_width(v) for v in operator.inputs)
    if len(names) == 1:
        return names[0], ncols
    return g.node("Concat", names, "columns", axis=1), ncols


def _width(var) -> int:
    shape = var.type.shape
    if len(shape) < 2 or not isinstance(shape[1], int):
        raise ConversionError("a domain decorator needs inputs whose column count is known")
    return shape[1]


def _shape_passthrough(operator) -> None:
    """A decorator's output: the input's type, with the columns of all its inputs."""
    first = operator.inputs[0].type
    try:
        width = sum(_width(v) for v in operator.inputs)
    except ConversionError:
        width = None
    operator.outputs[0].type = first.__class__([first.shape[0] if first.shape else None, width])


def _convert_domain(scope, operator, container) -> None:
    elem, dtype = _elem(operator.inputs[0])
    g = _Nodes(scope, container, elem, dtype)
    x, ncols = _inputs_as_one(g, operator)
    out = _domain_nodes(g, operator.raw_operator, x, ncols)
    container.add_node("Identity", [out], [operator.outputs[0].full_name],
                       name=scope.get_unique_operator_name("Domain"))


def _convert_multi_domain(scope, operator, container) -> None:
    elem, dtype = _elem(operator.inputs[0])
    g = _Nodes(scope, container, elem, dtype)
    x, ncols = _inputs_as_one(g, operator)
    domains = operator.raw_operator.domains
    if len(domains) != ncols:
        raise ConversionError(f"MultiDomain has {len(domains)} domains for {ncols} columns")
    parts = []
    for j, domain in enumerate(domains):
        col = g.node("Slice", [x, g.const([j], "start", elem=7), g.const([j + 1], "end", elem=7),
                               g.const([1], "axis", elem=7)], f"col{j}")
        parts.append(col if domain is None else _domain_nodes(g, domain, col, 1))
    container.add_node("Concat", parts, [operator.outputs[0].full_name], axis=1,
                       name=scope.get_unique_operator_name("MultiDomain"))


def _convert_identity(scope, operator, container) -> None:
    g = _Nodes(scope, container, *_elem(operator.inputs[0]))
    x, _ = _inputs_as_one(g, operator)
    container.add_node("Identity", [x], [operator.outputs[0].full_name], name=scope.get_unique_operator_name("Eraser"))


# --- parsers for the wrappers that delegate -------------------------------------------


def _parse_inner(attr: str):
    def parser(scope, model, inputs, custom_parsers=None):
        from skl2onnx._parse import _parse_sklearn

        inner = getattr(model, attr, None)
        if inner is None:
            raise ConversionError(f"{type(model).__name__} holds no fitted {attr}")
        return _parse_sklearn(scope, inner, inputs, custom_parsers=custom_parsers)

    return parser


def _select(scope, inputs, columns: list):
    """The inputs for `columns` (names or positions) as one variable."""
    from skl2onnx._parse import _fetch_input_slice
    from skl2onnx.common.utils import get_column_indices

    picked = []
    for index, cols in get_column_indices(columns, inputs, multiple=True).items():
        picked.extend(_fetch_input_slice(scope, [inputs[index]], cols))
    if len(picked) == 1:
        return picked[0]
    if len({type(v.type) for v in picked}) > 1:
        raise ConversionError(f"DataFrameMapper feature {columns} mixes string and numeric columns")
    concat = scope.declare_local_operator("SklearnConcat")
    concat.inputs = picked
    out = scope.declare_local_variable("mapped_columns", picked[0].type.__class__([None, len(columns)]))
    concat.outputs.append(out)
    return out


def _parse_mapper(scope, model, inputs, custom_parsers=None):
    """DataFrameMapper: each feature's columns through its transformer(s), side by side."""
    from skl2onnx._parse import _parse_sklearn

    features = getattr(model, "built_features", None)
    if features is None:
        raise ConversionError("DataFrameMapper is not fitted (no built_features)")
    outputs, used = [], set()
    for feature in features:
        columns, transformer = feature[0], feature[1]
        cols = [columns] if isinstance(columns, (str, int)) else list(columns)
        used.update(cols)
        var = _select(scope, inputs, cols)
        outputs.append(var if transformer is None else
                       _parse_sklearn(scope, transformer, [var], custom_parsers=custom_parsers)[0])
    default = getattr(model, "built_default", False)
    if default is not False:
        rest = [v.raw_name for v in inputs if v.raw_name not in used] if len(inputs) > 1 else None
        if not rest:
            raise ConversionError("DataFrameMapper's default= applies to the columns no feature names; "
                                  "that needs the model's inputs given one per column")
        var = _select(scope, inputs, rest)
        outputs.append(var if default is None else _parse_sklearn(scope, default, [var], custom_parsers)[0])
    if len(outputs) == 1:
        return outputs
    concat = scope.declare_local_operator("SklearnConcat")
    concat.inputs = outputs
    numeric = [v for v in outputs if v.type.__class__.__name__ != "StringTensorType"]
    out = scope.declare_local_variable("mapped", (numeric or outputs)[0].type.__class__([None, None]))
    concat.outputs.append(out)
    return concat.outputs


def _parse_pipeline(scope, model, inputs, custom_parsers=None):
    from skl2onnx._parse import _parse_sklearn_pipeline

    return _parse_sklearn_pipeline(scope, model, inputs, custom_parsers=custom_parsers)


def register_for(model) -> bool:
    """Register the converters with skl2onnx if `model` holds any of these wrappers
    (once per process). Returns whether it does."""
    if not holds_wrappers(model):
        return False
    from skl2onnx import update_registered_converter
    from skl2onnx._parse import update_registered_parser

    import sys

    def classes(module: str, names: tuple[str, ...]) -> list:
        # Only what loading the model imported: nothing else needs a converter.
        mod = sys.modules.get(module)
        return [getattr(mod, n) for n in names if hasattr(mod, n)] if mod else []

    for cls in classes("sklearn2pmml.decoration", ("ContinuousDomain", "CategoricalDomain", "OrdinalDomain")):
        update_registered_converter(cls, f"Sklearn2PMML{cls.__name__}", _shape_passthrough, _convert_domain)
    for cls in classes("sklearn2pmml.decoration", ("MultiDomain",)):
        update_registered_converter(cls, "Sklearn2PMMLMultiDomain", _shape_passthrough, _convert_multi_domain)
    for cls in classes("sklearn2pmml.decoration", ("DomainEraser", "ContinuousDomainEraser", "DiscreteDomainEraser")):
        update_registered_converter(cls, f"Sklearn2PMML{cls.__name__}", _shape_passthrough, _convert_identity)
    for cls in classes("sklearn2pmml.decoration", ("Alias", "MultiAlias")):
        update_registered_parser(cls, _parse_inner("transformer_"))
    for cls in classes("sklearn2pmml", ("SelectorProxy",)):
        update_registered_parser(cls, _parse_inner("selector"))
    for cls in classes("sklearn2pmml.pipeline", ("PMMLPipeline",)):
        update_registered_parser(cls, _parse_pipeline)
    for cls in classes("sklearn_pandas.pipeline", ("TransformerPipeline",)):
        update_registered_parser(cls, _parse_pipeline)
    for cls in classes("sklearn_pandas.dataframe_mapper", ("DataFrameMapper",)):
        update_registered_parser(cls, _parse_mapper)
    return True
