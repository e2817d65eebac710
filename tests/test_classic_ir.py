"""The classic representation's reference semantics agree with the libraries that define them."""
import warnings

import numpy as np
import pytest

from mlconvert.formats.classic import ir
from mlconvert.formats.classic.evaluate import evaluate

pytest.importorskip("sklearn")
from sklearn.datasets import load_iris  # noqa: E402
from sklearn.linear_model import LogisticRegression  # noqa: E402
from sklearn.svm import SVC  # noqa: E402
from sklearn.tree import DecisionTreeClassifier  # noqa: E402

X, Y = load_iris(return_X_y=True)


def _classifier_graph(op, width=4):
    return ir.Graph([ir.Value("x", width=width)], [op],
                    [ir.Output("label", "label"), ir.Output("p", "probabilities", op.classes)]).check()


@pytest.mark.parametrize("kernel", ["rbf", "linear", "poly", "sigmoid"])
@pytest.mark.parametrize("n_classes", [2, 3])
def test_svm_matches_libsvm_probabilities(kernel, n_classes):
    x, y = X[Y < n_classes], Y[Y < n_classes]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        m = SVC(kernel=kernel, probability=True, random_state=0, gamma=0.3, coef0=0.5).fit(x, y)
        prob_a, prob_b, expected = m.probA_, m.probB_, m.predict_proba(x)
    op = ir.SVM(["x"], ["label", "p"], kernel=kernel, support_vectors=m.support_vectors_.tolist(),
                coefficients=m._dual_coef_.tolist(), rho=(-m._intercept_).tolist(), gamma=m._gamma,
                coef0=m.coef0, degree=m.degree, n_support=m._n_support.tolist(), classes=m.classes_.tolist(),
                prob_a=prob_a.tolist(), prob_b=prob_b.tolist())
    out = evaluate(_classifier_graph(op), {"x": x})
    assert np.abs(out["p"] - expected).max() < 1e-9
    assert (out["label"].ravel() == m.predict(x)).all()


def test_tree_matches_scikit_learn():
    m = DecisionTreeClassifier(max_depth=4, random_state=0).fit(X, Y)
    t = m.tree_
    tree = ir.Tree()
    for i in range(t.node_count):  # node ids coincide: appended in order
        if t.children_left[i] < 0:
            dist = t.value[i][0] / t.value[i][0].sum()
            tree.add_leaf(enumerate(dist))
        else:
            tree.add_split(t.feature[i], "le", t.threshold[i], missing_yes=bool(t.missing_go_to_left[i]))
    for i in range(t.node_count):
        if t.children_left[i] >= 0:
            tree.link(i, t.children_left[i], t.children_right[i])
    op = ir.TreeEnsemble(["x"], ["label", "p"], n_targets=3, trees=[tree], classes=[0, 1, 2])
    x = X.copy()
    x[::7, 2] = np.nan  # missing values follow the recorded direction
    out = evaluate(_classifier_graph(op), {"x": x})
    assert np.abs(out["p"] - m.predict_proba(x)).max() < 1e-12
    assert (out["label"].ravel() == m.predict(x)).all()


def test_binary_logistic_has_one_score_column_for_the_second_class():
    x, y = X[Y < 2], Y[Y < 2]
    m = LogisticRegression().fit(x, y)
    op = ir.Linear(["x"], ["label", "p"], m.coef_.tolist(), m.intercept_.tolist(), "logistic", [0, 1])
    out = evaluate(_classifier_graph(op), {"x": x})
    assert np.abs(out["p"] - m.predict_proba(x)).max() < 1e-12


def test_categorical_split_linear_leaf_and_preprocessing():
    tree = ir.Tree()
    root = tree.add_split(0, "in", categories=[1, 3], missing_yes=False)
    inside = tree.add_leaf([(0, 10.0)], linear=(1.0, ((1, 2.0),)))
    outside = tree.add_leaf([(0, -1.0)])
    tree.link(root, inside, outside)
    graph = ir.Graph(
        [ir.Value("x", width=2)],
        [ir.Imputer(["x"], ["filled"], fill=[3.0, float("nan")], missing=None),
         ir.TreeEnsemble(["filled"], ["y"], n_targets=1, trees=[tree], base=[0.5])],
        [ir.Output("y", "value")]).check()
    x = np.array([[1, 2], [2, 2], [np.nan, 1], [3, np.nan]])
    # 1 in {1,3}: 1 + 2*2; 2 not in: -1; NaN imputed to 3: 1 + 2*1; column 1 left NaN: leaf 10
    assert evaluate(graph, {"x": x})["y"].ravel().tolist() == [5.5, -0.5, 3.5, 10.5]


def test_one_hot_and_label_encoder_on_strings():
    graph = ir.Graph(
        [ir.Value("colour", dtype="string")],
        [ir.OneHot(["colour"], ["hot"], categories=["red", "blue"]),
         ir.LabelEncoder(["colour"], ["code"], mapping={"red": 0, "blue": 1}, default=-1)],
        [ir.Output("hot", "value"), ir.Output("code", "value")]).check()
    out = evaluate(graph, {"colour": np.array(["blue", "green", "red"], dtype=object)})
    assert out["hot"].tolist() == [[0, 1], [0, 0], [1, 0]]
    assert out["code"].ravel().tolist() == [1, -1, 0]


def test_check_names_what_is_undefined():
    with pytest.raises(ValueError, match="undefined"):
        ir.Graph([ir.Value("x")], [ir.Scaler(["nope"], ["y"], [0.0], [1.0])], [ir.Output("y", "value")]).check()
    with pytest.raises(ValueError, match="not produced"):
        ir.Graph([ir.Value("x")], [], [ir.Output("y", "value")]).check()


def test_zero_to_missing_within_a_tolerance():
    x = np.array([[0.0, 0.0], [1e-36, 1e-36], [-1e-36, 2.0], [1e-30, np.nan]])
    graph = ir.Graph([ir.Value("x", width=2)], [ir.ZeroToMissing(["x"], ["y"], [0], within=1e-35)],
                     [ir.Output("y", "value")]).check()
    y = evaluate(graph, {"x": x})["y"]
    assert np.isnan(y[:3, 0]).all() and y[3, 0] == 1e-30  # |x| <= 1e-35 counts as zero
    assert y[0, 1] == 0.0 and np.isnan(y[3, 1])  # other columns untouched
    exact = ir.Graph([ir.Value("x", width=2)], [ir.ZeroToMissing(["x"], ["y"], [0])], [ir.Output("y", "value")])
    assert not np.isnan(evaluate(exact, {"x": x})["y"][1, 0])  # by default only an exact 0
