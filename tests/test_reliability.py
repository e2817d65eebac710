"""Hostile and damaged inputs: every case found by fuzzing mlconvert ends with a documented
exit code and a message in words, never a crash, a hang, a traceback or a file left behind.

The minimised reproducers live in tests/data/reliability/ (the larger ones gzipped);
the rest (pipes, devices, long names, bombs) are made here.
"""
from __future__ import annotations

import gzip
import os
import shutil
import stat
import subprocess
import sys
import zlib
from pathlib import Path

import pytest

from conftest import ROOT, run_cli, run_cli_subprocess

DATA = ROOT / "tests" / "data" / "reliability"
CONTROL = [chr(c) for c in range(32) if chr(c) not in "\n\t"] + [chr(c) for c in range(0x7F, 0xA0)]


def repro(name: str, tmp_path: Path) -> Path:
    """A reproducer as a file in tmp_path (gunzipped if stored compressed)."""
    plain, packed = DATA / name, DATA / (name + ".gz")
    dst = tmp_path / name
    if plain.exists():
        shutil.copyfile(plain, dst)
    else:
        dst.write_bytes(gzip.decompress(packed.read_bytes()))
    return dst


def leftovers(folder: Path, *keep: str) -> list[str]:
    """What is in `folder` besides `keep` (a folder a failed run created is removed with it)."""
    return sorted(p.name for p in folder.iterdir() if p.name not in keep) if folder.exists() else []


def assert_clean_failure(result, code: int, *words: str) -> None:
    """The documented exit code, a message in words, no traceback, no raw control character."""
    assert result.code == code, result
    assert "Traceback" not in result.err and "internal error" not in result.err, result
    assert not any(c in result.out + result.err for c in CONTROL if c != "\r"), result
    for word in words:
        assert word in " ".join(result.err.split()), result


# --- 1. native libraries: crashes and hangs become exit 3 (run in a real interpreter) ---

NATIVE_CRASHES = [
    ("CLI-0018-240019-lightgbm.txt", "SIGABRT"),
    ("CLI-0057-240019-lightgbm.txt", "SIGABRT"),
    ("CLI-0070-240019-lightgbm.txt", "SIGABRT"),
    ("CLI-0083-240019-lightgbm.txt", "SIGABRT"),
    ("CLI-0122-240019-lightgbm.txt", "SIGABRT"),
    ("CLI-0135-240019-lightgbm.txt", "SIGABRT"),
    ("CLI-0148-240019-lightgbm.txt", "SIGABRT"),
    ("CLI-0161-603cac-lightgbm.txt", "SIGSEGV"),
]


@pytest.mark.parametrize("name,signal_name", NATIVE_CRASHES)
def test_lightgbm_crash_in_the_probe_child_is_an_input_error(name, signal_name, tmp_path):
    """The probe child dies; the message names the library and the signal."""
    from mlconvert import formats, isolation
    from mlconvert.errors import InputError

    path = repro(name, tmp_path)
    fmt = formats.get("lightgbm")
    with pytest.raises(InputError) as caught:
        isolation.call("LightGBM", "mlconvert.formats.lightgbm_text:probe_load", path, isolation.Limits.for_file(path))
    assert f"the LightGBM library crashed (signal {6 if signal_name == 'SIGABRT' else 11}, {signal_name})" \
        in caught.value.message
    assert "corrupt or was made by an incompatible version" in caught.value.message
    assert fmt.probe is not None


@pytest.mark.slow
def test_lightgbm_abort_during_convert_is_exit_3_and_leaves_nothing(tmp_path):
    src = repro("CLI-0018-240019-lightgbm.txt", tmp_path)
    out = tmp_path / "out"
    result = run_cli_subprocess(src, out / "out.onnx")
    assert_clean_failure(result, 3, "the LightGBM library crashed (signal 6, SIGABRT)")
    assert leftovers(out) == []


