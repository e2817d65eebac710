"""Seeded fuzzing of every registered format's sniff/describe and of the CLI's rendering.

Each format gets a seed file; a seeded mutator derives inputs from it (bit flips, byte
sets, insertions, deletions, truncation, duplicated chunks, extreme integers, markup and
terminal escapes spliced in). For every input, `inspect` must either describe the file or
refuse it with an mlconvert error, and what it describes must render as plain text: no
exception of another kind, no markup error, no control character reaching the terminal.

The number of inputs is fixed (not a time budget), so a run is reproducible from its seed:
about a minute in `make test`; MLCONVERT_FUZZ_ITERATIONS=N sets the inputs per format and
MLCONVERT_FUZZ_SEED the seed. A failure names the format, seed and iteration.
"""
from __future__ import annotations

import os
import random
import shutil
import struct
from pathlib import Path

import pytest

from mlconvert import api, formats
from mlconvert.errors import MlconvertError

ITERATIONS = int(os.environ.get("MLCONVERT_FUZZ_ITERATIONS", "400"))
SEED = int(os.environ.get("MLCONVERT_FUZZ_SEED", "20261201"))
# HDF5 is described in a child process (isolation): a few inputs cost as much as many others.
SLOW = {"keras-h5": 0.1}
FIXTURES = Path(__file__).resolve().parent.parent / "fixtures"

HOSTILE = [b"[/]", b"[/x]", b"[bold]", b"[link=https://example.invalid]x[/link]", b"\x1b]0;pwned\x07",
           b"\x1b[31m", b"\r", b"\x9b2J", b"\xff\xfe", b"\\", b"\x00"]
INTERESTING = [0, 1, 0x7F, 0x80, 0xFF, 0x7FFF, 0xFFFF, 0x7FFFFFFF, 0x80000000, 0xFFFFFFFF]


