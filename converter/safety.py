"""Static safety scan of pickle / joblib files, and a guarded loader.

Unpickling runs code chosen by whoever wrote the file, so mlconvert reads a pickle
twice: first `scan_pickle` walks its opcodes *without* unpickling (a small symbolic
stack machine over `pickletools.genops`) and lists every global the file would
import; then, only if all of them are on the allow-list (or the user passed
--trust), `load_pickle` unpickles with a `find_class` that enforces the same list
again (defence in depth) and maps module paths that libraries renamed since.

joblib files are not plain pickles: `joblib.dump` writes each numpy array's raw
bytes into the stream right after the BUILD opcode of a `NumpyArrayWrapper`, and
may compress the whole stream. The walker knows both.

Only the standard library is imported at module level.
"""
from __future__ import annotations

import bz2
import copyreg
import importlib
import importlib.util
import io
import lzma
import pickle
import pickletools
import re
import types
import warnings
import zlib
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Iterator

from mlconvert.errors import InputError, MlconvertError, UntrustedInputError

__all__ = [
    "PickleScan",
    "LoadedPickle",
    "scan_pickle",
    "check_trusted",
    "load_pickle",
    "is_allowed",
    "probe_pickle_head",
    "container_of_head",
    "MAX_DECOMPRESSED",
    "TRUST_HINT",
]

# A compressed joblib file is decompressed as a stream and refused once it grows
# past this: a few KB of zeros can inflate to many GB (decompression bomb).
MAX_DECOMPRESSED = 2 * 1024**3
_CHUNK = 1 << 20
# Bytes / str values longer than this are not kept by the scanner, only their size.
_KEEP_LIMIT = 4096
# Object-dtype arrays in joblib files are nested pickles; nesting deeper than this
# is not something joblib writes.
_MAX_NESTING = 32

TRUST_HINT = "inspect the file's origin; pass --trust to load it anyway (this runs code from the file)"

# --------------------------------------------------------------------------------------
# The allow-list
# --------------------------------------------------------------------------------------

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
}

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
    if not any(_under(module, p) for p in _ALLOWED_PREFIXES):
        return False
    if any(_under(module, d) for d in _DENIED_MODULES):
        return False
    low = name.lower()
    if name in _DENIED_NAMES or low in _DENIED_NAMES or low.startswith(_DENIED_NAME_PREFIXES):
        return False
    return True


_FAMILIES = {"sklearn": "sklearn", "xgboost": "xgboost", "lightgbm": "lightgbm", "catboost": "catboost"}


def _family(module: str) -> str | None:
    return _FAMILIES.get(module.split(".", 1)[0])


# --------------------------------------------------------------------------------------
# Result types
# --------------------------------------------------------------------------------------


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


@dataclass(frozen=True)
class LoadedPickle:
    obj: Any
    scan: PickleScan
    warnings: list[str]  # e.g. sklearn's InconsistentVersionWarning, recorded not shown


# --------------------------------------------------------------------------------------
# Byte streams: plain file or bounded decompression
# --------------------------------------------------------------------------------------


class _Truncated(Exception):
    """A compressed stream ended before its end marker; args[0] = bytes produced."""


class _Broken(Exception):
    """The stream is not a well-formed pickle; converted to InputError with the path."""