@pytest.mark.slow
def test_lightgbm_segfault_during_convert_is_exit_3_and_leaves_nothing(tmp_path):
    src = repro("CLI-0161-603cac-lightgbm.txt", tmp_path)
    out = tmp_path / "out"
    result = run_cli_subprocess(src, out / "out.onnx")
    assert_clean_failure(result, 3, "the LightGBM library crashed (signal 11, SIGSEGV)")
    assert leftovers(out) == []


@pytest.mark.slow
def test_lightgbm_hang_is_stopped_by_the_cpu_limit(tmp_path):
    """LightGBM loops forever on this file; the child's CPU-time limit ends it (a limit in
    CPU seconds, so the outcome does not depend on how busy the machine is)."""
    src = repro("CLI-0031-dff8e9-lightgbm.txt", tmp_path)
    out = tmp_path / "out"
    result = run_cli_subprocess(src, out / "out.onnx", env={"MLCONVERT_ISOLATION_SECONDS": "4"})
    assert_clean_failure(result, 3, "the LightGBM library")
    assert "CPU time" in result.err or "did not finish" in result.err
    assert leftovers(out) == []


@pytest.mark.slow
def test_xgboost_ubj_that_crashes_xgboost_is_exit_3(tmp_path):
    """A few bytes overwritten in a real .ubj: `inspect` reads it statically (exit 0);
    converting probes XGBoost in a child, which segfaults (or, depending on what the
    damaged sizes make it read, fails an internal check): exit 3, nothing left."""
    src = repro("CLI-0038-603cac-xgboost-ubj.ubj", tmp_path)
    assert run_cli("inspect", src).code == 0
    out = tmp_path / "out"
    result = run_cli_subprocess(src, out / "out.onnx")
    assert_clean_failure(result, 3, "XGBoost")
    assert leftovers(out) == []


def _corrupt_xgboost_pickle(fixtures, path: Path) -> Path:
    """The XGBoost classifier pickle with four words of its embedded UBJSON overwritten
    (seed 11 of this recipe made `pickle.load` segfault inside XGBoost)."""
    import random

    data = bytearray((fixtures / "xgb_classifier_iris.pkl").read_bytes())
    start = data.find(b"{L")
    rng = random.Random(11)
    for _ in range(4):
        at = rng.randrange(start + 50, len(data) - 50)
        data[at:at + 4] = rng.choice([b"\xff\xff\xff\x7f", b"\x00\x00\x00\x80",
                                      bytes(rng.randrange(256) for _ in range(4))])
    path.write_bytes(bytes(data))
    return path


@pytest.mark.slow
def test_a_pickled_booster_is_probed_before_it_is_unpickled(fixtures, tmp_path):
    src = _corrupt_xgboost_pickle(fixtures, tmp_path / "m.pkl")
    out = tmp_path / "out"
    result = run_cli_subprocess(src, out / "m.onnx")
    assert_clean_failure(result, 3)
    assert leftovers(out) == []


def test_only_pickles_that_reach_a_native_library_are_probed(fixtures):
    from mlconvert import api
    from mlconvert.formats import pickle_joblib

    assert pickle_joblib.native_library(api.inspect(fixtures / "sklearn_logreg_iris.pkl").description) is None
    assert pickle_joblib.native_library(api.inspect(fixtures / "xgb_classifier_iris.pkl").description) == "XGBoost"
    assert pickle_joblib.native_library(api.inspect(fixtures / "lgbm_classifier_iris.pkl").description) == "LightGBM"


@pytest.mark.slow
@pytest.mark.parametrize("name", ["CRASH-3e0bd1aa-catboost.cbm", "CRASH-79a06fb0-catboost.cbm"])
def test_catboost_inspect_is_static_and_conversion_probes_first(name, tmp_path):
    """`inspect` reads the flatbuffer itself (CatBoost's parser segfaulted on the first
    file); converting probes CatBoost in a child: exit 0, 3 or 5, never a signal."""
    src = repro(name, tmp_path)
    code = ("import catboost\nimport mlconvert.formats.catboost_cbm as m\n"
            f"m.describe({str(src)!r})\nimport sys\nsys.exit(0)")
    describe_in_child = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=600)
    assert describe_in_child.returncode in (0, 1), describe_in_child.stderr  # 1: an InputError, never a signal
    result = run_cli_subprocess("inspect", src)
    assert result.code in (0, 3), result
    assert "Traceback" not in result.err
    out = tmp_path / "out"
    result = run_cli_subprocess(src, out / "m.onnx", env={"MLCONVERT_ISOLATION_MEMORY_MB": "3072"})
    assert result.code in (0, 3, 5), result
    assert "Traceback" not in result.err
    assert leftovers(out, "m.onnx") == []


