"""`verify` is a CI gate: --strict fails what it cannot check, models that cannot take the
same inputs are exit 6, and an artifact made from another file is pointed out (transcripts)."""
from __future__ import annotations

import pytest


@pytest.fixture
def logreg_onnx(cli, fixtures, tmp_path):
    out = tmp_path / "logreg.onnx"
    assert cli(fixtures / "sklearn_logreg_iris.pkl", out, "-q").code == 0
    return out


def test_incompatible_signatures_are_exit_6(cli, fixtures, logreg_onnx):
    r = cli("verify", fixtures / "sklearn_rf_diabetes.pkl", logreg_onnx)
    assert r.code == 6, r
    assert "logreg.onnx has 4 features and" in r.err and "has 10: they are not the same model" in r.err
    assert "--sample" not in r.err  # no sample could make them agree


def test_an_artifact_from_another_source_is_pointed_out(cli, fixtures, logreg_onnx):
    r = cli("verify", fixtures / "sklearn_rf_iris.pkl", logreg_onnx)
    assert r.code == 6, r  # and they disagree, too
    assert "warning: logreg.onnx records a source with sha256" in r.err
    assert "(sklearn_logreg_iris.pkl)" in r.err and "it was converted from another file" in r.err
    r = cli("verify", fixtures / "sklearn_logreg_iris.pkl", logreg_onnx)
    assert r.code == 0 and "warning" not in r.err, r


def test_strict_is_accepted_for_a_verified_pair(cli, fixtures, logreg_onnx):
    r = cli("verify", "--strict", fixtures / "sklearn_logreg_iris.pkl", logreg_onnx, "--json")
    assert r.code == 0 and r.json["verification"]["status"] == "verified", r


@pytest.mark.slow
def test_strict_fails_an_unverifiable_pair(cli, fixtures, tmp_path):
    pytest.importorskip("coremltools")
    pytest.importorskip("tensorflow")
    import sys

    if sys.platform == "darwin":
        pytest.skip("Core ML runs here: the pair is verifiable")
    import keras

    # softsign is an ML-program operation the reference evaluator does not cover:
    # without Core ML itself, the pair cannot be run.
    net = keras.Sequential([keras.Input((4,)), keras.layers.Dense(3, activation="softsign")])
    source = tmp_path / "softsign.keras"
    net.save(source)
    package = tmp_path / "k.mlpackage"
    r = cli(source, package, "-q")
    assert r.code == 0 and package.exists(), r  # written (unverified, which --strict refuses)
    r = cli("verify", source, package)
    assert r.code == 0 and "unverified" in r.out and "softsign" in r.out, r
    r = cli("verify", "--strict", source, package, "--json")
    assert r.code == 8, r
    assert r.envelope["error"]["type"] == "UnverifiedError"
    assert r.json["verification"]["status"] == "unverified"
