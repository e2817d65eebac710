"""TensorFlow / Keras edges end to end: every Keras fixture along every edge, verified by
mlconvert and checked independently (Keras or TensorFlow against onnxruntime).

TensorFlow is imported once for this module (~8 s); conversions run in-process through
mlconvert.api, and only the exit-code and missing-TensorFlow checks start interpreters.
"""
from __future__ import annotations

import json
import textwrap

import numpy as np
import pytest

from mlconvert import api, probe
from mlconvert.errors import ConversionError, InputError, UntrustedInputError, UsageError

if not probe.has_module("tensorflow"):
    pytest.skip("TensorFlow is not installed (pip install 'mlconvert[tf]')", allow_module_level=True)

pytestmark = pytest.mark.slow

RNG = np.random.default_rng(7)


@pytest.fixture(scope="module")
def keras():
    import os

    os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
    import keras

    return keras


def inputs_for(name: str) -> dict:
    """Independent test data for each fixture (not verification's synthetic inputs)."""
    if name.startswith("keras_dense_iris"):
        return {"features": RNG.normal(size=(40, 4)).astype("float32")}
    if name == "keras_cnn.keras":
        return {"image": RNG.normal(size=(12, 8, 8, 1)).astype("float32")}
    if name == "keras_two_inputs.keras":
        return {"numeric": RNG.normal(size=(20, 3)).astype("float32"),
                "extra": RNG.normal(size=(20, 2)).astype("float32")}
    raise KeyError(name)


def onnx_outputs(path, feed: dict) -> dict:
    import onnxruntime

    sess = onnxruntime.InferenceSession(str(path), providers=["CPUExecutionProvider"])
    assert sorted(i.name for i in sess.get_inputs()) == sorted(feed)
    return dict(zip([o.name for o in sess.get_outputs()], sess.run(None, feed)))


def keras_outputs(keras, path, feed: dict) -> dict:
    model = keras.models.load_model(str(path), compile=False)
    result = model.predict(feed if len(feed) > 1 else next(iter(feed.values())), verbose=0)
    if isinstance(result, dict):
        return result
    names = getattr(model, "output_names", None) or [model.layers[-1].name]
    return dict(zip(names, result if isinstance(result, list) else [result]))


def check_verified(report, edges, max_abs=1e-5):
    assert [s.edge for s in report.steps] == edges
    assert all(s.version for s in report.steps)
    v = report.verification
    assert v["status"] == "verified", v
    assert v["outputs"] and all(o["max_abs"] <= max_abs for o in v["outputs"]), v
    assert report.written


KERAS_ONNX = [("keras_dense_iris.h5", "tf2onnx-keras-h5"), ("keras_dense_iris.keras", "tf2onnx-keras"),
              ("keras_cnn.keras", "tf2onnx-keras"), ("keras_two_inputs.keras", "tf2onnx-keras")]


@pytest.mark.parametrize("name,edge", KERAS_ONNX)
def test_keras_to_onnx(keras, fixtures, tmp_path, name, edge):
    out = tmp_path / "model.onnx"
    report = api.convert(fixtures / name, out)
    check_verified(report, [edge])
    assert report.verification["rows"] > 1
    feed = inputs_for(name)
    expected, got = keras_outputs(keras, fixtures / name, feed), onnx_outputs(out, feed)
    assert sorted(got) == sorted(expected)  # the ONNX outputs carry the Keras output names
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], atol=1e-5, rtol=1e-5)


def test_savedmodel_to_onnx(fixtures, tmp_path):
    import tensorflow as tf

    src, out = fixtures / "keras_dense_iris_savedmodel", tmp_path / "model.onnx"
    report = api.convert(src, out)
    check_verified(report, ["tf2onnx-savedmodel"])
    feed = inputs_for("keras_dense_iris")
    signature = tf.saved_model.load(str(src)).signatures["serving_default"]
    expected = {k: v.numpy() for k, v in signature(**{k: tf.constant(v) for k, v in feed.items()}).items()}
    got = onnx_outputs(out, feed)
    assert sorted(got) == sorted(expected) == ["output_0"]  # model.export() names its output output_0
    np.testing.assert_allclose(got["output_0"], expected["output_0"], atol=1e-5, rtol=1e-5)


def test_savedmodel_loads_the_graph_and_signature_describe_reports(fixtures):
    from mlconvert import formats

    fmt, src = formats.get("savedmodel"), fixtures / "keras_dense_iris_savedmodel"
    details = fmt.describe(src)["details"]
    serving = fmt.load(src)
    assert serving.kind == "savedmodel"
    assert (serving.tags, serving.signature_name) == (details["meta_graphs"][0]["tags"], details["signature"])