def test_catboost_static_describe_matches_catboost(fixtures):
    """What the flatbuffer reader finds is what CatBoost itself reports (fixtures, and the
    real-world CatBoost files when they are beside this checkout)."""
    pytest.importorskip("catboost")
    from conftest import REALWORLD
    from mlconvert.formats import catboost_cbm

    files = [fixtures / "catboost_classifier_iris.cbm", fixtures / "catboost_regressor_diabetes.cbm"]
    files += sorted((REALWORLD / "catboost").glob("*.cbm"))
    for path in files:
        static = catboost_cbm.describe(path)
        model = catboost_cbm.load(path)
        assert static["details"]["trees"] == model.tree_count_, path
        assert static["details"]["feature_names"] == list(model.feature_names_), path
        assert static["details"]["categorical_features"] == list(model.get_cat_feature_indices()), path
        assert static["n_features"] == len(model.feature_names_), path
        assert static["details"]["loss_function"] == catboost_cbm.loss_function(model), path
        classes = getattr(model, "classes_", None)
        if static["kind"] == "classifier" and classes is not None and len(classes):
            assert static["n_classes"] == len(classes), path


@pytest.mark.slow
def test_h5_that_hangs_hdf5_is_stopped(tmp_path):
    src = repro("HANG-6e6ce614-keras-h5.h5", tmp_path)
    result = run_cli_subprocess("inspect", src, env={"MLCONVERT_ISOLATION_SECONDS": "8"})
    assert_clean_failure(result, 3, "the HDF5 (h5py) library")


def test_a_large_result_comes_back_from_the_child(tmp_path):
    """Results travel through a file, not a pipe: megabytes do not block the child."""
    from mlconvert import isolation

    path = tmp_path / "big.txt"
    path.write_text("x" * 3_000_000)
    assert isolation.call("test", "pathlib:Path.read_text", path) == "x" * 3_000_000


def test_isolation_can_be_turned_off(tmp_path, monkeypatch):
    from mlconvert import isolation

    path = tmp_path / "t.txt"
    path.write_text("t")
    monkeypatch.setenv("MLCONVERT_ISOLATION", "0")
    assert isolation.run("test", Path.read_text, path) == "t"


# --- 2. bounded parsers ---


@pytest.mark.parametrize("name", ["HANG-10140fd1-xgboost-ubj.ubj", "HANG-716d2627-xgboost-ubj.ubj"])
def test_ubjson_counts_larger_than_the_file_are_refused(name, tmp_path, cli):
    src = repro(name, tmp_path)
    result = cli("inspect", src)
    assert_clean_failure(result, 3, "more than the")


def test_ubjson_nesting_is_bounded():
    from mlconvert.formats import _ubjson

    with pytest.raises(ValueError, match="nested deeper"):
        _ubjson.loads(b"[" * 100_000)
    with pytest.raises(ValueError, match="could hold"):
        _ubjson.loads(b"[$Z#l\x7f\xff\xff\xff")  # two billion empty items in 9 bytes
    assert _ubjson.loads(b"[$i#i\x03\x01\x02\x03") == [1, 2, 3]


def _gzip_joblib(path: Path, body_parts) -> Path:
    """A gzip joblib file whose decompressed pickle is the concatenation of `body_parts`
    (bytes, or (byte, count) for a long run), compressed as a stream."""
    z = zlib.compressobj(9, zlib.DEFLATED, 31)
    with open(path, "wb") as fh:
        for part in body_parts:
            if isinstance(part, tuple):
                byte, count = part
                block = byte * (1 << 20)
                for _ in range(count >> 20):
                    fh.write(z.compress(block))
                fh.write(z.compress(byte * (count & ((1 << 20) - 1))))
            else:
                fh.write(z.compress(part))
        fh.write(z.flush())
    return path


