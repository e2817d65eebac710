"""The static scan of a pickle or joblib file: what it would import, never unpickled.

`scan_pickle` runs a file's pickle stream through a small symbolic stack machine
over `pickletools.genops`: every opcode has a handler in `_HANDLERS` that pushes
placeholders (`_Global`, `_Obj`, `_SDict`...) instead of real objects. The result,
a `PickleScan`, lists every global the file names, those outside the allow-list
(mlconvert.safety), and what it can tell about the model (flavor, top class,
library versions, number of features) without running anything.

joblib files are not plain pickles: `joblib.dump` writes each numpy array's raw
bytes into the stream right after the BUILD opcode of a `NumpyArrayWrapper` (and
object arrays as a nested pickle), and may compress the whole stream
(_pickle_stream). The walker knows both.

Only the standard library is imported at module level.
"""
from __future__ import annotations

import copyreg
import io
import pickle
import pickletools
import re
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Callable

from mlconvert.errors import InputError
from mlconvert.formats import _ubjson
from mlconvert.formats._pickle_stream import CHUNK, MAX_DECOMPRESSED, Broken, Opened, Stream
from mlconvert.safety import is_allowed

__all__ = ["PickleScan", "scan_pickle", "probe_pickle_head"]

# Bytes / str values longer than this are not kept by the scanner, only their size.
_KEEP_LIMIT = 4096
# Object-dtype arrays in joblib files are nested pickles; nesting deeper than this
# is not something joblib writes.
_MAX_NESTING = 32
MAX_OPS_BASE = 1_000_000
MAX_OPS_PER_BYTE = 16
"""The scan's work is bounded by the file's size on disk: a real pickle holds at most a few
opcodes per byte even compressed (array data is skipped, not walked), while a megabyte of
gzip can unfold into a billion NONE/POP opcodes."""

_FAMILIES = {"sklearn": "sklearn", "xgboost": "xgboost", "lightgbm": "lightgbm", "catboost": "catboost"}


def _family(module: str) -> str | None:
    return _FAMILIES.get(module.split(".", 1)[0])


@dataclass(frozen=True)
class PickleScan:
    """What a static scan found. Nothing here came from running the file."""

    path: str
    protocol: int
    container: str  # "pickle" | "joblib" | "joblib-compressed:<zlib|gzip|bz2|xz|lzma|lz4|zfile>"
    globals: list[str]  # sorted "module.name"
    untrusted: list[str]  # the globals outside the allow-list, sorted
    flavor: str  # sklearn | xgboost | lightgbm | catboost | unknown
    top_class: str | None  # class of the object the file holds, "module.Name"
    sklearn_version: str | None
    versions: dict[str, str] = field(default_factory=dict)  # e.g. {"scikit-learn": "1.9.0", "xgboost": "3.2.0"}
    n_features: int | None = None
    feature_names: list[str] = field(default_factory=list)  # the input columns' names (feature_names_in_)
    estimators: list[str] = field(default_factory=list)  # class names in stream order; runs as "Name (xN)"
    steps: list[str] = field(default_factory=list)  # Pipeline step classes, when the top object is a Pipeline
    python2: bool = False  # written by Python 2 (its str opcodes: STRING / BINSTRING / SHORT_BINSTRING)
    stream_bytes: int = 0  # pickle bytes walked (after decompression)
    notes: list[str] = field(default_factory=list)

    @property
    def trusted(self) -> bool:
        return not self.untrusted

    def to_dict(self) -> dict:
        return asdict(self)


# --------------------------------------------------------------------------------------
# The symbolic pickle machine
# --------------------------------------------------------------------------------------


class _Global:
    __slots__ = ("module", "name")

    def __init__(self, module: str, name: str):
        self.module = module
        self.name = name

    @property
    def dotted(self) -> str:
        return f"{self.module}.{self.name}"


class _Obj:
    """Something the unpickler would construct (REDUCE / NEWOBJ / INST / OBJ)."""

    __slots__ = ("cls", "args", "state", "seq")

    def __init__(self, cls: Any, args: Any, seq: int):
        self.cls = cls
        self.args = args
        self.state = None
        self.seq = seq