def mutate(data: bytes, rng: random.Random) -> bytes:
    """One to four random mutations of `data`."""
    buf = bytearray(data)
    for _ in range(rng.randint(1, 4)):
        n = len(buf)
        op = rng.randrange(9)
        at = rng.randrange(n) if n else 0
        if op == 0 and n:
            buf[at] ^= 1 << rng.randrange(8)
        elif op == 1 and n:
            buf[at] = rng.choice((0, 0xFF, 0x7F, 0x80, rng.randrange(256)))
        elif op == 2:
            buf[at:at] = bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
        elif op == 3 and n:
            del buf[at:at + rng.randint(1, max(1, n // 8))]
        elif op == 4 and n:
            del buf[rng.randrange(n):]
        elif op == 5 and n:
            end = min(n, at + rng.randint(1, 256))
            buf[at:at] = buf[at:end] * rng.randint(1, 8)
        elif op == 6 and n >= 4:
            at = min(at, n - 4)
            buf[at:at + 4] = struct.pack("<I", rng.choice(INTERESTING))
        elif op == 7:
            buf[at:at] = rng.choice(HOSTILE)
        elif op == 8 and n:  # a hostile string in place of a run of printable text (names, versions)
            text = [i for i in range(max(0, at - 64), min(n, at + 64)) if 0x30 <= buf[i] < 0x7B]
            if text:
                i = rng.choice(text)
                buf[i:i + 1] = rng.choice(HOSTILE)
    return bytes(buf)


# --- seeds: one file per built-in format, written into a folder ---


def _seed_files(tmp: Path) -> dict[str, tuple[Path, Path]]:
    """{format id: (the seed file or folder, the file inside it that is mutated)}."""
    import format_samples as samples

    seeds: dict[str, tuple[Path, Path]] = {}

    def file(fmt: str, name: str, data: bytes) -> None:
        path = tmp / name
        path.write_bytes(data)
        seeds[fmt] = (path, path)

    file("pickle", "m.pkl", (FIXTURES / "sklearn_logreg_iris.pkl").read_bytes())
    file("xgboost", "m.json", (FIXTURES / "xgb_classifier_iris.json").read_bytes())
    file("lightgbm", "m.txt", (FIXTURES / "lgbm_classifier_iris.txt").read_bytes()[:20000])
    file("catboost", "m.cbm", (FIXTURES / "catboost_classifier_iris.cbm").read_bytes())
    file("pmml", "m.pmml", samples.PMML_DOC.encode())
    file("tflite", "m.tflite", samples.tflite_bytes())
    file("coreml", "m.mlmodel", samples.coreml_spec(user_defined={"mlconvert.source": "m.pkl"}))
    try:
        file("onnx", "m.onnx", samples.onnx_classifier_bytes())
    except ImportError:
        pass
    keras = samples.make_keras_zip(tmp / "m.keras")
    seeds["keras"] = (keras, keras)
    try:
        h5 = samples.make_keras_h5(tmp / "m.h5")
        seeds["keras-h5"] = (h5, h5)
    except ImportError:
        pass
    folder = samples.make_savedmodel(tmp / "m_savedmodel")
    seeds["savedmodel"] = (folder, folder / "saved_model.pb")
    return seeds


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    return _seed_files(tmp_path_factory.mktemp("seeds"))


def test_every_builtin_format_has_a_seed(seeds):
    builtin = {f.id for f in formats.all_formats() if f.describe.__module__.startswith("mlconvert.formats.")}
    missing = builtin - set(seeds)
    optional = {"onnx", "keras-h5"}  # their samples need the onnx / h5py packages
    assert missing <= optional, missing


def _render(report: dict) -> str:
    """The CLI's rendering of an inspect report, as the terminal would receive it."""
    import io

    from rich.console import Console

    from mlconvert import console

    stream = io.StringIO()
    out = Console(file=stream, width=120, color_system="truecolor", force_terminal=True, highlight=False)
    console.inspect(out, report)
    return stream.getvalue()


def _terminal_text(rendered: str) -> str:
    """What is left once rich's own styling sequences (ESC [ ... m) are taken out."""
    import re

    return re.sub(r"\x1b\[[0-9;]*m", "", rendered)


CONTROL = {chr(c) for c in range(32) if chr(c) not in "\n\t"} | {chr(c) for c in range(0x7F, 0xA0)}


@pytest.mark.parametrize("fmt", ["pickle", "xgboost", "lightgbm", "catboost", "onnx", "coreml", "pmml", "keras",
                                 "keras-h5", "savedmodel", "tflite"])
def test_inspect_survives_mutated_files(fmt, seeds, tmp_path):
    if fmt not in seeds:
        pytest.skip(f"no {fmt} seed here (its sample needs an optional package)")
    seed_path, target = seeds[fmt]
    original = target.read_bytes()
    rng = random.Random(f"{SEED}-{fmt}")
    iterations = max(2, int(ITERATIONS * SLOW.get(fmt, 1.0)))
    outcomes = {"described": 0, "refused": 0}
    for i in range(iterations):
        data = mutate(original, rng)
        work = tmp_path / f"{i}"
        work.mkdir()
        if seed_path.is_dir():
            path = work / seed_path.name
            shutil.copytree(seed_path, path)
            (path / target.relative_to(seed_path)).write_bytes(data)
        else:
            path = work / seed_path.name
            path.write_bytes(data)
        where = f"{fmt} seed {SEED} iteration {i} ({len(data)} bytes)"
        try:
            report = api.inspect(path).to_dict()
        except MlconvertError as exc:
            assert exc.exit_code in (2, 3, 7), f"{where}: exit {exc.exit_code}: {exc.message}"
            assert "Traceback" not in exc.message
            outcomes["refused"] += 1
        except Exception as exc:  # noqa: BLE001 - the finding this test exists for
            pytest.fail(f"{where}: {type(exc).__name__}: {exc}")
        else:
            outcomes["described"] += 1
            try:
                rendered = _terminal_text(_render(report))
            except Exception as exc:  # noqa: BLE001
                pytest.fail(f"{where}: rendering failed: {type(exc).__name__}: {exc}")
            assert not CONTROL & set(rendered), f"{where}: a control character reached the terminal"
        shutil.rmtree(work)
    assert sum(outcomes.values()) == iterations
    print(f"{fmt}: {outcomes}")


def test_the_mutator_is_reproducible():
    a = [mutate(b"0123456789abcdef" * 4, random.Random(7)) for _ in range(3)]
    b = [mutate(b"0123456789abcdef" * 4, random.Random(7)) for _ in range(3)]
    assert a == b and any(x != b"0123456789abcdef" * 4 for x in a)


@pytest.mark.parametrize("text", [h.decode("latin-1") for h in HOSTILE] + ["[/]\x1b[2J\udcff", "a\\[b]"])
def test_every_renderer_shows_hostile_text_as_text(text):
    """Every human renderer, fed a result whose file-derived strings are all hostile."""
    from mlconvert import console

    src = {"path": f"m{text}.pkl", "format": "pickle", "flavor": text, "producer": text, "producer_version": text,
           "warnings": [text]}
    report = {"source": src, "target": {"path": f"o{text}.onnx", "format": "onnx"},
              "steps": [{"edge": "skl2onnx", "from": "pickle", "to": "onnx", "library": "skl2onnx", "version": text,
                         "fidelity": text, "seconds": 0.1, "status": "ok", "error": text}],
              "failed_steps": [], "written": True,
              "verification": {"status": "verified", "rows": 3, "inputs": text, "atol": 1e-5, "rtol": 1e-4,
                               "tolerance_source": text, "reason": text,
                               "outputs": [{"name": text, "max_abs": 0.0, "max_rel": 0.0}]}}
    inspect = {"path": text, "title": text, "format": "pickle", "size": 1, "sha256": "0" * 64, "flavor": text,
               "kind": text, "producer": text, "producer_version": text, "n_features": text,
               "inputs": [{"name": text, "dtype": text, "shape": text}], "outputs": [],
               "details": {text: text, "list": [text]}, "provenance": {text: text}, "warnings": [text]}
    import io

    from rich.console import Console

    stream = io.StringIO()
    out = Console(file=stream, width=200, color_system="truecolor", force_terminal=True, highlight=False)
    console.conversion(out, report)
    console.inspect(out, inspect)
    console.error_line(out, 3, text, text)
    console.verification(out, {"verification": report["verification"]})
    rendered = _terminal_text(stream.getvalue())
    assert not CONTROL & set(rendered)
    visible = text.replace("\udcff", "\ufffd")
    for c in CONTROL:
        visible = visible.replace(c, "")
    assert visible in rendered
