"""Loading a pickle or joblib file: scan first, then a guarded unpickler.

`load_pickle` scans the file statically (_pickle_scan; the scan of an unchanged file
is cached per process), refuses it if it names globals outside the allow-list
(mlconvert.safety) unless the user passed --trust, then unpickles it with a
`find_class` that enforces the same list again (defence in depth) and maps module
paths that libraries renamed since. Estimators pickled by an older scikit-learn get
the parameters they lack filled with defaults, and what differs is reported.

Only the standard library is imported at module level (joblib inside functions).
"""
from __future__ import annotations

import importlib
import importlib.util
import pickle
import types
import warnings
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

from mlconvert import probe
from mlconvert.errors import InputError, MlconvertError, UntrustedInputError
from mlconvert.formats import _pickle_upgrades as _upgrades
from mlconvert.formats._pickle_scan import PickleScan, scan_pickle
from mlconvert.formats._pickle_stream import MAX_DECOMPRESSED, Opened
from mlconvert.safety import TRUST_HINT, is_allowed

__all__ = ["LoadedPickle", "check_trusted", "load_pickle"]


@dataclass(frozen=True)
class LoadedPickle:
    obj: Any
    scan: PickleScan
    warnings: list[str]  # e.g. sklearn's InconsistentVersionWarning, recorded not shown


def check_trusted(scan: PickleScan, trust: bool) -> None:
    """Raise UntrustedInputError if the scan found globals outside the allow-list."""
    if scan.untrusted and not trust:
        listed = ", ".join(scan.untrusted)
        raise UntrustedInputError(
            f"{scan.path} would import and run code outside the allow-list when loaded: {listed}",
            hint=TRUST_HINT,
            details={"path": scan.path, "untrusted": list(scan.untrusted), "container": scan.container},
        )


# Module paths that libraries renamed; old pickles name the old ones.
_MODULE_RENAMES = {
    "__builtin__": "builtins",
    "copy_reg": "copyreg",
    "sklearn.externals.joblib.numpy_pickle": "joblib.numpy_pickle",
    "sklearn.externals.joblib": "joblib",
    "sklearn.linear_model.base": "sklearn.linear_model._base",
    "sklearn.linear_model.logistic": "sklearn.linear_model._logistic",
    "sklearn.ensemble.gradient_boosting": "sklearn.ensemble._gb",
    "sklearn.ensemble.forest": "sklearn.ensemble._forest",
    "sklearn.tree.tree": "sklearn.tree._classes",
    "sklearn.preprocessing.data": "sklearn.preprocessing._data",
    "sklearn.preprocessing.label": "sklearn.preprocessing._label",
    "sklearn.svm.classes": "sklearn.svm._classes",
}
_NAME_RENAMES = {
    # pandas < 2 pickles (the renames pandas' own read_pickle applies): the integer and
    # float indexes became Index with that dtype; blocks are rebuilt by _unpickle_block.
    ("pandas.core.indexes.numeric", "Int64Index"): ("pandas.core.indexes.base", "Index"),
    ("pandas.core.indexes.numeric", "UInt64Index"): ("pandas.core.indexes.base", "Index"),
    ("pandas.core.indexes.numeric", "Float64Index"): ("pandas.core.indexes.base", "Index"),
    ("pandas.core.internals.blocks", "new_block"): ("pandas._libs.internals", "_unpickle_block"),
    ("pandas._libs.tslibs.nattype", "__nat_unpickle"): ("pandas._libs.tslibs.nattype", "_nat_unpickle"),
    ("pandas.core.arrays.sparse.dtype", "SparseDtype"): ("pandas.core.dtypes.dtypes", "SparseDtype"),
    ("__builtin__", "unicode"): ("builtins", "str"),
    ("__builtin__", "basestring"): ("builtins", "str"),
    ("__builtin__", "long"): ("builtins", "int"),
    ("__builtin__", "xrange"): ("builtins", "range"),
}


