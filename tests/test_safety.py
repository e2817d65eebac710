"""The pickle / joblib format: static scan (formats/_pickle_scan), allow-list
(mlconvert.safety), guarded load (formats/_pickle_load).

The malicious pickles here would create a MARKER file if anything unpickled them;
every test that handles one asserts the file never appears.
"""
from __future__ import annotations

import collections
import importlib
import io
import os
import pickle
import pickletools
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from mlconvert import safety
from mlconvert.formats._pickle_load import check_trusted, load_pickle
from mlconvert.formats._pickle_scan import scan_pickle
from mlconvert.errors import InputError, UntrustedInputError
from mlconvert.formats import pickle_joblib as pj

REALWORLD = Path(__file__).resolve().parents[2] / "shared" / "realworld"
SKLEARN_RW = REALWORLD / "sklearn"


# --------------------------------------------------------------------------------------
# helpers
# --------------------------------------------------------------------------------------


class Evil:
    """Unpickling an instance calls `func(*args)`."""

    def __init__(self, func, *args):
        self.func = func
        self.args = args

    def __reduce__(self):
        return (self.func, self.args)


class Harmless:
    """A class outside the allow-list that does nothing when unpickled."""

    def __init__(self, value=1):
        self.value = value

    def __eq__(self, other):
        return isinstance(other, Harmless) and other.value == self.value


def _unicode(s: str) -> bytes:
    data = s.encode()
    return b"\x8c" + bytes([len(data)]) + data  # SHORT_BINUNICODE


def _stack_global_from_memo(module: str, name: str, cmd: str, put: str = "MEMOIZE") -> bytes:
    """A protocol-4 pickle that builds `module.name` from strings fetched back from the memo."""
    if put == "MEMOIZE":
        put0, put1 = b"\x94", b"\x94"
    elif put == "BINPUT":
        put0, put1 = b"q\x00", b"q\x01"
    else:  # LONG_BINPUT
        put0, put1 = b"r" + struct.pack("<I", 0), b"r" + struct.pack("<I", 1)
    body = (
        _unicode(module) + put0 + b"0"  # push, memoise, POP
        + _unicode(name) + put1 + b"0"
        + _unicode("decoy") + b"0"
        + b"h\x00"  # BINGET 0
        + b"j" + struct.pack("<I", 1)  # LONG_BINGET 1
        + b"\x93"  # STACK_GLOBAL
        + _unicode(cmd) + b"\x85"  # TUPLE1
        + b"R."  # REDUCE, STOP
    )
    return b"\x80\x04" + body


def _write(tmp_path: Path, name: str, data: bytes) -> Path:
    p = tmp_path / name
    p.write_bytes(data)
    return p


def _assert_refused_everywhere(path: Path, marker: Path, expected_global: str) -> None:
    scan = scan_pickle(path)
    assert expected_global in scan.untrusted
    assert not scan.trusted
    with pytest.raises(UntrustedInputError) as info:
        load_pickle(path)
    assert expected_global in info.value.message
    assert "--trust" in info.value.hint
    assert info.value.exit_code == 7
    with pytest.raises(UntrustedInputError):
        pj.load(path).model
    desc = pj.describe(path)
    assert expected_global in desc["details"]["untrusted"]
    assert any("--trust" in w for w in desc["warnings"])
    assert not marker.exists(), "the pickle's code ran"


# --------------------------------------------------------------------------------------
# malicious pickles are refused, and nothing runs
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("protocol", [0, 2, 4, 5])
def test_os_system_refused(tmp_path, protocol):
    marker = tmp_path / "MARKER"
    path = _write(tmp_path, "evil.pkl", pickle.dumps(Evil(os.system, f"touch {marker}"), protocol=protocol))
    _assert_refused_everywhere(path, marker, f"{os.system.__module__}.system")


@pytest.mark.parametrize("protocol, spelled", [(2, "__builtin__.eval"), (4, "builtins.eval")])
def test_eval_refused(tmp_path, protocol, spelled):
    marker = tmp_path / "MARKER"
    code = f"__import__('os').system('touch {marker}')"
    path = _write(tmp_path, "evil.pkl", pickle.dumps(Evil(eval, code), protocol=protocol))
    _assert_refused_everywhere(path, marker, spelled)


