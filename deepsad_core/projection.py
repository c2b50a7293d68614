"""Maps of the detector's latent space: a PCA view at once, UMAP when ready, stable across rounds.

The maths only, no processes: UMAP (umap-learn) is imported lazily and compiled by numba on first
use (a minute or more, cold); :func:`warm_up` pays that early. The app draws its maps in a child
process (:mod:`deepsad_core.studio.maps`).

Large sets are fitted on a capped subsample and the rest is placed with ``transform``. A new
round's map starts from the previous layout and is then rotated, scaled and shifted onto it
(Procrustes), so the expert recognises the picture while it shows the new geometry.
"""

from __future__ import annotations

import time
from dataclasses import dataclass

import numpy as np
from scipy.linalg import orthogonal_procrustes
from sklearn.decomposition import PCA

__all__ = ["LatentMap", "MapConfig", "align_to", "layout_shift", "pca_map", "umap_map", "warm_up"]


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


def align_to(coords: np.ndarray, previous: np.ndarray) -> np.ndarray:
    """``coords`` rotated/reflected, scaled and shifted to best match ``previous`` (same points)."""
    a = coords - coords.mean(axis=0)
    b = previous - previous.mean(axis=0)
    rotation, _ = orthogonal_procrustes(a, b)
    turned = a @ rotation
    scale = np.sqrt((b**2).sum() / max((turned**2).sum(), 1e-12))
    return (turned * scale + previous.mean(axis=0)).astype(np.float32)


def layout_shift(before: np.ndarray, after: np.ndarray) -> float:
    """Median displacement of points between two layouts, as a fraction of the layout's RMS radius."""
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


def umap_map(latents: np.ndarray, previous: np.ndarray | None = None, config: MapConfig | None = None) -> LatentMap:
    """UMAP of the latents, initialised from (and aligned to) the previous layout when given."""
    import umap  # lazy: numba compiles on first use

    config = config or MapConfig()
    start = time.perf_counter()
    x = np.asarray(latents, dtype=np.float32)
    n = len(x)
    rng = np.random.default_rng(config.seed)
    fit_idx = np.arange(n) if n <= config.max_fit_samples else np.sort(rng.choice(n, config.max_fit_samples, False))
    init: str | np.ndarray = "spectral"
    if previous is not None and len(previous) == n:
        init = _standardise(previous[fit_idx])
    reducer = umap.UMAP(
        n_neighbors=min(config.n_neighbors, len(fit_idx) - 1),
        min_dist=config.min_dist,
        init=init,
        n_epochs=config.n_epochs,
        random_state=config.seed,
        n_jobs=1,  # with random_state umap runs single-threaded anyway; say so and skip its warning
    )
    coords = np.empty((n, 2), dtype=np.float32)
    coords[fit_idx] = reducer.fit_transform(x[fit_idx])
    rest = np.setdiff1d(np.arange(n), fit_idx)
    if len(rest):
        coords[rest] = reducer.transform(x[rest])
    if previous is not None and len(previous) == n:
        coords = align_to(coords, previous)
    return LatentMap(coords, "umap", time.perf_counter() - start)


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
