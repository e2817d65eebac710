"""File formats: one module per format, each registered by one call at its bottom.

A module's top level imports only the standard library. `sniff(head, path)` is pure
and cheap; `describe(path)` is static (reads the file, runs none of its code);
`load`/`save` import their library inside the function.
"""
from __future__ import annotations

import importlib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable

from mlconvert.errors import InputError, UsageError

HEAD_SIZE = 4096

# Modules are imported on first use of the registry, in this order; the order is
# also the order in which sniffers are tried (most specific signatures first).
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
)


@dataclass(frozen=True)
class Format:
    id: str
    title: str
    extensions: tuple[str, ...]
    sniff: Callable[[bytes, Path], bool]
    describe: Callable[[Path], dict]
    load: Callable[..., Any] | None = None
    save: Callable[..., None] | None = None
    # For verification: (path, options) -> mlconvert.predict.Predictor, and the module
    # it needs (probed without importing). No predictor: mlconvert cannot run the format.
    predictor: Callable[..., Any] | None = None
    runtime: str | None = None
    directory: bool = False  # a model stored as a folder (SavedModel, .mlpackage)
    family: str = ""  # which extra provides its library: classic, tf, coreml, pmml
    notes: str = ""
    extra: dict = field(default_factory=dict)

    @property
    def may_be_directory(self) -> bool:
        """Always a folder (SavedModel), or a file or a folder (.mlmodel / .mlpackage)."""
        return self.directory or bool(self.extra.get("also_directory"))


_REGISTRY: dict[str, Format] = {}
_loaded = False


def register_format(fmt: Format) -> None:
    """Add a format. Registering the same id twice is a bug, not an override."""
    if fmt.id in _REGISTRY:
        raise ValueError(f"format {fmt.id!r} is already registered")
    _REGISTRY[fmt.id] = fmt


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
    """Registered formats in _MODULES order, whichever module happened to be imported first."""
    def rank(fmt: Format) -> int:
        name = fmt.sniff.__module__.rpartition(".")[2]
        return _MODULES.index(name) if name in _MODULES else len(_MODULES)

    return sorted(_REGISTRY.values(), key=rank)


def all_formats() -> list[Format]:
    _ensure_loaded()
    return list(_REGISTRY.values())


def get(format_id: str) -> Format:
    _ensure_loaded()
    try:
        return _REGISTRY[format_id]
    except KeyError:
        known = ", ".join(sorted(_REGISTRY))
        raise UsageError(f"unknown format {format_id!r}", hint=f"known formats: {known}") from None


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


def read_head(path: Path, size: int = HEAD_SIZE) -> bytes:
    with open(path, "rb") as fh:
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
    if not path.exists():
        raise InputError(f"{path} does not exist", hint="check the path")
    if declared:
        return get(declared)
    if path.is_dir():
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