def test_popen_refused(tmp_path):
    marker = tmp_path / "MARKER"
    path = _write(tmp_path, "evil.pkl", pickle.dumps(Evil(subprocess.Popen, ["touch", str(marker)]), protocol=5))
    _assert_refused_everywhere(path, marker, "subprocess.Popen")


@pytest.mark.parametrize("put", ["MEMOIZE", "BINPUT", "LONG_BINPUT"])
def test_stack_global_from_memoised_strings(tmp_path, put):
    marker = tmp_path / "MARKER"
    data = _stack_global_from_memo("os", "system", f"touch {marker}", put=put)
    pickletools.dis(data, out=io.StringIO())  # a well-formed pickle (dis checks stack and memo; runs nothing)
    path = _write(tmp_path, "evil.pkl", data)
    scan = scan_pickle(path)
    assert scan.globals == ["os.system"]
    assert "decoy" not in " ".join(scan.globals)
    _assert_refused_everywhere(path, marker, "os.system")


def test_evil_hidden_inside_a_model(tmp_path):
    from sklearn.linear_model import LogisticRegression

    marker = tmp_path / "MARKER"
    model = LogisticRegression()
    model.some_attribute = Evil(os.system, f"touch {marker}")
    path = _write(tmp_path, "model.pkl", pickle.dumps(model, protocol=5))
    _assert_refused_everywhere(path, marker, f"{os.system.__module__}.system")
    assert scan_pickle(path).flavor == "sklearn"


def test_evil_inside_joblib_object_array(tmp_path):
    """joblib writes object arrays as a nested pickle after the wrapper; it is scanned too."""
    joblib = pytest.importorskip("joblib")
    np = pytest.importorskip("numpy")
    marker = tmp_path / "MARKER"
    arr = np.empty(2, dtype=object)
    arr[0] = "fine"
    arr[1] = Evil(os.system, f"touch {marker}")
    path = tmp_path / "evil.joblib"
    joblib.dump({"x": np.arange(5.0), "objs": arr}, path)
    assert scan_pickle(path).container == "joblib"
    _assert_refused_everywhere(path, marker, f"{os.system.__module__}.system")


def test_attribute_path_gadget_refused(tmp_path):
    """Protocol 4 resolves dotted names with getattr: sklearn.base.clone.__builtins__ is not sklearn."""
    data = b"\x80\x04" + _unicode("sklearn.base") + _unicode("clone.__builtins__") + b"\x93."
    path = _write(tmp_path, "gadget.pkl", data)
    scan = scan_pickle(path)
    assert scan.untrusted == ["sklearn.base.clone.__builtins__"]
    with pytest.raises(UntrustedInputError):
        load_pickle(path)


@pytest.mark.parametrize(
    "module, name",
    [
        ("numpy", "load"),
        ("numpy.testing._private.utils", "runstring"),
        ("numpy.lib.stride_tricks", "as_strided"),
        ("numpy", "fromfile"),
        ("joblib", "load"),
        ("joblib.numpy_pickle", "load"),
        ("sklearn.externals.joblib", "load"),
        ("sklearn.datasets", "fetch_openml"),
        ("sklearn.utils._testing", "assert_run_python_script_without_output"),
        ("scipy.io", "loadmat"),
        ("builtins", "getattr"),
        ("builtins", "__import__"),
        ("builtins", "open"),
        ("__builtin__", "apply"),
        ("collections", "Counter"),
        ("joblib.numpy_pickle", "NDArrayWrapper"),
        ("os", "system"),
    ],
)
def test_deny_list(module, name):
    assert not safety.is_allowed(module, name)


@pytest.mark.parametrize(
    "module, name",
    [
        ("sklearn.linear_model._logistic", "LogisticRegression"),
        ("numpy.core.multiarray", "_reconstruct"),
        ("numpy._core.numeric", "_frombuffer"),
        ("numpy", "dtype"),
        ("numpy.random._pickle", "__randomstate_ctor"),
        ("scipy.sparse._csr", "csr_matrix"),
        ("joblib.numpy_pickle", "NumpyArrayWrapper"),
        ("sklearn.externals.joblib.numpy_pickle", "NumpyArrayWrapper"),
        ("copy_reg", "_reconstructor"),
        ("__builtin__", "set"),
        ("builtins", "frozenset"),
        ("_codecs", "encode"),
        ("collections", "OrderedDict"),
        ("xgboost.core", "Booster"),
    ],
)
def test_allow_list(module, name):
    assert safety.is_allowed(module, name)