def test_opset(fixtures, tmp_path):
    import onnx

    out = tmp_path / "model.onnx"
    api.convert(fixtures / "keras_dense_iris.keras", out, opset=13)
    assert {o.domain: o.version for o in onnx.load(str(out)).opset_import}[""] == 13


@pytest.mark.parametrize("name,edge", [("keras_dense_iris.h5", "keras-export-keras-h5"),
                                       ("keras_two_inputs.keras", "keras-export")])
def test_keras_to_savedmodel(keras, fixtures, tmp_path, name, edge):
    import tensorflow as tf

    out = tmp_path / "exported"
    report = api.convert(fixtures / name, out, to_format="savedmodel")
    check_verified(report, [edge], max_abs=0.0)
    assert (out / "saved_model.pb").is_file()
    described = api.inspect(out).to_dict()
    assert described["details"]["signature"] == "serving_default"
    feed = inputs_for(name)
    assert sorted(i["name"] for i in described["inputs"]) == sorted(feed)  # named inputs
    signature = tf.saved_model.load(str(out)).signatures["serving_default"]
    got = {k: v.numpy() for k, v in signature(**{k: tf.constant(v) for k, v in feed.items()}).items()}
    expected = keras_outputs(keras, fixtures / name, feed)
    assert sorted(got) == sorted(expected)
    for key in expected:
        np.testing.assert_allclose(got[key], expected[key], atol=1e-6)
    # And on to ONNX from the exported SavedModel.
    report = api.convert(out, tmp_path / "from_export.onnx")
    check_verified(report, ["tf2onnx-savedmodel"])


def test_existing_savedmodel_directory_is_replaced_but_not_a_plain_folder(fixtures, tmp_path):
    out = tmp_path / "exported"
    api.convert(fixtures / "keras_dense_iris.h5", out, to_format="savedmodel")
    stale = out / "variables" / "stale.txt"
    stale.write_text("old")
    api.convert(fixtures / "keras_dense_iris.keras", out, to_format="savedmodel")
    assert (out / "saved_model.pb").is_file() and not stale.exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["exported"]  # nothing left aside
    folder = tmp_path / "notes"
    folder.mkdir()
    (folder / "keep.txt").write_text("mine")
    with pytest.raises(UsageError, match="holds no model"):
        api.convert(fixtures / "keras_dense_iris.keras", folder, to_format="savedmodel")
    assert (folder / "keep.txt").read_text() == "mine"


def test_h5_to_keras(keras, fixtures, tmp_path):
    out = tmp_path / "model.keras"
    report = api.convert(fixtures / "keras_dense_iris.h5", out)
    check_verified(report, ["keras-resave"], max_abs=0.0)
    feed = inputs_for("keras_dense_iris")
    np.testing.assert_array_equal(keras_outputs(keras, out, feed)["probs"],
                                  keras_outputs(keras, fixtures / "keras_dense_iris.h5", feed)["probs"])


def test_two_inputs_npz_sample(fixtures, tmp_path):
    report = api.convert(fixtures / "keras_two_inputs.keras", tmp_path / "m.onnx",
                         sample=fixtures / "keras_two_inputs_sample.npz")
    check_verified(report, ["tf2onnx-keras"])
    assert report.verification["rows"] == 16
    assert report.verification["inputs"] == "sample keras_two_inputs_sample.npz"
    assert {o["name"] for o in report.verification["outputs"]} == {"score", "embedding"}


# --- Core ML ---


def coreml_spec(path):
    from mlconvert.edges.via_coremltools import precision
    from mlconvert.formats.coreml import import_coremltools

    ct = import_coremltools()
    spec = ct.utils.load_spec(str(path))
    return spec, precision(spec)


@pytest.mark.parametrize("name,edge", [("keras_dense_iris.h5", "coremltools-keras-h5"),
                                       ("keras_two_inputs.keras", "coremltools-keras"),
                                       ("keras_dense_iris_savedmodel", "coremltools-savedmodel")])
def test_to_mlpackage_float32_verified_by_the_reference_evaluator(fixtures, tmp_path, name, edge):
    out = tmp_path / "model.mlpackage"
    report = api.convert(fixtures / name, out)
    assert [s.edge for s in report.steps] == [edge]
    v = report.verification
    assert v["status"] == "verified", v
    assert max(o["max_abs"] for o in v["outputs"]) < 1e-5
    assert out.is_dir() and report.written
    spec, prec = coreml_spec(out)
    assert spec.WhichOneof("Type") == "mlProgram" and prec == "float32"
    names = {f.name for f in spec.description.input}, {f.name for f in spec.description.output}
    assert names == {"keras_dense_iris.h5": ({"features"}, {"probs"}),
                     "keras_two_inputs.keras": ({"numeric", "extra"}, {"score", "embedding"}),
                     "keras_dense_iris_savedmodel": ({"features"}, {"output_0"})}[name]
    assert "conversion_date" not in json.dumps(dict(spec.description.metadata.userDefined))


