"""Neural Core ML off macOS: the spec validator and the reference evaluator, on specs
built by hand (so each rule is exercised on its own) and on real conversions."""
import platform

import numpy as np
import pytest

pytest.importorskip("coremltools")
from mlconvert.formats import _coreml_neural as neural  # noqa: E402

FLOAT32 = 65568  # ArrayFeatureType.FLOAT32
W = np.array([[0.5, -1.0, 2.0], [1.5, 0.25, -0.75]], dtype=np.float32)
B = np.array([0.1, -0.2], dtype=np.float32)


def dense_spec(batch_flexible=True):
    """x [1, 3] -> innerProduct -> sigmoid -> y."""
    from coremltools.proto import Model_pb2

    spec = Model_pb2.Model()
    spec.specificationVersion = 4
    x = spec.description.input.add()
    x.name = "x"
    x.type.multiArrayType.shape.extend([1, 3])
    x.type.multiArrayType.dataType = FLOAT32
    if batch_flexible:
        for lo, hi in ((1, -1), (3, 3)):
            r = x.type.multiArrayType.shapeRange.sizeRanges.add()
            r.lowerBound, r.upperBound = lo, hi
    y = spec.description.output.add()
    y.name = "y"
    y.type.multiArrayType.dataType = FLOAT32
    fc = spec.neuralNetwork.layers.add()
    fc.name, fc.innerProduct.inputChannels, fc.innerProduct.outputChannels = "fc", 3, 2
    fc.input.append("x")
    fc.output.append("h")
    fc.innerProduct.hasBias = True
    fc.innerProduct.weights.floatValue.extend(W.ravel())
    fc.innerProduct.bias.floatValue.extend(B)
    act = spec.neuralNetwork.layers.add()
    act.name = "act"
    act.input.append("h")
    act.output.append("y")
    act.activation.sigmoid.SetInParent()
    return spec


SOURCE_IN, SOURCE_OUT = [{"name": "x", "shape": [None, 3]}], [{"name": "y", "shape": [None, 2]}]


def test_a_valid_spec_passes_and_evaluates_like_numpy():
    spec = dense_spec()
    assert neural.validate(spec, SOURCE_IN, SOURCE_OUT) == []
    x = np.random.default_rng(0).normal(size=(7, 3)).astype(np.float32)
    got = neural.evaluator(spec)({"x": x})["y"]
    np.testing.assert_allclose(got, 1 / (1 + np.exp(-(x @ W.T + B))), rtol=1e-6)


def test_an_output_no_layer_writes_is_rejected():
    spec = dense_spec()
    spec.neuralNetwork.layers[-1].output[0] = "Identity"  # what coremltools' rename left behind
    assert neural.validate(spec) == ["interface output 'y' is not produced by any layer"]


def test_a_layer_input_nothing_produces_is_rejected():
    spec = dense_spec()
    spec.neuralNetwork.layers[-1].input[0] = "nowhere"
    (problem,) = neural.validate(spec)
    assert "layer 'act' reads 'nowhere'" in problem


def test_ranks_and_flexible_batch_are_compared_with_the_source():
    spec = dense_spec(batch_flexible=False)
    (problem,) = neural.validate(spec, SOURCE_IN, SOURCE_OUT)
    assert problem == "input 'x' fixes dimension 0 at 1; the source leaves it free ([None, 3])"
    assert "rank 2" in neural.validate(dense_spec(), [{"name": "x", "shape": [None, 3, 1]}])[0]
    broken = dense_spec()
    broken.description.input[0].type.multiArrayType.shapeRange.sizeRanges.add()
    assert "rank 2 but 3 flexible ranges" in neural.validate(broken)[0]


def test_uncovered_layers_are_named():
    spec = dense_spec()
    spec.neuralNetwork.layers[-1].activation.PReLU.SetInParent()
    lstm = spec.neuralNetwork.layers.add()
    lstm.uniDirectionalLSTM.SetInParent()
    with pytest.raises(neural.Uncovered) as info:
        neural.evaluator(spec)
    assert info.value.ops == ["activation PReLU", "uniDirectionalLSTM"]


@pytest.mark.slow
@pytest.mark.parametrize("name", ["keras_dense_iris.keras", "keras_cnn.keras", "keras_two_inputs.keras"])
@pytest.mark.parametrize("target,fp16", [("model.mlmodel", False), ("model.mlpackage", False),
                                         ("model.mlpackage", True)])
def test_keras_to_core_ml_is_verified_on_linux(fixtures, tmp_path, name, target, fp16):
    pytest.importorskip("tensorflow")
    from mlconvert import api

    report = api.convert(fixtures / name, tmp_path / target, fp16=fp16)
    v = report.verification
    assert v["status"] == "verified", v
    worst = max(o["max_abs"] for o in v["outputs"])
    assert worst < (1e-2 if fp16 else 1e-5), v
    if fp16:
        assert worst > 1e-6, "float16 compute leaves a float16-sized difference"
        assert "--fp16" in v["tolerance_source"]


@pytest.mark.slow
@pytest.mark.parametrize("target", ["model.mlmodel", "model.mlpackage"])
def test_layer_normalization_is_covered(keras_module, tmp_path, target):
    """Keras' LayerNormalization becomes reductions, rsqrt and unary layers."""
    from mlconvert import api

    keras = keras_module
    src = tmp_path / "norm.keras"
    keras.Sequential([keras.Input((4,), name="x"), keras.layers.LayerNormalization(name="norm"),
                      keras.layers.Dense(2, name="y")]).save(src)
    assert api.convert(src, tmp_path / target).verification["status"] == "verified"


@pytest.fixture
def keras_module():
    pytest.importorskip("tensorflow")
    return pytest.importorskip("keras")


@pytest.mark.slow
@pytest.mark.skipif(platform.system() != "Darwin", reason="Core ML runs only on macOS")
def test_reference_evaluator_agrees_with_core_ml(fixtures, tmp_path):
    import coremltools as ct

    from mlconvert import api

    out = tmp_path / "cnn.mlpackage"
    api.convert(fixtures / "keras_cnn.keras", out)
    spec = ct.utils.load_spec(str(out))
    x = np.random.default_rng(1).normal(size=(3, 8, 8, 1)).astype(np.float32)
    ours = neural.evaluator(spec, out)({"image": x})
    model = ct.models.MLModel(str(out))
    for i in range(3):
        theirs = model.predict({"image": x[i:i + 1]})
        for name, value in theirs.items():
            np.testing.assert_allclose(ours[name][i], np.asarray(value).reshape(-1), atol=1e-4)
