"""Which globals a pickle may name without --trust: the allow-list policy.

Unpickling runs code chosen by whoever wrote the file. The pickle / joblib format
(mlconvert.formats.pickle_joblib) scans a file's opcodes statically, refuses it if
any global it names fails `is_allowed` (unless the user passed --trust), and
unpickles with a find_class that applies the same test again. This module is only
the policy: it reads no files and imports nothing from formats/.

Only the standard library is imported.
"""
from __future__ import annotations

__all__ = ["is_allowed", "TRUST_HINT"]

TRUST_HINT = "inspect the file's origin; pass --trust to load it anyway (this runs code from the file)"

# Any module under these packages may be named by a pickle (prefix match on the
# dotted module path), subject to the deny rules below.
_ALLOWED_PREFIXES = ("sklearn", "numpy", "scipy", "xgboost", "lightgbm", "catboost")

# Builtins that only build plain values. Not getattr/eval/exec/compile/open/
# __import__/apply/type/map...: with REDUCE those are enough to run anything.
_SAFE_BUILTINS = frozenset(
    {
        "object", "dict", "list", "set", "frozenset", "tuple", "bytearray", "bytes",
        "str", "int", "float", "complex", "bool", "slice", "range",
        "Ellipsis", "NotImplemented",
    }
)
# Python 2 spellings of the same types (pickles written by Python 2).
_SAFE_PY2_BUILTINS = _SAFE_BUILTINS | {"unicode", "long", "xrange", "basestring"}

# Modules where only the listed names are allowed (exact match). These take
# precedence over the prefixes, which is how sklearn.externals.joblib.numpy_pickle
# gets its single allowed name while the rest of sklearn.externals stays denied.
_ALLOWED_EXACT: dict[str, frozenset[str]] = {
    "builtins": _SAFE_BUILTINS,
    "__builtin__": _SAFE_PY2_BUILTINS,
    "collections": frozenset({"OrderedDict", "defaultdict"}),
    "_codecs": frozenset({"encode"}),  # protocol 0-2 pickles of bytes
    "copyreg": frozenset({"_reconstructor"}),
    "copy_reg": frozenset({"_reconstructor"}),
    # joblib's placeholder for an array whose bytes follow inline. NOT NDArrayWrapper /
    # ZNDArrayWrapper (joblib < 0.10): their read() np.load()s a path taken from the
    # file with allow_pickle=True, i.e. they unpickle a second, unscanned file.
    "joblib.numpy_pickle": frozenset({"NumpyArrayWrapper"}),
    "sklearn.externals.joblib.numpy_pickle": frozenset({"NumpyArrayWrapper"}),
    # sklearn2pmml's pipeline and decorators, sklearn-pandas' mapper: containers of other
    # estimators plus plain settings (value ranges, categories, treatments); predicting
    # runs only their steps. Not sklearn2pmml as a whole: ExpressionTransformer and
    # friends evaluate expression strings taken from the file.
    "sklearn2pmml": frozenset({"SelectorProxy"}),
    "sklearn2pmml.pipeline": frozenset({"PMMLPipeline", "_Verification"}),
    "sklearn2pmml.decoration": frozenset({
        "ContinuousDomain", "CategoricalDomain", "OrdinalDomain", "MultiDomain", "Alias", "MultiAlias",
        "DomainEraser", "ContinuousDomainEraser", "DiscreteDomainEraser"}),
    "sklearn_pandas.dataframe_mapper": frozenset({"DataFrameMapper"}),
    "sklearn_pandas.pipeline": frozenset({"TransformerPipeline"}),
    # pandas 3 stores string columns in Arrow arrays: a type by its alias ("string") and
    # buffers. The loader checks every array rebuilt this way (Array.validate(full=True)),
    # so offsets taken from the file cannot point outside its buffers.
    "pyarrow.lib": frozenset({"_restore_array", "py_buffer", "type_for_alias"}),
}

