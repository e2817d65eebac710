"""Load once, decide once: a conversion reads its source a few times and loads it once.

The counts are of real work (Python-level opens of the source file, calls of the
format's loader and of the libraries' own load functions) around one api.convert.
"""
from __future__ import annotations

import builtins
import io
from collections import Counter
from pathlib import Path

import pytest

from mlconvert import api


@pytest.fixture
def opens(monkeypatch):
    """Counts Python-level opens per resolved path."""
    counts: Counter = Counter()
    real_open = io.open

    def counting_open(file, *args, **kwargs):
        if isinstance(file, (str, Path)):
            counts[str(Path(file).resolve())] += 1
        return real_open(file, *args, **kwargs)

    monkeypatch.setattr(io, "open", counting_open)
    monkeypatch.setattr(builtins, "open", counting_open)
    return counts


def count_calls(monkeypatch, owner, name: str) -> Counter:
    calls: Counter = Counter()
    real = getattr(owner, name)

    def counting(*args, **kwargs):
        calls[name] += 1
        return real(*args, **kwargs)

    monkeypatch.setattr(owner, name, counting)
    return calls


def count_format_loads(monkeypatch, format_id: str) -> Counter:
    """Calls of a registered format's loader."""
    import dataclasses

    from mlconvert import formats

    fmt = formats.get(format_id)
    calls: Counter = Counter()

    def counting(*args, **kwargs):
        calls["load"] += 1
        return fmt.load(*args, **kwargs)

    monkeypatch.setitem(formats._REGISTRY, format_id, dataclasses.replace(fmt, load=counting))
    return calls


def test_pickle_to_onnx_unpickles_once(fixtures, tmp_path, monkeypatch, opens):
    from mlconvert.formats import _pickle_scan, pickle_joblib

    src = fixtures / "sklearn_rf_iris.pkl"
    monkeypatch.setattr(_pickle_scan, "_SCANS", {})  # a fresh process's cache
    unpickles = count_calls(monkeypatch, pickle_joblib, "load_pickle")
    scans = count_calls(monkeypatch, pickle_joblib, "scan_pickle")
    report = api.convert(src, tmp_path / "m.onnx")
    assert report.verification["status"] == "verified"
    assert unpickles["load_pickle"] == 1  # the step and verification share the loaded model
    assert scans["scan_pickle"] == 1  # describe's static scan, decided once
    # sniffing's head, the static scan, the sha256, the one load
    assert opens[str(src.resolve())] <= 4


def test_xgboost_json_to_onnx_loads_once(fixtures, tmp_path, monkeypatch, opens):
    import xgboost

    src = fixtures / "xgb_classifier_iris.json"
    loads = count_format_loads(monkeypatch, "xgboost")
    booster_loads = count_calls(monkeypatch, xgboost.Booster, "load_model")
    report = api.convert(src, tmp_path / "m.onnx")
    assert report.verification["status"] == "verified"
    assert loads["load"] == 1
    # one load of the file, one of the plain gbtree document onnxmltools is given
    assert booster_loads["load_model"] == 2
    assert opens[str(src.resolve())] <= 4


def test_catboost_to_onnx_loads_once(fixtures, tmp_path, monkeypatch, opens):
    import catboost

    src = fixtures / "catboost_classifier_iris.cbm"
    loads = count_format_loads(monkeypatch, "catboost")
    library_loads = count_calls(monkeypatch, catboost.CatBoost, "load_model")
    report = api.convert(src, tmp_path / "m.onnx")
    assert report.verification["status"] == "verified"
    assert loads["load"] == 1  # the model for the step and for verification
    # describe reads the flatbuffer itself (never CatBoost's parser), the loader loads once
    assert library_loads["load_model"] == 1
    assert opens[str(src.resolve())] <= 5


def test_the_written_file_is_the_verified_file(fixtures, tmp_path):
    """Provenance is stamped into the output, then the stamped file is run again on the
    verification inputs: the sha256 the report gives is of what was checked."""
    from mlconvert.outputs import sha256_of

    out = tmp_path / "m.ubj"
    report = api.convert(fixtures / "xgb_classifier_iris.pkl", out)
    assert report.verification["status"] == "verified"
    assert report.target["sha256"] == sha256_of(out)
    assert "mlconvert.source" in api.inspect(out).description["details"]["attributes"]