class _SDict:
    __slots__ = ("items",)

    def __init__(self, items=None):
        self.items = list(items or [])

    def get(self, key, default=None):
        for k, v in self.items:
            if k == key:
                return v
        return default

    def has(self, key) -> bool:
        return any(k == key for k, _ in self.items)


class _SSet:
    __slots__ = ("items", "frozen")

    def __init__(self, items=None, frozen=False):
        self.items = list(items or [])
        self.frozen = frozen


class _Blob:
    """A long bytes / str value: only its size (and any version it revealed) is kept."""

    __slots__ = ("size", "head")

    def __init__(self, size: int, head: Any = None):
        self.size = size
        self.head = head


_MISSING = object()
_WRAPPER_MODULES = ("joblib.numpy_pickle", "sklearn.externals.joblib.numpy_pickle")
_RECONSTRUCTORS = {
    ("copyreg", "_reconstructor"),
    ("copy_reg", "_reconstructor"),
    ("numpy.core.multiarray", "_reconstruct"),
    ("numpy._core.multiarray", "_reconstruct"),
}
_PY2_STR_OPS = {"STRING", "BINSTRING", "SHORT_BINSTRING"}


def _pop_mark(stack: list, meta: list) -> list:
    if not meta:
        raise Broken("MARK expected but the stack has none (corrupt stream)")
    items = stack[:]
    stack[:] = meta.pop()
    return items


class _Acc:
    """What the walk accumulates across nested streams."""

    def __init__(self):
        self.globals: dict[tuple[str, str], None] = {}  # ordered set, stream order
        self.dynamic: list[str] = []  # STACK_GLOBAL / EXT we could not name
        self.protocol: int | None = None
        self.max_op_proto = 0
        self.python2 = False
        self.seq = 0
        self.estimators: list[tuple[int, str, str]] = []  # (construction order, name, module)
        self.sklearn_versions: list[str] = []
        self.n_features: int | None = None
        # id(object) -> (n_features_in_, feature_names_in_) of each fitted estimator
        self.inputs: dict[int, tuple[int | None, list[str]]] = {}
        self.versions: dict[str, str] = {}
        self.wrappers = 0
        self.notes: list[str] = []
        self.ops = 0
        self.max_ops = MAX_OPS_BASE

    def note(self, text: str) -> None:
        if text not in self.notes:
            self.notes.append(text)


def _class_of(obj: Any) -> _Global | None:
    """The class an _Obj stands for, looking through reconstructor helpers."""
    if not isinstance(obj, _Obj):
        return None
    cls = obj.cls
    if isinstance(cls, _Global) and (cls.module, cls.name) in _RECONSTRUCTORS:
        if isinstance(obj.args, tuple) and obj.args and isinstance(obj.args[0], _Global):
            return obj.args[0]
    if isinstance(cls, _Global) and cls.name == "NumpyArrayWrapper" and isinstance(obj.state, _SDict):
        sub = obj.state.get("subclass")
        if isinstance(sub, _Global):
            return sub
    return cls if isinstance(cls, _Global) else None


def _state_dict(state: Any) -> _SDict | None:
    if isinstance(state, _SDict):
        return state
    if isinstance(state, tuple) and len(state) == 2 and isinstance(state[0], _SDict):
        return state[0]  # (dict state, slot state)
    return None


def _version_from_blob(data: bytes | str) -> tuple[str, str] | None:
    """xgboost / catboost / lightgbm record versions inside their model blobs."""
    if isinstance(data, (bytes, bytearray)):
        head = bytes(data[: 1 << 20])
        if head.startswith(b"{"):  # xgboost UBJSON ("{L") or JSON
            # xgboost UBJSON: ...L<len 7>version[#L<3>i<major>i<minor>i<patch>
            m = re.search(rb"version\[#[iUIlL]", head)
            if m:
                parts = _ubjson.int_array(head, m.end() - 1, max_count=4)  # at the count's type marker
                if parts:
                    return "xgboost", ".".join(map(str, parts))
            m = re.search(rb'"version"\s*:\s*\[\s*(\d+)\s*,\s*(\d+)\s*,\s*(\d+)\s*\]', head)
            if m:
                return "xgboost", ".".join(x.decode() for x in m.groups())
        if head.startswith(b"CBM1"):
            m = re.search(rb"Branch: tags/v(\d+(?:\.\d+)+)", data) or re.search(
                rb"CatBoost release (\d+(?:\.\d+)+)", data
            )
            if m:
                return "catboost", m.group(1).decode()
    elif isinstance(data, str) and data.startswith("tree\nversion="):
        line = data[5 : data.find("\n", 5)]
        return "lightgbm-model-format", line.split("=", 1)[1]
    return None


