"""File formats: one module per format, each registered by one call at its bottom.

A module's top level imports only the standard library. `sniff(head, path)` is pure
and cheap; `describe(path)` is static (reads the file, runs none of its code);
`load`/`save` import their library inside the function.
"""
from __future__ import annotations

import contextlib
import errno
import importlib
import inspect
import os
import stat
import struct
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable, Iterator, Literal

from mlconvert import probe
from mlconvert.errors import InputError, UsageError
from mlconvert.outputs import special_kind  # noqa: F401  (batch and Source use it from here)

HEAD_SIZE = 4096

# Modules are imported on first use of the registry. A new format is its module plus
# one line here and one in _SNIFF_ORDER.
_MODULES = (
    "pickle_joblib",
    "xgboost_model",
    "lightgbm_text",
    "catboost_cbm",
    "onnx_model",
    "coreml",
    "pmml",
    "keras_h5",
    "keras_v3",
    "savedmodel",
    "tflite",
)
# The order sniffers are tried in: most specific signatures first; plugins come last.
_SNIFF_ORDER = ("pickle", "xgboost", "lightgbm", "catboost", "tflite", "onnx", "coreml", "pmml", "keras-h5", "keras",
                "savedmodel")


Layout = Literal["file", "directory", "file-or-directory"]


@dataclass(frozen=True)
class Loaded:
    """What a loader may return instead of the bare model: the model and what loading
    it revealed (an old library version, a renamed class), for the report."""

    model: Any
    notes: tuple[str, ...] = ()


@dataclass(frozen=True)
class Format:
    """One file format. Everything about it lives in its module; the core never
    branches on a format id.

    - sniff(head, path) -> bool: pure and cheap, no third-party import.
    - describe(path) -> dict: static (runs no code from the file); has "flavor".
    - load(path, *, trust=False, **options) -> model (or Loaded): imports its library inside.
    - save(model, path): writes the library's own file.
    - predictor(source, options) -> mlconvert.predict.Predictor: how verification runs
      a model of this format; `source` is a Source (its .path, its lazily .model).
    - stamp(path, entries): writes provenance {key: value} into a file of this format.
    - probe(path): loads the file with its native library and uses it as a conversion
      would; run in a limited child process before a user's file is loaded in process
      (mlconvert.isolation). `native` names that library in messages, or is a function
      of the description that names it when this file reaches one (else no probe).
    """

    id: str
    title: str
    extensions: tuple[str, ...]
    sniff: Callable[[bytes, Path], bool]
    describe: Callable[[Path], dict]
    load: Callable[..., Any] | None = None
    save: Callable[[Any, Path], None] | None = None
    predictor: Callable[[Source, dict], Any] | None = None
    stamp: Callable[[Path, dict], None] | None = None
    runtime: str | None = None  # the module the predictor needs, probed without importing
    layout: Layout = "file"  # a model stored as a file, a folder (SavedModel), or either (Core ML)
    family: str = ""  # which extra provides its library: classic, tf, coreml, pmml
    notes: str = ""
    probe: Callable[[Path], Any] | None = None
    native: str | Callable[[dict], str | None] = ""  # or, from the description, which library (or None)

    @property
    def directory(self) -> bool:
        """Always a folder (SavedModel)."""
        return self.layout == "directory"

    @property
    def may_be_directory(self) -> bool:
        """Always a folder (SavedModel), or a file or a folder (.mlmodel / .mlpackage)."""
        return self.layout != "file"

    def cannot_run(self) -> str | None:
        """Why models of this format cannot be run here (for verification), or None."""
        if self.predictor is None:
            return f"mlconvert cannot run {self.title} models"
        if self.runtime and not probe.has_module(self.runtime):
            return (f"{self.runtime} is not installed, so the {self.id} model cannot be run "
                    f"(pip install {self.runtime})")
        return None


def _takes(func: Callable, *args, **kwargs) -> bool:
    try:
        inspect.signature(func).bind(*args, **kwargs)
        return True
    except TypeError:
        return False