def _reexported_function():
    """An allowed-looking name that is really a function from elsewhere (e.g. functools.reduce)."""
    for modname in ("sklearn.utils.validation", "sklearn.pipeline", "sklearn.utils._param_validation"):
        mod = importlib.import_module(modname)
        for key, value in sorted(vars(mod).items()):
            real = getattr(value, "__module__", None)
            if (
                callable(value)
                and not isinstance(value, type)
                and isinstance(real, str)
                and safety.is_allowed(modname, key)
                and not safety.is_allowed(real, getattr(value, "__name__", key))
            ):
                return modname, key
    return None


def test_find_class_checks_what_a_name_really_is(tmp_path):
    """Defence in depth: the static scan trusts the name, the loader checks the object."""
    pytest.importorskip("sklearn")
    found = _reexported_function()
    if found is None:
        pytest.skip("no re-exported foreign function found in the sampled sklearn modules")
    module, name = found
    data = b"\x80\x02c" + f"{module}\n{name}\n".encode() + b"."
    path = _write(tmp_path, "reexport.pkl", data)
    assert scan_pickle(path).trusted  # the name alone looks fine...
    with pytest.raises(UntrustedInputError, match="really"):
        load_pickle(path)  # ...but it is not an ML object
    assert load_pickle(path, trust=True).obj is getattr(importlib.import_module(module), name)


# --------------------------------------------------------------------------------------
# --trust
# --------------------------------------------------------------------------------------


def test_trust_loads_a_counter(tmp_path):
    counter = collections.Counter("abracadabra")
    path = _write(tmp_path, "counter.pkl", pickle.dumps(counter, protocol=4))
    scan = scan_pickle(path)
    assert scan.untrusted == ["collections.Counter"]
    with pytest.raises(UntrustedInputError) as info:
        check_trusted(scan, trust=False)
    assert "collections.Counter" in info.value.message
    check_trusted(scan, trust=True)
    loaded = load_pickle(path, trust=True)
    assert loaded.obj == counter
    assert pj.load(path, trust=True).model == counter


@pytest.mark.parametrize("protocol", [0, 1, 2, 5])
def test_trust_loads_own_class(tmp_path, protocol):
    obj = Harmless(42)
    path = _write(tmp_path, "own.pkl", pickle.dumps(obj, protocol=protocol))
    scan = scan_pickle(path)
    own = f"{Harmless.__module__}.Harmless"
    assert own in scan.untrusted
    assert scan.top_class == own
    if protocol < 2:  # Python 3 spells it the Python 2 way for old protocols
        assert "copy_reg._reconstructor" in scan.globals
    with pytest.raises(UntrustedInputError):
        load_pickle(path)
    assert load_pickle(path, trust=True).obj == obj


# --------------------------------------------------------------------------------------
# real scikit-learn / xgboost / lightgbm / catboost models
# --------------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def iris():
    datasets = pytest.importorskip("sklearn.datasets")
    return datasets.load_iris(return_X_y=True)


@pytest.fixture(scope="module")
def sk_models(iris):
    from sklearn.ensemble import RandomForestClassifier
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import Pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = iris
    return {
        "logreg": LogisticRegression(max_iter=1000).fit(X, y),
        "pipeline": Pipeline([("scale", StandardScaler()), ("clf", LogisticRegression(max_iter=1000))]).fit(X, y),
        "forest": RandomForestClassifier(n_estimators=4, max_depth=3, random_state=0).fit(X, y),
    }


_TOP = {
    "logreg": ("sklearn.linear_model._logistic.LogisticRegression", []),
    "pipeline": ("sklearn.pipeline.Pipeline", ["StandardScaler", "LogisticRegression"]),
    "forest": ("sklearn.ensemble._forest.RandomForestClassifier", []),
}

