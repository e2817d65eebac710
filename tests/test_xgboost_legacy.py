"""Legacy XGBoost binary models -> JSON model document (formats/xgboost_legacy.py).

Real files come from ../shared/realworld/xgboost (see SOURCES.tsv); tests that need
them skip when the corpus is absent. Small hand-built binaries cover what the real
files don't (gblinear, base margins, deleted nodes, the 0.7+ trailer).
"""
from __future__ import annotations

import json
import math
import pickle
import random
import re
import struct
import subprocess
import sys
from pathlib import Path

import pytest

from mlconvert.formats.xgboost_legacy import (
    LegacyFormatError,
    describe_legacy,
    is_legacy_binary,
    legacy_to_json,
)

XGB = Path(__file__).resolve().parents[2] / "shared" / "realworld" / "xgboost"
MUSHROOM = "treelite_mushroom.model"
AUTO = "xgb060_R_LinearRegressionAuto.model"
IRIS = "xgb150_R_MultinomialClassificationIris.model"
LEGACY_FILES = [MUSHROOM, AUTO, IRIS]


def _real(name: str) -> Path:
    path = XGB / name
    if not path.is_file():
        pytest.skip(f"real-world corpus file {name} not present")
    return path


def _booster(doc: dict):
    xgb = pytest.importorskip("xgboost")
    booster = xgb.Booster()
    booster.load_model(bytearray(json.dumps(doc).encode()))
    return booster


def _trees(doc: dict) -> dict:
    gbm = doc["learner"]["gradient_booster"]
    return gbm["gbtree"]["model"] if gbm["name"] == "dart" else gbm["model"]


# --------------------------------------------------------------------------- sniffing


@pytest.mark.parametrize("name", LEGACY_FILES)
def test_sniff_recognises_real_legacy_files(name):
    data = _real(name).read_bytes()
    assert is_legacy_binary(data[:4096])
    assert is_legacy_binary(data[:256])  # header + names fit in the first ~200 bytes


def test_sniff_rejects_json_and_ubjson_models():
    for name in ("xgb150_R_MultinomialClassificationIris.json",
                 "xgb3_py_MultinomialClassificationIris.ubj",
                 "xgb3_py_LinearRegressionAuto.ubj"):
        assert not is_legacy_binary(_real(name).read_bytes()[:4096]), name


@pytest.mark.parametrize("head", [
    b"",
    b"{",
    b'{"learner": {"attributes": {}}, "version": [1, 5, 0]}',
    b"{L\x00\x00\x00\x00\x00\x00\x00\x07learner{$U#L" + bytes(64),
    b"binf",
    b"binf" + bytes(400),
    bytes(4096),
    b"label,f0,f1\n1,2,3\n" * 40,
    b"version https://git-lfs.github.com/spec/v1\noid sha256:abc\nsize 123\n",
])
def test_sniff_rejects_other_content(head):
    assert not is_legacy_binary(head)


@pytest.mark.parametrize("protocol", [2, 3, 4, 5])
def test_sniff_rejects_pickles(protocol):
    blob = pickle.dumps({"objective": "binary:logistic", "booster": "gbtree", "w": [0.5] * 50},
                        protocol=protocol)
    assert not is_legacy_binary(blob)


def test_sniff_rejects_random_bytes():
    rng = random.Random(20240521)
    assert not any(is_legacy_binary(rng.randbytes(512)) for _ in range(5000))


# --------------------------------------------------------------------------- damage


