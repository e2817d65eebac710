"""The report tells the truth about precision, and options are checked before anything
is loaded: none is silently ignored (transcripts)."""
from __future__ import annotations

import numpy as np
import pytest


def test_double_is_reported_as_float64_kept(cli, fixtures, tmp_path):
    r = cli(fixtures / "sklearn_logreg_iris.pkl", tmp_path / "m.onnx", "--double", "--json")
    assert r.code == 0, r
    step = r.json["steps"][0]
    assert step["fidelity"] == "float64 kept (--double)"
    assert r.json["verification"]["status"] == "verified"
    import onnx

    graph = onnx.load(str(tmp_path / "m.onnx")).graph
    assert graph.input[0].type.tensor_type.elem_type == onnx.TensorProto.DOUBLE  # the claim is true
    plain = cli(fixtures / "sklearn_logreg_iris.pkl", tmp_path / "p.onnx", "--json").json["steps"][0]
    assert plain["fidelity"].startswith("float64 -> float32")


@pytest.mark.slow
def test_fp16_is_reported_as_float16_compute(cli, fixtures, tmp_path):
    pytest.importorskip("coremltools")
    pytest.importorskip("tensorflow")
    r = cli(fixtures / "keras_dense_iris.h5", tmp_path / "k.mlpackage", "--fp16", "--json")
    assert r.code == 0, r
    assert r.json["steps"][0]["fidelity"] == "float16 compute (--fp16)"
    from mlconvert.edges.via_coremltools import precision
    import coremltools as ct

    assert precision(ct.utils.load_spec(str(tmp_path / "k.mlpackage"))) == "float16"


@pytest.mark.parametrize("model, out, option, applies", [
    ("sklearn_logreg_iris.pkl", "m.onnx", ["--fp16"], "keras → coreml"),
    ("xgb_classifier_iris.json", "m.pkl", ["--double"], "xgboost → onnx"),
    ("xgb_classifier_iris.json", "m.pkl", ["--opset", "15"], "xgboost → onnx"),
])
def test_an_option_without_effect_is_a_usage_error(cli, fixtures, tmp_path, model, out, option, applies):
    r = cli(fixtures / model, tmp_path / out, *option)
    assert r.code == 2, r
    assert f"{option[0]} has no effect on this conversion" in r.err and applies in r.err
    assert not (tmp_path / out).exists()


@pytest.mark.parametrize("args, message", [
    (["--atol", "-1"], "'--atol': -1.0 is not in the range x>=0"),
    (["--rtol", "-0.5"], "'--rtol': -0.5 is not in the range x>=0"),
    (["--opset", "99"], "'--opset': 99 is not an opset the installed onnx knows"),
    (["--sample", "nope.csv"], "'--sample': nope.csv does not exist"),
    (["--no-verify", "--strict"], "--no-verify and --strict conflict"),
    (["--architecture", "nope.json"], "'--architecture': File 'nope.json' does not exist"),
    (["--custom-objects", "nope.py"], "'--custom-objects': File 'nope.py' does not exist"),
])
def test_bad_options_fail_before_anything_is_loaded(cli, fixtures, tmp_path, args, message):
    # A Keras model: loading it would import TensorFlow for seconds; the options fail first.
    r = cli(fixtures / "keras_dense_iris.h5", tmp_path / "m.onnx", *args, cwd=tmp_path)
    assert r.code == 2, r
    assert message in r.err
    assert not (tmp_path / "m.onnx").exists()


def test_a_sample_that_does_not_parse_is_refused_up_front(cli, fixtures, tmp_path):
    readme = tmp_path / "README.md"
    readme.write_text("# not data\n")
    r = cli(fixtures / "sklearn_logreg_iris.pkl", tmp_path / "m.onnx", "--sample", readme)
    assert r.code == 2 and "must be .npy, .npz (named arrays), .csv, .tsv or an ONNX TensorProto" in " ".join(r.err.split()), r
    broken = tmp_path / "broken.npy"
    broken.write_bytes(b"\x93NUMPY garbage")
    r = cli(fixtures / "sklearn_logreg_iris.pkl", tmp_path / "m.onnx", "--sample", broken)
    assert r.code == 2 and "cannot read broken.npy" in r.err, r


def test_a_tsv_sample_is_accepted(cli, fixtures, tmp_path):
    rows = np.array([[5.1, 3.5, 1.4, 0.2], [6.2, 2.9, 4.3, 1.3], [7.7, 3.0, 6.1, 2.3]])
    tsv = tmp_path / "iris.tsv"
    tsv.write_text("\n".join("\t".join(map(str, row)) for row in rows) + "\n")
    r = cli(fixtures / "sklearn_logreg_iris.pkl", tmp_path / "m.onnx", "--sample", tsv, "--json")
    assert r.code == 0, r
    assert r.json["verification"]["rows"] == 3 and "iris.tsv" in r.json["verification"]["inputs"]
    assert ".tsv" in cli("convert", "--help").out


def test_an_extension_that_disagrees_with_to_is_refused(cli, fixtures, tmp_path):
    r = cli(fixtures / "sklearn_logreg_iris.pkl", tmp_path / "m.pkl", "--to", "onnx")
    assert r.code == 2, r
    assert "--to onnx would write ONNX into 'm.pkl', whose extension says pickle" in r.err
    assert not (tmp_path / "m.pkl").exists()
    # a folder name has no extension to disagree with
    r = cli("plan", fixtures / "keras_dense_iris.h5", tmp_path / "k_sm", "--to", "savedmodel")
    assert r.code == 0, r


def test_batch_refuses_no_verify_with_strict(cli, fixtures, tmp_path):
    r = cli("batch", fixtures, "--to", "onnx", "--out", tmp_path / "out", "--no-verify", "--strict")
    assert r.code == 2 and "--no-verify and --strict conflict" in r.err, r
    assert not (tmp_path / "out").exists()
