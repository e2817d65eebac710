from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
FIXTURES = ROOT / "fixtures"
REALWORLD = ROOT.parent / "shared" / "realworld"


@pytest.fixture
def fixtures() -> Path:
    return FIXTURES


@pytest.fixture
def realworld() -> Path:
    if not REALWORLD.is_dir():
        pytest.skip("../shared/realworld is not beside this checkout")
    return REALWORLD


class Result:
    def __init__(self, code: int, out: str, err: str):
        self.code, self.out, self.err = code, out, err

    @property
    def envelope(self) -> dict:
        """The whole --json document."""
        return json.loads(self.out)

    @property
    def json(self):
        """The --json document's result."""
        return self.envelope["result"]

    def __repr__(self) -> str:
        return f"<exit {self.code}>\nstdout:\n{self.out}\nstderr:\n{self.err}"


_TEST_ENV = {"COLUMNS": "200", "NO_COLOR": "1"}
_fd_streams: list = []  # text streams on fds 1 and 2, kept open: libraries may hold on to them


def _streams_on_fds():
    if not _fd_streams:
        _fd_streams.extend(open(fd, "w", encoding="utf-8", errors="replace", buffering=1, closefd=False)
                           for fd in (1, 2))
    return _fd_streams


def run_cli(*args, cwd: Path | None = None, env: dict | None = None, prelude: str = "") -> Result:
    """Run `main(argv)` in this process, with fds 1 and 2 captured: real exit codes and real
    stdout/stderr at the descriptor level, without an interpreter's start-up. A test that
    needs environment variables or a `prelude` runs in a fresh interpreter instead."""
    if env or prelude:
        return run_cli_subprocess(*args, cwd=cwd, env=env, prelude=prelude)
    from mlconvert.cli import main

    saved_env = {k: os.environ.get(k) for k in _TEST_ENV}
    saved_streams = sys.stdout, sys.stderr
    saved_cwd = os.getcwd()
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        for stream in saved_streams:
            stream.flush()
        saved_fds = os.dup(1), os.dup(2)
        code = None
        try:
            os.environ.update(_TEST_ENV)
            os.dup2(out.fileno(), 1)
            os.dup2(err.fileno(), 2)
            sys.stdout, sys.stderr = _streams_on_fds()
            if cwd is not None:
                os.chdir(cwd)
            try:
                main([str(a) for a in args])
            except SystemExit as exc:
                code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
        finally:
            for stream in _fd_streams:
                stream.flush()
            os.chdir(saved_cwd)
            sys.stdout, sys.stderr = saved_streams
            for fd, saved in zip((1, 2), saved_fds):
                os.dup2(saved, fd)
                os.close(saved)
            for key, value in saved_env.items():
                if value is None:
                    os.environ.pop(key, None)
                else:
                    os.environ[key] = value
        assert code is not None, "main() returned without exiting"
        out.seek(0)
        err.seek(0)
        return Result(code, out.read().decode("utf-8", "replace"), err.read().decode("utf-8", "replace"))


def run_cli_subprocess(*args, cwd: Path | None = None, env: dict | None = None, prelude: str = "") -> Result:
    """Run the real command in a fresh interpreter: real exit codes, real imports."""
    code = prelude + "\nimport sys\nfrom mlconvert.cli import main\nsys.argv = ['mlconvert'] + sys.argv[1:]\nmain()"
    full_env = {**os.environ, **_TEST_ENV, **(env or {})}
    proc = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=full_env, timeout=600)
    return Result(proc.returncode, proc.stdout, proc.stderr)


@pytest.fixture
def cli():
    return run_cli