def _remap(module: str, name: str) -> tuple[str, str]:
    if (module, name) in _NAME_RENAMES:
        return _NAME_RENAMES[(module, name)]
    if module in _MODULE_RENAMES:
        return _MODULE_RENAMES[module], name
    return module, name


def _before_import(module: str) -> None:
    """What a module needs from today's libraries before it can be imported."""
    if module.split(".")[0] == "sklearn_pandas":
        # sklearn-pandas 2.2 (its last release) imports sklearn.utils.tosequence, which
        # scikit-learn 1.7 removed; sklearn2pmml restores it the same way.
        import sklearn.utils

        if not hasattr(sklearn.utils, "tosequence"):
            def tosequence(x):
                return x if isinstance(x, (list, tuple)) else list(x) if hasattr(x, "__iter__") else [x]

            sklearn.utils.tosequence = tosequence


def _import(module: str) -> types.ModuleType:
    """Import `module`, trying the paths modern releases moved it to."""
    _before_import(module)
    candidates = [module]
    if (module == "numpy.core" or module.startswith("numpy.core.")) and importlib.util.find_spec("numpy._core") is not None:
        candidates.insert(0, "numpy._core" + module[len("numpy.core"):])  # numpy 2 renamed it
    if module.startswith("sklearn."):
        head, _, last = module.rpartition(".")
        if not last.startswith("_"):
            candidates.append(f"{head}._{last}")  # sklearn 0.22+ made submodules private
    error: Exception | None = None
    for cand in candidates:
        try:
            return importlib.import_module(cand)
        except ModuleNotFoundError as exc:
            error = error or exc
    assert error is not None
    raise error


def _resolve(module: str, name: str, trust: bool) -> Any:
    """find_class for both unpicklers: remap, enforce the allow-list, import."""
    new_module, new_name = _remap(module, name)
    if not trust and not (is_allowed(module, name) and is_allowed(new_module, new_name)):
        raise UntrustedInputError(
            f"refused to load {module}.{name}: it is outside the allow-list",
            hint=TRUST_HINT,
            details={"untrusted": [f"{module}.{name}"]},
        )
    if (new_module, new_name) == ("sklearn.tree._tree", "Tree"):
        return _upgrades.upgrading_tree()  # node arrays of scikit-learn < 1.3 get their new field
    if _upgrades.is_removed_target(new_module, new_name):
        try:
            return getattr(_import(new_module), new_name)
        except (ImportError, AttributeError):  # removed since: a placeholder that an upgrade replaces
            return _upgrades.removed_class(new_module, new_name)
    mod = _import(new_module)
    if "." in new_name:  # only reachable with --trust
        obj: Any = mod
        for part in new_name.split("."):
            obj = getattr(obj, part)
    else:
        obj = getattr(mod, new_name)
    if not trust:
        # The name passed; check what it really is. A module, or a function that an
        # allowed module merely imported from elsewhere (os.remove as sklearn.x.remove),
        # is refused on its own identity.
        real_module = getattr(obj, "__module__", None)
        real_name = getattr(obj, "__name__", new_name)
        if isinstance(obj, types.ModuleType) or (
            isinstance(real_module, str) and isinstance(real_name, str) and not is_allowed(real_module, real_name)
        ):
            raise UntrustedInputError(
                f"refused to load {module}.{name}: it is really {real_module}.{real_name}, outside the allow-list",
                hint=TRUST_HINT,
                details={"untrusted": [f"{module}.{name}"]},
            )
        if (new_module, new_name) == ("pyarrow.lib", "_restore_array"):
            return _validated(obj)
    return obj


def _validated(restore):
    """pyarrow's array rebuilder, checking each array it builds from the file's buffers
    (offsets and lengths inside the buffers) before anything reads it."""
    def restore_array(*args):
        array = restore(*args)
        array.validate(full=True)
        return array

    return restore_array