def _keep(value: Any, acc: _Acc) -> Any:
    """Replace long bytes/str by a size placeholder, noting versions they reveal."""
    if isinstance(value, (bytes, bytearray, str)) and len(value) > _KEEP_LIMIT:
        found = _version_from_blob(value)
        if found:
            acc.versions.setdefault(*found)
        return _Blob(len(value))
    return value


def _dtype_info(dtype: Any) -> tuple[int, bool]:
    """(itemsize, has_object) of a pickled numpy dtype, from its reduce args + state."""
    if not isinstance(dtype, _Obj) or not isinstance(dtype.args, tuple) or not dtype.args:
        raise Broken("joblib array wrapper without a readable dtype")
    typestr = dtype.args[0]
    if isinstance(typestr, bytes):
        typestr = typestr.decode("latin-1")
    if not isinstance(typestr, str):
        raise Broken("joblib array wrapper with an unreadable dtype")
    state = dtype.state if isinstance(dtype.state, tuple) else ()
    elsize, flags = -1, 0
    if len(state) >= 8 and isinstance(state[0], int) and state[0] >= 3:
        elsize = state[5] if isinstance(state[5], int) else -1
        flags = state[7] if isinstance(state[7], int) else 0
    has_object = typestr.startswith("O") or bool(flags & 1)  # NPY_ITEM_REFCOUNT
    if elsize > 0:
        return elsize, has_object
    m = re.match(r"^[A-Za-z?]+(\d+)", typestr)
    if not m:
        raise Broken(f"joblib array wrapper with dtype {typestr!r} of unknown size")
    return int(m.group(1)), has_object


def _skip_joblib_array(stream: Stream, wrapper: _Obj, acc: _Acc, depth: int) -> None:
    """Step over the array bytes joblib wrote right after a NumpyArrayWrapper's BUILD."""
    state = wrapper.state
    if not isinstance(state, _SDict):
        raise Broken("joblib NumpyArrayWrapper without its state dict")
    shape = state.get("shape")
    if not isinstance(shape, tuple) or not all(isinstance(x, int) and x >= 0 for x in shape):
        raise Broken(f"joblib NumpyArrayWrapper with an unreadable shape {shape!r}")
    itemsize, has_object = _dtype_info(state.get("dtype"))
    acc.wrappers += 1
    if has_object:
        # joblib pickles object arrays as a nested, complete pickle stream; its globals
        # count like any other (an object array can hold anything).
        _walk(stream, acc, depth + 1)
        return
    # joblib >= 1.2 records the alignment; then one length byte + padding precede the data.
    align = state.get("numpy_array_alignment_bytes")
    if align is not None:
        pad = stream.read(1)
        if len(pad) != 1:
            raise Broken("the file ends before a joblib array's padding byte")
        if pad[0]:
            stream.skip(pad[0])
    count = 1
    for x in shape:
        count *= x
    stream.skip(count * itemsize)


class _Frame:
    """The state of one pickle stream's walk: the stack, MARK stack and memo."""

    __slots__ = ("stream", "acc", "depth", "stack", "meta", "memo", "last")

    def __init__(self, stream: Stream, acc: _Acc, depth: int):
        self.stream = stream
        self.acc = acc
        self.depth = depth
        self.stack: list = []
        self.meta: list = []  # the stacks MARK set aside
        self.memo: dict = {}
        self.last = "start of stream"  # the opcode being run, for error messages

    def pop_mark(self) -> list:
        return _pop_mark(self.stack, self.meta)


# One handler per opcode name: handler(frame, arg). STOP is handled by the loop.
_Handler = Callable[[_Frame, Any], None]