def test_a_huge_bytes_argument_is_read_past_not_held(tmp_path):
    """One 300 MB BINBYTES8 in a 300 KB gzip: scanned with bounded memory."""
    import struct
    import tracemalloc

    from mlconvert.formats import _pickle_scan

    size = 300 * 1024**2
    path = _gzip_joblib(tmp_path / "big.joblib", [b"\x80\x04\x8e" + struct.pack("<Q", size), (b"\0", size), b"."])
    tracemalloc.start()
    try:
        scan = _pickle_scan.scan_pickle(path)
        _, peak = tracemalloc.get_traced_memory()
    finally:
        tracemalloc.stop()
    assert scan.container == "joblib-compressed:gzip"
    assert peak < 80 * 1024**2, peak  # the argument is never held (MAX_HELD is 64 MB)


def test_loading_still_reads_long_arguments_whole(tmp_path, monkeypatch):
    """Only the scan reads past long arguments: a load gets every byte."""
    import pickle

    from mlconvert.formats import _pickle_load, _pickle_stream

    monkeypatch.setattr(_pickle_stream, "MAX_HELD", 1000)
    blob = bytes(range(256)) * 40  # 10 KB, longer than MAX_HELD here
    path = tmp_path / "m.pkl"
    path.write_bytes(pickle.dumps({"blob": blob}, protocol=5))
    assert _pickle_load.load_pickle(path).obj == {"blob": blob}


def test_an_opcode_bomb_is_refused_by_the_work_bound(tmp_path, cli):
    """Hundreds of millions of NONE/POP opcodes from a small gzip: refused after a bounded
    number of opcodes (relative to the file's size), not walked to the end."""
    path = _gzip_joblib(tmp_path / "ops.joblib", [b"\x80\x04", (b"N0", 40 * 1024**2), b"N."])
    assert path.stat().st_size < 1024**2
    result = cli("inspect", path)
    assert_clean_failure(result, 3, "opcodes for its size on disk")


def test_the_memory_reproducer_inspects_cleanly(tmp_path, cli):
    result = cli("inspect", repro("MEMORY-4491a905-joblib.joblib", tmp_path))
    assert result.code in (0, 3), result
    assert "Traceback" not in result.err


# --- special files and paths ---


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "model.pkl"
    os.mkfifo(path)
    return path


def test_a_fifo_input_is_refused_without_opening_it(fifo, tmp_path, cli):
    assert_clean_failure(cli("inspect", fifo), 3, "is a named pipe (FIFO), not a model file")
    assert_clean_failure(cli(fifo, tmp_path / "o.onnx"), 3, "is a named pipe (FIFO)")
    assert_clean_failure(cli("inspect", "--from", "pickle", fifo), 3, "named pipe")
    assert not (tmp_path / "o.onnx").exists()


@pytest.mark.parametrize("fmt", ["lightgbm", "catboost", "onnx", "coreml", "keras", "pickle"])
def test_devices_are_refused_even_with_from(fmt, cli):
    for device in ("/dev/zero", "/dev/urandom"):
        assert_clean_failure(cli("inspect", "--from", fmt, device), 3, "is a character device")


def test_a_fifo_in_a_batch_folder_is_skipped_in_discovery(fixtures, tmp_path):
    from mlconvert import batch

    src = tmp_path / "src"
    src.mkdir()
    shutil.copy(fixtures / "sklearn_logreg_iris.pkl", src / "m.pkl")
    os.mkfifo(src / "pipe.pkl")
    items, skipped = batch.discover(src, ["onnx"], tmp_path / "out")
    assert [i.rel for i in items] == ["m.pkl"]
    assert {"source": "pipe.pkl", "reason": "not a regular file (a pipe, device or socket)"} in skipped


