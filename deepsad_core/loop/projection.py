"""Maps of the detector's latent space: a PCA view at once, UMAP when ready, stable across rounds.

The maths only, no processes: UMAP (umap-learn) is imported lazily and compiled by numba on first
use (a minute or more, cold); :func:`warm_up` pays that early. The app draws its maps in a child
process (:mod:`deepsad_core.studio.maps`).

A map shows at most :data:`MAX_MAP_POINTS` samples, a fixed random sample, plus every labeled and
queued one (:func:`map_points`): a browser draws that many, and the round's time does not grow with
the data. UMAP is fitted on a capped subsample of them and places the rest with ``transform``. A new
round's map starts from the previous layout and is then rotated, scaled and shifted onto it
(Procrustes), so the expert recognises the picture while it shows the new geometry. Layouts of
different point sets are compared on the points they share: ``previous`` holds NaN where the
previous map had no point.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy.linalg import orthogonal_procrustes
from sklearn.decomposition import PCA

__all__ = [
    "MAX_MAP_POINTS",
    "LatentMap",
    "MapConfig",
    "align_to",
    "layout_shift",
    "map_labels",
    "map_points",
    "neighbour_anomaly_auc",
    "pca_map",
    "umap_map",
    "warm_up",
]

MAX_MAP_POINTS = 20_000  # beyond this a map shows a fixed random sample (plus labeled and queued samples)


@dataclass(frozen=True)
class MapConfig:
    n_neighbors: int = 15
    min_dist: float = 0.1
    max_fit_samples: int = 10_000  # fit on at most this many points, place the rest with transform
    # umap-learn's own choice above 10,000 points, used for every size (docs/design.md, "The app")
    n_epochs: int = 200
    seed: int = 0


@dataclass
class LatentMap:
    coords: np.ndarray  # (n, 2) float32
    method: str  # "pca" or "umap"
    seconds: float


def map_points(n: int, always: np.ndarray, cap: int | None = None, seed: int = 0) -> np.ndarray:
    """The samples a map of ``n`` shows, sorted: all of them up to ``cap`` (default
    :data:`MAX_MAP_POINTS`); beyond, the same random ``cap`` of them every round (the picture stays
    recognisable) and every sample in ``always``."""
    cap = MAX_MAP_POINTS if cap is None else cap
    if n <= cap:
        return np.arange(n)
    fixed = np.random.default_rng(seed).choice(n, cap, replace=False)
    return np.union1d(fixed, np.asarray(always, dtype=np.int64))


def align_to(coords: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """``coords`` rotated/reflected, scaled and shifted to best match ``previous`` (same points; rows of
    ``previous`` that are NaN do not count, and their points move with the rest)."""
    known = np.isfinite(previous).all(axis=1)
    if known.sum() < 3:
        return coords.astype(np.float32)
    centre, target = coords[known].mean(axis=0), previous[known].mean(axis=0)
    a = coords[known] - centre
    b = previous[known] - target
    rotation, _ = orthogonal_procrustes(a, b)
    scale = np.sqrt((b**2).sum() / max(((a @ rotation) ** 2).sum(), 1e-12))
    return ((coords - centre) @ rotation * scale + target).astype(np.float32)


def layout_shift(before: np.ndarray, after: np.ndarray) -> float:
    """Median displacement of points between two layouts, as a fraction of the layout's RMS radius
    (over the points both place)."""
    known = np.isfinite(before).all(axis=1) & np.isfinite(after).all(axis=1)
    before, after = before[known], after[known]
    radius = np.sqrt(((before - before.mean(axis=0)) ** 2).sum(axis=1).mean())
    return float(np.median(np.sqrt(((after - before) ** 2).sum(axis=1))) / max(radius, 1e-12))


def pca_map(latents: np.ndarray, previous: np.ndarray | None = None) -> LatentMap:
    """Two principal components: instant, for the first look."""
    start = time.perf_counter()
    x = np.asarray(latents, dtype=np.float64)
    coords = PCA(n_components=2, random_state=0).fit_transform(x) if x.shape[1] > 2 else x[:, :2]
    if coords.shape[1] < 2:
        coords = np.hstack([coords, np.zeros((len(coords), 1))])
    if previous is not None and len(previous) == len(coords):
        coords = align_to(coords, previous)
    return LatentMap(coords.astype(np.float32), "pca", time.perf_counter() - start)


def umap_map(
    latents: np.ndarray,
    previous: np.ndarray | None = None,
    config: MapConfig | None = None,
    labels: np.ndarray | None = None,
) -> LatentMap:
    """UMAP of the latents, initialised from (and aligned to) the previous layout when given.

    ``labels`` (1 anomaly, 0 normal, -1 unknown per point) make it umap-learn's semi-supervised UMAP:
    labeled points of one kind draw together, the unknown ones place as the data says."""
    import umap  # lazy: numba compiles on first use

    config = config or MapConfig()
    start = time.perf_counter()
    x = np.asarray(latents, dtype=np.float32)
    n = len(x)
    rng = np.random.default_rng(config.seed)
    fit_idx = np.arange(n) if n <= config.max_fit_samples else np.sort(rng.choice(n, config.max_fit_samples, False))
    init: str | np.ndarray = "spectral"
    if previous is not None and len(previous) == n and np.isfinite(previous[fit_idx]).all(axis=1).any():
        init = _standardise(_fill_unknown(previous[fit_idx], x[fit_idx]))
    reducer = umap.UMAP(
        n_neighbors=min(config.n_neighbors, len(fit_idx) - 1),
        min_dist=config.min_dist,
        init=init,
        n_epochs=config.n_epochs,
        random_state=config.seed,
        n_jobs=1,  # with random_state umap runs single-threaded anyway; say so and skip its warning
    )
    coords = np.empty((n, 2), dtype=np.float32)
    target = None if labels is None else np.asarray(labels)[fit_idx]
    if target is not None and not (target >= 0).any():  # nothing labeled: plain UMAP
        target = None
    coords[fit_idx] = reducer.fit_transform(x[fit_idx], y=target)
    rest = np.setdiff1d(np.arange(n), fit_idx)
    if len(rest):
        coords[rest] = reducer.transform(x[rest])
    if previous is not None and len(previous) == n:
        coords = align_to(coords, previous)
    return LatentMap(coords, "umap", time.perf_counter() - start)


def map_labels(semi_targets: np.ndarray) -> np.ndarray:
    """What a map is told of each sample: 1 labeled anomaly, 0 labeled normal, -1 not labeled."""
    semi = np.asarray(semi_targets)
    return np.select([semi == -1, semi == 1], [1, 0], -1)


def neighbour_anomaly_auc(coords: np.ndarray, truth: np.ndarray, k: int = 10) -> float:
    """How well a map separates anomalies: the ROC-AUC of the truth (1 anomaly) from each point's share
    of anomalies among its ``k`` nearest other points on the map (0.5: the map mixes them evenly)."""
    from sklearn.metrics import roc_auc_score
    from sklearn.neighbors import NearestNeighbors

    truth = np.asarray(truth)
    k = min(k, len(coords) - 1)
    neighbours = NearestNeighbors(n_neighbors=k + 1).fit(coords).kneighbors(coords, return_distance=False)
    return float(roc_auc_score(truth, truth[neighbours[:, 1:]].mean(axis=1)))


def _fill_unknown(coords: np.ndarray, latents: np.ndarray) -> np.ndarray:
    """Points the previous layout did not place start where their nearest placed neighbour (in latent
    space) is."""
    known = np.isfinite(coords).all(axis=1)
    if known.all():
        return coords
    from sklearn.neighbors import NearestNeighbors

    nearest = NearestNeighbors(n_neighbors=1).fit(latents[known]).kneighbors(latents[~known], return_distance=False)
    filled = coords.copy()
    filled[~known] = coords[known][nearest[:, 0]]
    return filled


def _standardise(coords: np.ndarray) -> np.ndarray:
    """UMAP expects an initial layout of moderate scale (it rescales to about 10 itself)."""
    c = coords - coords.mean(axis=0)
    return (c / max(np.abs(c).max(), 1e-12) * 10).astype(np.float32)


def warm_up() -> float:
    """Import umap and fit 5,000 points so numba compiles now, not when the expert waits; returns seconds.

    Above 4,096 points UMAP switches to nearest-neighbour descent (pynndescent), whose code compiles
    separately: a smaller warm-up would leave that compile for the first real map.
    """
    start = time.perf_counter()
    rng = np.random.default_rng(0)
    umap_map(rng.normal(size=(5000, 8)).astype(np.float32))
    return time.perf_counter() - start