_WRITERS = {
    "pickle0": ("pickle", 0),
    "pickle1": ("pickle", 1),
    "pickle2": ("pickle", 2),
    "pickle4": ("pickle", 4),
    "pickle5": ("pickle", 5),
    "joblib": ("joblib", 0),
    "joblib-zlib": ("joblib-compressed:zlib", 3),
    "joblib-gzip": ("joblib-compressed:gzip", ("gzip", 3)),
    "joblib-bz2": ("joblib-compressed:bz2", ("bz2", 3)),
    "joblib-xz": ("joblib-compressed:xz", ("xz", 3)),
    "joblib-lzma": ("joblib-compressed:lzma", ("lzma", 3)),
}


def _dump(obj, path: Path, writer: str) -> None:
    container, arg = _WRITERS[writer]
    if container == "pickle":
        path.write_bytes(pickle.dumps(obj, protocol=arg))
    else:
        import joblib

        joblib.dump(obj, path, compress=arg)


@pytest.mark.parametrize("writer", list(_WRITERS))
@pytest.mark.parametrize("model_name", list(_TOP))
def test_sklearn_models_scan_trusted_and_load(tmp_path, sk_models, iris, model_name, writer):
    import sklearn

    X, _y = iris
    model = sk_models[model_name]
    path = tmp_path / f"{model_name}.pkl"
    _dump(model, path, writer)

    scan = scan_pickle(path)
    assert scan.untrusted == [], scan.untrusted
    assert scan.trusted
    assert scan.flavor == "sklearn"
    assert scan.sklearn_version == sklearn.__version__ == "1.9.0"
    assert scan.versions["scikit-learn"] == sklearn.__version__
    assert scan.container == _WRITERS[writer][0]
    top, steps = _TOP[model_name]
    assert scan.top_class == top
    assert scan.steps == steps
    assert scan.n_features == 4
    assert scan.estimators[0] == top.rsplit(".", 1)[1]
    if writer.startswith("pickle"):
        assert scan.protocol == _WRITERS[writer][1]
    else:
        assert scan.protocol == pickle.DEFAULT_PROTOCOL
    assert not scan.python2

    loaded = load_pickle(path)
    assert type(loaded.obj) is type(model)
    assert (loaded.obj.predict(X) == model.predict(X)).all()
    assert not any("InconsistentVersionWarning" in w for w in loaded.warnings)

    desc = pj.describe(path)
    assert desc["kind"] == "classifier"
    assert desc["producer"] == "scikit-learn"
    assert desc["producer_version"] == sklearn.__version__
    assert desc["n_features"] == 4


def test_forest_estimators_collapsed(tmp_path, sk_models):
    path = tmp_path / "forest.pkl"
    path.write_bytes(pickle.dumps(sk_models["forest"], protocol=5))
    # the unfitted template `estimator` plus the 4 fitted trees
    assert scan_pickle(path).estimators == ["RandomForestClassifier", "DecisionTreeClassifier (x5)"]


def test_describe_kinds(tmp_path, iris):
    from sklearn.linear_model import LinearRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = iris
    cases = {
        "reg.pkl": (LinearRegression().fit(X, y), "regressor"),
        "scaler.pkl": (StandardScaler().fit(X), "transformer"),
        "regpipe.pkl": (make_pipeline(StandardScaler(), LinearRegression()).fit(X, y), "regressor"),
        "scalepipe.pkl": (make_pipeline(StandardScaler()).fit(X), "transformer"),
    }
    for name, (model, kind) in cases.items():
        path = tmp_path / name
        path.write_bytes(pickle.dumps(model, protocol=5))
        assert pj.describe(path)["kind"] == kind, name


def test_xgboost_pickle(tmp_path, iris):
    xgboost = pytest.importorskip("xgboost")
    X, y = iris
    model = xgboost.XGBClassifier(n_estimators=3, max_depth=2).fit(X, y)
    path = tmp_path / "xgb.pkl"
    path.write_bytes(pickle.dumps(model, protocol=5))
    scan = scan_pickle(path)
    assert scan.flavor == "xgboost"
    assert scan.trusted
    assert scan.top_class == "xgboost.sklearn.XGBClassifier"
    assert scan.versions.get("xgboost") == xgboost.__version__
    desc = pj.describe(path)
    assert (desc["kind"], desc["producer"], desc["producer_version"]) == ("classifier", "xgboost", xgboost.__version__)
    assert (load_pickle(path).obj.predict(X) == model.predict(X)).all()


