"""Static format modules in detail: ONNX, Core ML, SavedModel, Keras HDF5, Keras v3, PMML.

What every format must do is in test_formats_conformance.py; here are the details
of each: describe on real files from ../shared/realworld (the `realworld` tests) and
on small files built here. Nothing in these tests imports TensorFlow or coremltools.
"""
from __future__ import annotations

import json
import struct
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

from format_samples import (DOUBLE, INT64, PMML_DOC, _varint, coreml_feature, coreml_spec, fb, fv, keras_config,
                            make_keras_h5, make_keras_zip, make_savedmodel, onnx_classifier_bytes, onnx_mlp_bytes,
                            saved_model_pb)
from mlconvert import formats
from mlconvert.errors import InputError
from mlconvert.formats import _protobuf as pb
from mlconvert.formats import coreml, keras_h5, keras_v3, onnx_model, pmml, savedmodel


# ----------------------------------------------------------- samples of each format


@pytest.fixture
def samples(tmp_path) -> dict[str, Path]:
    """One small generated file (or directory) per static format."""
    out = {}
    out["onnx"] = tmp_path / "model.onnx"
    out["onnx"].write_bytes(onnx_classifier_bytes())
    out["coreml"] = tmp_path / "model.mlmodel"
    out["coreml"].write_bytes(coreml_spec())
    out["savedmodel"] = make_savedmodel(tmp_path / "saved")
    out["keras-h5"] = make_keras_h5(tmp_path / "model.h5")
    out["keras"] = make_keras_zip(tmp_path / "model.keras")
    out["pmml"] = tmp_path / "model.pmml"
    out["pmml"].write_text(PMML_DOC, encoding="utf-8")
    return out


# -------------------------------------------------------------------------- basics


def test_module_tops_import_only_the_standard_library():
    code = (
        "import sys\n"
        "import mlconvert.formats._protobuf, mlconvert.formats.onnx_model, mlconvert.formats.coreml\n"
        "import mlconvert.formats.savedmodel, mlconvert.formats.keras_h5, mlconvert.formats.keras_v3\n"
        "import mlconvert.formats.pmml\n"
        "heavy = [m for m in ('numpy', 'onnx', 'h5py', 'tensorflow', 'coremltools', 'keras') if m in sys.modules]\n"
        "print(','.join(heavy))\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == ""


def test_describe_onnx_and_coreml_without_their_libraries(tmp_path):
    path = tmp_path / "m.onnx"
    path.write_bytes(onnx_classifier_bytes())
    spec = tmp_path / "m.mlmodel"
    spec.write_bytes(coreml_spec())
    code = (
        "import sys\n"
        "from pathlib import Path\n"
        "from mlconvert.formats import onnx_model, coreml\n"
        f"onnx_model.describe(Path({str(path)!r})); coreml.describe(Path({str(spec)!r}))\n"
        "print('onnx' in sys.modules, 'coremltools' in sys.modules)\n"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False False"


@pytest.mark.realworld
def test_detect_real_corpus(realworld):
    expected = {
        "onnx/skl2onnx1112_rf_iris.onnx": "onnx",
        "onnx/pytorch03_test_Linear.onnx": "onnx",
        "coreml/olmaditekrar_iris_logreg.mlmodel": "coreml",
        "coreml/archdanny_newcoreml_mnist.mlmodel": "coreml",
        "savedmodel/tfserving_half_plus_two_cpu": "savedmodel",
        "keras/hls4ml_keras_3layer.h5": "keras-h5",
        "keras/anindasau_admission.keras": "keras",
        "pmml/knime_DecisionTreeIris.pmml": "pmml",
        "pmml/dmg_golf_tree.xml": "pmml",
    }
    for relative, fmt_id in expected.items():
        assert formats.detect(realworld / relative).id == fmt_id, relative


def test_detect_generated_samples(samples):
    for fmt_id, path in samples.items():
        assert formats.detect(path).id == fmt_id


# ---------------------------------------------------------------------- _protobuf


def test_protobuf_reader_basics():
    msg = fv(1, 300) + fb(2, "hi") + _varint(3 << 3 | 5) + struct.pack("<f", 1.5) + fv(4, -2 & ((1 << 64) - 1))
    fields = list(pb.iter_fields(msg))
    assert [(n, w) for n, w, _ in fields] == [(1, 0), (2, 2), (3, 5), (4, 0)]
    assert fields[0][2] == 300
    assert pb.decode_string(fields[1][2]) == "hi"
    assert pb.float32(fields[2][2]) == 1.5
    assert pb.signed64(fields[3][2]) == -2
    packed = fb(5, _varint(1) + _varint(500))
    assert pb.varints(pb.parse(packed)[5]) == [1, 500]
    assert pb.varints([7, 8]) == [7, 8]


@pytest.mark.parametrize(
    "data",
    [b"\x08", b"\x08\x80", b"\x12\x05ab", b"\x0d\x00\x00", b"\x00\x01", b"\x0b\x00", b"\x08" + b"\xff" * 11],
    ids=["cut-varint-key", "cut-varint", "cut-len", "cut-fixed32", "field-zero", "group", "overlong-varint"],
)
def test_protobuf_reader_refuses_malformed(data):
    with pytest.raises(ValueError):
        pb.parse(data)


def test_protobuf_partial_mode_yields_cut_prefix():
    fields = list(pb.iter_fields(fv(1, 3) + b"\x12\x0aabc", partial=True))
    assert fields[0] == (1, 0, 3)
    assert fields[1][:2] == (2, 2) and bytes(fields[1][2]) == b"abc"
    with pytest.raises(pb.ProtobufError):
        list(pb.iter_fields(b"\x00\x00", partial=True))  # malformed is still malformed


# --------------------------------------------------------------------------- ONNX


def test_onnx_describe_generated_classifier(samples):
    result = onnx_model.describe(samples["onnx"])
    assert result["flavor"] == "onnx-ml"
    assert result["kind"] == "classifier"
    assert result["n_features"] == 4
    assert result["n_classes"] == 3
    assert result["producer"] == "tests"
    assert result["inputs"] == [{"name": "X", "dtype": "float32", "shape": ["N", 4]}]
    assert result["outputs"][0] == {"name": "label", "dtype": "int64", "shape": ["N"]}
    details = result["details"]
    assert details["ir_version"] == 8
    assert {"domain": "ai.onnx.ml", "version": 3} in details["opset_import"]
    assert details["op_types"] == {"Cast": 1, "LinearClassifier": 1}
    assert details["metadata_props"] == {"author": "tests", "mlconvert.report": "{}"}


def test_onnx_describe_generated_mlp(tmp_path):
    path = tmp_path / "mlp.onnx"
    path.write_bytes(onnx_mlp_bytes())
    result = onnx_model.describe(path)
    assert result["flavor"] == "onnx-nn"
    assert result["kind"] == "neural-network"
    assert result["inputs"] == [{"name": "X", "dtype": "float64", "shape": [None, 5]}]  # W is an initializer
    assert result["n_features"] == 5
    assert result["details"]["initializer_count"] == 1


def test_onnx_sniff_disambiguates_by_content_then_extension(tmp_path):
    onnx_bytes = onnx_classifier_bytes()
    as_mlmodel = tmp_path / "misnamed.mlmodel"
    as_mlmodel.write_bytes(onnx_bytes)
    assert onnx_model.sniff(onnx_bytes[:4096], as_mlmodel)
    assert not coreml.sniff(onnx_bytes[:4096], as_mlmodel)
    spec = coreml_spec()
    assert not onnx_model.sniff(spec, tmp_path / "misnamed.onnx")
    # Nothing but ir_version in view: content can't tell, the extension does.
    assert onnx_model.sniff(b"\x08\x07", tmp_path / "a.onnx")
    assert not onnx_model.sniff(b"\x08\x07", tmp_path / "a.bin")


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.9, -1])
def test_onnx_truncated_is_input_error(tmp_path, fraction):
    data = onnx_classifier_bytes()
    cut = len(data) - 1 if fraction == -1 else int(len(data) * fraction)
    path = tmp_path / "cut.onnx"
    path.write_bytes(data[:cut])
    with pytest.raises(InputError) as info:
        onnx_model.describe(path)
    assert "ONNX" in info.value.message and info.value.hint


