"""The ensemble's scoring graph computes what the live ensemble does, member for member."""

import numpy as np
import torch

from deepsad_core import DeepSAD
from deepsad_core.detectors.ensemble import DeepSADEnsemble
from deepsad_core.detectors.graphs import EnsembleScoringNetwork


def test_the_graph_reproduces_the_fused_score_on_repeated_rows(blobs):
    X, truth = blobs
    X = np.repeat(X, 3, axis=0)  # every row three times: kNN distances of exactly 0
    semi = np.zeros(len(X), dtype=np.int64)
    semi[np.flatnonzero(np.repeat(truth, 3) == 1)[:6]] = -1
    semi[:12] = 1
    model = DeepSADEnsemble(deepsad=DeepSAD(epochs=2, ae_epochs=1), seed=0).fit(X, semi)
    assert "supervised" in model.weights_ and "knn" in model.weights_
    graph = EnsembleScoringNetwork(model).eval()
    with torch.no_grad():
        score, latent = graph(
            torch.from_numpy(X), torch.from_numpy(model.members_["iforest"].forest.decision_function(X)[:, None])
        )
    live = model.decision_function(X)
    assert np.max(np.abs(score.numpy() - live) / live) < 1e-6
    np.testing.assert_allclose(latent.numpy(), model.embed(X), atol=1e-6)