class _Stream:
    """Minimal file object over a chunk source: read/readline/readinto/tell/skip.

    It never allocates more than the data that exists (a corrupt length field asking
    for 2**60 bytes gets a short read, which genops reports), and it stops at `cap`
    bytes so a decompression bomb is refused instead of filling memory.
    """

    def __init__(self, chunks: Iterator[bytes], cap: int, what: str):
        self._chunks = chunks
        self._cap = cap
        self._what = what
        self._buf = bytearray()
        self._off = 0
        self._pos = 0
        self._total = 0
        self._eof = False

    def _fill(self, need: int) -> None:
        while len(self._buf) - self._off < need and not self._eof:
            chunk = next(self._chunks, b"")
            if not chunk:
                self._eof = True
                break
            self._total += len(chunk)
            if self._total > self._cap:
                raise InputError(
                    f"{self._what} decompresses to more than {self._cap:,} bytes; refusing to go on",
                    hint="this looks like a decompression bomb; if the model is really this big, "
                    "decompress it yourself and pass the plain file",
                )
            if self._off:
                del self._buf[: self._off]
                self._off = 0
            self._buf += chunk

    def read(self, n: int = -1) -> bytes:
        if n is None or n < 0:
            n = self._cap + 1
        out = []
        while n > 0:
            self._fill(min(n, _CHUNK))
            avail = len(self._buf) - self._off
            if avail == 0:
                break
            take = min(avail, n)
            out.append(bytes(self._buf[self._off : self._off + take]))
            self._off += take
            self._pos += take
            n -= take
        return b"".join(out)

    def readinto(self, b) -> int:
        data = self.read(len(b))
        b[: len(data)] = data
        return len(data)

    def readline(self, limit: int = -1) -> bytes:
        out = []
        while True:
            idx = self._buf.find(b"\n", self._off)
            if idx >= 0:
                out.append(self.read(idx + 1 - self._off))
                break
            avail = len(self._buf) - self._off
            if avail:
                out.append(self.read(avail))
            self._fill(1)
            if len(self._buf) - self._off == 0:
                break
        return b"".join(out)

    def skip(self, n: int) -> None:
        while n > 0:
            got = len(self.read(min(n, _CHUNK)))
            if got == 0:
                raise _Broken(f"the file ends inside joblib array data ({n:,} bytes missing)")
            n -= got

    def peek(self, n: int = 1) -> bytes:
        self._fill(n)
        return bytes(self._buf[self._off : self._off + n])

    def tell(self) -> int:
        return self._pos


def _file_chunks(fh) -> Iterator[bytes]:
    while True:
        chunk = fh.read(_CHUNK)
        if not chunk:
            return
        yield chunk


def _inflate_chunks(fh, kind: str, what: str) -> Iterator[bytes]:
    """Decompress `fh` in bounded steps (max_length), so one call never explodes."""
    if kind == "zlib":
        d = zlib.decompressobj()
    elif kind == "gzip":
        d = zlib.decompressobj(wbits=31)
    elif kind == "bz2":
        d = bz2.BZ2Decompressor()
    elif kind == "xz":
        d = lzma.LZMADecompressor(format=lzma.FORMAT_XZ)
    elif kind == "lzma":
        d = lzma.LZMADecompressor(format=lzma.FORMAT_ALONE)
    elif kind == "lz4":
        lz4_frame = _lz4_frame(what)
        d = lz4_frame.LZ4FrameDecompressor()
    else:  # pragma: no cover - callers pass known kinds
        raise ValueError(kind)
    errors = (zlib.error, OSError, EOFError, lzma.LZMAError, ValueError, RuntimeError)
    try:
        if kind in ("zlib", "gzip"):
            pending = b""
            produced = 0
            while not d.eof:
                if not pending:
                    pending = fh.read(_CHUNK)
                    if not pending:
                        out = d.decompress(b"", _CHUNK)  # flush what zlib still holds
                        if out:
                            produced += len(out)
                            yield out
                            continue
                        raise _Truncated(produced)
                out = d.decompress(pending, _CHUNK)
                pending = d.unconsumed_tail
                if out:
                    produced += len(out)
                    yield out
        else:
            produced = 0
            while not d.eof:
                if d.needs_input:
                    data = fh.read(_CHUNK)
                    if not data:
                        raise _Truncated(produced)
                else:
                    data = b""
                out = d.decompress(data, _CHUNK)
                if out:
                    produced += len(out)
                    yield out
    except _Truncated as exc:
        # The end of a compressed stream carries its checksum: without it, even
        # bytes already decompressed are unverified.
        raise InputError(
            f"{what}: the {kind} stream ends early, after {exc.args[0]:,} decompressed bytes; the file is truncated",
            hint="the file is damaged or was cut off; get a fresh copy",
        ) from None
    except errors as exc:
        raise InputError(f"{what}: corrupt {kind} data ({exc})", hint="the file is damaged; get a fresh copy") from exc