def test_onnx_truncated_detect(tmp_path):
    path = tmp_path / "cut.onnx"
    path.write_bytes(onnx_classifier_bytes()[:60])
    try:
        fmt = formats.detect(path)
    except InputError:
        return  # refused at detection: fine too
    assert fmt.id == "onnx"
    with pytest.raises(InputError):
        fmt.describe(path)


def test_onnx_empty_and_garbage(tmp_path):
    empty = tmp_path / "empty.onnx"
    empty.write_bytes(b"")
    with pytest.raises(InputError):
        onnx_model.describe(empty)
    garbage = tmp_path / "garbage.onnx"
    garbage.write_bytes(b"\x08\x07\x12\xff\xff\xff\xff\x0f")
    with pytest.raises(InputError):
        onnx_model.describe(garbage)


def test_onnx_load_and_save(tmp_path, samples):
    model = onnx_model.load(samples["onnx"])
    out = tmp_path / "copy.onnx"
    onnx_model.save(model, out)
    assert onnx_model.describe(out)["n_classes"] == 3
    assert not list(tmp_path.glob(".copy.onnx.tmp"))
    bad = tmp_path / "bad.onnx"
    bad.write_bytes(onnx_classifier_bytes()[:100])
    with pytest.raises(InputError):
        onnx_model.load(bad)


@pytest.mark.realworld
def test_onnx_real_skl2onnx_random_forest(realworld):
    result = onnx_model.describe(realworld / "onnx/skl2onnx1112_rf_iris.onnx")
    assert result["producer"] == "skl2onnx"
    assert result["producer_version"] == "1.11.2"
    assert result["flavor"] == "onnx-ml"
    assert result["kind"] == "classifier"
    assert result["n_features"] == 4
    assert result["n_classes"] == 3
    assert result["inputs"] == [{"name": "float_input", "dtype": "float32", "shape": [None, 4]}]
    assert [o["name"] for o in result["outputs"]] == ["output_label", "output_probability"]
    assert result["outputs"][1]["dtype"] == "seq(map(int64,float32))"
    assert result["details"]["ir_version"] == 7
    assert result["details"]["op_types"] == {"Cast": 1, "TreeEnsembleClassifier": 1, "ZipMap": 1}