def test_a_special_file_at_the_output_is_never_replaced(fixtures, tmp_path, cli):
    out = tmp_path / "out.onnx"
    os.mkfifo(out)
    result = cli(fixtures / "sklearn_logreg_iris.pkl", out)
    assert_clean_failure(result, 2, "is a named pipe (FIFO)", "replaces only files and model folders")
    assert stat.S_ISFIFO(os.lstat(out).st_mode)
    assert leftovers(tmp_path, "out.onnx") == []


def test_a_private_device_node_at_the_output_stays(fixtures, tmp_path, cli):
    out = tmp_path / "null.onnx"
    try:
        os.mknod(out, stat.S_IFCHR | 0o666, os.makedev(1, 3))  # a copy of /dev/null
    except PermissionError:
        pytest.skip("making a device node needs root")
    assert_clean_failure(cli(fixtures / "sklearn_logreg_iris.pkl", out, "-q"), 2, "is a character device")
    assert stat.S_ISCHR(os.lstat(out).st_mode)


def test_dev_null_as_output_is_refused(fixtures, cli):
    result = cli(fixtures / "sklearn_logreg_iris.pkl", "/dev/null", "--to", "onnx")
    assert_clean_failure(result, 2, "/dev/null is a character device")


@pytest.mark.parametrize("length", [240, 255])
def test_legal_long_output_names_are_written(length, fixtures, tmp_path, cli):
    out = tmp_path / ("a" * (length - len(".onnx")) + ".onnx")
    result = cli(fixtures / "sklearn_logreg_iris.pkl", out, "-q")
    assert result.code == 0, result
    assert out.is_file() and leftovers(tmp_path, out.name) == []


def test_too_long_names_and_paths_are_usage_and_input_errors(fixtures, tmp_path, cli):
    name = "c" * 251 + ".onnx"
    assert_clean_failure(cli(fixtures / "sklearn_logreg_iris.pkl", tmp_path / name, "-q"), 2, "too long")
    deep = Path(tmp_path, *["d" * 200] * 25) / "o.onnx"
    assert_clean_failure(cli(fixtures / "sklearn_logreg_iris.pkl", deep, "-q"), 2, "too long")
    deep_in = Path(tmp_path, *["e" * 200] * 25) / "m.pkl"
    assert_clean_failure(cli(deep_in, tmp_path / "x.onnx", "-q"), 3, "too long")
    assert_clean_failure(cli("inspect", deep_in), 3, "too long")


def test_a_non_utf8_file_name_converts_and_is_recorded_readably(fixtures, tmp_path):
    src = Path(os.fsdecode(bytes(tmp_path) + b"/m\xff.pkl"))
    shutil.copy(fixtures / "sklearn_logreg_iris.pkl", src)
    result = run_cli(src, tmp_path / "o.onnx", "-q")
    assert result.code == 0, result
    from mlconvert import api

    assert api.inspect(tmp_path / "o.onnx").description["provenance"]["source"] == "m\ufffd.pkl"
    assert run_cli("inspect", src).code == 0


def test_markup_in_a_path_is_shown_as_it_is(fixtures, tmp_path):
    folder = tmp_path / "["
    folder.mkdir()
    src = folder / "]model.pkl"
    shutil.copy(fixtures / "sklearn_logreg_iris.pkl", src)
    result = run_cli("inspect", "./[/]model.pkl", cwd=tmp_path)
    assert result.code == 0, result
    assert "[/]model.pkl  pickle" in result.out
    result = run_cli("./[/]model.pkl", "out.onnx", cwd=tmp_path)
    assert result.code == 0, result
    assert "[/]model.pkl" in result.out


# --- 3. markup and control characters from models ---

RENDERED = [
    "UNEXPECTED-38b48ef5-pickle.pkl",  # global named [/].[/x]
    "UNEXPECTED-1b01e56e-pickle.pkl",  # surrogate version
    "UNEXPECTED-0a1a4815-xgboost-json.json",  # {"mlconvert.[/]": "[/]"}
    "UNEXPECTED-8c21e923-coreml.mlmodel",
    "UNEXPECTED-a36cfa13-joblib.joblib.pkl",  # [/bogus] global
    "UNEXPECTED-af701233-xgboost-json.json",  # {"mlconvert.source": 5}
    "UNEXPECTED-e36ad28a-xgboost-json.json",  # attributes is a list
    "ATTACK-LightGBM_model_with_version_inspect_.txt",
    "ATTACK-LightGBM_model_whose_version_holds_terminal_escapes_inspect_.txt",
    "ATTACK-pickle_whose__sklearn_version_holds_terminal_escapes_inspect.pkl",
    "ATTACK-pickle_whose__sklearn_version_is_inspect_.pkl",
    "ATTACK-pickle_naming_global_os_inspect_.pkl",
    "ATTACK-input_name_markup_folder_inspect_.pkl",
]