def _check(fmt: Format) -> None:
    """The format contract, checked when a format registers (not when a user's file reaches it)."""
    problems = []
    if not fmt.id or not fmt.id.replace("-", "").isalnum():
        problems.append(f"id {fmt.id!r} must be a short word")
    if fmt.layout not in ("file", "directory", "file-or-directory"):
        problems.append(f"layout {fmt.layout!r} is not file, directory or file-or-directory")
    if not _takes(fmt.sniff, b"", Path(".")):
        problems.append("sniff must take (head, path)")
    if not _takes(fmt.describe, Path(".")):
        problems.append("describe must take (path)")
    if fmt.load is not None and not _takes(fmt.load, Path("."), trust=False, architecture=None):
        problems.append("load must take (path, *, trust=False, **options)")
    if fmt.save is not None and not _takes(fmt.save, None, Path(".")):
        problems.append("save must take (model, path)")
    if fmt.predictor is not None and not _takes(fmt.predictor, None, {}):
        problems.append("predictor must take (source, options)")
    if fmt.predictor is not None and fmt.load is None:
        problems.append("a format with a predictor needs a load")
    if fmt.stamp is not None and not _takes(fmt.stamp, Path("."), {}):
        problems.append("stamp must take (path, entries)")
    if fmt.probe is not None and not _takes(fmt.probe, Path(".")):
        problems.append("probe must take (path)")
    if problems:
        raise TypeError(f"format {fmt.id!r} breaks the Format contract: " + "; ".join(problems))


_REGISTRY: dict[str, Format] = {}
_loaded = False


def register_format(fmt: Format) -> None:
    """Add a format. Registering the same id twice is a bug, not an override."""
    _check(fmt)
    if fmt.id in _REGISTRY:
        raise ValueError(f"format {fmt.id!r} is already registered")
    _REGISTRY[fmt.id] = fmt


@contextlib.contextmanager
def registered(fmt: Format) -> Iterator[Format]:
    """A format registered for the duration of a block (for tests and plugins' tests)."""
    _ensure_loaded()
    register_format(fmt)
    try:
        yield fmt
    finally:
        _REGISTRY.pop(fmt.id, None)


def _ensure_loaded() -> None:
    global _loaded
    if _loaded:
        return
    for name in _MODULES:
        importlib.import_module(f"mlconvert.formats.{name}")
    _loaded = True
    from mlconvert import plugins

    plugins.load()


def _in_sniff_order() -> list[Format]:
    """Built-in formats in _MODULES order (most specific signatures first), then plugins."""
    order = {fmt_id: i for i, fmt_id in enumerate(_SNIFF_ORDER)}
    return sorted(_REGISTRY.values(), key=lambda fmt: order.get(fmt.id, len(order)))


def all_formats() -> tuple[Format, ...]:
    """Every registered format, in sniffing order (a read-only view)."""
    _ensure_loaded()
    return tuple(_in_sniff_order())


def get(format_id: str) -> Format:
    _ensure_loaded()
    try:
        return _REGISTRY[format_id]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        close = did_you_mean(str(format_id), _REGISTRY)
        raise UsageError(f"unknown format {format_id!r}" + (f"; did you mean {close!r}?" if close else ""),
                         hint=f"known formats: {known}") from None


def did_you_mean(word: str, choices) -> str | None:
    """The choice closest to a mistyped word, if one is close."""
    import difflib

    close = difflib.get_close_matches(word.lower(), list(choices), n=1, cutoff=0.6)
    return close[0] if close else None


def extension_hint(path: Path) -> str:
    """What to do about an output name whose extension names no format."""
    _ensure_loaded()
    known = sorted({ext for fmt in _REGISTRY.values() for ext in fmt.extensions})
    suffix = "".join(Path(path).suffixes[-1:]).lower()
    if suffix:
        close = did_you_mean(suffix, known)
        if close:
            return f"did you mean {Path(path).name[: -len(suffix)]}{close}? Or pass --to FORMAT"
    folders = ", ".join(f.id for f in _REGISTRY.values() if f.directory)
    main = " ".join(f.extensions[0] for f in _in_sniff_order() if f.extensions)
    return (f"use a known extension ({main}, ...; `mlconvert formats` lists them all) or pass --to FORMAT"
            + (f"; a folder output (no extension) needs --to ({folders})" if folders and not suffix else ""))


