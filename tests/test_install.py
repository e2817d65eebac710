"""`pip install .` (not editable) gives a working `mlconvert`: the package-dir mapping
can work editable and break installed, so the wheel is built and run for real."""
from __future__ import annotations

import subprocess
import sys
import sysconfig
import zipfile
from pathlib import Path

import pytest

from conftest import FIXTURES, ROOT

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def installed(tmp_path_factory) -> Path:
    tmp = tmp_path_factory.mktemp("install")
    subprocess.run([sys.executable, "-m", "pip", "wheel", "-q", "--no-deps", "--no-build-isolation", "-w",
                    str(tmp / "dist"), str(ROOT)], check=True, capture_output=True)
    venv = tmp / "venv"
    subprocess.run([sys.executable, "-m", "venv", "--without-pip", str(venv)], check=True)
    (wheel,) = (tmp / "dist").glob("mlconvert-*.whl")
    subprocess.run([sys.executable, "-m", "pip", "--python", str(venv / "bin" / "python"), "install", "-q",
                    "--no-deps", str(wheel)], check=True, capture_output=True)
    # The converter libraries come from the project environment; mlconvert itself from the wheel.
    site = next((venv / "lib").glob("python3*/site-packages"))
    (site / "project-deps.pth").write_text(sysconfig.get_paths()["purelib"] + "\n")
    return tmp


def test_wheel_holds_the_mapped_packages(installed):
    (wheel,) = (installed / "dist").glob("mlconvert-*.whl")
    names = set(zipfile.ZipFile(wheel).namelist())
    for needed in ("mlconvert/__init__.py", "mlconvert/cli.py", "mlconvert/formats/__init__.py",
                   "mlconvert/formats/pickle_joblib.py", "mlconvert/edges/via_skl2onnx.py"):
        assert needed in names
    assert not any(n.startswith(("converter/", "formats/", "tests/", "fixtures/")) for n in names)
    entry_points = next(n for n in names if n.endswith("entry_points.txt"))
    assert "mlconvert = mlconvert.cli:main" in zipfile.ZipFile(wheel).read(entry_points).decode()


def test_installed_command_converts(installed, tmp_path):
    exe = installed / "venv" / "bin" / "mlconvert"
    where = subprocess.run([str(installed / "venv" / "bin" / "python"), "-c",
                            "import mlconvert, mlconvert.formats, mlconvert.edges; print(mlconvert.__file__)"],
                           capture_output=True, text=True, check=True, cwd=tmp_path).stdout
    assert str(installed / "venv") in where  # the wheel's copy, not the source tree
    assert subprocess.run([str(exe), "--help"], capture_output=True, cwd=tmp_path).returncode == 0
    result = subprocess.run([str(exe), str(FIXTURES / "lgbm_classifier_iris.pkl"), str(tmp_path / "m.onnx")],
                            capture_output=True, text=True, cwd=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "verified" in result.stdout  # the conversion summary is what the command produces