@pytest.mark.parametrize("name", RENDERED)
def test_hostile_metadata_is_inspected_as_text(name, tmp_path, cli):
    result = cli("inspect", repro(name, tmp_path))
    assert result.code == 0, result
    assert "Traceback" not in result.err and "\x1b" not in result.out + result.err and "\x07" not in result.out


def test_markup_in_an_onnx_producer_is_shown_literally(tmp_path, cli):
    pytest.importorskip("onnx")
    import onnx

    from format_samples import onnx_classifier_bytes

    model = onnx.load_from_string(onnx_classifier_bytes())
    model.producer_name = "[link=https://example.invalid]click[/link] [/] [bold]x"
    path = tmp_path / "m.onnx"
    path.write_bytes(model.SerializeToString())
    result = cli("inspect", path)
    assert result.code == 0, result
    assert "[link=https://example.invalid]click[/link] [/] [bold]x" in result.out


@pytest.mark.parametrize("name", ["ATTACK-LightGBM_model_with_version_convert_.txt",
                                  "ATTACK-pickle_whose__sklearn_version_is_convert_.pkl",
                                  "ATTACK-input_name_markup_folder_convert_.pkl"])
def test_hostile_metadata_in_a_conversion_report(name, tmp_path, cli):
    """The report after writing used to crash on `[/]` (exit 1 with the output on disk)."""
    src = repro(name, tmp_path)
    out = tmp_path / "o.onnx"
    result = cli(src, out)
    assert result.code in (0, 3), result
    assert "Traceback" not in result.err and "internal error" not in result.err
    assert out.exists() == (result.code == 0)


def test_plain_escapes_markup_and_strips_control_characters():
    from rich.console import Console

    from mlconvert.console import plain

    hostile = "a\x1b]0;pwned\x07b\x1b[31mc[/]d[bold]e\r\x00\x9bf\ng\th\udcff"
    console = Console(record=True, width=200, color_system=None)
    console.print(plain(hostile))
    text = console.export_text()
    assert text.splitlines()[0] == "a]0;pwnedb[31mc[/]d[bold]ef"
    assert text.splitlines()[1].split() == ["g", "h\ufffd"]
    assert not any(c in text for c in CONTROL)


# --- 5. exit codes: provenance of odd types, raw messages ---


def test_provenance_of_odd_types_is_ignored():
    from mlconvert import provenance

    assert provenance.read({"details": {"attributes": ["x"]}}) == {}
    assert provenance.read({"details": {"attributes": {"mlconvert.source": 5, "mlconvert.plan": "a"}}}) == {"plan": "a"}
    assert provenance.read({"details": {"metadata": "x", "metadata_props": 3}}) == {}
    assert provenance.read({"details": [1]}) == {}
    assert provenance.recorded_verification({"details": {"attributes": {"mlconvert.verification": "[1]"}}}) == {}
    assert provenance.recorded_verification(
        {"details": {"attributes": {"mlconvert.verification": '{"atol": "x", "rtol": 0.1}'}}}) == {"rtol": 0.1}


def test_describe_errors_on_malformed_documents_are_worded(tmp_path, cli):
    """A JSON model whose parts have the wrong types: exit 3 in words, not a raw
    `'list' object has no attribute 'get'`."""
    path = tmp_path / "m.json"
    path.write_text('{"learner": [1, 2], "version": [2, 0, 0]}')
    result = cli("inspect", path)
    assert_clean_failure(result, 3, "is not a readable XGBoost model")
    assert "object has no attribute" not in result.err
