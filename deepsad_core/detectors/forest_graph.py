"""A fitted IsolationForest as one ONNX ``TreeEnsembleRegressor`` node that decides as scikit-learn does.

scikit-learn casts the input to float32 and sends a sample left when ``x <= threshold``, with the
threshold in float64. ONNX stores thresholds in float32: rounding one to nearest can land it on a
sample's value and send that sample the other way. Rounding every threshold *down* to float32 keeps
each decision exact, since for a float32 ``x``, ``x <= t`` holds exactly when ``x <= floor32(t)``.

Each leaf holds its tree's path length (depth + the average path length of the samples left in
it, minus 1, as ``IsolationForest._compute_score_samples``) divided by ``n_trees * c(max_samples)``,
so the node's sum over trees is the exponent of the score: one node for the whole forest, where
skl2onnx writes two per tree plus casts and label encoders, some 3,000 nodes (on 2 cores 48k rows/s,
against about 300k for the one node).
"""

from __future__ import annotations

import numpy as np
import onnx
from onnx import TensorProto, helper
from sklearn.ensemble import IsolationForest
from sklearn.ensemble._iforest import _average_path_length

__all__ = ["FOREST_OUTPUT", "forest_decision_nodes"]

FOREST_OUTPUT = "iforest/decision"


def _floor_float32(values: np.ndarray) -> np.ndarray:
    """The largest float32 at or below each float64 value."""
    rounded = values.astype(np.float32)
    above = rounded.astype(np.float64) > values
    rounded[above] = np.nextafter(rounded[above], np.float32(-np.inf))
    return rounded


def forest_decision_nodes(
    forest: IsolationForest, input_name: str
) -> tuple[list[onnx.NodeProto], list[onnx.TensorProto]]:
    """Nodes and initializers that compute ``forest.decision_function`` of the 2-D float32 ``input_name``
    as :data:`FOREST_OUTPUT`, shape (n, 1)."""
    n_features = forest.n_features_in_
    subsample = forest._max_features != n_features  # as scikit-learn decides whether to index features
    ids, modes, feats, values, trues, falses, tree_ids = [], [], [], [], [], [], []
    leaf_tree, leaf_node, leaf_weight = [], [], []
    denominator = len(forest.estimators_) * float(_average_path_length([forest.max_samples_])[0])
    for t, (estimator, features) in enumerate(zip(forest.estimators_, forest.estimators_features_, strict=True)):
        tree = estimator.tree_
        leaf = tree.children_left == -1
        path = forest._decision_path_lengths[t] + forest._average_path_length_per_tree[t] - 1.0
        feature = np.where(leaf, 0, tree.feature)
        feature = np.asarray(features)[feature] if subsample else feature
        n = tree.node_count
        tree_ids += [t] * n
        ids += list(range(n))
        modes += ["LEAF" if is_leaf else "BRANCH_LEQ" for is_leaf in leaf]
        feats += feature.astype(np.int64).tolist()
        values += _floor_float32(np.where(leaf, 0.0, tree.threshold)).tolist()
        trues += np.where(leaf, 0, tree.children_left).tolist()
        falses += np.where(leaf, 0, tree.children_right).tolist()
        leaf_tree += [t] * int(leaf.sum())
        leaf_node += np.flatnonzero(leaf).tolist()
        leaf_weight += (path[leaf] / denominator).tolist()
    ensemble = helper.make_node(
        "TreeEnsembleRegressor",
        [input_name],
        ["iforest/exponent"],
        domain="ai.onnx.ml",
        name="iforest/trees",
        n_targets=1,
        aggregate_function="SUM",
        post_transform="NONE",
        nodes_treeids=tree_ids,
        nodes_nodeids=ids,
        nodes_modes=modes,
        nodes_featureids=feats,
        nodes_values=values,
        nodes_truenodeids=trues,
        nodes_falsenodeids=falses,
        target_treeids=leaf_tree,
        target_nodeids=leaf_node,
        target_ids=[0] * len(leaf_tree),
        target_weights=leaf_weight,
    )
    # decision = score_samples - offset_ = -2^(-exponent) - offset_
    constants = [
        helper.make_tensor("iforest/minus_ln2", TensorProto.FLOAT, [], [-np.log(2.0)]),
        helper.make_tensor("iforest/offset", TensorProto.FLOAT, [], [float(forest.offset_)]),
    ]
    nodes = [
        ensemble,
        helper.make_node("Mul", ["iforest/exponent", "iforest/minus_ln2"], ["iforest/log_score"]),
        helper.make_node("Exp", ["iforest/log_score"], ["iforest/score"]),
        helper.make_node("Neg", ["iforest/score"], ["iforest/score_samples"]),
        helper.make_node("Sub", ["iforest/score_samples", "iforest/offset"], [FOREST_OUTPUT]),
    ]
    return nodes, constants
