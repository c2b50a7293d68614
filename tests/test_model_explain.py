"""Explanations: the part of a sample that drives its score is the part that was made odd."""

import numpy as np
import pytest

from deepsad_core import DeepSAD
from deepsad_core.detectors.ensemble import DeepSADEnsemble
from deepsad_core.model.explain import patch_size, top_features


@pytest.fixture(scope="module")
def table():
    rng = np.random.default_rng(0)
    X = rng.normal(0.5, 0.08, (600, 8)).astype(np.float32)
    model = DeepSADEnsemble(deepsad=DeepSAD(epochs=5, ae_epochs=3, lr=1e-3, seed=0)).fit(X)
    return X, model


def test_a_shifted_feature_is_the_top_attribution(table):
    X, model = table
    rng = np.random.default_rng(1)
    planted = X[:40].copy()
    columns = rng.integers(0, 8, 40)
    planted[np.arange(40), columns] += rng.choice([-0.6, 0.6], 40)  # one feature far off, per row
    attributions = model.explain(planted)
    assert attributions.shape == planted.shape
    assert (attributions.argmax(axis=1) == columns).mean() >= 0.9


def test_a_bright_square_is_the_top_region_of_an_image():
    rng = np.random.default_rng(2)
    images = rng.normal(0.3, 0.03, (300, 1, 16, 16)).astype(np.float32)
    model = DeepSAD(net="conv", epochs=5, ae_epochs=3, lr=1e-3, seed=0).fit(images)
    planted, cells = images[:20].copy(), []
    ph, pw = patch_size(16, 16)
    for k in range(20):
        i, j = rng.integers(0, 16 // ph), rng.integers(0, 16 // pw)
        planted[k, :, i * ph : (i + 1) * ph, j * pw : (j + 1) * pw] = 1.0
        cells.append((i, j))
    attributions = model.explain(planted)
    assert attributions.shape == planted.shape
    found = [np.unravel_index(a[0].argmax(), a[0].shape) for a in attributions]
    hits = [(r // ph, c // pw) == cell for (r, c), cell in zip(found, cells, strict=True)]
    assert np.mean(hits) >= 0.9


def test_one_hot_levels_count_as_their_column():
    names = ["a", "kind", "kind", "b"]
    assert top_features(np.array([0.1, 0.3, 0.2, -0.4]), names, k=2) == [("kind", pytest.approx(0.5)), ("a", 0.1)]


def test_a_saved_model_explains_as_it_did(table, tmp_path):
    X, model = table
    model.save(tmp_path / "m")
    from deepsad_core.detectors.contract import load_model

    again = load_model(tmp_path / "m")
    np.testing.assert_allclose(again.explain(X[:3]), model.explain(X[:3]), rtol=1e-4, atol=1e-6)