def test_lightgbm_pickle(tmp_path, iris):
    lightgbm = pytest.importorskip("lightgbm")
    X, y = iris
    model = lightgbm.LGBMRegressor(n_estimators=3, verbose=-1).fit(X, y)
    path = tmp_path / "lgbm.joblib"
    pj.save(model, path)
    scan = scan_pickle(path)
    assert scan.flavor == "lightgbm"
    assert scan.trusted
    assert scan.top_class == "lightgbm.sklearn.LGBMRegressor"
    assert scan.n_features == 4
    assert pj.describe(path)["kind"] == "regressor"
    assert (pj.load(path).model.predict(X) == model.predict(X)).all()


def test_catboost_pickle(tmp_path, iris):
    catboost = pytest.importorskip("catboost")
    X, y = iris
    model = catboost.CatBoostClassifier(iterations=3, verbose=0, allow_writing_files=False).fit(X, y)
    path = tmp_path / "cb.pkl"
    path.write_bytes(pickle.dumps(model, protocol=5))
    scan = scan_pickle(path)
    assert scan.flavor == "catboost"
    assert scan.trusted
    assert scan.versions.get("catboost") == catboost.__version__
    assert pj.describe(path)["kind"] == "classifier"
    assert (load_pickle(path).obj.predict(X) == model.predict(X)).all()


def test_sklearn_pipeline_wrapping_xgboost_is_sklearn_flavor(tmp_path, iris):
    xgboost = pytest.importorskip("xgboost")
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    X, y = iris
    model = make_pipeline(StandardScaler(), xgboost.XGBClassifier(n_estimators=2, max_depth=2)).fit(X, y)
    path = tmp_path / "pipe.joblib"
    pj.save(model, path)
    scan = scan_pickle(path)
    assert scan.flavor == "sklearn"
    assert scan.steps == ["StandardScaler", "XGBClassifier"]
    assert "xgboost" in scan.versions
    assert pj.describe(path)["kind"] == "classifier"


# --------------------------------------------------------------------------------------
# joblib's inline arrays
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("compress", [0, 3, ("gzip", 1)])
@pytest.mark.parametrize("protocol", [2, 4, 5])
def test_joblib_array_zoo(tmp_path, compress, protocol):
    """Every array layout joblib writes inline must be stepped over exactly."""
    joblib = pytest.importorskip("joblib")
    np = pytest.importorskip("numpy")
    zoo = {
        "f8": np.linspace(0, 1, 37),
        "fortran": np.asfortranarray(np.arange(12.0).reshape(3, 4)),
        "bigendian": np.arange(7, dtype=">i4"),
        "bool": np.array([True, False, True]),
        "u1": np.arange(5, dtype=np.uint8),
        "unicode": np.array(["a", "bcd", "éé"]),
        "bytes": np.array([b"xy", b"z"]),
        "structured": np.zeros(3, dtype=[("a", "<i4"), ("b", "<f8", (2,))]),
        "datetime": np.array(["2020-01-01", "2021-06-30"], dtype="datetime64[ns]"),
        "complex": np.arange(4) * (1 + 2j),
        "scalar0d": np.array(3.5),
        "empty": np.zeros((0, 5)),
        "objects": np.array([1, "two", None], dtype=object),
        "nested": [np.arange(3), {"deeper": np.ones((2, 2), dtype=np.float32)}],
    }
    path = tmp_path / "zoo.joblib"
    joblib.dump(zoo, path, compress=compress, protocol=protocol)
    scan = scan_pickle(path)
    assert scan.trusted, scan.untrusted
    assert scan.top_class == "builtins.dict"
    assert scan.container == ("joblib" if not compress else f"joblib-compressed:{'zlib' if compress == 3 else 'gzip'}")
    back = load_pickle(path).obj
    for key in ("f8", "fortran", "bigendian", "unicode", "structured", "datetime", "scalar0d", "empty"):
        assert (back[key] == zoo[key]).all(), key
    assert list(back["objects"]) == [1, "two", None]
    assert (back["nested"][1]["deeper"] == 1).all()