def _op_proto(f: _Frame, arg: Any) -> None:
    if f.depth == 0 and f.acc.protocol is None:
        f.acc.protocol = arg
    if arg > pickle.HIGHEST_PROTOCOL:
        raise Broken(f"pickle protocol {arg} is newer than this Python reads ({pickle.HIGHEST_PROTOCOL})")


def _op_nothing(f: _Frame, arg: Any) -> None:
    pass


def _op_mark(f: _Frame, arg: Any) -> None:
    f.meta.append(f.stack[:])
    f.stack.clear()


def _op_pop(f: _Frame, arg: Any) -> None:
    if f.stack:
        f.stack.pop()
    else:
        f.pop_mark()


def _op_pop_mark(f: _Frame, arg: Any) -> None:
    f.pop_mark()


def _op_dup(f: _Frame, arg: Any) -> None:
    f.stack.append(f.stack[-1])


def _op_number(f: _Frame, arg: Any) -> None:
    f.stack.append(arg)


def _op_py2_string(f: _Frame, arg: Any) -> None:
    f.acc.python2 = True
    f.stack.append(_keep(arg, f.acc))


def _op_bytes_or_text(f: _Frame, arg: Any) -> None:
    f.stack.append(_keep(arg, f.acc))


def _op_next_buffer(f: _Frame, arg: Any) -> None:
    f.acc.note("uses protocol-5 out-of-band buffers, which a file cannot carry")
    f.stack.append(_Blob(0))


def _push(make: Callable[[], Any]) -> _Handler:
    """A handler pushing a fresh `make()` (a new container for every opcode)."""

    def handler(f: _Frame, arg: Any) -> None:
        f.stack.append(make())

    return handler


def _op_list(f: _Frame, arg: Any) -> None:
    f.stack.append(f.pop_mark())


def _op_tuple(f: _Frame, arg: Any) -> None:
    f.stack.append(tuple(f.pop_mark()))


def _op_tuple_n(n: int) -> _Handler:
    def handler(f: _Frame, arg: Any) -> None:
        if len(f.stack) < n:
            raise IndexError("stack underflow")
        items = tuple(f.stack[-n:])
        del f.stack[-n:]
        f.stack.append(items)

    return handler


def _op_dict(f: _Frame, arg: Any) -> None:
    items = f.pop_mark()
    f.stack.append(_SDict(zip(items[::2], items[1::2])))


def _op_frozenset(f: _Frame, arg: Any) -> None:
    f.stack.append(_SSet(f.pop_mark(), frozen=True))


def _op_append(f: _Frame, arg: Any) -> None:
    value = f.stack.pop()
    _extend(f.stack[-1], [value])


def _op_appends(f: _Frame, arg: Any) -> None:
    items = f.pop_mark()
    _extend(f.stack[-1], items)


def _op_setitem(f: _Frame, arg: Any) -> None:
    value = f.stack.pop()
    key = f.stack.pop()
    _setitems(f.stack[-1], [(key, value)])


def _op_setitems(f: _Frame, arg: Any) -> None:
    items = f.pop_mark()
    _setitems(f.stack[-1], list(zip(items[::2], items[1::2])))


def _op_additems(f: _Frame, arg: Any) -> None:
    items = f.pop_mark()
    target = f.stack[-1]
    if isinstance(target, _SSet):
        target.items.extend(items)


def _op_get(f: _Frame, arg: Any) -> None:
    if arg not in f.memo:
        raise Broken(f"memo entry {arg} is read before it was written ({f.last})")
    f.stack.append(f.memo[arg])


def _op_put(f: _Frame, arg: Any) -> None:
    f.memo[arg] = f.stack[-1]


def _op_memoize(f: _Frame, arg: Any) -> None:
    f.memo[len(f.memo)] = f.stack[-1]


def _op_global(f: _Frame, arg: Any) -> None:
    module, _, gname = arg.partition(" ")
    f.stack.append(_record_global(f.acc, module, gname))


def _op_stack_global(f: _Frame, arg: Any) -> None:
    gname = f.stack.pop()
    module = f.stack.pop()
    if isinstance(module, str) and isinstance(gname, str):
        f.stack.append(_record_global(f.acc, module, gname))
    else:
        f.acc.dynamic.append("<STACK_GLOBAL of non-string operands>")
        f.stack.append(_Global("?", "?"))


