"""What every registered format must do, checked on a real sample of each.

The formats come from the registry (`formats.all_formats()`), not from a list kept
here: a format module that fails to import fails the collection of this file, and a
registered format without a sample below fails `test_every_format_has_a_sample` and
every other test of it.

A sample is a fixture file where one exists, else a small valid file built when the
session starts (ONNX with onnx.helper, Core ML as a hand-encoded specification, PMML
written by hand).
"""
from __future__ import annotations

import json
import random
import shutil
import zipfile
from pathlib import Path

import pytest

from format_samples import PMML_DOC, coreml_spec, onnx_classifier_bytes, tflite_bytes
from mlconvert import formats
from mlconvert.errors import InputError

FIXTURES = Path(__file__).resolve().parents[1] / "fixtures"
FORMAT_IDS = sorted(fmt.id for fmt in formats.all_formats())

FIXTURE_SAMPLES = {
    "pickle": "sklearn_rf_iris.pkl",
    "xgboost": "xgb_classifier_iris.json",
    "lightgbm": "lgbm_classifier_iris.txt",
    "catboost": "catboost_classifier_iris.cbm",
    "keras-h5": "keras_dense_iris.h5",
    "keras": "keras_dense_iris.keras",
    "savedmodel": "keras_dense_iris_savedmodel",
}

BUILT_SAMPLES = {  # format id -> (file name, bytes)
    "onnx": ("model.onnx", onnx_classifier_bytes),
    "coreml": ("model.mlmodel", coreml_spec),
    "pmml": ("model.pmml", lambda: PMML_DOC.encode("utf-8")),
    "tflite": ("model.tflite", tflite_bytes),
}

DESCRIBE_KEYS = {"flavor", "kind", "producer", "producer_version", "n_features", "n_classes", "inputs", "outputs",
                 "details", "warnings"}

LFS_POINTER = (b"version https://git-lfs.github.com/spec/v1\n"
               b"oid sha256:4d7a214614ab2935c943f9e0ff69d22eadbb8f32b1258daaa5e2ca24d17e2393\nsize 12345\n")


@pytest.fixture(scope="session")
def samples(tmp_path_factory) -> dict[str, Path]:
    out = {fmt_id: FIXTURES / name for fmt_id, name in FIXTURE_SAMPLES.items()}
    folder = tmp_path_factory.mktemp("format-samples")
    for fmt_id, (name, build) in BUILT_SAMPLES.items():
        out[fmt_id] = folder / name
        out[fmt_id].write_bytes(build())
    return out


@pytest.fixture(scope="session")
def impostors(tmp_path_factory) -> dict[str, Path]:
    """Files that are no model of any format."""
    base = tmp_path_factory.mktemp("impostors")
    out = {name: base / name for name in ("random.bin", "data.csv", "config.json", "other.zip", "other.xml",
                                          "README.md", "page.html", "varint.bin", "empty-folder")}
    out["random.bin"].write_bytes(random.Random(1234).randbytes(4096))
    out["data.csv"].write_text("sepal_length,sepal_width,label\n5.1,3.5,0\n4.9,3.0,1\n", encoding="utf-8")
    out["config.json"].write_text('{"name": "run-12", "learning_rate": 0.1, "layers": [64, 32]}', encoding="utf-8")
    with zipfile.ZipFile(out["other.zip"], "w") as archive:
        archive.writestr("readme.txt", "not a model")
    out["other.xml"].write_text('<?xml version="1.0"?>\n<project><PMML/></project>\n', encoding="utf-8")
    out["README.md"].write_text("# models of the month\n", encoding="utf-8")
    out["page.html"].write_text("<!DOCTYPE html><html><body>404 file not found</body></html>", encoding="utf-8")
    out["varint.bin"].write_bytes(b"\x08\x01\xff\xff\xff\xff")  # starts like a protobuf, then junk
    out["empty-folder"].mkdir()
    return out


def sample(samples: dict[str, Path], fmt_id: str) -> Path:
    if fmt_id not in samples:
        pytest.fail(f"format {fmt_id!r} has no sample: add a fixture to FIXTURE_SAMPLES or a builder to "
                    "BUILT_SAMPLES in tests/test_formats_conformance.py")
    return samples[fmt_id]


def sniff(fmt: formats.Format, path: Path) -> bool:
    head = b"" if path.is_dir() else formats.read_head(path)
    return fmt.sniff(head, path)


def copy_of(path: Path, dest: Path) -> Path:
    """A copy with the same name (the extension matters to detection)."""
    dest.mkdir(parents=True, exist_ok=True)
    target = dest / path.name
    if path.is_dir():
        shutil.copytree(path, target)
    else:
        shutil.copy(path, target)
    return target