def by_extension(path: Path) -> Format | None:
    """The format a path's extension suggests (for outputs, which don't exist yet)."""
    _ensure_loaded()
    name = path.name.lower()
    best: tuple[int, Format] | None = None
    for fmt in _REGISTRY.values():
        for ext in fmt.extensions:
            if name.endswith(ext) and (best is None or len(ext) > best[0]):
                best = (len(ext), fmt)
    return best[1] if best else None


def path_problem(exc: OSError) -> str:
    """An OSError about a path, in words."""
    if exc.errno == errno.ENAMETOOLONG:
        return "the path or one of its names is too long for the file system"
    if exc.errno == errno.ELOOP:
        return "too many levels of symbolic links"
    return exc.strerror or str(exc)


def check_input(path: Path) -> os.stat_result:
    """The input's status; refuses what is not a regular file or a folder (a pipe would
    block forever, /dev/zero never ends) and paths the system cannot even look up."""
    try:
        info = os.stat(path)
    except FileNotFoundError:
        raise InputError(f"{path} does not exist", hint="check the path") from None
    except OSError as exc:
        raise InputError(f"cannot read {path}: {path_problem(exc)}", hint="check the path") from None
    kind = special_kind(info.st_mode)
    if kind:
        raise InputError(f"{path} is {kind}, not a model file",
                         hint="mlconvert reads model files and model folders only; copy the model to a file first")
    return info


def read_head(path: Path, size: int = HEAD_SIZE) -> bytes:
    """The first bytes of a regular file. Opened without blocking and checked once open,
    so a pipe put in the file's place is refused instead of waited on."""
    try:
        fd = os.open(path, os.O_RDONLY | getattr(os, "O_NONBLOCK", 0))
    except OSError as exc:
        if exc.errno in (errno.ENAMETOOLONG, errno.ELOOP, errno.ENXIO):
            raise InputError(f"cannot read {path}: {path_problem(exc)}", hint="check the path") from None
        raise
    with open(fd, "rb") as fh:
        kind = special_kind(os.fstat(fd).st_mode)
        if kind:
            raise InputError(f"{path} is {kind}, not a model file",
                             hint="mlconvert reads model files and model folders only")
        return fh.read(size)


def _refuse_non_model(head: bytes, path: Path) -> None:
    """Recognise the usual impostors and say what they are."""
    if not head:
        raise InputError(f"{path} is empty", hint="the file has no bytes; was the download or copy interrupted?")
    if head.startswith(b"version https://git-lfs.github.com/spec/"):
        raise InputError(
            f"{path} is a Git LFS pointer, not the model itself",
            hint="run `git lfs pull` (or download the file from the LFS store) and try again",
        )
    text = head[:512].lstrip().lower()
    if text.startswith((b"<!doctype html", b"<html")):
        raise InputError(
            f"{path} is an HTML page, not a model",
            hint="the download probably saved a web page (a login or 'file not found' page); "
            "fetch the raw file instead",
        )


def detect(path: Path, declared: str | None = None) -> Format:
    """Which format a file on disk is: `declared` (--from) if given, else content, else extension."""
    _ensure_loaded()
    path = Path(path)
    info = check_input(path)
    if declared:
        return get(declared)
    if stat.S_ISDIR(info.st_mode):
        for fmt in _in_sniff_order():
            if fmt.may_be_directory and fmt.sniff(b"", path):
                return fmt
        raise InputError(
            f"{path} is a directory that holds no model mlconvert knows",
            hint="a SavedModel directory has saved_model.pb; a Core ML package ends in .mlpackage",
        )
    try:
        head = read_head(path)
    except OSError as exc:
        raise InputError(f"cannot read {path}: {exc.strerror or exc}", hint="check the file's permissions") from exc
    _refuse_non_model(head, path)
    for fmt in _in_sniff_order():
        if not fmt.directory and fmt.sniff(head, path):
            return fmt
    from mlconvert.formats._keras_config import is_architecture_json

    if is_architecture_json(head):
        raise InputError(
            f"{path} is a Keras model architecture (model.to_json()): it has no weights",
            hint=f"convert the weights file with --architecture {path.name}, "
                 "e.g. mlconvert weights.h5 model.onnx --architecture " + path.name,
        )
    guess = by_extension(path)
    if guess is not None and not guess.directory:
        raise InputError(
            f"{path} has the extension of a {guess.title} file but its content is not one",
            hint="the file may be corrupt or truncated; pass --from FORMAT if you are sure",
        )
    raise InputError(
        f"{path} is not a model file mlconvert recognises",
        hint="run `mlconvert formats` for the known formats, or pass --from FORMAT",
    )