@pytest.mark.parametrize("name", LEGACY_FILES)
def test_truncated_files_raise_legacy_format_error(name):
    data = _real(name).read_bytes()
    for cut in (0, 3, 4, 100, 200, len(data) // 2, len(data) - 1):
        with pytest.raises(LegacyFormatError) as info:
            legacy_to_json(data[:cut])
        assert isinstance(info.value, ValueError)
        assert "truncated" in str(info.value) or "not an XGBoost binary model" in str(info.value)
        with pytest.raises(LegacyFormatError):
            describe_legacy(data[:cut])


def test_every_prefix_of_a_small_model_is_refused_cleanly():
    data = _real(MUSHROOM).read_bytes()  # no trailer: any shorter prefix is incomplete
    for cut in range(len(data)):
        with pytest.raises(LegacyFormatError):
            legacy_to_json(data[:cut])


@pytest.mark.parametrize("name", LEGACY_FILES)
def test_corrupted_bytes_give_a_document_or_legacy_format_error(name):
    data = _real(name).read_bytes()
    rng = random.Random(7)
    for _ in range(300):
        damaged = bytearray(data)
        for _ in range(rng.randint(1, 4)):
            damaged[rng.randrange(len(damaged))] = rng.randrange(256)
        try:
            legacy_to_json(bytes(damaged))
            describe_legacy(bytes(damaged))
        except LegacyFormatError:
            pass  # anything else (struct.error, IndexError, KeyError...) fails the test


# --------------------------------------------------------------------------- describe


def test_describe_real_files():
    assert describe_legacy(_real(MUSHROOM).read_bytes()) == {
        "variant": "pre-1.0", "objective": "binary:logistic", "booster": "gbtree",
        "num_feature": 127, "num_class": 0, "num_trees": 2,
        "base_score": 0.5, "base_margin": 0.0,
    }
    auto = describe_legacy(_real(AUTO).read_bytes())
    assert auto["variant"] == "pre-1.0" and auto["objective"] == "reg:linear"
    assert (auto["booster"], auto["num_feature"], auto["num_trees"]) == ("gbtree", 13, 15)
    assert auto["base_score"] == 0.5 and "version" not in auto
    iris = describe_legacy(_real(IRIS).read_bytes())
    assert iris["variant"] == "binf" and iris["version"] == "1.5"
    assert (iris["objective"], iris["booster"]) == ("multi:softprob", "dart")
    assert (iris["num_feature"], iris["num_class"], iris["num_trees"]) == (4, 3, 51)


# --------------------------------------------------------------------------- real models


def _libsvm_dense(path: Path, n_features: int):
    """LIBSVM text as a dense matrix with NaN where an index is absent (= missing)."""
    np = pytest.importorskip("numpy")
    lines = path.read_text().splitlines()
    X = np.full((len(lines), n_features), np.nan, dtype=np.float32)
    for i, line in enumerate(lines):
        for item in line.split()[1:]:
            k, v = item.split(":")
            X[i, int(k)] = float(v)
    return X


def test_mushroom_pre10_predictions():
    np = pytest.importorskip("numpy")
    xgb = pytest.importorskip("xgboost")
    doc = legacy_to_json(_real(MUSHROOM).read_bytes())
    # Stored margin -0.0 is logit(0.5): the document carries the probability.
    assert doc["learner"]["learner_model_param"]["base_score"] == "[0.5]"
    X = _libsvm_dense(_real("treelite_agaricus.test"), 127)
    expected = np.loadtxt(_real("treelite_agaricus.test.prob"))
    got = _booster(doc).predict(xgb.DMatrix(X))
    assert got.shape == expected.shape == (1583,)
    assert np.abs(got - expected).max() <= 1e-5  # measured 3.4e-12


def test_iris_binf_trees_equal_the_sibling_json():
    np = pytest.importorskip("numpy")
    doc = legacy_to_json(_real(IRIS).read_bytes())
    ref = json.loads(_real("xgb150_R_MultinomialClassificationIris.json").read_text())
    f32 = lambda xs: np.asarray(xs, dtype=np.float32)  # noqa: E731
    ours_gbm, ref_gbm = doc["learner"]["gradient_booster"], ref["learner"]["gradient_booster"]
    assert ours_gbm["name"] == ref_gbm["name"] == "dart"
    assert np.array_equal(f32(ours_gbm["weight_drop"]), f32(ref_gbm["weight_drop"]))
    ours, theirs = _trees(doc), ref_gbm["gbtree"]["model"]
    assert ours["tree_info"] == theirs["tree_info"]
    assert len(ours["trees"]) == len(theirs["trees"]) == 51
    for a, b in zip(ours["trees"], theirs["trees"]):
        assert a["id"] == b["id"]
        for key in ("left_children", "right_children", "parents", "split_indices"):
            assert a[key] == b[key], (a["id"], key)
        assert [bool(v) for v in a["default_left"]] == [bool(v) for v in b["default_left"]]
        for key in ("split_conditions", "base_weights", "loss_changes", "sum_hessian"):
            assert np.array_equal(f32(a[key]), f32(b[key])), (a["id"], key)
        for key in ("num_nodes", "num_deleted", "num_feature"):
            assert a["tree_param"][key] == b["tree_param"][key]
    lmp, ref_lmp = doc["learner"]["learner_model_param"], ref["learner"]["learner_model_param"]
    assert (lmp["num_class"], lmp["num_feature"]) == (ref_lmp["num_class"], ref_lmp["num_feature"])
    assert float(ref_lmp["base_score"]) == 0.5 and lmp["base_score"] == "[0.5,0.5,0.5]"
    assert doc["learner"]["objective"] == ref["learner"]["objective"]
    assert doc["learner"]["attributes"] == ref["learner"]["attributes"] == {"niter": "16"}


def test_iris_binf_dart_predictions():
    np = pytest.importorskip("numpy")
    pd = pytest.importorskip("pandas")
    xgb = pytest.importorskip("xgboost")
    doc = legacy_to_json(_real(IRIS).read_bytes())
    X = pd.read_csv(_real("xgb150_R_Iris.csv")).iloc[:, :4].to_numpy(np.float32)
    expected = pd.read_csv(_real("xgb150_R_MultinomialClassificationIris.expected.csv"))
    got = _booster(doc).predict(xgb.DMatrix(X))
    probs = expected[["probability(0)", "probability(1)", "probability(2)"]].to_numpy()
    assert got.shape == probs.shape == (150, 3)
    assert np.abs(got - probs).max() <= 1e-5  # measured 5e-16
    assert (got.argmax(axis=1) == expected["_target"].to_numpy()).all()


# The text dump of the 0.6 Auto model, as xgboost printed it with a feature map:
#   "[name<thr] yes=L,no=R,missing=D" (q / int features; int prints int(cond + 1)),
#   "[name] yes=..,no=.." (indicator: yes is the child for value 1), "leaf=v".
_SPLIT = re.compile(r"^(\d+):\[([^<\]]+)(?:<([^\]]+))?\] yes=(\d+),no=(\d+)(?:,missing=(\d+))?$")
_LEAF = re.compile(r"^(\d+):leaf=(\S+)$")


def _parse_dump(text: str) -> list[dict]:
    trees: list[dict] = []
    for line in text.splitlines():
        line = line.strip()
        if line.startswith("booster["):
            trees.append({})
        elif (m := _LEAF.match(line)):
            trees[-1][int(m[1])] = ("leaf", float(m[2]))
        elif (m := _SPLIT.match(line)):
            missing = int(m[6]) if m[6] is not None else None
            trees[-1][int(m[1])] = ("split", m[2], m[3], int(m[4]), int(m[5]), missing)
        elif line:
            raise AssertionError(f"unparsed dump line {line!r}")
    return trees


def _auto_feature_map(doc: dict) -> dict[int, str]:
    """Check every translated tree against the dump; return feature index -> name."""
    dump = _parse_dump(_real("xgb060_R_LinearRegressionAuto.dump.txt").read_text())
    trees = _trees(doc)["trees"]
    assert len(trees) == len(dump) == 15
    names: dict[int, str] = {}
    kinds: dict[str, list] = {}  # per feature: (printed as int(cond+1), printed as cond)
    for tree, nodes in zip(trees, dump):
        live = [i for i in range(len(tree["left_children"])) if tree["split_indices"][i] != 0x7FFFFFFF]
        assert sorted(nodes) == live
        for nid, node in nodes.items():
            left, right = tree["left_children"][nid], tree["right_children"][nid]
            cond, dleft = tree["split_conditions"][nid], bool(tree["default_left"][nid])
            if node[0] == "leaf":
                assert left == -1
                assert math.isclose(cond, node[1], rel_tol=1e-5, abs_tol=1e-6), (tree["id"], nid)
                continue
            _, name, thr, yes, no, missing = node
            assert names.setdefault(tree["split_indices"][nid], name) == name
            if thr is None:  # indicator
                assert (yes, no) == ((right, left) if dleft else (left, right))
                kinds.setdefault(name, []).append("indicator")
                continue
            assert (yes, no, missing) == (left, right, left if dleft else right)
            as_int = re.fullmatch(r"-?\d+", thr) is not None and int(thr) == int(cond + 1.0)
            as_float = math.isclose(float(thr), cond, rel_tol=1e-5)
            assert as_int or as_float, (tree["id"], nid, thr, cond)
            kinds.setdefault(name, []).append((as_int, as_float))
    # one name per index and one index per name
    assert len(set(names.values())) == len(names)
    # each feature has one type in the map: indicator everywhere, or every threshold
    # printed as int(cond + 1) ("int"), or every threshold printed as is ("q")
    for name, seen in kinds.items():
        if "indicator" in seen:
            assert set(seen) == {"indicator"}, name
        else:
            assert all(i for i, _ in seen) or all(f for _, f in seen), name
    return names


def test_auto_pre10_trees_match_the_text_dump():
    doc = legacy_to_json(_real(AUTO).read_bytes())
    names = _auto_feature_map(doc)
    # The recovered map is the one the R script's genFMap writes: factor levels
    # one-hot in CSV column order (cylinders 3,4,5,6,8; origin 1,2,3).
    r_fmap = [f"cylinders={v}" for v in (3, 4, 5, 6, 8)] + [
        "displacement", "horsepower", "weight", "acceleration", "model_year"
    ] + [f"origin={v}" for v in (1, 2, 3)]
    assert all(r_fmap[i] == name for i, name in names.items())
    assert doc["learner"]["objective"] == {"name": "reg:squarederror"}  # was reg:linear


def test_auto_pre10_predictions():
    np = pytest.importorskip("numpy")
    pd = pytest.importorskip("pandas")
    xgb = pytest.importorskip("xgboost")
    doc = legacy_to_json(_real(AUTO).read_bytes())
    names = _auto_feature_map(doc)
    df = pd.read_csv(_real("xgb060_R_Auto.csv"))
    # Like the LIBSVM file the model was trained and scored on: a factor level that
    # is not present is absent (missing), not 0.
    X = np.full((len(df), 13), np.nan, dtype=np.float32)
    for idx, name in names.items():
        if "=" in name:
            column, level = name.split("=")
            X[:, idx] = np.where(df[column] == int(level), 1.0, np.nan)
        else:
            X[:, idx] = df[name]
    expected = pd.read_csv(_real("xgb060_R_LinearRegressionAuto.expected.csv"))["_target"].to_numpy()
    got = _booster(doc).predict(xgb.DMatrix(X))
    # measured 7.6e-6 on values near 10-45: 4 float32 ulps, summation order of 15 trees
    assert np.abs(got - expected).max() <= 1e-5


# --------------------------------------------------------------------------- built by hand

# Writers for the legacy layout, used to cover what the real files don't. They follow
# the struct layout documented in the module, independently of its reader.


def _string(s: str | bytes) -> bytes:
    b = s.encode() if isinstance(s, str) else s
    return struct.pack("<Q", len(b)) + b


def _learner(base_score, num_feature, objective, booster, *, num_class=0, attrs=False,
             metrics=False, version=(0, 0), binf=False) -> bytes:
    param = struct.pack("<fIiiiIIIi25i", base_score, num_feature, num_class, int(attrs),
                        int(metrics), version[0], version[1], 0, 0, *([0] * 25))
    return (b"binf" if binf else b"") + param + _string(objective) + _string(booster)


def _stump_tree(feature: int, threshold: float, left_leaf: float, right_leaf: float,
                *, default_left=True, deleted_tail=0) -> bytes:
    """Root split + two leaves, optionally followed by nodes the pruner deleted."""
    n = 3 + deleted_tail
    # parent (bit 31: "is the left child"; root 0xFFFFFFFF = -1), left, right,
    # split index (bit 31: default left; all ones: deleted), threshold or leaf value
    nodes = [
        (0xFFFFFFFF, 1, 2, feature | (1 << 31 if default_left else 0), threshold),
        (0 | (1 << 31), -1, -1, 0, left_leaf),
        (0, -1, -1, 0, right_leaf),
    ] + [(1, -1, -1, 0xFFFFFFFF, 0.0)] * deleted_tail
    out = struct.pack("<iiiiii31i", 1, n, deleted_tail, 1, 2, 0, *([0] * 31))
    out += b"".join(struct.pack("<IiiIf", *node) for node in nodes)
    out += b"".join(struct.pack("<fffi", 1.0, 10.0, 0.0, 0) for _ in range(n))
    return out


def _gbtree(trees: list[bytes], tree_info: list[int], groups=1) -> bytes:
    param = struct.pack("<iiiiqii32i", len(trees), 1, 2, 0, 0, groups, 0, *([0] * 32))
    return param + b"".join(trees) + struct.pack(f"<{len(tree_info)}i", *tree_info)


def _attrs(pairs: dict) -> bytes:
    return struct.pack("<Q", len(pairs)) + b"".join(_string(k) + _string(v) for k, v in pairs.items())


def _predict(data: bytes, X, margin=False):
    xgb = pytest.importorskip("xgboost")
    return _booster(legacy_to_json(data)).predict(xgb.DMatrix(X), output_margin=margin)


def test_hand_built_pre10_logistic_margin_and_deleted_nodes():
    np = pytest.importorskip("numpy")
    margin0 = 0.8  # pre-1.0 files hold the margin, not the probability
    data = _learner(margin0, 2, "binary:logistic", "gbtree") + _gbtree(
        [_stump_tree(1, 0.5, -0.25, 0.75, deleted_tail=2)], [0]
    )
    assert is_legacy_binary(data)
    doc = legacy_to_json(data)
    score = float(doc["learner"]["learner_model_param"]["base_score"].strip("[]"))
    assert math.isclose(score, 1 / (1 + math.exp(-margin0)), rel_tol=1e-6)
    X = np.array([[0.0, 0.0], [0.0, 1.0], [0.0, np.nan]], dtype=np.float32)
    got = _predict(data, X, margin=True)
    assert np.allclose(got, [margin0 - 0.25, margin0 + 0.75, margin0 - 0.25], atol=1e-6)


def test_hand_built_binf_1x_stores_probability_space_base_score():
    np = pytest.importorskip("numpy")
    data = _learner(0.3, 2, "binary:logistic", "gbtree", version=(1, 7), binf=True, attrs=True)
    data += _gbtree([_stump_tree(0, 0.0, -1.0, 1.0, default_left=False)], [0])
    data += _attrs({"objective": '{"name":"binary:logistic","reg_loss_param":{"scale_pos_weight":"1"}}',
                    "best_iteration": "0"})
    doc = legacy_to_json(data)
    assert doc["learner"]["learner_model_param"]["base_score"] == "[0.3]"
    assert doc["learner"]["attributes"] == {"best_iteration": "0"}
    X = np.array([[-1.0, 0.0], [1.0, 0.0], [np.nan, 0.0]], dtype=np.float32)
    logit = math.log(0.3 / 0.7)
    assert np.allclose(_predict(data, X, margin=True), [logit - 1, logit + 1, logit + 1], atol=1e-6)


def test_hand_built_pre10_poisson_with_trailer():
    np = pytest.importorskip("numpy")
    margin0 = math.log(2.0)
    data = _learner(margin0, 2, "count:poisson", "gbtree", attrs=True)
    data += _gbtree([_stump_tree(0, 0.0, 0.1, 0.2)], [0])
    data += _attrs({"niter": "1"}) + _string("0.69999999")  # 0.7+ appends max_delta_step
    doc = legacy_to_json(data)
    assert doc["learner"]["objective"]["poisson_regression_param"] == {"max_delta_step": "0.69999999"}
    X = np.array([[-1.0, 0.0], [1.0, 0.0]], dtype=np.float32)
    assert np.allclose(_predict(data, X), [2.0 * math.exp(0.1), 2.0 * math.exp(0.2)], rtol=1e-6)
    with pytest.raises(LegacyFormatError):  # cut inside the trailer
        legacy_to_json(data[:-3])


@pytest.mark.parametrize("version,binf", [((0, 0), False), ((1, 5), True)])
def test_hand_built_gblinear(version, binf):
    np = pytest.importorskip("numpy")
    w = [0.5, -2.0, 0.25]  # two features, then the bias; 1.x leaves num_feature 0 here
    n_feat_field = 2 if version[0] == 0 else 0
    data = _learner(1.5, 2, "reg:squarederror", "gblinear", version=version, binf=binf)
    data += struct.pack("<Ii32i", n_feat_field, 1, *([0] * 32)) + struct.pack("<Q3f", 3, *w)
    assert describe_legacy(data)["booster"] == "gblinear"
    X = np.array([[1.0, 1.0], [2.0, -1.0]], dtype=np.float32)
    assert np.allclose(_predict(data, X), X @ np.array(w[:2]) + w[2] + 1.5, atol=1e-6)


def test_hand_built_multiclass_groups():
    np = pytest.importorskip("numpy")
    trees = [_stump_tree(0, 0.0, v, -v) for v in (1.0, 2.0, 3.0)]
    data = _learner(0.5, 1, "multi:softmax", "gbtree", num_class=3) + _gbtree(trees, [0, 1, 2], 3)
    doc = legacy_to_json(data)
    assert _trees(doc)["iteration_indptr"] == [0, 3]
    assert doc["learner"]["objective"]["softmax_multiclass_param"] == {"num_class": "3"}
    assert list(_predict(data, np.array([[-1.0], [1.0]], dtype=np.float32))) == [2.0, 0.0]


def test_unsupported_content_is_refused_with_a_reason():
    base = _learner(0.5, 2, "reg:squarederror", "gbtree")
    with pytest.raises(LegacyFormatError, match="objective"):
        legacy_to_json(_learner(0.5, 2, "custom:thing", "gbtree") + _gbtree([_stump_tree(0, 0, 1, 2)], [0]))
    vector_leaf = bytearray(_stump_tree(0, 0.0, 1.0, 2.0))
    struct.pack_into("<i", vector_leaf, 20, 3)  # size_leaf_vector
    with pytest.raises(LegacyFormatError, match="vector-leaf"):
        legacy_to_json(base + _gbtree([bytes(vector_leaf)], [0]))
    bad_child = bytearray(_stump_tree(0, 0.0, 1.0, 2.0))
    struct.pack_into("<i", bad_child, 148 + 8, 99)  # root's right child out of range
    with pytest.raises(LegacyFormatError, match="children"):
        legacy_to_json(base + _gbtree([bytes(bad_child)], [0]))
    with pytest.raises(LegacyFormatError, match="feature"):
        legacy_to_json(base + _gbtree([_stump_tree(5, 0.0, 1.0, 2.0)], [0]))


def test_module_imports_only_the_standard_library():
    code = (
        "import sys, mlconvert.formats.xgboost_legacy; "
        "bad = [m for m in ('numpy', 'xgboost', 'pandas', 'scipy') if m in sys.modules]; "
        "assert not bad, bad"
    )
    subprocess.run([sys.executable, "-c", code], check=True)