def _lz4_frame(what: str):
    try:
        import lz4.frame as lz4_frame  # optional: only joblib's lz4 compressor writes these
    except ImportError:
        raise InputError(
            f"{what} is an lz4-compressed joblib file, and the lz4 module is not installed",
            hint="pip install lz4, then try again",
        ) from None
    return lz4_frame


# joblib < 0.10 compressed files: "ZF" + the length in hex padded to 19 chars, then zlib.
_ZFILE_HEADER = 2 + 19


def container_of_head(head: bytes) -> str | None:
    """Compression a joblib file's first bytes announce, or None for an uncompressed stream."""
    if head[:1] == b"\x78" and len(head) >= 2 and ((head[0] << 8) | head[1]) % 31 == 0:
        return "zlib"
    if head.startswith(b"\x1f\x8b"):
        return "gzip"
    if head.startswith(b"BZh"):
        return "bz2"
    if head.startswith(b"\xfd7zXZ\x00"):
        return "xz"
    if head.startswith(b"\x5d\x00\x00"):
        return "lzma"
    if head.startswith(b"\x04\x22\x4d\x18"):
        return "lz4"
    if head.startswith(b"ZF") and len(head) > 3 and head[2:4] == b"0x":
        return "zfile"
    return None


class _Opened:
    """The pickle stream of a file plus how it was stored; a context manager."""

    def __init__(self, path: Path, cap: int):
        self.path = path
        try:
            self._fh = open(path, "rb")
        except OSError as exc:
            raise InputError(f"cannot read {path}: {exc.strerror or exc}", hint="check the path and permissions") from exc
        head = self._fh.read(8)
        self._fh.seek(0)
        kind = container_of_head(head)
        what = str(path)
        if kind is None:
            self.compression = None
            # a plain file is as big as it is: the cap is for what decompression makes
            self.stream = _Stream(_file_chunks(self._fh), 1 << 62, what)
        elif kind == "zfile":
            self.compression = "zfile"
            hdr = self._fh.read(_ZFILE_HEADER)
            if self._fh.read(1) != b" ":
                self._fh.seek(len(hdr))
            self.stream = _Stream(_inflate_chunks(self._fh, "zlib", what), cap, what)
        else:
            self.compression = kind
            self.stream = _Stream(_inflate_chunks(self._fh, kind, what), cap, what)

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        self._fh.close()


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
        raise _Broken("MARK expected but the stack has none (corrupt stream)")
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
        self.versions: dict[str, str] = {}
        self.wrappers = 0
        self.notes: list[str] = []

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
                v = _ubjson_ints(head, m.end() - 1)  # at the count's type marker
                if v:
                    return "xgboost", v
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


def _ubjson_ints(buf: bytes, at: int) -> str | None:
    """Read `<count type><count><type><int>...`, a UBJSON array after its `[#`."""
    try:
        count, i = _ubjson_int(buf, at)
        if not 1 <= count <= 4:
            return None
        parts = []
        for _ in range(count):
            v, i = _ubjson_int(buf, i)
            parts.append(str(v))
        return ".".join(parts)
    except (IndexError, ValueError):
        return None


def _ubjson_int(buf: bytes, i: int) -> tuple[int, int]:
    sizes = {b"i": (1, True), b"U": (1, False), b"I": (2, True), b"l": (4, True), b"L": (8, True)}
    t = buf[i : i + 1]
    if t not in sizes:
        raise ValueError(t)
    n, signed = sizes[t]
    return int.from_bytes(buf[i + 1 : i + 1 + n], "big", signed=signed), i + 1 + n


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
        raise _Broken("joblib array wrapper without a readable dtype")
    typestr = dtype.args[0]
    if isinstance(typestr, bytes):
        typestr = typestr.decode("latin-1")
    if not isinstance(typestr, str):
        raise _Broken("joblib array wrapper with an unreadable dtype")
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
        raise _Broken(f"joblib array wrapper with dtype {typestr!r} of unknown size")
    return int(m.group(1)), has_object