def files_of(path: Path) -> list[Path]:
    return sorted(p for p in path.rglob("*") if p.is_file()) if path.is_dir() else [path]


def test_formats_are_registered():
    assert FORMAT_IDS, "the registry is empty"
    assert len(set(FORMAT_IDS)) == len(FORMAT_IDS)


@pytest.mark.parametrize("fmt_id", FORMAT_IDS)
def test_every_format_has_a_sample(samples, fmt_id):
    assert sample(samples, fmt_id).exists()


@pytest.mark.parametrize("fmt_id", FORMAT_IDS)
def test_sniff_claims_its_own_sample(samples, fmt_id):
    path = sample(samples, fmt_id)
    assert sniff(formats.get(fmt_id), path)
    assert formats.detect(path).id == fmt_id


@pytest.mark.parametrize("fmt_id", FORMAT_IDS)
def test_sniff_rejects_other_formats_and_impostors(samples, impostors, fmt_id):
    fmt = formats.get(fmt_id)
    for other_id in FORMAT_IDS:
        if other_id != fmt_id:
            path = sample(samples, other_id)
            assert not sniff(fmt, path), f"the {fmt_id} sniffer claims the {other_id} sample {path.name}"
    for name, path in impostors.items():
        assert not sniff(fmt, path), f"the {fmt_id} sniffer claims {name}"


def test_impostors_are_refused(impostors):
    for name, path in impostors.items():
        with pytest.raises(InputError) as info:
            formats.detect(path)
        assert info.value.exit_code == 3, name


@pytest.mark.parametrize("fmt_id", FORMAT_IDS)
def test_describe_gives_the_flavor(samples, fmt_id):
    result = formats.get(fmt_id).describe(sample(samples, fmt_id))
    assert isinstance(result["flavor"], str) and result["flavor"]
    assert set(result) <= DESCRIBE_KEYS
    json.dumps(result)  # plain data, printable with --json
    for key in ("inputs", "outputs"):
        for entry in result.get(key, []):
            assert {"name", "dtype", "shape"} <= set(entry)


@pytest.mark.parametrize("fraction", [0.1, 0.5])
@pytest.mark.parametrize("fmt_id", FORMAT_IDS)
def test_truncated_is_input_error(samples, tmp_path, fmt_id, fraction):
    cut = copy_of(sample(samples, fmt_id), tmp_path)
    for path in files_of(cut):  # a model folder: every file in it cut short
        data = path.read_bytes()
        path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(InputError) as info:
        formats.get(fmt_id).describe(cut)
    assert info.value.exit_code == 3
    with pytest.raises(InputError) as info:  # refused by detection, or detected and refused by describe
        formats.detect(cut).describe(cut)
    assert info.value.exit_code == 3


def _empty_and_pointer_inputs(fmt: formats.Format, sample_path: Path, folder: Path, content: bytes) -> list[Path]:
    """One input per extension of the format (a folder format: a copy of the sample whose files hold `content`)."""
    if sample_path.is_dir():
        copy = copy_of(sample_path, folder)
        for path in files_of(copy):
            path.write_bytes(content)
        return [copy]
    folder.mkdir(parents=True, exist_ok=True)
    inputs = [folder / f"model{ext}" for ext in fmt.extensions or (sample_path.suffix,)]
    for path in inputs:
        path.write_bytes(content)
    return inputs


@pytest.mark.parametrize("fmt_id", FORMAT_IDS)
def test_empty_input(samples, tmp_path, fmt_id):
    fmt = formats.get(fmt_id)
    for path in _empty_and_pointer_inputs(fmt, sample(samples, fmt_id), tmp_path / "empty", b""):
        with pytest.raises(InputError) as info:
            fmt.describe(path)
        assert info.value.exit_code == 3, path.name
        with pytest.raises(InputError) as info:
            formats.detect(path).describe(path)
        assert info.value.exit_code == 3, path.name
        if path.is_file():
            assert "empty" in info.value.message, path.name


@pytest.mark.parametrize("fmt_id", FORMAT_IDS)
def test_git_lfs_pointer(samples, tmp_path, fmt_id):
    fmt = formats.get(fmt_id)
    for path in _empty_and_pointer_inputs(fmt, sample(samples, fmt_id), tmp_path / "lfs", LFS_POINTER):
        with pytest.raises(InputError) as info:
            fmt.describe(path)
        assert info.value.exit_code == 3, path.name
        with pytest.raises(InputError) as info:
            formats.detect(path).describe(path)
        assert info.value.exit_code == 3, path.name
        if path.is_file():
            assert "Git LFS" in info.value.message, path.name
