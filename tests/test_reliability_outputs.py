"""Outputs survive a kill at any point: a folder output is replaced in three steps, and
the next run on the same target recovers whatever a killed run left between them.

A kill is simulated by running steps in a forked child that then exits without cleaning
up (os._exit): its pid is dead afterwards, exactly as after SIGKILL. No timing involved.
"""
from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from mlconvert import outputs
from mlconvert.errors import UsageError


def in_killed_process(steps) -> int:
    """Run `steps()` in a forked child that dies right after (no finally, no atexit); its pid."""
    pid = os.fork()
    if pid == 0:
        try:
            steps()
        finally:
            os._exit(0)
    os.waitpid(pid, 0)
    return pid


def model_folder(path: Path, text: str) -> Path:
    path.mkdir()
    (path / "saved_model.pb").write_text(text)
    (path / "variables").mkdir()
    (path / "variables" / "data").write_text(text * 3)
    return path


def content(path: Path) -> str:
    return (path / "saved_model.pb").read_text()


def beside(dst: Path) -> list[str]:
    return sorted(p.name for p in dst.parent.iterdir() if p.name != dst.name and not p.name.startswith("new"))


@pytest.fixture
def old_and_new(tmp_path):
    dst = model_folder(tmp_path / "m_savedmodel", "old")
    new = model_folder(tmp_path / "new", "new")
    return dst, new


def test_kill_before_the_first_rename_leaves_the_old(old_and_new):
    dst, new = old_and_new
    scratch_pid = in_killed_process(lambda: os.mkdir(dst.parent / (outputs.scratch_prefix(dst) + "x")))
    assert content(dst) == "old"
    assert beside(dst) == [outputs.scratch_prefix(dst, scratch_pid) + "x"]
    outputs.recover(dst)  # the next run on the target
    assert content(dst) == "old" and beside(dst) == []


def test_kill_between_the_renames_is_recovered_to_the_old(old_and_new):
    dst, new = old_and_new
    pid = in_killed_process(lambda: outputs.set_aside(dst))
    assert not dst.exists()  # the window: recover() closes it
    assert beside(dst) == [outputs.aside_name(dst, pid)]
    outputs.recover(dst)
    assert content(dst) == "old" and beside(dst) == []


def test_kill_after_the_second_rename_keeps_the_new(old_and_new):
    dst, new = old_and_new

    def steps():
        aside = outputs.set_aside(dst)
        outputs.move_in(new, dst, aside)

    pid = in_killed_process(steps)
    assert content(dst) == "new"
    assert beside(dst) == [outputs.aside_name(dst, pid)]
    outputs.recover(dst)
    assert content(dst) == "new" and beside(dst) == []


def test_a_complete_replace_leaves_nothing_beside(old_and_new):
    dst, new = old_and_new
    outputs.replace(new, dst)
    assert content(dst) == "new" and beside(dst) == []


def test_a_failed_move_in_puts_the_old_back(old_and_new, tmp_path):
    dst, _ = old_and_new
    aside = outputs.set_aside(dst)
    with pytest.raises(OSError):
        outputs.move_in(tmp_path / "does-not-exist", dst, aside)
    assert content(dst) == "old" and beside(dst) == []


def test_leftovers_of_a_live_process_are_not_touched(old_and_new):
    dst, _ = old_and_new
    mine = dst.parent / (outputs.scratch_prefix(dst) + "busy")
    mine.mkdir()
    outputs.recover(dst)
    assert mine.exists()  # this process is alive: its scratch is in use


def test_names_that_only_look_alike_are_not_touched(old_and_new):
    dst, _ = old_and_new
    other = dst.parent / f".{dst.name}x.mlconvert-999999999-abc"
    other.mkdir()
    lookalike = dst.parent / f".{dst.name}.replaced-1-not-ours"
    lookalike.mkdir()
    outputs.recover(dst)
    assert other.exists() and lookalike.exists()


