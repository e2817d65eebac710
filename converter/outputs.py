"""Files mlconvert writes: atomically, beside their target, and their hashes.

Standard library only (and errors), so every layer may use it. A failed run leaves no partial file
and an existing file untouched: everything is written under a temporary name in the
target's folder (so the final rename is atomic) and renamed on success.
"""
from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
import tempfile
from pathlib import Path
from typing import Iterator

from mlconvert.errors import UsageError


def sha256_of(path: Path) -> str:
    """sha256 of a file, or of a directory's files (relative names and contents, sorted)."""
    path = Path(path)
    digest = hashlib.sha256()
    files = sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]
    for f in files:
        if path.is_dir():
            digest.update(str(f.relative_to(path)).encode() + b"\0")
        with open(f, "rb") as fh:
            for chunk in iter(lambda: fh.read(1 << 20), b""):
                digest.update(chunk)
    return digest.hexdigest()


def size_of(path: Path) -> int:
    path = Path(path)
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file()) if path.is_dir() else path.stat().st_size


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` to write to; renamed onto `path` when the block
    ends without an error, removed otherwise."""
    path = Path(path)
    fd, name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".partial", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: Path, text: str) -> None:
    """Write a text file atomically (reports, manifests)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


def scratch_prefix(dst: Path, pid: int | None = None) -> str:
    """The name of a conversion's scratch folder beside its target: a process that kills
    a stuck conversion (batch --timeout) can find and remove exactly that folder."""
    return f".{Path(dst).name}.mlconvert-{os.getpid() if pid is None else pid}-"


@contextlib.contextmanager
def scratch_dir(dst: Path) -> Iterator[Path]:
    """A scratch folder beside `dst` for a conversion's steps (so the final rename is
    atomic), removed afterwards."""
    dst = Path(dst)
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        workdir = Path(tempfile.mkdtemp(prefix=scratch_prefix(dst), dir=dst.parent))
    except OSError as exc:
        raise UsageError(f"cannot write beside {dst}: {exc.strerror or exc}",
                         hint="choose an output path in a folder you can write to") from exc
    try:
        yield workdir
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


def replace(out: Path, dst: Path) -> None:
    """Move a finished output onto `dst`. An existing model directory (SavedModel,
    .mlpackage) is renamed aside first and removed only once the new one is in place.
    The caller has checked that `dst`, if it is a directory, may be replaced."""
    if not (dst.is_dir() or out.is_dir()) or not dst.exists():
        os.replace(out, dst)
        return
    aside = dst.with_name(f".{dst.name}.replaced-{os.getpid()}")
    os.replace(dst, aside)
    try:
        os.replace(out, dst)
    except OSError:
        os.replace(aside, dst)  # put the old one back
        raise
    if aside.is_dir() and not aside.is_symlink():
        shutil.rmtree(aside, ignore_errors=True)
    else:
        aside.unlink()
