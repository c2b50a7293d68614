"""Latent maps: PCA at once, UMAP from the previous layout, aligned so the picture stays put."""

import numpy as np
import pytest

from deepsad_core.loop.projection import (
    MapConfig,
    align_to,
    layout_shift,
    map_points,
    neighbour_anomaly_auc,
    pca_map,
    umap_map,
)


@pytest.fixture
def latents() -> np.ndarray:
    rng = np.random.default_rng(0)
    return np.vstack([rng.normal(0, 1, (150, 8)), rng.normal(6, 1, (50, 8))]).astype(np.float32)


def test_align_undoes_rotation_scale_and_shift():
    rng = np.random.default_rng(1)
    a = rng.normal(size=(100, 2))
    theta = 1.1
    rot = np.array([[np.cos(theta), -np.sin(theta)], [np.sin(theta), np.cos(theta)]])
    b = 3 * a @ rot + np.array([5.0, -2.0])
    np.testing.assert_allclose(align_to(b, a), a, atol=1e-5)
    assert layout_shift(a, align_to(b, a)) < 1e-5
    assert layout_shift(a, b) > 1


def test_pca_map_is_instant_and_two_dimensional(latents):
    m = pca_map(latents)
    assert m.coords.shape == (200, 2) and m.method == "pca"
    again = pca_map(latents * -1, previous=m.coords)  # a flipped latent space maps onto the same picture
    assert layout_shift(m.coords, again.coords) < 1e-3


def test_umap_separates_clusters_and_stays_put_for_unchanged_latents(latents):
    first = umap_map(latents, config=MapConfig(seed=0))
    assert first.coords.shape == (200, 2) and first.method == "umap"
    c = first.coords
    centre_a, centre_b = c[:150].mean(0), c[150:].mean(0)
    spread = np.sqrt(((c[:150] - centre_a) ** 2).sum(1)).mean()
    assert np.linalg.norm(centre_a - centre_b) > 2 * spread
    second = umap_map(latents, previous=c, config=MapConfig(seed=1))  # another round, other seed
    assert layout_shift(c, second.coords) < 0.3  # points move less than a third of the picture's radius
    unaligned = umap_map(latents, config=MapConfig(seed=1))
    assert layout_shift(c, second.coords) < layout_shift(c, unaligned.coords)


def test_large_sets_are_fitted_on_a_subsample_and_extended(latents):
    m = umap_map(np.vstack([latents] * 3), config=MapConfig(max_fit_samples=250))
    assert m.coords.shape == (600, 2) and np.isfinite(m.coords).all()


def test_a_large_map_shows_a_fixed_sample_and_every_labeled_or_queued_sample():
    always = np.array([3, 77_777, 99_999])
    shown = map_points(100_000, always, cap=1_000)
    assert np.all(np.diff(shown) > 0) and set(always) <= set(shown.tolist())
    assert 1_000 <= len(shown) <= 1_003
    again = map_points(100_000, np.array([5]), cap=1_000)
    assert len(np.intersect1d(shown, again)) >= 1_000 - 3  # the same sample every round
    np.testing.assert_array_equal(map_points(500, always[:1], cap=1_000), np.arange(500))


def test_layouts_of_different_points_are_aligned_on_the_points_they_share(latents):
    first = umap_map(latents, config=MapConfig(seed=0)).coords
    previous = first.copy()
    previous[::4] = np.nan  # a quarter of the points were not on the previous map
    second = umap_map(latents, previous=previous, config=MapConfig(seed=1))
    assert np.isfinite(second.coords).all()
    assert layout_shift(previous, second.coords) < 0.3
    flipped = pca_map(latents * -1, previous=np.where(np.isnan(previous), np.nan, pca_map(latents).coords))
    assert layout_shift(pca_map(latents).coords, flipped.coords) < 1e-3


def test_a_map_that_keeps_anomalies_together_scores_one_and_a_mixed_map_about_a_half():
    rng = np.random.default_rng(0)
    truth = np.r_[np.zeros(300, int), np.ones(30, int)]
    apart = np.vstack([rng.normal(0, 1, (300, 2)), rng.normal(8, 0.5, (30, 2))])
    assert neighbour_anomaly_auc(apart, truth) == 1.0
    mixed = rng.normal(0, 1, (330, 2))
    assert abs(neighbour_anomaly_auc(mixed, truth) - 0.5) < 0.1


def test_labels_make_umap_draw_the_experts_anomalies_together():
    # anomalies that the latents barely set apart: the labeled ones pull their kind together
    rng = np.random.default_rng(0)
    truth = np.r_[np.zeros(300, int), np.ones(40, int)]
    latents = np.vstack([rng.normal(0, 1, (300, 8)), rng.normal(0.5, 1, (40, 8))]).astype(np.float32)
    labels = np.full(len(truth), -1)
    known = np.r_[rng.choice(300, 30, replace=False), 300 + rng.choice(40, 20, replace=False)]
    labels[known] = truth[known]
    plain = umap_map(latents).coords[known]
    guided = umap_map(latents, labels=labels).coords[known]
    # among the labeled points, a point's nearest labeled neighbours share its kind more often
    assert neighbour_anomaly_auc(guided, truth[known], k=5) > neighbour_anomaly_auc(plain, truth[known], k=5) + 0.05