def test_fp16_only_when_asked(fixtures, tmp_path):
    out = tmp_path / "half.mlpackage"
    report = api.convert(fixtures / "keras_cnn.keras", out, fp16=True)
    assert report.verification["status"] == "verified"
    assert coreml_spec(out)[1] == "float16"
    out32 = tmp_path / "full.mlpackage"
    api.convert(fixtures / "keras_cnn.keras", out32)
    assert coreml_spec(out32)[1] == "float32"
    with pytest.raises(UsageError, match="--fp16 applies to ML programs"):
        api.convert(fixtures / "keras_cnn.keras", tmp_path / "x.mlmodel", fp16=True)
    # Replacing an existing package swaps the directory whole.
    api.convert(fixtures / "keras_cnn.keras", out)
    assert coreml_spec(out)[1] == "float32"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["full.mlpackage", "half.mlpackage"]


def test_to_mlmodel_neural_network(fixtures, tmp_path):
    out = tmp_path / "model.mlmodel"
    report = api.convert(fixtures / "keras_cnn.keras", out)
    assert report.verification["status"] == "verified"
    spec, prec = coreml_spec(out)
    assert spec.WhichOneof("Type") == "neuralNetwork" and prec == "float32"
    assert [f.name for f in spec.description.output] == ["label_probs"]
    # The layer that computes the output writes it under the interface's name, and the
    # output keeps the source's flexible batch.
    assert list(spec.neuralNetwork.layers[-1].output) == ["label_probs"]
    assert api.inspect(out).to_dict()["outputs"][0]["shape"] == [None, 2]


def test_coreml_ops_the_evaluator_lacks_stay_unverified_and_strict_exits_8(cli, keras, tmp_path):
    src = tmp_path / "softsign.keras"
    keras.Sequential([keras.Input((4,), name="x"), keras.layers.Dense(3, activation="softsign", name="h"),
                      keras.layers.Dense(2, name="y")]).save(src)
    out = tmp_path / "m.mlpackage"
    r = cli(src, out, "--strict", "--json")
    assert r.code == 8, r
    assert "reference evaluator does not cover softsign" in " ".join(r.err.split())
    assert json.loads(r.out)["exit_code"] == 8
    assert not out.exists()


# --- safety and failures ---


def test_lambda_layer_refused_then_trusted(keras, tmp_path):
    model = keras.Sequential([keras.Input((3,), name="x"), keras.layers.Dense(2, name="d"),
                              keras.layers.Lambda(lambda t: t * 2.0, name="times_two")])
    for suffix in (".keras", ".h5"):
        src = tmp_path / f"lambda{suffix}"
        model.save(src)
        with pytest.raises(UntrustedInputError, match="times_two") as info:
            api.convert(src, tmp_path / f"l{suffix}.onnx")
        assert info.value.exit_code == 7 and "--trust" in info.value.hint
        assert not (tmp_path / f"l{suffix}.onnx").exists()
        report = api.convert(src, tmp_path / f"l{suffix}.onnx", trust=True)
        assert report.verification["status"] == "verified"


def test_custom_layer_needs_its_module(keras, tmp_path):
    import importlib.util

    module = tmp_path / "my_layers.py"
    module.write_text(textwrap.dedent('''
        import keras

        class Scale(keras.layers.Layer):
            def __init__(self, factor=2.0, **kwargs):
                super().__init__(**kwargs)
                self.factor = factor

            def call(self, x):
                return x * self.factor

            def get_config(self):
                return {**super().get_config(), "factor": self.factor}
    '''))
    spec = importlib.util.spec_from_file_location("not_importable_layers", module)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    model = keras.Sequential([keras.Input((3,), name="x"), keras.layers.Dense(2, name="d"), mod.Scale(3.0, name="scale")])
    src = tmp_path / "custom.keras"
    model.save(src)
    with pytest.raises(UntrustedInputError, match=r"scale \(Scale\)") as info:
        api.convert(src, tmp_path / "c.onnx")
    assert "--custom-objects" in info.value.hint
    with pytest.raises(InputError, match="could not be loaded"):
        api.convert(src, tmp_path / "c.onnx", trust=True)  # trusted, but the class is still missing
    report = api.convert(src, tmp_path / "c.onnx", custom_objects=module)
    assert report.verification["status"] == "verified"