def _op_ext(f: _Frame, arg: Any) -> None:
    key = copyreg._inverted_registry.get(arg)
    if key is None:
        f.acc.dynamic.append(f"<unregistered extension code {arg}>")
        f.stack.append(_Global("?", "?"))
    else:
        f.stack.append(_record_global(f.acc, key[0], key[1]))


def _op_inst(f: _Frame, arg: Any) -> None:
    module, _, gname = arg.partition(" ")
    cls = _record_global(f.acc, module, gname)
    f.stack.append(_new(f.acc, cls, tuple(f.pop_mark())))


def _op_obj(f: _Frame, arg: Any) -> None:
    items = f.pop_mark()
    if not items:
        raise IndexError("stack underflow")
    f.stack.append(_new(f.acc, items[0], tuple(items[1:])))


def _op_reduce(f: _Frame, arg: Any) -> None:  # also NEWOBJ: (callable or class, args)
    args = f.stack.pop()
    func = f.stack.pop()
    f.stack.append(_new(f.acc, func, args))


def _op_newobj_ex(f: _Frame, arg: Any) -> None:
    f.stack.pop()  # kwargs
    _op_reduce(f, arg)


def _op_build(f: _Frame, arg: Any) -> None:
    state = f.stack.pop()
    obj = f.stack[-1]
    if isinstance(obj, _Obj):
        obj.state = state
        _after_build(f.stream, obj, f.acc, f.depth)


def _op_persid(f: _Frame, arg: Any) -> None:
    f.acc.note("refers to persistent ids (objects stored outside the pickle); plain loading cannot resolve them")
    f.stack.append(_Blob(0))


def _op_binpersid(f: _Frame, arg: Any) -> None:
    f.stack.pop()
    _op_persid(f, arg)