def _skip_joblib_array(stream: _Stream, wrapper: _Obj, acc: _Acc, depth: int) -> None:
    """Step over the array bytes joblib wrote right after a NumpyArrayWrapper's BUILD."""
    state = wrapper.state
    if not isinstance(state, _SDict):
        raise _Broken("joblib NumpyArrayWrapper without its state dict")
    shape = state.get("shape")
    if not isinstance(shape, tuple) or not all(isinstance(x, int) and x >= 0 for x in shape):
        raise _Broken(f"joblib NumpyArrayWrapper with an unreadable shape {shape!r}")
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
            raise _Broken("the file ends before a joblib array's padding byte")
        if pad[0]:
            stream.skip(pad[0])
    count = 1
    for x in shape:
        count *= x
    stream.skip(count * itemsize)


def _walk(stream: _Stream, acc: _Acc, depth: int = 0) -> Any:
    """Run one pickle stream symbolically up to its STOP; return the top value."""
    if depth > _MAX_NESTING:
        raise _Broken("joblib object arrays nested too deeply")
    stack: list = []
    meta: list = []
    memo: dict = {}
    last = "start of stream"
    try:
        for op, arg, pos in pickletools.genops(stream):
            name = op.name
            last = f"{name} at byte {pos}"
            if op.proto > acc.max_op_proto:
                acc.max_op_proto = op.proto
            if name in ("PROTO",):
                if depth == 0 and acc.protocol is None:
                    acc.protocol = arg
                if arg > pickle.HIGHEST_PROTOCOL:
                    raise _Broken(f"pickle protocol {arg} is newer than this Python reads ({pickle.HIGHEST_PROTOCOL})")
            elif name in ("FRAME", "READONLY_BUFFER"):
                pass
            elif name == "STOP":
                return stack.pop()
            elif name == "MARK":
                meta.append(stack[:])
                stack.clear()
            elif name == "POP":
                if stack:
                    stack.pop()
                else:
                    _pop_mark(stack, meta)
            elif name == "POP_MARK":
                _pop_mark(stack, meta)
            elif name == "DUP":
                stack.append(stack[-1])
            elif name in ("INT", "BININT", "BININT1", "BININT2", "LONG", "LONG1", "LONG4", "FLOAT", "BINFLOAT"):
                stack.append(arg)
            elif name in _PY2_STR_OPS:
                acc.python2 = True
                stack.append(_keep(arg, acc))
            elif name in ("BINBYTES", "SHORT_BINBYTES", "BINBYTES8", "BYTEARRAY8",
                          "UNICODE", "SHORT_BINUNICODE", "BINUNICODE", "BINUNICODE8"):
                stack.append(_keep(arg, acc))
            elif name == "NEXT_BUFFER":
                acc.note("uses protocol-5 out-of-band buffers, which a file cannot carry")
                stack.append(_Blob(0))
            elif name == "NONE":
                stack.append(None)
            elif name == "NEWTRUE":
                stack.append(True)
            elif name == "NEWFALSE":
                stack.append(False)
            elif name == "EMPTY_LIST":
                stack.append([])
            elif name == "EMPTY_TUPLE":
                stack.append(())
            elif name == "EMPTY_DICT":
                stack.append(_SDict())
            elif name == "EMPTY_SET":
                stack.append(_SSet())
            elif name == "LIST":
                stack.append(_pop_mark(stack, meta))
            elif name == "TUPLE":
                stack.append(tuple(_pop_mark(stack, meta)))
            elif name in ("TUPLE1", "TUPLE2", "TUPLE3"):
                n = int(name[-1])
                if len(stack) < n:
                    raise IndexError("stack underflow")
                items = tuple(stack[-n:])
                del stack[-n:]
                stack.append(items)
            elif name == "DICT":
                items = _pop_mark(stack, meta)
                stack.append(_SDict(zip(items[::2], items[1::2])))
            elif name == "FROZENSET":
                stack.append(_SSet(_pop_mark(stack, meta), frozen=True))
            elif name == "APPEND":
                value = stack.pop()
                _extend(stack[-1], [value])
            elif name == "APPENDS":
                items = _pop_mark(stack, meta)
                _extend(stack[-1], items)
            elif name == "SETITEM":
                value = stack.pop()
                key = stack.pop()
                _setitems(stack[-1], [(key, value)])
            elif name == "SETITEMS":
                items = _pop_mark(stack, meta)
                _setitems(stack[-1], list(zip(items[::2], items[1::2])))
            elif name == "ADDITEMS":
                items = _pop_mark(stack, meta)
                target = stack[-1]
                if isinstance(target, _SSet):
                    target.items.extend(items)
            elif name in ("GET", "BINGET", "LONG_BINGET"):
                if arg not in memo:
                    raise _Broken(f"memo entry {arg} is read before it was written ({last})")
                stack.append(memo[arg])
            elif name in ("PUT", "BINPUT", "LONG_BINPUT"):
                memo[arg] = stack[-1]
            elif name == "MEMOIZE":
                memo[len(memo)] = stack[-1]
            elif name == "GLOBAL":
                module, _, gname = arg.partition(" ")
                stack.append(_record_global(acc, module, gname))
            elif name == "STACK_GLOBAL":
                gname = stack.pop()
                module = stack.pop()
                if isinstance(module, str) and isinstance(gname, str):
                    stack.append(_record_global(acc, module, gname))
                else:
                    acc.dynamic.append("<STACK_GLOBAL of non-string operands>")
                    stack.append(_Global("?", "?"))
            elif name in ("EXT1", "EXT2", "EXT4"):
                key = copyreg._inverted_registry.get(arg)
                if key is None:
                    acc.dynamic.append(f"<unregistered extension code {arg}>")
                    stack.append(_Global("?", "?"))
                else:
                    stack.append(_record_global(acc, key[0], key[1]))
            elif name == "INST":
                module, _, gname = arg.partition(" ")
                cls = _record_global(acc, module, gname)
                stack.append(_new(acc, cls, tuple(_pop_mark(stack, meta))))
            elif name == "OBJ":
                items = _pop_mark(stack, meta)
                if not items:
                    raise IndexError("stack underflow")
                stack.append(_new(acc, items[0], tuple(items[1:])))
            elif name == "REDUCE":
                args = stack.pop()
                func = stack.pop()
                stack.append(_new(acc, func, args))
            elif name == "NEWOBJ":
                args = stack.pop()
                cls = stack.pop()
                stack.append(_new(acc, cls, args))
            elif name == "NEWOBJ_EX":
                stack.pop()  # kwargs
                args = stack.pop()
                cls = stack.pop()
                stack.append(_new(acc, cls, args))
            elif name == "BUILD":
                state = stack.pop()
                obj = stack[-1]
                if isinstance(obj, _Obj):
                    obj.state = state
                    _after_build(stream, obj, acc, depth)
            elif name in ("PERSID", "BINPERSID"):
                if name == "BINPERSID":
                    stack.pop()
                acc.note("refers to persistent ids (objects stored outside the pickle); plain loading cannot resolve them")
                stack.append(_Blob(0))
            else:  # an opcode pickletools knows and this walker does not: be loud
                raise _Broken(f"opcode {name} is not handled by the scanner")
    except _Broken as exc:
        raise _Broken(f"{exc} (after {last})") from None
    except (IndexError, KeyError) as exc:
        raise _Broken(f"stack underflow or bad memo reference after {last} ({type(exc).__name__})") from None
    except ValueError as exc:
        msg = str(exc)
        if "exhausted before seeing STOP" in msg:
            raise _Broken(f"the stream ends at byte {stream.tell()} before the pickle's STOP opcode (after {last}); the file is truncated") from None
        if "not enough data" in msg or "but only" in msg:
            raise _Broken(f"the stream ends at byte {stream.tell()} inside an opcode's argument ({msg}, after {last}); the file is truncated") from None
        raise _Broken(f"{msg} (at byte {stream.tell()}, after {last})") from None
    except (TypeError, OverflowError, UnicodeError, AttributeError) as exc:
        raise _Broken(f"{type(exc).__name__}: {exc} (after {last})") from None
    raise _Broken(f"the stream ends before the pickle's STOP opcode (after {last})")  # pragma: no cover


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