_MALFORMED = (ValueError, KeyError, IndexError, TypeError, AttributeError, RecursionError, LookupError,
              OverflowError, UnicodeError, EOFError, struct.error, MemoryError, OSError)


def malformed(exc: BaseException) -> str:
    """What a parser's exception says about the file, in words."""
    if isinstance(exc, RecursionError):
        return "its structure is nested too deeply"
    if isinstance(exc, (KeyError, IndexError)):
        return "a part it needs is missing"
    if isinstance(exc, (TypeError, AttributeError)):
        return "a part has the wrong type"
    if isinstance(exc, (UnicodeError, LookupError)):
        return "its text is not in a readable encoding"
    if isinstance(exc, (EOFError, struct.error)):
        return "it ends early"
    if isinstance(exc, OverflowError):
        return "a number in it is out of range"
    if isinstance(exc, MemoryError):
        return "describing it needs more memory than there is"
    if isinstance(exc, OSError):
        return f"it cannot be read ({path_problem(exc)})"
    return f"its content is malformed ({str(exc)[:200] or type(exc).__name__})"


class Source:
    """One model file of a known format, for one conversion: detected once, described
    once, hashed once, and its model loaded at most once (lazily), then handed to the
    steps and to verification alike."""

    def __init__(self, path: Path, fmt: Format, *, trust: bool = False, options: dict | None = None,
                 description: dict | None = None):
        self.path = Path(path)
        self.format = fmt
        self.trust = trust
        self.options = dict(options or {})  # loading options, e.g. a Keras architecture
        self._description = description
        self._sha256: str | None = None
        self._loaded: Loaded | None = None
        self.isolate = False  # probe the file in a child before loading it (set for files from outside)

    @classmethod
    def open(cls, path: Path, declared: str | None = None, *, trust: bool = False,
             options: dict | None = None) -> Source:
        """The file at `path`, its format detected (or `declared`)."""
        source = cls(path, detect(Path(path), declared), trust=trust, options=options)
        source.isolate = True
        return source

    @property
    def description(self) -> dict:
        if self._description is None:
            try:
                self._description = self.format.describe(self.path)
            except _MALFORMED as exc:  # a describe that trusted the file's structure: the file is at fault
                raise InputError(f"{self.path} is not a readable {self.format.title}: {malformed(exc)}",
                                 hint="the file is probably corrupt, truncated or not what its name says") from exc
        return self._description

    @property
    def flavor(self) -> str:
        return self.description["flavor"]

    @property
    def sha256(self) -> str:
        if self._sha256 is None:
            from mlconvert.outputs import sha256_of

            self._sha256 = sha256_of(self.path)
        return self._sha256

    @property
    def model(self) -> Any:
        """The model, loaded by its format the first time it is asked for."""
        if self._loaded is None:
            if self.format.load is None:
                raise UsageError(f"mlconvert cannot load {self.format.title} models",
                                 hint="`mlconvert formats` shows what each format supports")
            from mlconvert import isolation

            isolation.preflight(self)
            result = self.format.load(self.path, trust=self.trust, **self.options)
            self._loaded = result if isinstance(result, Loaded) else Loaded(result)
        return self._loaded.model

    @property
    def notes(self) -> list[str]:
        """What loading the model revealed (empty until it is loaded)."""
        return list(self._loaded.notes) if self._loaded else []

    def __repr__(self) -> str:
        return f"Source({str(self.path)!r}, {self.format.id!r})"
