"""Files mlconvert writes: atomically, beside their target, and their hashes.

Standard library only (and errors), so every layer may use it. A failed run leaves no partial file
and an existing file untouched: everything is written under a temporary name in the
target's folder (so the final rename is atomic) and renamed on success.

Temporary names carry the writer's pid (`.NAME.mlconvert-<pid>-…`, `.NAME.replaced-<pid>`), so
the next run on the same target can tell what a killed run left behind and clean it up:
a scratch copy is removed, an old model folder renamed aside is put back or removed.
"""
from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import shutil
import stat
import tempfile
from pathlib import Path
from typing import Iterator

from mlconvert.errors import UsageError

SPECIAL_KINDS = ((stat.S_ISFIFO, "a named pipe (FIFO)"), (stat.S_ISCHR, "a character device"),
                 (stat.S_ISBLK, "a block device"), (stat.S_ISSOCK, "a socket"))


def special_kind(mode: int) -> str | None:
    """What a file is when it is neither a regular file, a folder nor a link, in words."""
    for test, words in SPECIAL_KINDS:
        if test(mode):
            return words
    return None


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


NAME_ROOM = 200
"""How much of a target's name goes into the names beside it: NAME_MAX is 255 and the
temporary names add up to ~30 characters, so a legal 255-character target still works."""


def _short(name: str) -> str:
    return name[:NAME_ROOM]


def _problem(exc: OSError) -> str:
    if exc.errno == errno.ENAMETOOLONG:
        return "the path or one of its names is too long for the file system"
    return exc.strerror or str(exc)


def _lstat(path: Path) -> os.stat_result | None:
    """The path's own status (a link is not followed), None if nothing is there."""
    try:
        return os.lstat(path)
    except FileNotFoundError:
        return None
    except NotADirectoryError:
        raise UsageError(f"cannot write {path}: a part of its folder is a file", hint="choose another output path") \
            from None
    except OSError as exc:
        raise UsageError(f"cannot write {path}: {_problem(exc)}", hint="choose a shorter output path") from None


def check_target(path: Path) -> os.stat_result | None:
    """What is at an output path now; refuses a path that cannot be written at all and a
    pipe, device or socket there (replacing /dev/null with a model is never wanted)."""
    info = _lstat(Path(path))
    if info is not None and not (stat.S_ISREG(info.st_mode) or stat.S_ISDIR(info.st_mode)
                                 or stat.S_ISLNK(info.st_mode)):

        raise UsageError(f"{path} is {special_kind(info.st_mode) or 'a special file'}; "
                         "mlconvert replaces only files and model folders",
                         hint="choose a regular file's path for the output")
    return info


def scratch_prefix(dst: Path, pid: int | None = None) -> str:
    """The name of a conversion's scratch folder (or a file's temporary copy) beside its
    target: a process that kills a stuck conversion (batch --timeout) can find and remove
    exactly that, and the next run on the target removes those of dead processes."""
    return f".{_short(Path(dst).name)}.mlconvert-{os.getpid() if pid is None else pid}-"


def aside_name(dst: Path, pid: int | None = None) -> str:
    """Where an existing model folder waits while its replacement is renamed in."""
    return f".{_short(Path(dst).name)}.replaced-{os.getpid() if pid is None else pid}"


def _alive(pid: int) -> bool:
    if pid == os.getpid():
        return True
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except OSError:  # another user's process: alive
        return True
    return True


def _remove(path: Path) -> None:
    if path.is_dir() and not path.is_symlink():
        shutil.rmtree(path, ignore_errors=True)
    else:
        with contextlib.suppress(FileNotFoundError):
            path.unlink()