def _after_build(stream: _Stream, obj: _Obj, acc: _Acc, depth: int) -> None:
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
    if acc.n_features is None:
        n = state.get("n_features_in_", _MISSING)
        if n is _MISSING:
            n = state.get("_n_features", _MISSING)  # LightGBM's sklearn wrapper
        if isinstance(n, int) and not isinstance(n, bool):
            acc.n_features = n


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
    the scan of an unchanged file (same size and modification time) is done once."""
    path = Path(path)
    try:
        stat = path.stat()
        key = (str(path.resolve()), stat.st_size, stat.st_mtime_ns, max_decompressed)
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
    with _Opened(path, max_decompressed) as opened:
        stream = opened.stream
        if stream.peek(1) == b"":
            raise InputError(f"{path} is empty", hint="the file has no bytes; was the copy interrupted?")
        try:
            top = _walk(stream, acc)
        except _Broken as exc:
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
            while stream.read(_CHUNK):
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


# --------------------------------------------------------------------------------------
# check_trusted / load_pickle
# --------------------------------------------------------------------------------------


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


def _import(module: str) -> types.ModuleType:
    """Import `module`, trying the paths modern releases moved it to."""
    candidates = [module]
    if _under(module, "numpy.core") and importlib.util.find_spec("numpy._core") is not None:
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
    return obj


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


def _version_tuple(text: str) -> tuple[int, ...]:
    parts = []
    for piece in re.findall(r"\d+", text)[:3]:
        parts.append(int(piece))
    return tuple(parts)


def _installed(dist: str) -> str | None:
    from importlib import metadata

    try:
        return metadata.version(dist)
    except metadata.PackageNotFoundError:
        return None


def _load_failure_hint(scan: PickleScan) -> str:
    recorded = scan.sklearn_version
    installed = _installed("scikit-learn") if scan.flavor == "sklearn" or recorded else None
    if recorded and installed and recorded != installed:
        older = _version_tuple(recorded) < _version_tuple(installed)
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
    installed = _installed("scikit-learn")
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
        classes = getattr(est, "classes_", None)
        if (
            type(est).__name__ == "LogisticRegression"
            and classes is not None
            and len(classes) > 2
            and (vars(est).get("multi_class") == "ovr"
                 or (vars(est).get("multi_class") in ("auto", "warn") and vars(est).get("solver") == "liblinear"))
        ):
            notes.append(
                f"LogisticRegression was fitted one-vs-rest (scikit-learn {scan.sklearn_version}); "
                f"scikit-learn {installed} computes its multiclass predict_proba with softmax, so "
                "probabilities differ from the original's (predicted labels agree)"
            )
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
    joblib_container = scan.container != "pickle"
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        try:
            with _Opened(path, max_decompressed) as opened:
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
            installed = _installed("scikit-learn")
            raise InputError(
                f"{path} could not be loaded: {type(exc).__name__}: {exc}",
                hint=_load_failure_hint(scan),
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
    return LoadedPickle(obj=obj, scan=scan, warnings=messages)