def _joblib_unpickler(filename: str, fh, trust: bool):
    from joblib.numpy_pickle import NumpyUnpickler  # joblib's reader knows the inline arrays

    class _GuardedNumpyUnpickler(NumpyUnpickler):
        def find_class(self, module, name):
            return _resolve(module, name, trust)

    try:
        unpickler = _GuardedNumpyUnpickler(filename, fh, ensure_native_byte_order=True)
    except TypeError:  # joblib < 1.3 has no ensure_native_byte_order
        unpickler = _GuardedNumpyUnpickler(filename, fh)
    unpickler.encoding = "latin1"  # Python 2 str -> text, as numpy needs for array bytes
    return unpickler


class _GuardedUnpickler(pickle.Unpickler):
    def __init__(self, fh, trust: bool):
        super().__init__(fh, encoding="latin1")
        self._trust = trust

    def find_class(self, module, name):
        return _resolve(module, name, self._trust)


# Import names whose pip package is named otherwise, or is installed by an mlconvert extra.
_PIP_NAMES = {
    "sklearn2pmml": "'mlconvert[pmml]'", "sklearn_pandas": "'mlconvert[pmml]'",
    "xgboost": "'mlconvert[classic]'", "lightgbm": "'mlconvert[classic]'", "catboost": "'mlconvert[classic]'",
    "sklearn": "'mlconvert[classic]'", "pyarrow": "'mlconvert[classic]'", "pandas": "pandas",
    "imblearn": "imbalanced-learn", "category_encoders": "category_encoders", "cv2": "opencv-python",
    "yaml": "pyyaml", "PIL": "pillow", "skopt": "scikit-optimize", "feature_engine": "feature-engine",
    "lifelines": "lifelines", "statsmodels": "statsmodels", "dask_ml": "dask-ml", "interpret": "interpret",
}


def installed(top: str) -> bool:
    """Whether a top-level module can be imported here (without importing it)."""
    try:
        return importlib.util.find_spec(top) is not None
    except (ImportError, ValueError):  # e.g. blocked with sys.modules[top] = None
        return False


def _missing_module(exc: BaseException) -> str | None:
    """The module an import failure names, when its package is not installed at all."""
    while exc is not None:
        if isinstance(exc, ModuleNotFoundError) and exc.name:
            return exc.name if not installed(exc.name.split(".")[0]) else None
        exc = exc.__cause__ or exc.__context__
    return None


def _missing_module_hint(module: str) -> str:
    top = module.split(".")[0]
    package = _PIP_NAMES.get(top, top)
    ours = package.startswith("'mlconvert[")
    return (f"the pickle needs the module {module}, which is not installed here: "
            f"pip install {package}" + ("" if ours else f" (the package that provides `{top}`; its name on "
                                        "the package index may differ)") + ", then run again")


def _load_failure_hint(scan: PickleScan, exc: BaseException | None = None) -> str:
    missing = _missing_module(exc) if exc is not None else None
    if missing:
        return _missing_module_hint(missing)
    recorded = scan.sklearn_version
    installed = probe.dist_version("scikit-learn") if scan.flavor == "sklearn" or recorded else None
    if recorded and installed and recorded != installed:
        older = probe.parse_version(recorded) < probe.parse_version(installed)
        return (
            f"this pickle was written by scikit-learn {recorded}; objects pickled by such "
            f"{'an old' if older else 'a newer'} release often can't be rebuilt by {installed}: "
            "re-export it with the version that wrote it (e.g. to ONNX, or to a pickle made there)"
        )
    if scan.python2:
        return "this pickle was written by Python 2; re-export it from an environment that can load it"
    return "the file may need a library version other than the one installed; re-export it where it was made"


def _sklearn_estimators(root: Any, budget: int = 20000) -> Iterator[Any]:
    """sklearn estimators reachable from `root` through attributes and containers."""
    seen: set[int] = set()
    todo = [root]
    while todo and budget > 0:
        obj = todo.pop()
        if id(obj) in seen:
            continue
        seen.add(id(obj))
        budget -= 1
        if isinstance(obj, (list, tuple)):
            todo.extend(obj)
        elif getattr(obj, "dtype", None) == object and hasattr(obj, "ravel"):  # e.g. a boosting's estimators_
            todo.extend(obj.ravel())
        elif isinstance(obj, dict):
            todo.extend(obj.values())
        elif type(obj).__module__.startswith("sklearn.") and hasattr(obj, "get_params"):
            yield obj
            todo.extend(vars(obj).values())