def leftovers(dst: Path) -> tuple[list[Path], list[Path]]:
    """(scratch copies, old folders renamed aside) that dead processes left beside `dst`."""
    dst = Path(dst)
    name = re.escape(_short(dst.name))
    scratch_re = re.compile(rf"\.{name}\.mlconvert-(\d+)-")
    aside_re = re.compile(rf"\.{name}\.replaced-(\d+)")
    scratch, aside = [], []
    try:
        entries = list(os.scandir(dst.parent))
    except OSError:
        return [], []
    for entry in entries:
        for pattern, found in ((scratch_re, scratch), (aside_re, aside)):
            match = pattern.match(entry.name)
            if match and (pattern is scratch_re or match.end() == len(entry.name)) \
                    and not _alive(int(match.group(1))):
                found.append(Path(entry.path))
    return sorted(scratch), sorted(aside)


def recover(dst: Path) -> None:
    """Clean up after runs on `dst` that were killed: remove their scratch copies; an old
    model folder left renamed aside goes back to `dst` if nothing took its place (the kill
    came between the two renames of `replace`), else it is removed (the kill came after)."""
    dst = Path(dst)
    scratch, aside = leftovers(dst)
    for path in scratch:
        _remove(path)
    for path in aside:
        if _lstat(dst) is None:
            os.replace(path, dst)
        else:
            _remove(path)


@contextlib.contextmanager
def atomic_path(path: Path) -> Iterator[Path]:
    """A temporary path beside `path` to write to; renamed onto `path` when the block
    ends without an error, removed otherwise."""
    path = Path(path)
    check_target(path)
    fd, name = tempfile.mkstemp(prefix=scratch_prefix(path), suffix=".partial", dir=path.parent)
    os.close(fd)
    tmp = Path(name)
    try:
        yield tmp
        check_target(path)
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def write_text(path: Path, text: str) -> None:
    """Write a text file atomically (reports, manifests)."""
    with atomic_path(path) as tmp:
        tmp.write_text(text, encoding="utf-8")


@contextlib.contextmanager
def scratch_dir(dst: Path) -> Iterator[Path]:
    """A scratch folder beside `dst` for a conversion's steps (so the final rename is
    atomic), removed afterwards. What killed runs left beside `dst` is cleaned up first."""
    dst = Path(dst)
    check_target(dst)
    created = [p for p in (dst.parent, *dst.parent.parents) if not p.exists()]  # made here, removed on failure
    try:
        dst.parent.mkdir(parents=True, exist_ok=True)
        recover(dst)
        workdir = Path(tempfile.mkdtemp(prefix=scratch_prefix(dst), dir=dst.parent))
    except OSError as exc:
        raise UsageError(f"cannot write beside {dst}: {_problem(exc)}",
                         hint="choose an output path in a folder you can write to") from exc
    try:
        yield workdir
    except BaseException:
        shutil.rmtree(workdir, ignore_errors=True)
        for folder in created:  # deepest first; a folder something else wrote into stays
            with contextlib.suppress(OSError):
                folder.rmdir()
        raise
    finally:
        shutil.rmtree(workdir, ignore_errors=True)


# Replacing a model folder takes three steps, each one rename or removal, so that a kill
# between any two leaves either the old model at `dst` or the new one, or the old one
# aside where `recover` (run by the next conversion onto `dst`) puts it back.


def set_aside(dst: Path) -> Path:
    """Step 1: the existing folder moves to its aside name."""
    aside = dst.with_name(aside_name(dst))
    os.replace(dst, aside)
    return aside


def move_in(out: Path, dst: Path, aside: Path) -> None:
    """Step 2: the new output takes the target's name; on failure the old one goes back."""
    try:
        os.replace(out, dst)
    except OSError:
        os.replace(aside, dst)
        raise


def drop_aside(aside: Path) -> None:
    """Step 3: the old folder goes."""
    _remove(aside)


def replace(out: Path, dst: Path) -> None:
    """Move a finished output onto `dst`. An existing model directory (SavedModel,
    .mlpackage) is renamed aside first and removed only once the new one is in place.
    The caller has checked that `dst`, if it is a directory, may be replaced."""
    out, dst = Path(out), Path(dst)
    info = check_target(dst)
    is_dir = info is not None and stat.S_ISDIR(info.st_mode)
    if info is None or not (is_dir or out.is_dir()):
        os.replace(out, dst)
        return
    aside = set_aside(dst)
    move_in(out, dst, aside)
    drop_aside(aside)