# pandas: the types that hold a table's values, index and dtypes, and the functions
# pandas' own pickles rebuild them with. They are data, not code: models carry them as
# feature names, category lists or a DataFrame's dtypes. Allowed by name anywhere under
# `pandas` except the modules below (file I/O, expression evaluation, test helpers).
_PANDAS_DATA_NAMES = frozenset({
    # arrays and dtypes
    "ArrowExtensionArray", "ArrowStringArray", "ArrowStringArrayNumpySemantics", "BooleanArray", "Categorical",
    "DatetimeArray", "FloatingArray", "IntegerArray", "IntervalArray", "NumpyExtensionArray", "PeriodArray",
    "SparseArray", "StringArray", "StringArrayNumpySemantics", "TimedeltaArray",
    "ArrowDtype", "BooleanDtype", "CategoricalDtype", "DatetimeTZDtype", "Float32Dtype", "Float64Dtype",
    "Int8Dtype", "Int16Dtype", "Int32Dtype", "Int64Dtype", "UInt8Dtype", "UInt16Dtype", "UInt32Dtype",
    "UInt64Dtype", "IntervalDtype", "PeriodDtype", "SparseDtype", "StringDtype", "NumpyEADtype",
    # indexes (Int64Index & co: pandas < 2, read as Index)
    "Index", "RangeIndex", "CategoricalIndex", "MultiIndex", "DatetimeIndex", "TimedeltaIndex", "PeriodIndex",
    "IntervalIndex", "Int64Index", "UInt64Index", "Float64Index", "_new_Index", "_new_PeriodIndex",
    # tables and their block storage
    "DataFrame", "Series", "BlockManager", "SingleBlockManager", "_unpickle_block", "new_block",
    "__pyx_unpickle_NDArrayBacked", "Timestamp", "Timedelta", "NaTType", "_nat_unpickle", "__nat_unpickle",
    "NA", "NAType", "NaT",  # the missing-value singletons
})
_PANDAS_DENIED = ("pandas.io", "pandas.plotting", "pandas.core.computation", "pandas.testing", "pandas._testing",
                  "pandas.util", "pandas.conftest", "pandas.tests", "pandas.compat")

# Modules inside the allowed packages that can run code, touch files or the network,
# or reach raw memory. A model pickle has no reason to name anything in them.
_DENIED_MODULES = (
    # test helpers run subprocesses, exec strings, start pytest
    "numpy.testing", "numpy._pytesttester", "numpy.conftest", "scipy._lib._testutils",
    "sklearn.utils._testing", "sklearn.utils.testing", "sklearn.utils.estimator_checks",
    "xgboost.testing",
    # build tools compile and run code
    "numpy.f2py", "numpy.distutils", "scipy.weave", "scipy._build_utils",
    # shared libraries and raw memory (ctypes, as_strided views over any address)
    "numpy.ctypeslib", "numpy.lib.stride_tricks", "numpy.lib._stride_tricks_impl",
    # file and network I/O (np.load(allow_pickle=True) = another pickle; memmap w+ truncates)
    "numpy.lib.npyio", "numpy.lib._npyio_impl", "numpy.lib._datasource", "numpy.lib.format",
    "numpy.lib._format_impl", "scipy.io", "scipy.datasets", "sklearn.datasets", "catboost.datasets",
    # process / cluster launchers
    "xgboost.dask", "xgboost.spark", "xgboost.tracker", "xgboost.collective", "xgboost.federated",
    "lightgbm.dask", "catboost.eval", "catboost.widget",
    # vendored copies of joblib / cloudpickle (cloudpickle rebuilds functions from bytecode)
    "sklearn.externals",
)

# Names that are dangerous whatever module re-exports them (e.g. `from os import
# remove` inside an allowed module makes `module.remove` a valid pickle global).
_DENIED_NAMES = frozenset(
    {
        "eval", "exec", "execfile", "compile", "system", "popen", "Popen", "run", "call",
        "check_call", "check_output", "getoutput", "getstatusoutput", "open", "__import__",
        "import_module", "getattr", "setattr", "delattr", "globals", "locals", "vars",
        "input", "breakpoint", "apply", "remove", "unlink", "rmtree", "rmdir", "mkdir",
        "makedirs", "rename", "chmod", "chown", "kill", "urlopen", "urlretrieve",
        "fromfile", "tofile", "genfromtxt", "loadtxt", "savetxt", "fromregex", "memmap",
        "open_memmap", "as_strided", "load_library", "CDLL", "PyDLL", "cdll", "pydll",
        "dlopen", "DataSource",
    }
)
_DENIED_NAME_PREFIXES = ("load", "dump", "save", "fetch_", "read_", "write", "exec", "spawn", "popen")


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def is_allowed(module: str, name: str) -> bool:
    """Whether a pickle may name `module.name` without --trust."""
    if not module or not name:
        return False
    if module in _ALLOWED_EXACT:
        return name in _ALLOWED_EXACT[module]
    # A dotted name is an attribute path (protocol 4 resolves it with getattr), e.g.
    # `sklearn.base clone.__builtins__` reaches builtins from an allowed function.
    if "." in name:
        return False
    if _under(module, "pandas"):
        return name in _PANDAS_DATA_NAMES and not any(_under(module, d) for d in _PANDAS_DENIED)
    if not any(_under(module, p) for p in _ALLOWED_PREFIXES):
        return False
    if any(_under(module, d) for d in _DENIED_MODULES):
        return False
    low = name.lower()
    if name in _DENIED_NAMES or low in _DENIED_NAMES or low.startswith(_DENIED_NAME_PREFIXES):
        return False
    return True