def _compat_fixups(obj: Any, scan: PickleScan) -> list[str]:
    """Make estimators pickled by an older scikit-learn usable, and say what differs.

    A constructor parameter added after the file was written is absent from the
    pickle, and predict() then fails on the missing attribute; sklearn gives new
    parameters defaults that keep the old behaviour, so they are filled with those.
    """
    installed = probe.dist_version("scikit-learn")
    if not scan.sklearn_version or not installed or scan.sklearn_version == installed:
        return []
    import inspect

    filled: list[str] = []
    notes: list[str] = []
    for est in _sklearn_estimators(obj):
        try:
            params = inspect.signature(type(est).__init__).parameters.values()
        except (TypeError, ValueError):
            continue
        for p in params:
            if p.name == "self" or p.kind in (p.VAR_POSITIONAL, p.VAR_KEYWORD) or p.default is p.empty:
                continue
            if p.name not in vars(est):
                setattr(est, p.name, p.default)
                filled.append(f"{type(est).__name__}.{p.name}={p.default!r}")
    if filled:
        notes.insert(
            0,
            f"filled parameters that scikit-learn {scan.sklearn_version} did not have with their "
            f"{installed} defaults: " + ", ".join(dict.fromkeys(filled)),
        )
    return list(dict.fromkeys(notes))


def load_pickle(path, trust: bool = False, *, max_decompressed: int = MAX_DECOMPRESSED) -> LoadedPickle:
    """Scan, refuse if untrusted (unless `trust`), then unpickle with a guarded find_class."""
    path = Path(path)
    scan = scan_pickle(path, max_decompressed=max_decompressed)
    check_trusted(scan, trust)
    _upgrades.reset()
    joblib_container = scan.container != "pickle"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with Opened(path, max_decompressed) as opened:
                if scan.container == "joblib-compressed:zfile" and any("NDArrayWrapper" in g for g in scan.globals):
                    import joblib  # only reachable with --trust: the legacy wrappers are not allow-listed

                    obj = joblib.load(str(path))
                elif joblib_container and scan.container != "joblib-compressed:zfile":
                    obj = _joblib_unpickler(str(path), opened.stream, trust).load()
                else:
                    obj = _GuardedUnpickler(opened.stream, trust).load()
        except MlconvertError:
            raise
        except Exception as exc:
            installed = probe.dist_version("scikit-learn")
            raise InputError(
                f"{path} could not be loaded: {type(exc).__name__}: {exc}",
                hint=_load_failure_hint(scan, exc),
                details={
                    "path": str(path),
                    "top_class": scan.top_class,
                    "sklearn_version_recorded": scan.sklearn_version,
                    "sklearn_version_installed": installed,
                },
            ) from exc
    messages: list[str] = []
    for w in caught:
        text = f"{w.category.__name__}: {w.message}"
        if text not in messages:
            messages.append(text)
    try:
        messages.extend(_compat_fixups(obj, scan))
    except Exception as exc:  # a fix-up must never turn a loaded model into a failure
        messages.append(f"compatibility fix-ups skipped: {type(exc).__name__}: {exc}")
    try:
        obj, upgraded = _upgrades.upgrade(obj, scan.sklearn_version)
    except ValueError as exc:
        raise InputError(
            f"{path} holds {exc}, which scikit-learn {scan.sklearn_version or '(version not recorded)'} wrote "
            f"and {probe.dist_version('scikit-learn')} no longer has; what it computed cannot be rebuilt with "
            "certainty",
            hint="re-export it with the version that wrote it (e.g. to ONNX, or to a pickle made there), or "
                 "pass --expected with predictions recorded there to check a conversion against them",
            details={"path": str(path), "removed": str(exc), "sklearn_version_recorded": scan.sklearn_version},
        ) from None
    messages.extend(upgraded)
    return LoadedPickle(obj=obj, scan=scan, warnings=messages)