_HANDLERS: dict[str, _Handler] = {
    "PROTO": _op_proto,
    "FRAME": _op_nothing,
    "READONLY_BUFFER": _op_nothing,
    "MARK": _op_mark,
    "POP": _op_pop,
    "POP_MARK": _op_pop_mark,
    "DUP": _op_dup,
    **dict.fromkeys(
        ("INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT"), _op_number
    ),
    **dict.fromkeys(_PY2_STR_OPS, _op_py2_string),
    **dict.fromkeys(
        ("BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8",
         "UNICODE", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8"),
        _op_bytes_or_text,
    ),
    "NEXT_BUFFER": _op_next_buffer,
    "NONE": _push(lambda: None),
    "NEWTRUE": _push(lambda: True),
    "NEWFALSE": _push(lambda: False),
    "EMPTY_LIST": _push(list),
    "EMPTY_TUPLE": _push(tuple),
    "EMPTY_DICT": _push(_SDict),
    "EMPTY_SET": _push(_SSet),
    "LIST": _op_list,
    "TUPLE": _op_tuple,
    "TUPLE1": _op_tuple_n(1),
    "TUPLE2": _op_tuple_n(2),
    "TUPLE3": _op_tuple_n(3),
    "DICT": _op_dict,
    "FROZENSET": _op_frozenset,
    "APPEND": _op_append,
    "APPENDS": _op_appends,
    "SETITEM": _op_setitem,
    "SETITEMS": _op_setitems,
    "ADDITEMS": _op_additems,
    **dict.fromkeys(("GET", "BINGET", "LONG_BINGET"), _op_get),
    **dict.fromkeys(("PUT", "BINPUT", "LONG_BINPUT"), _op_put),
    "MEMOIZE": _op_memoize,
    "GLOBAL": _op_global,
    "STACK_GLOBAL": _op_stack_global,
    **dict.fromkeys(("EXT1", "EXT2", "EXT4"), _op_ext),
    "INST": _op_inst,
    "OBJ": _op_obj,
    "REDUCE": _op_reduce,
    "NEWOBJ": _op_reduce,
    "NEWOBJ_EX": _op_newobj_ex,
    "BUILD": _op_build,
    "PERSID": _op_persid,
    "BINPERSID": _op_binpersid,
}


def _walk(stream: Stream, acc: _Acc, depth: int = 0) -> Any:
    """Run one pickle stream symbolically up to its STOP; return the top value."""
    if depth > _MAX_NESTING:
        raise Broken("joblib object arrays nested too deeply")
    f = _Frame(stream, acc, depth)
    try:
        for op, arg, pos in pickletools.genops(stream):
            acc.ops += 1
            if acc.ops > acc.max_ops:
                raise Broken(f"it holds more than {acc.max_ops:,} opcodes for its size on disk; "
                             "refusing to scan further (a decompression bomb?)")
            name = op.name
            f.last = f"{name} at byte {pos}"
            if op.proto > acc.max_op_proto:
                acc.max_op_proto = op.proto
            if name == "STOP":
                return f.stack.pop()
            handler = _HANDLERS.get(name)
            if handler is None:  # an opcode pickletools knows and this walker does not: be loud
                raise Broken(f"opcode {name} is not handled by the scanner")
            handler(f, arg)
    except Broken as exc:
        raise Broken(f"{exc} (after {f.last})") from None
    except (IndexError, KeyError) as exc:
        raise Broken(f"stack underflow or bad memo reference after {f.last} ({type(exc).__name__})") from None
    except ValueError as exc:
        msg = str(exc)
        if "exhausted before seeing STOP" in msg:
            raise Broken(f"the stream ends at byte {stream.tell()} before the pickle's STOP opcode (after {f.last}); the file is truncated") from None
        if "not enough data" in msg or "but only" in msg:
            raise Broken(f"the stream ends at byte {stream.tell()} inside an opcode's argument ({msg}, after {f.last}); the file is truncated") from None
        raise Broken(f"{msg} (at byte {stream.tell()}, after {f.last})") from None
    except (TypeError, OverflowError, UnicodeError, AttributeError) as exc:
        raise Broken(f"{type(exc).__name__}: {exc} (after {f.last})") from None
    raise Broken(f"the stream ends before the pickle's STOP opcode (after {f.last})")  # pragma: no cover


def _extend(target: Any, items: list) -> None:
    if isinstance(target, list):
        target.extend(items)
    elif isinstance(target, _SSet):
        target.items.extend(items)
    # anything else (an object with append/extend): nothing we need to track


def _setitems(target: Any, pairs: list) -> None:
    if isinstance(target, _SDict):
        target.items.extend(pairs)
    elif isinstance(target, _Obj):  # e.g. OrderedDict built by REDUCE, then SETITEMS
        if not isinstance(target.state, _SDict):
            target.state = _SDict()
        target.state.items.extend(pairs)


def _record_global(acc: _Acc, module: str, name: str) -> _Global:
    acc.globals.setdefault((module, name), None)
    # __builtin__ / copy_reg do not mean Python 2: Python 3 writes them too for
    # protocols < 3 (fix_imports). Only py2 `str` opcodes do.
    return _Global(module, name)


_EST_PREFIX = re.compile(r"^(XGB|LGBM|CatBoost)")


def _new(acc: _Acc, cls: Any, args: Any) -> _Obj:
    acc.seq += 1
    obj = _Obj(cls, args, acc.seq)
    real = _class_of(obj)
    if real is not None and _family(real.module) in ("xgboost", "lightgbm", "catboost") and _EST_PREFIX.match(real.name):
        acc.estimators.append((obj.seq, real.name, real.module))
    return obj


def _after_build(stream: Stream, obj: _Obj, acc: _Acc, depth: int) -> None:
    cls = obj.cls
    if isinstance(cls, _Global) and cls.name == "NumpyArrayWrapper" and cls.module in _WRAPPER_MODULES:
        _skip_joblib_array(stream, obj, acc, depth)
        return
    state = _state_dict(obj.state)
    if state is None:
        return
    version = state.get("_sklearn_version")
    if isinstance(version, str):
        acc.sklearn_versions.append(version)
        real = _class_of(obj)
        if real is not None:
            acc.estimators.append((obj.seq, real.name, real.module))
    n = state.get("n_features_in_", _MISSING)
    if n is _MISSING:
        n = state.get("_n_features", _MISSING)  # LightGBM's sklearn wrapper
    n = n if isinstance(n, int) and not isinstance(n, bool) else None
    names = _strings_of_array(state.get("feature_names_in_"))
    if n is not None or names:
        acc.inputs[id(obj)] = (n, names)
    if acc.n_features is None and n is not None:
        acc.n_features = n


def _strings_of_array(value: Any) -> list[str]:
    """The strings of a pickled numpy object array (as feature_names_in_ is), read from its
    reconstruct state (version, shape, dtype, fortran, items); [] for anything else."""
    state = value.state if isinstance(value, _Obj) else None
    if isinstance(state, tuple) and len(state) == 5 and isinstance(state[4], list):
        items = state[4]
        if items and all(isinstance(x, str) for x in items):
            return list(items)
    return []


def _input_of(top: Any, acc: _Acc, depth: int = 0) -> tuple[int | None, list[str]]:
    """What the held model takes: its own n_features_in_ / feature_names_in_, or for a
    Pipeline those of its first step (a ColumnTransformer sees every DataFrame column)."""
    if id(top) in acc.inputs:
        return acc.inputs[id(top)]
    cls = _class_of(top)
    state = _state_dict(top.state) if isinstance(top, _Obj) else None
    if depth < 8 and cls is not None and cls.name == "Pipeline" and state is not None:
        steps = state.get("steps")
        if isinstance(steps, list) and steps and isinstance(steps[0], tuple) and len(steps[0]) == 2:
            return _input_of(steps[0][1], acc, depth + 1)
    return None, []


# --------------------------------------------------------------------------------------
# scan_pickle
# --------------------------------------------------------------------------------------


def _collapse(names: list[str]) -> list[str]:
    out: list[str] = []
    run = 0
    for i, name in enumerate(names):
        run += 1
        if i + 1 == len(names) or names[i + 1] != name:
            out.append(name if run == 1 else f"{name} (x{run})")
            run = 0
    return out


def _steps_of(top: Any) -> list[str]:
    cls = _class_of(top)
    if cls is None or cls.name != "Pipeline":
        return []
    state = _state_dict(top.state)
    steps = state.get("steps") if state is not None else None
    if not isinstance(steps, list):
        return []
    out = []
    for step in steps:
        est = step[1] if isinstance(step, tuple) and len(step) == 2 else None
        real = _class_of(est)
        out.append(real.name if real is not None else (est if isinstance(est, str) else type(est).__name__))
    return out


def _top_class_name(top: Any) -> str | None:
    real = _class_of(top)
    if real is not None:
        return real.dotted
    plain = {_SDict: "builtins.dict", list: "builtins.list", tuple: "builtins.tuple", _SSet: "builtins.set"}
    for typ, label in plain.items():
        if isinstance(top, typ):
            return label
    if top is None:
        return None
    return f"builtins.{type(top).__name__}" if not isinstance(top, (_Blob, _Global)) else None


_SCANS: dict[tuple, PickleScan] = {}


def scan_pickle(path, *, max_decompressed: int = MAX_DECOMPRESSED) -> PickleScan:
    """Statically scan a pickle or joblib file. Never unpickles; raises InputError if broken.

    A conversion describes its input, loads it for the step and again for verification:
    the scan of an unchanged file is done once per process. A file counts as changed
    when its size, modification or status-change time, or inode differ (a file replaced
    by another, or rewritten in place), and is then scanned again."""
    path = Path(path)
    try:
        stat = path.stat()
        key = (
            str(path.resolve()), stat.st_dev, stat.st_ino, stat.st_size, stat.st_mtime_ns, stat.st_ctime_ns,
            max_decompressed,
        )
    except OSError:
        key = None
    if key is not None and key in _SCANS:
        return _SCANS[key]
    scan = _scan_pickle(path, max_decompressed)
    if key is not None:
        if len(_SCANS) >= 256:  # a batch worker sees many files: keep the cache small
            _SCANS.clear()
        _SCANS[key] = scan
    return scan


def _scan_pickle(path: Path, max_decompressed: int) -> PickleScan:
    acc = _Acc()
    try:
        acc.max_ops = MAX_OPS_BASE + MAX_OPS_PER_BYTE * path.stat().st_size
    except OSError:
        pass
    with Opened(path, max_decompressed) as opened:
        stream = opened.stream
        stream.elide = True  # the scan needs long arguments' lengths, not their bytes
        if stream.peek(1) == b"":
            raise InputError(f"{path} is empty", hint="the file has no bytes; was the copy interrupted?")
        try:
            top = _walk(stream, acc)
        except Broken as exc:
            where = " of the decompressed stream" if opened.compression else ""
            raise InputError(
                f"{path} is not a readable pickle: {exc}{where}",
                hint="the file is truncated or corrupt (or not a pickle at all); get a fresh copy",
                details={"path": str(path), "compression": opened.compression},
            ) from None
        except (RecursionError, MemoryError) as exc:
            raise InputError(f"{path}: the pickle is too deeply nested or too large to scan ({type(exc).__name__})") from None
        compression = opened.compression
        consumed = stream.tell()
        if compression:
            # Read the compressed stream to its end so its checksum is verified; joblib
            # writes nothing after STOP, so this is normally a few bytes.
            while stream.read(CHUNK):
                pass

    names = sorted({f"{m}.{n}" for m, n in acc.globals})
    untrusted = sorted({f"{m}.{n}" for m, n in acc.globals if not is_allowed(m, n)} | set(acc.dynamic))
    legacy = [g for g in names if g.endswith(("numpy_pickle.NDArrayWrapper", "numpy_pickle.ZNDArrayWrapper"))]
    if legacy:
        acc.note("joblib < 0.10 layout: arrays live in separate files that loading np.load()s with allow_pickle")

    if compression:
        container = f"joblib-compressed:{compression}"
    elif acc.wrappers or legacy:
        container = "joblib"
    else:
        container = "pickle"

    top_class = _top_class_name(top)
    estimators_sorted = sorted(acc.estimators)

    flavor = None
    top_cls = _class_of(top)
    if top_cls is not None:
        flavor = _family(top_cls.module)
    if flavor is None and estimators_sorted:
        flavor = _family(estimators_sorted[0][2])
    if flavor is None:
        for m, _n in acc.globals:
            fam = _family(m)
            if fam:
                flavor = fam
                break

    sklearn_version = None
    top_state = _state_dict(top.state) if isinstance(top, _Obj) else None
    if top_state is not None and isinstance(top_state.get("_sklearn_version"), str):
        sklearn_version = top_state.get("_sklearn_version")
    elif acc.sklearn_versions:
        sklearn_version = acc.sklearn_versions[0]
    if len(set(acc.sklearn_versions)) > 1:
        acc.note("objects inside were pickled by different scikit-learn versions: " + ", ".join(sorted(set(acc.sklearn_versions))))
    versions = {}
    if sklearn_version:
        versions["scikit-learn"] = sklearn_version
    versions.update(acc.versions)

    n_features = acc.n_features
    if top_state is not None:
        n = top_state.get("n_features_in_")
        if isinstance(n, int) and not isinstance(n, bool):
            n_features = n
    held_n, feature_names = _input_of(top, acc)
    if held_n is not None:
        n_features = held_n
    elif feature_names:
        n_features = len(feature_names)

    protocol = acc.protocol if acc.protocol is not None else acc.max_op_proto

    return PickleScan(
        path=str(path),
        protocol=protocol,
        container=container,
        globals=names,
        untrusted=untrusted,
        flavor=flavor or "unknown",
        top_class=top_class,
        sklearn_version=sklearn_version,
        versions=versions,
        n_features=n_features,
        feature_names=feature_names,
        estimators=_collapse([name for _, name, _ in estimators_sorted]),
        steps=_steps_of(top),
        python2=acc.python2,
        stream_bytes=consumed,
        notes=list(acc.notes),
    )


def probe_pickle_head(head: bytes, min_ops: int = 3) -> bool:
    """Whether `head` (the first bytes of a file) parses as pickle opcodes.

    Running out of bytes is fine (the head is a prefix); an unknown opcode is not.
    Used by the sniffer for protocol 0/1 pickles, which have no magic number.
    """
    stream = io.BytesIO(head)
    n = 0
    try:
        for op, _arg, _pos in pickletools.genops(stream):
            n += 1
            if op.name == "STOP":
                return n >= 2
    except ValueError as exc:
        return n >= min_ops and "unknown" not in str(exc)
    except Exception:
        return False
    return False
