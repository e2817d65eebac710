"""Native libraries read untrusted files in a child process first.

LightGBM, XGBoost, CatBoost and HDF5 parse model files in C/C++. A corrupt or hostile
file can make them abort, crash or loop; in mlconvert's own process that would kill the
command without a message and leave its scratch folder behind. So before a model file
given by the user is loaded in process, a child process loads it (a "probe": the load and
what the conversion then asks of the library), under limits on address space, CPU time and
wall time. A crash, a hang or running out of memory there becomes an InputError (exit 3)
that says which library failed and how; the file is loaded in process only once the child
has read it without harm. Files mlconvert wrote itself (a step's output) are not probed.

The child is `python -m mlconvert.isolation`: it sets its limits, runs one function
('module:name') on the path and sends back a JSON result on a pipe. Standard library only.
MLCONVERT_ISOLATION=0 turns probing off (see SECURITY.md for what that gives up).
"""
from __future__ import annotations

import importlib
import json
import os
import signal
import subprocess
import sys
import tempfile
from dataclasses import dataclass
from pathlib import Path

from mlconvert.errors import InputError, MlconvertError


@dataclass(frozen=True)
class Limits:
    """What the child may use. Generous for real models (a 100 MB booster loads well within
    them), small enough that a runaway parse ends in seconds, not hours."""

    memory_mb: int = 4096  # address space (RLIMIT_AS); native libraries reserve more than they touch
    cpu_seconds: int = 60  # RLIMIT_CPU
    wall_seconds: float = 180.0  # killed after this, whatever it is doing (a busy machine shares its CPUs)

    @classmethod
    def for_file(cls, path: Path) -> Limits:
        """Larger files get more time and memory: 10 s of CPU and 50 MB per MB of file.
        MLCONVERT_ISOLATION_SECONDS (CPU seconds; wall time is three times that) and
        MLCONVERT_ISOLATION_MEMORY_MB set them outright."""
        try:
            mb = os.stat(path).st_size / 1e6
        except OSError:
            mb = 0.0
        limits = cls(memory_mb=max(cls.memory_mb, int(50 * mb)), cpu_seconds=max(cls.cpu_seconds, int(10 * mb)),
                     wall_seconds=max(cls.wall_seconds, 15.0 * mb))
        seconds = _env_int("MLCONVERT_ISOLATION_SECONDS")
        memory = _env_int("MLCONVERT_ISOLATION_MEMORY_MB")
        if seconds:
            limits = Limits(limits.memory_mb, seconds, 3.0 * seconds)
        if memory:
            limits = Limits(memory, limits.cpu_seconds, limits.wall_seconds)
        return limits


    def scaled(self, cpu: float = 1.0) -> Limits:
        """The same limits with a fraction of the time, for work lighter than a full load."""
        return Limits(self.memory_mb, max(1, int(self.cpu_seconds * cpu)), max(3.0, self.wall_seconds * cpu))


def _env_int(name: str) -> int | None:
    try:
        value = int(os.environ.get(name, ""))
    except ValueError:
        return None
    return value if value > 0 else None


def enabled() -> bool:
    return os.environ.get("MLCONVERT_ISOLATION", "1") != "0"


def call(library: str, function: str, path: Path, limits: Limits | None = None, lean: bool = True):
    """`function(path)` ('module:name') run in a limited child process; its JSON result.

    An MlconvertError raised in the child is raised here; a crash, hang or exhausted limit
    is an InputError naming `library`, and so is any other exception: what failed in the
    child would fail here too, or worse (under the child's memory limit a corrupt size
    fails to allocate; here it might be allocated and read past). An ImportError (a lean
    child lacks scikit-learn) is no finding: None.
    `lean`: the child does without scikit-learn and pandas (see _UNNEEDED).
    """
    path = Path(path)
    limits = limits or Limits.for_file(path)
    # The result and the library's chatter go to unnamed temporary files, not pipes: a large
    # result cannot block the child, and only the end of what it printed is ever read back.
    with tempfile.TemporaryFile() as result, tempfile.TemporaryFile() as chatter:
        command = [sys.executable, "-m", "mlconvert.isolation", function, os.fspath(path), str(result.fileno()),
                   str(limits.memory_mb), str(limits.cpu_seconds), "lean" if lean else "full"]
        child = subprocess.Popen(command, stdin=subprocess.DEVNULL, stdout=subprocess.DEVNULL, stderr=chatter,
                                 pass_fds=(result.fileno(),), start_new_session=True)
        try:
            child.wait(timeout=limits.wall_seconds)
        except subprocess.TimeoutExpired:
            _kill(child)
            raise InputError(
                f"the {library} library did not finish reading {path} within {limits.wall_seconds:.0f} s; "
                "the file is corrupt or was made by an incompatible version",
                hint="if the file is a genuine, very large model, MLCONVERT_ISOLATION=0 skips this check "
                     "(see SECURITY.md)") from None
        result.seek(0)
        payload = result.read()
        chatter.seek(max(0, chatter.seek(0, os.SEEK_END) - 4096))
        stderr = chatter.read()
    return _outcome(library, path, limits, child.returncode, payload, stderr)


