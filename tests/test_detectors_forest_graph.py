"""The forest's ONNX node decides as scikit-learn does, also for values that sit on a threshold."""

import numpy as np
import onnxruntime as ort
import pytest
from onnx import TensorProto, helper
from sklearn.ensemble import IsolationForest

from deepsad_core.detectors import forest_graph
from deepsad_core.detectors.forest_graph import FOREST_OUTPUT, forest_decision_nodes


def run_graph(forest: IsolationForest, X: np.ndarray) -> np.ndarray:
    nodes, constants = forest_decision_nodes(forest, "input")
    graph = helper.make_graph(
        nodes,
        "forest",
        [helper.make_tensor_value_info("input", TensorProto.FLOAT, [None, X.shape[1]])],
        [helper.make_tensor_value_info(FOREST_OUTPUT, TensorProto.FLOAT, [None, 1])],
        initializer=constants,
    )
    model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 17), helper.make_opsetid("ai.onnx.ml", 3)])
    session = ort.InferenceSession(model.SerializeToString(), providers=["CPUExecutionProvider"])
    return session.run(None, {"input": X})[0].ravel()


def on_thresholds(forest: IsolationForest, X: np.ndarray) -> np.ndarray:
    """Rows of ``X`` with one feature moved onto a split's threshold, rounded to the nearest float32
    above it: there ``x <= t`` is false, and a threshold rounded to nearest would say true."""
    rng = np.random.default_rng(0)
    rows = []
    for estimator in forest.estimators_:
        tree = estimator.tree_
        split = np.flatnonzero(tree.children_left != -1)
        above = split[tree.threshold[split].astype(np.float32).astype(np.float64) > tree.threshold[split]]
        for node in above[:3]:
            row = X[rng.integers(len(X))].copy()
            row[tree.feature[node]] = np.float32(tree.threshold[node])
            rows.append(row)
    return np.array(rows, dtype=np.float32)


@pytest.mark.parametrize("max_features", [1.0, 0.5])
def test_the_node_scores_as_scikit_learn_on_and_off_the_thresholds(max_features):
    rng = np.random.default_rng(1)
    X = rng.random((500, 6), dtype=np.float32)
    forest = IsolationForest(n_estimators=30, max_features=max_features, random_state=0).fit(X)
    edge = on_thresholds(forest, X)
    for data in (rng.random((300, 6), dtype=np.float32), edge):
        np.testing.assert_allclose(run_graph(forest, data), forest.decision_function(data), atol=1e-6)


def test_thresholds_rounded_to_nearest_would_send_samples_the_wrong_way(monkeypatch):
    # the check above can fail: with float32's round-to-nearest the samples on a threshold go left
    rng = np.random.default_rng(1)
    X = rng.random((500, 6), dtype=np.float32)
    forest = IsolationForest(n_estimators=30, random_state=0).fit(X)
    edge = on_thresholds(forest, X)
    monkeypatch.setattr(forest_graph, "_floor_float32", lambda values: values.astype(np.float32))
    assert np.abs(run_graph(forest, edge) - forest.decision_function(edge)).max() > 1e-4