def test_custom_objects_module_is_imported_as_a_module(tmp_path):
    """--custom-objects runs the file the way Python imports a module, so code in it that
    finds its classes through their module (pickle, inspect, typing) works."""
    from mlconvert.formats._tensorflow import _custom_objects

    module = tmp_path / "stateful_layers.py"
    module.write_text(textwrap.dedent('''
        import pickle

        class Scale:
            factor = 3.0

        COPY = pickle.loads(pickle.dumps(Scale()))
    '''))
    objects = _custom_objects(module)
    assert set(objects) == {"Scale"}  # the classes and functions it defines


def test_weights_only_needs_the_architecture(keras, fixtures, tmp_path):
    model = keras.models.load_model(str(fixtures / "keras_dense_iris.keras"), compile=False)
    weights = tmp_path / "dense.weights.h5"
    model.save_weights(weights)
    arch = tmp_path / "dense.json"
    arch.write_text(model.to_json())
    described = api.inspect(weights).to_dict()
    assert described["details"]["weights_only"] and "--architecture" in described["warnings"][0]
    with pytest.raises(InputError, match="holds weights only") as info:
        api.convert(weights, tmp_path / "w.onnx")
    assert info.value.exit_code == 3 and "--architecture" in info.value.hint
    report = api.convert(weights, tmp_path / "w.onnx", architecture=arch)
    check_verified(report, ["tf2onnx-keras-h5"])
    feed = inputs_for("keras_dense_iris")
    np.testing.assert_allclose(onnx_outputs(tmp_path / "w.onnx", feed)["probs"],
                               model.predict(feed["features"], verbose=0), atol=1e-5)


def test_unsupported_op_fails_naming_it(tmp_path):
    import tensorflow as tf

    class Gamma(tf.Module):
        @tf.function(input_signature=[tf.TensorSpec([None, 3], tf.float32, name="x")])
        def serve(self, x):
            return {"y": tf.math.lgamma(tf.abs(x) + 1.0) + tf.math.digamma(tf.abs(x) + 1.0)}

    module = Gamma()
    src = tmp_path / "gamma"
    tf.saved_model.save(module, str(src), signatures={"serving_default": module.serve})
    out = tmp_path / "gamma.onnx"
    with pytest.raises(ConversionError) as info:
        api.convert(src, out)
    assert info.value.exit_code == 5
    assert "no ONNX mapping" in info.value.message
    assert "Lgamma" in info.value.message and "Digamma" in info.value.message
    assert not out.exists()


HIDE_TF = """
import sys, importlib.abc, importlib.machinery
HIDDEN = {"tensorflow", "tensorflow-cpu", "tensorflow_cpu", "keras", "tf2onnx", "tf-keras"}
class HideModules(importlib.abc.MetaPathFinder):
    def find_spec(self, name, path=None, target=None):
        if name.split('.')[0] in ("tensorflow", "keras", "tf2onnx"):
            raise ModuleNotFoundError(name)
class HideDistributions:
    def __getattr__(self, name):
        return getattr(importlib.machinery.PathFinder, name)
    def find_distributions(self, *args, **kwargs):
        for dist in importlib.machinery.PathFinder.find_distributions(*args, **kwargs):
            if (dist.metadata['Name'] or '').lower() not in HIDDEN:
                yield dist
sys.meta_path[sys.meta_path.index(importlib.machinery.PathFinder)] = HideDistributions()
sys.meta_path.insert(0, HideModules())
"""


def test_without_tensorflow_the_edges_say_how_to_get_it(cli, fixtures, tmp_path):
    r = cli("plan", fixtures / "keras_dense_iris.keras", tmp_path / "m.onnx", "--explain", "--json", prelude=HIDE_TF)
    assert r.code == 4, r
    assert "pip install 'mlconvert[tf]'" in r.err
    edges = {e["edge"]: e for e in json.loads(r.out)["error"]["details"]["plan"]["edges"]}
    for name in ("tf2onnx-keras", "keras-export", "coremltools-keras"):
        assert edges[name]["status"] == "rejected"
        assert "tensorflow is not installed (pip install 'mlconvert[tf]')" in edges[name]["reason"]
    assert edges["skl2onnx"]["status"] == "rejected"  # the rest of the graph is still there
    r = cli(fixtures / "sklearn_logreg_iris.pkl", tmp_path / "c.onnx", prelude=HIDE_TF)
    assert r.code == 0, r  # classic conversions are untouched


def test_classic_conversion_imports_no_tensorflow(fixtures, tmp_path):
    import subprocess
    import sys

    code = (f"from mlconvert import api\napi.convert({str(fixtures / 'sklearn_logreg_iris.pkl')!r}, "
            f"{str(tmp_path / 'm.onnx')!r})\nimport sys\n"
            "print(*[m for m in ('tensorflow', 'keras', 'tf2onnx', 'coremltools') if m in sys.modules])")
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == ""
