"""Each member of the ensemble: fitted, its raw score higher for anomalies, and its graph module scoring
exactly as it does."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from deepsad_core import DeepSAD
from deepsad_core.detectors.members import DeepSADMember, ForestMember, KNNMember, SupervisedMember
from deepsad_core.detectors.supervised import fit_logistic


@pytest.fixture(scope="module")
def members():
    rng = np.random.default_rng(0)
    X = np.clip(np.vstack([rng.normal(0.5, 0.05, (300, 6)), rng.normal(0.9, 0.05, (30, 6))]), 0, 1).astype(np.float32)
    truth = np.r_[np.zeros(300, int), np.ones(30, int)]
    semi = np.zeros(330, dtype=np.int64)
    semi[:5], semi[300:305] = 1, -1
    deepsad = DeepSAD(epochs=5, ae_epochs=2, batch_size=64, seed=0).fit(X, semi)
    labeled = semi != 0
    return (
        X,
        truth,
        {
            "iforest": ForestMember.fit(X, n_estimators=50, seed=0),
            "knn": KNNMember.fit(X, np.arange(330), n_neighbors=10, max_reference=64, seed=0),
            "deepsad": DeepSADMember(deepsad),
            "supervised": SupervisedMember(fit_logistic(X[labeled], semi[labeled] == -1, C=10.0)),
        },
    )


@pytest.mark.parametrize("name", ["iforest", "knn", "deepsad", "supervised"])
def test_a_member_scores_anomalies_higher_and_its_module_scores_alike(members, name):
    X, truth, fitted = members
    member = fitted[name]
    raw = member.raw(X)
    assert raw.shape == (330,) and raw[truth == 1].mean() > raw[truth == 0].mean()
    x = torch.from_numpy(X)
    latent = torch.from_numpy(fitted["deepsad"].model.embed(X))
    decision = torch.from_numpy(fitted["iforest"].forest.decision_function(X)[:, None])
    with torch.no_grad():
        in_graph = member.scoring_module()(x, x.reshape(330, -1), latent, decision).double().numpy()
    np.testing.assert_allclose(in_graph, raw, rtol=1e-5, atol=1e-5)
    assert member.uses_labels == (name in ("deepsad", "supervised"))


def test_the_knn_reference_is_a_seeded_sample_of_the_rows_given(members):
    X, _, fitted = members
    knn = fitted["knn"]
    assert len(knn.reference) == 64 and knn.k == 10 and np.all(np.diff(knn.reference_index) > 0)
    np.testing.assert_array_equal(knn.reference, X[knn.reference_index])
    again = KNNMember.fit(X, np.arange(330), n_neighbors=10, max_reference=64, seed=0)
    np.testing.assert_array_equal(again.reference_index, knn.reference_index)