@pytest.mark.realworld
def test_onnx_real_others(realworld):
    linear = onnx_model.describe(realworld / "onnx/pytorch03_test_Linear.onnx")
    assert linear["flavor"] == "onnx-nn" and linear["producer"] == "pytorch"
    assert [i["name"] for i in linear["inputs"]] == ["0"]  # weights "1", "2" are initializers
    assert linear["inputs"][0]["shape"] == [4, 10]
    xgb = onnx_model.describe(realworld / "onnx/amelia_insurance_xgb.onnx")
    assert (xgb["flavor"], xgb["kind"], xgb["n_features"]) == ("onnx-ml", "regressor", 10)
    assert xgb["producer_version"] == "1.16.0"
    old = onnx_model.describe(realworld / "onnx/skl2onnx2018_GradientBoostingRegressor.onnx")
    assert old["details"]["ir_version"] == 3 and old["kind"] == "regressor"
    keras = onnx_model.describe(realworld / "onnx/hls4ml_three_layer_keras.onnx")
    assert keras["flavor"] == "onnx-nn" and keras["details"]["op_types"]["MatMul"] == 4


@pytest.mark.realworld
def test_onnx_real_files_truncated(realworld, tmp_path):
    data = (realworld / "onnx/skl2onnx1112_rf_iris.onnx").read_bytes()
    path = tmp_path / "rf.onnx"
    for cut in (100, len(data) // 2, len(data) - 3):
        path.write_bytes(data[:cut])
        assert onnx_model.sniff(data[:cut][:4096], path)  # still looks like ONNX...
        with pytest.raises(InputError):  # ...but is refused, not a traceback
            onnx_model.describe(path)


# ------------------------------------------------------------------------- Core ML


def test_coreml_describe_generated(samples):
    result = coreml.describe(samples["coreml"])
    assert result["flavor"] == "coreml-classic"
    assert result["kind"] == "regressor"
    assert result["inputs"][0] == {"name": "x", "dtype": "float32", "shape": [3], "type": "multiArray"}
    assert result["outputs"][0]["type"] == "double" and result["outputs"][0]["dtype"] == "float64"
    assert result["n_features"] == 3
    details = result["details"]
    assert details["specification_version"] == 4
    assert details["model_type"] == "glmRegressor"
    assert details["metadata"]["author"] == "tests"
    assert details["predicted_feature_name"] == "y"


def test_coreml_user_defined_and_ml_program(tmp_path):
    path = tmp_path / "prog.mlmodel"
    path.write_bytes(coreml_spec(502, fb(1, fv(1, 1)), user_defined={"com.github.apple.coremltools.version": "9.0"}))
    result = coreml.describe(path)
    assert result["flavor"] == "coreml-nn" and result["kind"] == "neural-network"
    assert result["producer"] == "coremltools" and result["producer_version"] == "9.0"
    assert result["details"]["metadata"]["userDefined"]["com.github.apple.coremltools.version"] == "9.0"
    assert any("mlpackage" in w for w in result["warnings"])


def test_coreml_pipeline_classifier_generated(tmp_path):
    vectorizer = fv(1, 1) + fb(602, fb(1, fb(1, "a") + fv(2, 1)))
    glm = fv(1, 1) + fb(400, fb(2, struct.pack("<d", 0.0)) + fb(100, fb(1, "cat") + fb(1, "dog")))
    body = fb(1, fb(1, vectorizer) + fb(1, glm))  # PipelineClassifier { Pipeline { models } }
    path = tmp_path / "pipe.mlmodel"
    path.write_bytes(coreml_spec(200, body, inputs=[coreml_feature("a", DOUBLE), coreml_feature("b", INT64)],
                                 outputs=[coreml_feature("label", fb(3, b""))]))
    result = coreml.describe(path)
    assert result["kind"] == "classifier"
    assert result["n_classes"] == 2 and result["n_features"] == 2
    assert result["details"]["pipeline"] == ["featureVectorizer", "glmClassifier"]
    assert result["details"]["class_labels"] == ["cat", "dog"]


def test_coreml_mlpackage_directory(tmp_path):
    package = tmp_path / "model.mlpackage"
    spec_dir = package / "Data" / "com.apple.CoreML"
    spec_dir.mkdir(parents=True)
    (spec_dir / "model.mlmodel").write_bytes(coreml_spec(502, fb(1, fv(1, 1))))
    (spec_dir / "weights").mkdir()
    (spec_dir / "weights" / "weight.bin").write_bytes(b"\x00" * 64)
    (package / "Manifest.json").write_text(json.dumps({"fileFormatVersion": "1.0.0", "itemInfoEntries": {}}))
    assert coreml.sniff(b"", package)
    assert not savedmodel.sniff(b"", package)
    result = coreml.describe(package)
    assert result["details"]["package"] is True
    assert result["details"]["weights_bytes"] == 64
    assert "warnings" not in result
    assert not coreml.sniff(b"", tmp_path)  # a plain directory is no package


def test_coreml_mlpackage_detect(tmp_path):
    package = tmp_path / "model.mlpackage"
    spec_dir = package / "Data" / "com.apple.CoreML"
    spec_dir.mkdir(parents=True)
    (spec_dir / "model.mlmodel").write_bytes(coreml_spec())
    (package / "Manifest.json").write_text("{}")
    assert formats.detect(package).id == "coreml"


@pytest.mark.parametrize("cut", [3, 20, -1])
def test_coreml_truncated_is_input_error(tmp_path, cut):
    data = coreml_spec()
    path = tmp_path / "cut.mlmodel"
    path.write_bytes(data[:cut])
    with pytest.raises(InputError) as info:
        coreml.describe(path)
    assert "Core ML" in info.value.message


def test_coreml_description_without_model_type_is_input_error(tmp_path):
    data = coreml_spec()
    # Drop the model-type field: what a cut exactly after the description looks like.
    fields = [(n, v) for n, _, v in pb.iter_fields(data)]
    path = tmp_path / "cut.mlmodel"
    path.write_bytes(b"".join(fv(n, v) if isinstance(v, int) else fb(n, bytes(v)) for n, v in fields if n < 200))
    with pytest.raises(InputError, match="model type"):
        coreml.describe(path)


@pytest.mark.realworld
def test_coreml_real_iris_pipeline(realworld):
    result = coreml.describe(realworld / "coreml/olmaditekrar_iris_logreg.mlmodel")
    assert result["flavor"] == "coreml-classic"
    assert result["kind"] == "classifier"
    assert result["n_features"] == 4 and result["n_classes"] == 3
    assert [i["type"] for i in result["inputs"]] == ["double"] * 4
    assert result["inputs"][0]["name"] == "sepal length (cm)"
    assert result["details"]["model_type"] == "pipelineClassifier"
    assert result["details"]["pipeline"] == ["featureVectorizer", "glmClassifier"]
    assert result["details"]["specification_version"] == 1
    assert result["outputs"][1]["type"] == "dictionary"


@pytest.mark.realworld
def test_coreml_real_others(realworld):
    xgb = coreml.describe(realworld / "coreml/amelia_insurance_xgb.mlmodel")
    assert xgb["details"]["model_type"] == "treeEnsembleRegressor" and xgb["kind"] == "regressor"
    assert xgb["producer"] == "coremltools" and xgb["producer_version"] == "9.0"
    assert xgb["details"]["metadata"]["userDefined"]["com.github.apple.coremltools.source"] == "xgboost==3.2.0"
    assert xgb["n_features"] == 6
    mnist = coreml.describe(realworld / "coreml/archdanny_newcoreml_mnist.mlmodel")
    assert mnist["flavor"] == "coreml-nn" and mnist["kind"] == "classifier"
    assert mnist["details"]["model_type"] == "neuralNetworkClassifier"
    assert mnist["inputs"][0]["type"] == "image" and mnist["n_classes"] == 10
    house = coreml.describe(realworld / "coreml/princesmall_HousePricer.mlmodel")
    assert house["kind"] == "regressor" and house["details"]["pipeline"] == ["featureVectorizer", "glmRegressor"]
    assert house["inputs"][0]["name"] == "Square_Feet"


@pytest.mark.realworld
def test_coreml_and_onnx_sniffers_keep_apart_on_real_files(realworld):
    for path in sorted((realworld / "coreml").glob("*.mlmodel")):
        head = path.read_bytes()[:4096]
        assert coreml.sniff(head, path) and not onnx_model.sniff(head, path), path.name
    for path in sorted((realworld / "onnx").glob("*.onnx")):
        head = path.read_bytes()[:4096]
        assert onnx_model.sniff(head, path) and not coreml.sniff(head, path), path.name
    for path in sorted((realworld / "savedmodel").glob("*/*.pb")):  # other protobufs
        head = path.read_bytes()[:4096]
        assert not onnx_model.sniff(head, path) and not coreml.sniff(head, path), path


@pytest.mark.realworld
def test_coreml_real_truncated(realworld, tmp_path):
    data = (realworld / "coreml/archdanny_newcoreml_mnist.mlmodel").read_bytes()
    path = tmp_path / "mnist.mlmodel"
    for cut in (10, 200, len(data) // 2, len(data) - 1):
        path.write_bytes(data[:cut])
        with pytest.raises(InputError):
            coreml.describe(path)


# ---------------------------------------------------------------------- SavedModel


def test_savedmodel_describe_generated(samples):
    result = savedmodel.describe(samples["savedmodel"])
    assert result["flavor"] == "tf-graph" and result["kind"] == "neural-network"
    assert result["producer"] == "tensorflow" and result["producer_version"] == "2.15.0"
    assert result["inputs"] == [{"name": "x", "dtype": "float32", "shape": [None, 3], "tensor": "serving_default_x:0"}]
    assert result["outputs"][0]["dtype"] == "float64"
    assert result["n_features"] == 3
    details = result["details"]
    assert details["meta_graphs"][0]["tags"] == ["serve"]
    assert list(details["meta_graphs"][0]["signatures"]) == ["serving_default"]
    assert details["meta_graphs"][0]["graph_nodes"] == 2
    assert details["variables_bytes"] == 40 and details["keras_metadata"] is False


def test_savedmodel_keras_metadata_and_fingerprint(tmp_path):
    root = make_savedmodel(tmp_path / "keras_saved")
    root_node = fv(2, 0) + fb(3, "root") + fb(4, "_tf_keras_sequential") + fb(
        5, json.dumps({"class_name": "Sequential", "keras_version": "2.12.0"}))
    (root / "keras_metadata.pb").write_bytes(fb(1, root_node))
    (root / "fingerprint.pb").write_bytes(fv(1, 12345))
    result = savedmodel.describe(root)
    assert result["flavor"] == "keras"
    assert result["details"]["keras_version"] == "2.12.0"
    assert result["details"]["keras_class_name"] == "Sequential"
    assert result["details"]["fingerprint"] is True


def test_savedmodel_sniff_needs_saved_model_pb(tmp_path):
    assert not savedmodel.sniff(b"", tmp_path)
    (tmp_path / "saved_model.pbtxt").write_text('meta_graphs {\n  meta_info_def {\n    tags: "serve"\n'
                                                '    tensorflow_version: "1.15.0"\n  }\n}\n')
    assert savedmodel.sniff(b"", tmp_path)
    result = savedmodel.describe(tmp_path)
    assert result["details"]["meta_graphs"][0]["tags"] == ["serve"]
    assert result["producer_version"] == "1.15.0"
    assert result["warnings"]
    file_path = tmp_path / "saved_model.pbtxt"
    assert not savedmodel.sniff(b"meta", file_path)  # a file is never a SavedModel


@pytest.mark.parametrize("cut", [1, 5, 40, -2])
def test_savedmodel_truncated_is_input_error(tmp_path, cut):
    data = saved_model_pb()
    root = make_savedmodel(tmp_path / "cut", data[:cut])
    with pytest.raises(InputError) as info:
        savedmodel.describe(root)
    assert "SavedModel" in info.value.message


def test_savedmodel_truncated_detect(tmp_path):
    root = make_savedmodel(tmp_path / "cut", saved_model_pb()[:50])
    assert formats.detect(root).id == "savedmodel"
    with pytest.raises(InputError):
        formats.detect(root).describe(root)


def test_savedmodel_empty_pb(tmp_path):
    root = make_savedmodel(tmp_path / "empty", b"")
    with pytest.raises(InputError, match="empty"):
        savedmodel.describe(root)


@pytest.mark.realworld
def test_savedmodel_real_half_plus_two(realworld):
    result = savedmodel.describe(realworld / "savedmodel/tfserving_half_plus_two_cpu")
    assert result["flavor"] == "tf-graph"
    assert result["inputs"][0]["name"] == "x" and result["inputs"][0]["dtype"] == "float32"
    assert result["outputs"][0]["name"] == "y"
    assert result["producer_version"] == "1.14.0"
    details = result["details"]
    assert details["signature"] == "serving_default"
    assert details["meta_graphs"][0]["tags"] == ["serve"]
    sigs = details["meta_graphs"][0]["signatures"]
    assert {"serving_default", "classify_x_to_y", "regress_x_to_y"} <= set(sigs)
    assert sigs["classify_x_to_y"]["method_name"] == "tensorflow/serving/classify"
    assert details["assets"] == 1 and details["variables_files"] == 2

    tf2 = savedmodel.describe(realworld / "savedmodel/tfserving_half_plus_two_tf2_cpu")
    assert tf2["inputs"][0]["name"] == "x" and tf2["inputs"][0]["dtype"] == "float32"
    assert tf2["details"]["fingerprint"] is True
    assert tf2["details"]["meta_graphs"][0]["object_graph"] is True
    assert "__saved_model_init_op" not in tf2["details"]["meta_graphs"][0]["signatures"]


@pytest.mark.realworld
def test_savedmodel_real_keras(realworld):
    result = savedmodel.describe(realworld / "savedmodel/aditahmedabadi_heart_keras_savedmodel")
    assert result["flavor"] == "keras"
    assert result["details"]["keras_version"] == "2.7.0"
    assert result["producer_version"] == "2.7.0"
    inputs = {i["name"]: i["dtype"] for i in result["inputs"]}
    assert len(inputs) == 11
    assert inputs["Sex"] == "string" and inputs["Age"] == "int64" and inputs["Oldpeak"] == "float64"
    assert result["outputs"][0]["shape"] == [None, 1]


@pytest.mark.realworld
def test_savedmodel_real_truncated(realworld, tmp_path):
    data = (realworld / "savedmodel/tfserving_half_plus_two_cpu/saved_model.pb").read_bytes()
    for cut in (7, len(data) // 2, len(data) - 5):
        root = make_savedmodel(tmp_path / f"cut{cut}", data[:cut])
        with pytest.raises(InputError):
            savedmodel.describe(root)


# ------------------------------------------------------------------------ Keras H5


def test_keras_h5_describe_generated_with_lambda(tmp_path):
    path = make_keras_h5(tmp_path / "lambda.h5", config=keras_config(lambda_layer=True))
    result = keras_h5.describe(path)
    assert result["flavor"] == "keras" and result["kind"] == "neural-network"
    assert result["producer_version"] == "2.15.0"
    assert result["inputs"] == [{"name": "features", "dtype": "float32", "shape": [None, 6]}]
    assert result["outputs"] == [{"name": "probs", "dtype": "float32", "shape": [None, 3]}]
    assert result["n_features"] == 6 and result["n_classes"] == 3
    assert result["details"]["lambda_layers"] == ["scale"]
    assert result["details"]["parameters"] == 6 * 8 + 8 * 3
    assert any("Lambda" in w for w in result["warnings"])


def test_keras_h5_weights_only_generated(tmp_path):
    path = make_keras_h5(tmp_path / "weights.h5", weights_only=True)
    result = keras_h5.describe(path)
    assert result["details"]["weights_only"] is True
    assert result["details"]["layer_names"] == ["hidden", "probs"]
    assert any("--architecture" in w for w in result["warnings"])


def test_keras_h5_plain_hdf5_is_not_a_model(tmp_path):
    import h5py

    path = tmp_path / "data.h5"
    with h5py.File(path, "w") as handle:
        handle.create_dataset("x", data=[1, 2, 3])
    assert keras_h5.sniff(path.read_bytes()[:4096], path)  # HDF5 is HDF5...
    with pytest.raises(InputError, match="no Keras model"):  # ...but describe says what is missing
        keras_h5.describe(path)


def test_keras_h5_old_sequential_config_list(tmp_path):
    # Keras 1 / 2.0 wrote Sequential configs as a bare list of layers.
    config = {"class_name": "Sequential", "config": [
        {"class_name": "Dense", "config": {"name": "d1", "units": 4, "activation": "relu", "batch_input_shape": [None, 9]}},
        {"class_name": "Dense", "config": {"name": "d2", "units": 1, "activation": "sigmoid"}},
    ]}
    path = make_keras_h5(tmp_path / "old.h5", config=config)
    result = keras_h5.describe(path)
    assert result["n_features"] == 9
    assert result["details"]["layer_count"] == 2
    assert result["outputs"][0]["name"] == "d2"


@pytest.mark.parametrize("fraction", [0.02, 0.5, 0.97])
def test_keras_h5_truncated_is_input_error(tmp_path, fraction):
    data = make_keras_h5(tmp_path / "full.h5").read_bytes()
    path = tmp_path / "cut.h5"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(InputError):
        keras_h5.describe(path)


def test_keras_h5_without_h5py(tmp_path, monkeypatch):
    path = make_keras_h5(tmp_path / "m.h5")
    monkeypatch.setitem(sys.modules, "h5py", None)  # import h5py now raises ImportError
    result = keras_h5.describe(path)
    assert result["flavor"] == "keras"
    assert any("h5py" in w for w in result["warnings"])


def test_keras_h5_truncated_detect(tmp_path):
    data = make_keras_h5(tmp_path / "full.h5").read_bytes()
    path = tmp_path / "cut.h5"
    path.write_bytes(data[: len(data) // 2])
    fmt = formats.detect(path)
    assert fmt.id == "keras-h5"
    with pytest.raises(InputError):
        fmt.describe(path)


@pytest.mark.realworld
def test_keras_h5_real_files(realworld):
    full = keras_h5.describe(realworld / "keras/hls4ml_keras_3layer.h5")
    assert full["producer_version"] == "2.3.1"
    assert full["inputs"][0]["shape"] == [None, 16] and full["n_features"] == 16
    assert full["n_classes"] == 5
    assert full["details"]["output_layers"][0]["activation"] == "softmax"
    assert full["details"]["lambda_layers"] == []

    weights = keras_h5.describe(realworld / "keras/hls4ml_KERAS_3layer_weights.h5")
    assert weights["details"]["weights_only"] is True
    assert weights["details"]["layer_names"][0] == "input_1"
    assert weights["producer_version"] == "2.0.0"
    assert any("--architecture" in w for w in weights["warnings"])

    k3 = keras_h5.describe(realworld / "keras/anindasau_admission.h5")
    assert k3["producer_version"] == "3.13.2"
    assert k3["n_features"] == 7 and k3["details"]["training_config"] is True


@pytest.mark.realworld
def test_keras_h5_real_truncated(realworld, tmp_path):
    data = (realworld / "keras/hls4ml_keras_3layer.h5").read_bytes()
    path = tmp_path / "cut.h5"
    for cut in (100, len(data) // 2, len(data) - 100):
        path.write_bytes(data[:cut])
        with pytest.raises(InputError):
            keras_h5.describe(path)


# ------------------------------------------------------------------------ Keras v3


def test_keras_v3_describe_generated(tmp_path):
    path = make_keras_zip(tmp_path / "lambda.keras", config=keras_config(lambda_layer=True))
    result = keras_v3.describe(path)
    assert result["flavor"] == "keras" and result["kind"] == "neural-network"
    assert result["producer_version"] == "3.9.0"
    assert result["details"]["date_saved"] == "2026-01-01@00:00:00"
    assert result["details"]["class_name"] == "Functional"
    assert result["details"]["layer_count"] == 4
    assert result["details"]["lambda_layers"] == ["scale"]
    assert result["inputs"][0]["shape"] == [None, 6]
    assert result["outputs"][0]["name"] == "probs"


def test_keras_v3_sniff_needs_keras_members(tmp_path):
    path = tmp_path / "config_only.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "{}")
    assert not keras_v3.sniff(path.read_bytes()[:4096], path)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.95])
def test_keras_v3_truncated_is_input_error(tmp_path, fraction):
    data = make_keras_zip(tmp_path / "full.keras").read_bytes()
    path = tmp_path / "cut.keras"
    path.write_bytes(data[: int(len(data) * fraction)])
    assert not keras_v3.sniff(data[:4096], path)  # no central directory: not a readable zip
    with pytest.raises(InputError):
        keras_v3.describe(path)


def test_keras_v3_truncated_detect(tmp_path):
    data = make_keras_zip(tmp_path / "full.keras").read_bytes()
    path = tmp_path / "cut.keras"
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(InputError):
        formats.detect(path)


def test_keras_v3_bad_json_is_input_error(tmp_path):
    path = tmp_path / "bad.keras"
    with zipfile.ZipFile(path, "w") as archive:
        archive.writestr("config.json", "{not json")
        archive.writestr("metadata.json", "{}")
    with pytest.raises(InputError, match="JSON"):
        keras_v3.describe(path)


@pytest.mark.realworld
def test_keras_v3_real_files(realworld):
    admission = keras_v3.describe(realworld / "keras/anindasau_admission.keras")
    assert admission["producer_version"] == "3.13.2"
    assert admission["details"]["date_saved"].startswith("2026-02-09")
    assert admission["n_features"] == 7
    assert admission["details"]["class_name"] == "Sequential"
    student = keras_v3.describe(realworld / "keras/adityab_student_pass.keras")
    assert student["n_features"] == 2
    assert student["details"]["output_layers"][0]["activation"] == "sigmoid"
    diabetes = keras_v3.describe(realworld / "keras/cryptic_diabetes.keras")
    assert diabetes["details"]["layer_types"]["BatchNormalization"] == 2
    assert diabetes["n_features"] == 4


# ---------------------------------------------------------------------------- PMML


def test_pmml_describe_generated(samples):
    result = pmml.describe(samples["pmml"])
    assert result["flavor"] == "pmml" and result["kind"] == "classifier"
    assert result["producer"] == "handmade" and result["producer_version"] == "1.0"
    assert result["n_features"] == 2 and result["n_classes"] == 2
    assert [i["name"] for i in result["inputs"]] == ["a", "b"]
    assert result["inputs"][1]["dtype"] == "int64"
    assert result["outputs"][0]["name"] == "label"
    assert result["details"]["pmml_version"] == "4.4"
    assert result["details"]["model_type"] == "TreeModel"
    assert result["details"]["header"]["timestamp"] == "2026-01-01"


@pytest.mark.parametrize(
    "text",
    [
        "\ufeff" + PMML_DOC,
        PMML_DOC.replace('<PMML xmlns="http://www.dmg.org/PMML-4_4"', '<pmml:PMML xmlns:pmml="http://www.dmg.org/PMML-4_4"')
        .replace("</PMML>", "</pmml:PMML>"),
        '<PMML version="3.2" xmlns="http://www.dmg.org/PMML-3_2"><Header/></PMML>',
        "<!-- a\ncomment -->\n<?xml-stylesheet href='x'?>\n  <PMML version='4.1'>",
    ],
    ids=["bom", "prefixed", "no-declaration", "comment-and-pi"],
)
def test_pmml_sniff_variants(tmp_path, text):
    path = tmp_path / "model.xml"
    path.write_text(text, encoding="utf-8")
    assert pmml.sniff(path.read_bytes()[:4096], path)


def test_pmml_sniff_utf16(tmp_path):
    path = tmp_path / "model.pmml"
    path.write_bytes(PMML_DOC.replace('encoding="UTF-8"', 'encoding="UTF-16"').encode("utf-16"))
    assert pmml.sniff(path.read_bytes()[:4096], path)


def test_pmml_sniff_negative_xml(tmp_path):
    for text in ('<?xml version="1.0"?><root><PMML/></root>', "<html><body>PMML</body></html>", "PMML version 4"):
        assert not pmml.sniff(text.encode(), tmp_path / "x.xml")


def test_pmml_refuses_doctype_and_entities(tmp_path):
    bomb = ('<?xml version="1.0"?>\n<!DOCTYPE PMML [\n <!ENTITY a "aaaaaaaaaa">\n <!ENTITY b "&a;&a;&a;&a;">\n]>\n'
            '<PMML version="4.4"><Header description="&b;"/></PMML>\n')
    path = tmp_path / "bomb.pmml"
    path.write_text(bomb, encoding="utf-8")
    assert pmml.sniff(path.read_bytes()[:4096], path)  # recognised as PMML...
    with pytest.raises(InputError, match="DOCTYPE"):  # ...and refused with a reason
        pmml.describe(path)


def test_pmml_doctype_after_comment_mentioning_pmml(tmp_path):
    path = tmp_path / "sneaky.pmml"
    path.write_text('<!-- <PMML> -->\n<!DOCTYPE PMML SYSTEM "file:///etc/passwd">\n<PMML version="4.4"/>\n')
    with pytest.raises(InputError, match="DOCTYPE"):
        pmml.describe(path)


def test_pmml_sniff_refuses_long_prologs():
    # How long this takes is a figure of `make bench`, not an assertion here.
    for head in (b" " * 4096, b" " * 40 + b"x", b"<!---->" * 500 + b"<PMML>", b"<?xml " + b"?" * 4000):
        assert not pmml.sniff(head, Path("a.xml"))


def test_pmml_wrong_root_and_no_model(tmp_path):
    path = tmp_path / "header_only.pmml"
    path.write_text('<PMML version="4.4"><Header/><DataDictionary/></PMML>', encoding="utf-8")
    with pytest.raises(InputError, match="without a model"):
        pmml.describe(path)


@pytest.mark.parametrize("fraction", [0.1, 0.5, 0.98])
def test_pmml_truncated_is_input_error(tmp_path, fraction):
    data = PMML_DOC.encode()
    path = tmp_path / "cut.pmml"
    path.write_bytes(data[: int(len(data) * fraction)])
    with pytest.raises(InputError):
        pmml.describe(path)


def test_pmml_truncated_detect(tmp_path):
    path = tmp_path / "cut.pmml"
    path.write_bytes(PMML_DOC.encode()[: len(PMML_DOC) // 2])
    fmt = formats.detect(path)
    assert fmt.id == "pmml"
    with pytest.raises(InputError):
        fmt.describe(path)


@pytest.mark.realworld
def test_pmml_real_knime(realworld):
    result = pmml.describe(realworld / "pmml/knime_DecisionTreeIris.pmml")
    assert result["details"]["pmml_version"] == "4.2"
    assert result["details"]["model_type"] == "TreeModel"
    assert result["producer"] == "KNIME" and result["producer_version"] == "3.5.1"
    assert result["kind"] == "classifier" and result["n_features"] == 4 and result["n_classes"] == 3
    assert result["outputs"][0]["values"] == ["setosa", "versicolor", "virginica"]


@pytest.mark.realworld
def test_pmml_real_others(realworld):
    forest = pmml.describe(realworld / "pmml/rattle_RandomForestIris.pmml")
    assert forest["details"]["model_type"] == "MiningModel"
    assert forest["details"]["segments"] == 7
    assert forest["details"]["segment_models"] == {"TreeModel": 7}
    assert forest["details"]["multiple_model_method"] == "majorityVote"
    auto = pmml.describe(realworld / "pmml/rapidminer_RegressionAuto.pmml")
    assert auto["details"]["pmml_version"] == "3.2" and auto["kind"] == "regressor"
    assert auto["details"]["model_type"] == "RegressionModel" and auto["n_features"] == 7
    sas = pmml.describe(realworld / "pmml/sas_LogisticRegressionIris.pmml")
    assert sas["producer"] == "SAS(r)" and sas["n_features"] == 2
    golf_path = realworld / "pmml/dmg_golf_tree.xml"
    assert pmml.sniff(golf_path.read_bytes()[:4096], golf_path)
    golf = pmml.describe(golf_path)
    assert golf["details"]["pmml_version"] == "4.1" and golf["n_features"] == 4
    assert golf["outputs"][0]["name"] == "whatIdo"


@pytest.mark.realworld
def test_pmml_real_truncated(realworld, tmp_path):
    data = (realworld / "pmml/rattle_RandomForestIris.pmml").read_bytes()
    path = tmp_path / "cut.pmml"
    for cut in (300, len(data) // 2, len(data) - 10):
        path.write_bytes(data[:cut])
        with pytest.raises(InputError):
            pmml.describe(path)


# ------------------------------------------------------- every real file, every sniffer


@pytest.mark.realworld
def test_every_corpus_file_claimed_by_at_most_its_own_sniffer(realworld):
    """Every sniffer of the registry over every file of the corpus, models or not."""
    model_only = {".cbm", ".h5", ".joblib", ".keras", ".mlmodel", ".model", ".onnx", ".pkl", ".pmml", ".ubj"}
    registered = formats.all_formats()
    for path in sorted(p for p in realworld.rglob("*") if p.is_file()):
        head = path.read_bytes()[:4096]
        claimed = {fmt.id for fmt in registered if fmt.sniff(head, path)}
        where = f"{path.relative_to(realworld)}: {sorted(claimed)}"
        assert len(claimed) <= 1, where
        guess = formats.by_extension(path)
        if claimed and guess is not None:
            assert claimed == {guess.id}, where
        if path.suffix in model_only or path.name == "dmg_golf_tree.xml":
            assert claimed, where