def test_decompression_bomb_refused(tmp_path):
    joblib = pytest.importorskip("joblib")
    np = pytest.importorskip("numpy")
    path = tmp_path / "bomb.joblib"
    joblib.dump(np.zeros(2_000_000), path, compress=9)  # 16 MB of zeros, a few KB on disk
    assert path.stat().st_size < 100_000
    with pytest.raises(InputError, match="decompresses to more than"):
        scan_pickle(path, max_decompressed=1_000_000)
    assert scan_pickle(path).trusted  # within the default cap it is fine


def test_lz4_recognised(tmp_path):
    path = _write(tmp_path, "model.joblib", b"\x04\x22\x4d\x18" + b"\x00" * 32)
    assert pj.sniff(path.read_bytes(), path)
    try:
        import lz4  # noqa: F401
    except ImportError:
        with pytest.raises(InputError, match="lz4"):
            scan_pickle(path)
    else:
        with pytest.raises(InputError):
            scan_pickle(path)


# --------------------------------------------------------------------------------------
# broken input
# --------------------------------------------------------------------------------------


@pytest.mark.parametrize("writer", ["pickle5", "pickle2", "pickle0", "joblib", "joblib-zlib", "joblib-xz"])
def test_truncated_files(tmp_path, sk_models, writer):
    full = tmp_path / "full.pkl"
    _dump(sk_models["pipeline"], full, writer)
    data = full.read_bytes()
    marker_offsets = sorted({1, 2, 10, 50, len(data) // 3, len(data) // 2, len(data) - 2, len(data) - 1})
    for cut in marker_offsets:
        path = _write(tmp_path, f"cut{cut}.pkl", data[:cut])
        with pytest.raises(InputError) as info:
            scan_pickle(path)
        assert info.value.exit_code == 3
        assert str(path) in info.value.message
        with pytest.raises(InputError):
            load_pickle(path)
        with pytest.raises(InputError):
            pj.describe(path)


def test_truncation_message_says_where(tmp_path, sk_models):
    data = pickle.dumps(sk_models["logreg"], protocol=2)
    path = _write(tmp_path, "cut.pkl", data[: len(data) // 2])
    with pytest.raises(InputError) as info:
        scan_pickle(path)
    assert "byte" in info.value.message
    assert "truncated" in info.value.message or "ends" in info.value.message


@pytest.mark.parametrize(
    "data",
    [
        b"",
        b"\x80\x05garbage",
        b"\x80\x02}q\x00h\x07.",  # BINGET of a memo slot never written
        b"\x80\x02t.",  # TUPLE without MARK
        b"\x80\x09N.",  # unknown protocol
        b"\x80\x04\x95\xff\xff\xff\xff\xff\xff\xff\x7f",  # FRAME announcing exabytes
        b"\x80\x04\x8e\x00\x00\x00\x00\x00\x00\x00\x10abc",  # BINBYTES8 longer than the file
        b"this is not a pickle at all\n",
    ],
)
def test_corrupt_streams(tmp_path, data):
    path = _write(tmp_path, "bad.pkl", data)
    with pytest.raises(InputError):
        scan_pickle(path)


def test_corrupt_compressed_stream(tmp_path):
    path = _write(tmp_path, "bad.joblib", b"\x78\x9c" + b"\xff" * 40)
    with pytest.raises(InputError, match="corrupt zlib|truncated|ends"):
        scan_pickle(path)


def test_scanner_handles_every_pickle_opcode():
    from mlconvert.formats import _pickle_scan

    assert set(_pickle_scan._HANDLERS) | {"STOP"} == {op.name for op in pickletools.opcodes}


# --------------------------------------------------------------------------------------
# the per-process scan cache
# --------------------------------------------------------------------------------------


def test_unchanged_file_is_scanned_once(tmp_path):
    path = _write(tmp_path, "m.pkl", pickle.dumps(collections.OrderedDict(a=1), protocol=4))
    assert scan_pickle(path) is scan_pickle(path)


def test_replaced_file_is_scanned_again(tmp_path):
    path = _write(tmp_path, "m.pkl", b"cbuiltins\nset\n.")
    assert scan_pickle(path).trusted
    st = path.stat()
    swap = _write(tmp_path, "swap.pkl", b"cposix\nsystem\n.")  # the same size...
    os.utime(swap, ns=(st.st_atime_ns, st.st_mtime_ns))  # ...and modification time
    os.replace(swap, path)
    assert (path.stat().st_size, path.stat().st_mtime_ns) == (st.st_size, st.st_mtime_ns)
    assert scan_pickle(path).untrusted == ["posix.system"]


# --------------------------------------------------------------------------------------
# protocol 0 / Python 2
# --------------------------------------------------------------------------------------


def test_protocol0_plain_values(tmp_path):
    value = {"a": [1, 2.5, None, True], "b": ("x", b"\x00\xff"), "c": {1, 2}, "d": frozenset({3})}
    path = _write(tmp_path, "p0.pkl", pickle.dumps(value, protocol=0))
    scan = scan_pickle(path)
    assert scan.protocol == 0
    assert scan.trusted, scan.untrusted
    assert set(scan.globals) <= {"_codecs.encode", "__builtin__.set", "__builtin__.frozenset"}
    assert not scan.python2  # Python 3 spells builtins the old way for protocols < 3
    assert load_pickle(path).obj == value


def test_python2_style_pickle(tmp_path):
    # what Python 2 writes for set(['a', 'b']) with protocol 2
    data = b"\x80\x02c__builtin__\nset\nq\x00]q\x01(U\x01aq\x02U\x01bq\x03e\x85q\x04Rq\x05."
    path = _write(tmp_path, "py2.pkl", data)
    scan = scan_pickle(path)
    assert scan.python2
    assert scan.globals == ["__builtin__.set"]
    assert scan.trusted
    assert load_pickle(path).obj == {"a", "b"}


# --------------------------------------------------------------------------------------
# sniff / describe / save
# --------------------------------------------------------------------------------------


def test_sniff(tmp_path):
    p = Path("m.pkl")
    for proto in (2, 3, 4, 5):
        assert pj.sniff(pickle.dumps([1], protocol=proto), Path("anything.bin"))
    p0 = pickle.dumps({"a": [1, 2]}, protocol=0)
    assert pj.sniff(p0, p)
    assert not pj.sniff(p0, Path("m.txt"))  # no magic: needs a pickle-ish name
    assert pj.sniff(b"\x1f\x8b\x08\x00rest", Path("m.joblib.gz"))
    assert pj.sniff(b"\x78\x9c\x01\x02", Path("model.pkl"))
    assert pj.sniff(b"BZh91AY", Path("model.joblib"))
    assert not pj.sniff(b"\x1f\x8b\x08\x00rest", Path("data.csv.gz"))  # not every gzip file
    assert not pj.sniff(b"a,b,c\n1,2,3\n", p)
    assert not pj.sniff(b"\x89HDF\r\n\x1a\n", p)
    assert not pj.sniff(b"PK\x03\x04", p)
    assert not pj.sniff(b"\x80\x07", p)


def test_save_round_trip(tmp_path, sk_models, iris):
    X, _ = iris
    model = sk_models["pipeline"]
    for name, container in [
        ("m.pkl", "pickle"),
        ("m.joblib", "joblib"),
        ("m.joblib.gz", "joblib-compressed:gzip"),
        ("m.pkl.z", "joblib-compressed:zlib"),
    ]:
        path = tmp_path / name
        pj.save(model, path)
        assert [p.name for p in tmp_path.iterdir() if p.name.endswith(".partial")] == []
        scan = scan_pickle(path)
        assert scan.container == container, name
        if name == "m.pkl":
            assert scan.protocol == 5
        assert (pj.load(path).model.predict(X) == model.predict(X)).all()


def test_static_paths_import_no_ml_library(tmp_path, sk_models):
    """sniff/describe/scan never unpickle, so they must not even import the ML libraries."""
    path = tmp_path / "m.joblib"
    pj.save(sk_models["pipeline"], path)
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from mlconvert.formats import pickle_joblib as pj\n"
        f"p = Path({str(path)!r})\n"
        "assert pj.sniff(p.read_bytes()[:4096], p)\n"
        "d = pj.describe(p)\n"
        "assert d['flavor'] == 'sklearn', d\n"
        "heavy = [m for m in ('sklearn', 'numpy', 'joblib', 'scipy') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True)


# --------------------------------------------------------------------------------------
# real-world files (read in place, never copied)
# --------------------------------------------------------------------------------------


def _rw(name: str) -> Path:
    path = SKLEARN_RW / name
    if not path.exists():
        pytest.skip(f"real-world file {name} not present")
    return path


@pytest.mark.realworld
def test_rw_0bvdnt_iris_pipeline(iris):
    path = _rw("0bvdnt_iris_pipeline.joblib")
    scan = scan_pickle(path)
    assert scan.trusted, scan.untrusted
    assert (scan.container, scan.protocol, scan.sklearn_version) == ("joblib", 5, "1.8.0")
    assert scan.top_class == "sklearn.pipeline.Pipeline"
    assert scan.steps == ["StandardScaler", "LogisticRegression"]
    loaded = load_pickle(path)
    assert any("InconsistentVersionWarning" in w for w in loaded.warnings)  # recorded, not shown
    X, y = iris
    assert (loaded.obj.predict(X) == y).mean() > 0.9


@pytest.mark.realworld
def test_rw_olmaditekrar_python2_joblib():
    path = _rw("olmaditekrar_iris_logreg.joblib.pkl")
    scan = scan_pickle(path)
    assert scan.trusted, scan.untrusted
    assert scan.python2
    assert (scan.container, scan.protocol, scan.sklearn_version) == ("joblib", 2, "0.19.1")
    assert "sklearn.externals.joblib.numpy_pickle.NumpyArrayWrapper" in scan.globals
    assert scan.top_class == "sklearn.linear_model.logistic.LogisticRegression"
    try:
        loaded = load_pickle(path)
    except InputError as exc:  # allowed outcome: a clear message naming both versions
        assert "0.19.1" in exc.hint
        return
    label = loaded.obj.predict([[1.0, 2.0, 0.0, 0.0]])
    assert label[0] in (0, 1, 2)
    assert any("one-vs-rest" in w for w in loaded.warnings)


@pytest.mark.realworld
def test_rw_krishnaik_linear_regression_remapped():
    path = _rw("krishnaik_flask_LinearRegression.pkl")
    scan = scan_pickle(path)
    assert scan.trusted
    assert scan.top_class == "sklearn.linear_model.base.LinearRegression"
    assert scan.sklearn_version == "0.20.2"
    loaded = load_pickle(path)
    assert type(loaded.obj).__module__ == "sklearn.linear_model._base"
    pred = loaded.obj.predict([[2, 9, 6]])
    assert pred[0] == pytest.approx(53290.89, abs=0.01)
    assert any("positive" in w for w in loaded.warnings)  # the parameter 0.20.2 did not have


@pytest.mark.realworld
@pytest.mark.parametrize("stem", ["skl0192_GradientBoostingRegressor", "skl0192_LogisticRegressionMulti"])
def test_rw_skl0192(stem):
    np = pytest.importorskip("numpy")
    model_path = _rw(f"{stem}.model.pkl")
    scan = scan_pickle(model_path)
    assert scan.trusted, scan.untrusted
    assert scan.sklearn_version == "0.19.2"
    assert scan.protocol == 3
    X = load_pickle(_rw(f"{stem}.data.pkl")).obj
    expected = load_pickle(_rw(f"{stem}.expected.pkl")).obj
    try:
        loaded = load_pickle(model_path)
    except InputError as exc:
        assert "0.19.2" in exc.hint and "1.9" in exc.hint
        assert exc.exit_code == 3
        return
    model = loaded.obj
    if hasattr(model, "predict_proba"):
        labels, probas = expected[0], expected[1]
        assert (model.predict(X) == np.ravel(labels)).all()
        if not np.allclose(model.predict_proba(X), probas, atol=1e-6):
            # the loader must have said why the probabilities moved
            assert any("one-vs-rest" in w for w in loaded.warnings)
    else:
        assert np.allclose(model.predict(X), np.ravel(expected[0]), atol=1e-6)
