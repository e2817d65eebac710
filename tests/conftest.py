from __future__ import annotations

import json
import os
import subprocess
import sys
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
    def __init__(self, proc: subprocess.CompletedProcess):
        self.code, self.out, self.err = proc.returncode, proc.stdout, proc.stderr

    @property
    def json(self):
        return json.loads(self.out)

    def __repr__(self) -> str:
        return f"<exit {self.code}>\nstdout:\n{self.out}\nstderr:\n{self.err}"


def run_cli(*args, cwd: Path | None = None, env: dict | None = None, prelude: str = "") -> Result:
    """Run the real command in a fresh interpreter: real exit codes, real imports."""
    code = prelude + "\nimport sys\nfrom mlconvert.cli import main\nsys.argv = ['mlconvert'] + sys.argv[1:]\nmain()"
    full_env = {**os.environ, "COLUMNS": "200", "NO_COLOR": "1", **(env or {})}
    proc = subprocess.run([sys.executable, "-c", code, *map(str, args)], capture_output=True, text=True,
                          cwd=cwd, env=full_env, timeout=600)
    return Result(proc)


@pytest.fixture
def cli():
    return run_cli