def test_a_conversion_removes_what_a_killed_conversion_left(fixtures, tmp_path):
    from mlconvert import api

    dst = tmp_path / "m.onnx"
    held = []  # the context managers stay referenced: no clean-up runs before the "kill"

    def enter(manager):
        held.append(manager)
        manager.__enter__()

    pid = in_killed_process(lambda: enter(outputs.scratch_dir(dst)))
    stale = [p for p in tmp_path.iterdir() if p.name.startswith(outputs.scratch_prefix(dst, pid))]
    assert len(stale) == 1
    part_pid = in_killed_process(lambda: enter(outputs.atomic_path(dst)))
    assert any(p.name.startswith(outputs.scratch_prefix(dst, part_pid)) for p in tmp_path.iterdir())
    report = api.convert(fixtures / "sklearn_logreg_iris.pkl", dst)
    assert report.written
    assert sorted(p.name for p in tmp_path.iterdir()) == ["m.onnx"]


def test_outputs_never_replace_special_files(tmp_path):
    fifo = tmp_path / "out.onnx"
    os.mkfifo(fifo)
    new = tmp_path / "new.onnx"
    new.write_bytes(b"x")
    with pytest.raises(UsageError, match="named pipe"):
        outputs.replace(new, fifo)
    with pytest.raises(UsageError, match="named pipe"):
        outputs.write_text(fifo, "report")
    assert stat.S_ISFIFO(os.lstat(fifo).st_mode)


def test_a_failed_conversion_removes_the_folders_it_made(fixtures, tmp_path):
    from mlconvert import api
    from mlconvert.errors import VerificationError

    with pytest.raises(VerificationError):
        api.convert(fixtures / "sklearn_rf_iris.pkl", tmp_path / "a" / "b" / "m.onnx", atol=0, rtol=0,
                    sample=None, to_format="onnx", double=False)
    assert list(tmp_path.iterdir()) == []


def test_long_target_names_fit_the_names_beside_them(tmp_path):
    dst = tmp_path / ("b" * 250 + ".onnx")
    with outputs.scratch_dir(dst) as work:
        assert len(work.name) <= 255
        (work / dst.name).write_bytes(b"x")
        outputs.replace(work / dst.name, dst)
    assert dst.read_bytes() == b"x"
    assert len(outputs.aside_name(dst)) <= 255


def test_onnx_opset_imports_are_written_in_one_order(tmp_path):
    """Converters build opset_import from dicts and sets; saved, it is sorted by domain."""
    pytest.importorskip("onnx")
    import onnx

    from format_samples import onnx_classifier_bytes
    from mlconvert.formats import onnx_model

    model = onnx.load_from_string(onnx_classifier_bytes())
    reordered = onnx.load_from_string(onnx_classifier_bytes())
    opsets = list(reordered.opset_import)[::-1]
    del reordered.opset_import[:]
    reordered.opset_import.extend(opsets)
    onnx_model.save(model, tmp_path / "a.onnx")
    onnx_model.save(reordered, tmp_path / "b.onnx")
    assert (tmp_path / "a.onnx").read_bytes() == (tmp_path / "b.onnx").read_bytes()
    assert [o.domain for o in onnx.load(str(tmp_path / "a.onnx")).opset_import] == ["", "ai.onnx.ml"]


@pytest.mark.slow
def test_lightgbm_to_onnx_is_byte_identical_across_processes(fixtures, tmp_path):
    """Separate interpreters with different hash seeds (which reorder sets) give the same bytes."""
    from conftest import run_cli_subprocess

    for seed in ("1", "2", "3"):
        result = run_cli_subprocess(fixtures / "lgbm_regressor_diabetes.txt", tmp_path / f"{seed}.onnx", "-q",
                                    env={"PYTHONHASHSEED": seed})
        assert result.code == 0, result
    assert (tmp_path / "1.onnx").read_bytes() == (tmp_path / "2.onnx").read_bytes() == \
        (tmp_path / "3.onnx").read_bytes()