def _kill(child: subprocess.Popen) -> None:
    try:
        os.killpg(child.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        child.kill()
    child.wait()


def _said(stderr: bytes) -> str:
    """The library's own last words (LightGBM prints "[Fatal] ..." before aborting)."""
    lines = [line.strip() for line in stderr.decode("utf-8", "replace").splitlines() if line.strip()]
    fatal = [line for line in lines if "fatal" in line.lower() or "error" in line.lower()]
    last = (fatal or lines or [""])[-1]
    return f" (it said: {last[:200]})" if last else ""


def _outcome(library: str, path: Path, limits: Limits, code: int, payload: bytes, stderr: bytes):
    try:
        result = json.loads(payload) if payload else None
    except ValueError:
        result = None
    if code == 0 and isinstance(result, dict):
        error = result.get("error")
        if error:
            raise _rebuilt(error)
        if result.get("refused"):
            raise InputError(f"the {library} library cannot read {path}: {result['refused']}",
                             hint="the file is corrupt or was made by an incompatible version")
        return result.get("value")
    if isinstance(result, dict) and result.get("memory"):
        raise InputError(f"the {library} library needed more than {limits.memory_mb} MB of memory to read {path}; "
                         "the file is corrupt or was made by an incompatible version",
                         hint="a genuine model this large: MLCONVERT_ISOLATION=0 skips this check (see SECURITY.md)")
    if code < 0:
        number = -code
        try:
            name = signal.Signals(number).name
        except ValueError:
            name = "unknown signal"
        if number == signal.SIGXCPU or number == signal.SIGKILL:
            reason = f"used more than {limits.cpu_seconds} s of CPU time (signal {number}, {name})"
        else:
            reason = f"crashed (signal {number}, {name})"
        raise InputError(f"the {library} library {reason} while reading {path}; the file is corrupt or was made "
                         f"by an incompatible version{_said(stderr)}",
                         hint="check the file against the library version that made it")
    raise InputError(f"the {library} library stopped while reading {path} (exit status {code}); the file is "
                     f"corrupt or was made by an incompatible version{_said(stderr)}",
                     hint="check the file against the library version that made it")


def _error_classes() -> dict[str, type[MlconvertError]]:
    from mlconvert import errors

    return {cls.__name__: cls for cls in (*errors.ERRORS, errors.Unsupported)}


def _rebuilt(error: dict) -> MlconvertError:
    """The child's MlconvertError, as it was raised there (an Unsupported keeps what it names,
    so a load refused for an unknown objective still ends as "no path")."""
    cls = _ERRORS.get(error.get("class"), InputError)
    exc = cls.__new__(cls)
    MlconvertError.__init__(exc, error.get("message", ""), hint=error.get("hint"), details=error.get("details"))
    if "unsupported" in exc.details:
        exc.elements = list(exc.details["unsupported"])
    return exc


_ERRORS = _error_classes()


def run(library: str, function, path: Path, limits: Limits | None = None):
    """`function(path)` in a child process (see `call`), or here when isolation is off.
    `function` is a module-level function; its result must be JSON."""
    if not enabled():
        return function(Path(path))
    return call(library, f"{function.__module__}:{function.__qualname__}", path, limits)


def preflight(source) -> None:
    """Probe `source`'s file in a child before it is loaded here, if its format has a
    probe, the file came from outside, it reaches a native library and isolation is on."""
    fmt = source.format
    if fmt.probe is None or not getattr(source, "isolate", False) or not enabled():
        return
    library = fmt.native(source.description) if callable(fmt.native) else (fmt.native or fmt.title)
    if library:
        # A native format's probe needs only the library's core; a pickle rebuilds its
        # scikit-learn wrapper around the booster, so it needs scikit-learn too.
        call(library, f"{fmt.probe.__module__}:{fmt.probe.__qualname__}", source.path,
             lean=not callable(fmt.native))


# --- the child ---


def _is_json(value) -> bool:
    try:
        json.dumps(value)
        return True
    except (TypeError, ValueError):
        return False


def _limit(memory_mb: int, cpu_seconds: int) -> None:
    import resource

    for which, value in ((resource.RLIMIT_AS, memory_mb * 1024 * 1024), (resource.RLIMIT_CPU, cpu_seconds),
                         (resource.RLIMIT_CORE, 0)):
        try:
            soft, hard = resource.getrlimit(which)
            value = value if hard == resource.RLIM_INFINITY else min(value, hard)
            resource.setrlimit(which, (value, hard if which != resource.RLIMIT_CORE else max(0, hard)))
        except (ValueError, OSError):
            pass  # a platform without this limit: the wall-time limit still holds


_UNNEEDED = ("sklearn", "pandas")
"""A probe needs a library's core, not its scikit-learn and pandas glue, which XGBoost and
LightGBM import when they can: left out, the child starts in half the time. (A probe that
needs them after all fails with ImportError, which counts as no finding.)"""


def _child(argv: list[str]) -> int:
    function, path, fd, memory_mb, cpu_seconds, lean = argv
    _limit(int(memory_mb), int(cpu_seconds))
    if lean == "lean":
        for name in _UNNEEDED:
            sys.modules.setdefault(name, None)  # import now raises ImportError
    with open(int(fd), "w", encoding="utf-8", closefd=True) as out:
        try:
            module, name = function.split(":")
            target = importlib.import_module(module)
            for part in name.split("."):
                target = getattr(target, part)
            value = target(Path(path))
            message = {"value": value}
        except MlconvertError as exc:
            details = exc.details if _is_json(exc.details) else {}
            message = {"error": {"class": type(exc).__name__, "message": exc.message, "hint": exc.hint,
                                 "details": details}}
        except MemoryError:
            message = {"memory": True}
            json.dump(message, out)
            return 1
        except ImportError:  # a lean child without scikit-learn: not a finding about the file
            message = {"value": None}
        except Exception as exc:  # the library refused the file
            text = (str(exc).strip().splitlines() or [""])[0][:300]
            message = {"refused": f"{text} ({type(exc).__name__})" if text else type(exc).__name__}
        json.dump(message, out, default=str)
    return 0


if __name__ == "__main__":
    sys.exit(_child(sys.argv[1:]))
