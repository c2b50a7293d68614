"""Maps of the detector's latent space: a PCA view at once, UMAP when ready, stable across rounds.

UMAP (umap-learn) is imported lazily and compiled by numba on first use (a minute or more, cold);
:func:`warm_up` pays that early, in the background, and ``NUMBA_CACHE_DIR`` keeps the compiled code
between processes. An interactive host (the app) draws its maps in one low-priority child process
(:func:`start_map_process`, :func:`umap_map_elsewhere`): numba's compiled loops hold the GIL, so a
map drawn in a thread of the app's own process stalls every page rerun for its whole duration.

Large sets are fitted on a capped subsample and the rest is placed with ``transform``. A new
round's map starts from the previous layout and is then rotated, scaled and shifted onto it
(Procrustes), so the expert recognises the picture while it shows the new geometry.
"""

from __future__ import annotations

import multiprocessing
import os
import signal
import sys
import threading
import time
from collections.abc import Callable
from concurrent.futures import Future, ProcessPoolExecutor
from concurrent.futures import TimeoutError as FuturesTimeout
from concurrent.futures.process import BrokenProcessPool
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy.linalg import orthogonal_procrustes
from sklearn.decomposition import PCA

__all__ = [
    "LatentMap",
    "MapConfig",
    "align_to",
    "layout_shift",
    "pca_map",
    "run_elsewhere",
    "start_map_process",
    "umap_map",
    "umap_map_elsewhere",
    "warm_up",
]

os.environ.setdefault("NUMBA_CACHE_DIR", str(Path.home() / ".cache" / "deepsad-studio" / "numba"))


@dataclass(frozen=True)
class MapConfig:
    n_neighbors: int = 15
    min_dist: float = 0.1
    max_fit_samples: int = 10_000  # fit on at most this many points, place the rest with transform
    # umap-learn's own choice above 10,000 points; at or below it umap picks 500, which on 10,000
    # latents took 18.7 s here against 6.0 s for 200 with no visible gain on a map the expert skims.
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


# --- the map process ------------------------------------------------------------------------------

MAP_PROCESS_NICENESS = 19  # the lowest priority: the app and the browser come first on a small machine
MAP_TIMEOUT_S = 600.0  # a map job past this is stopped: far beyond a 10,000-point map's seconds
_PR_SET_PDEATHSIG = 1  # linux/prctl.h

_pool: ProcessPoolExecutor | None = None
_pool_lock = threading.Lock()


def _child_setup() -> None:
    """In the map process: low priority, and on Linux a SIGTERM when its parent dies, so a killed app
    server leaves no UMAP process behind."""
    os.nice(MAP_PROCESS_NICENESS)
    if sys.platform.startswith("linux"):
        import ctypes

        ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)
        if os.getppid() == 1:  # the parent died before the request took effect
            os._exit(1)


def _stop_map_process() -> None:
    """At exit, end the map process at once instead of waiting for its current job (a minute-long
    numba compile would hold up the app's shutdown). Registered as a *threading* exit hook, which runs
    before concurrent.futures joins its pools; a plain ``atexit`` hook would run after that wait."""
    global _pool
    with _pool_lock:
        if _pool is not None:
            for process in list((_pool._processes or {}).values()):
                process.terminate()
            _pool.shutdown(wait=False, cancel_futures=True)
            _pool = None


threading._register_atexit(_stop_map_process)  # hooks run last-registered first: before the pool's own


def _map_process(renew: bool = False) -> ProcessPoolExecutor:
    """This process's single map worker (spawned: forking a process with torch threads is unsafe)."""
    global _pool
    with _pool_lock:
        if _pool is None or renew:
            _pool = ProcessPoolExecutor(
                max_workers=1, mp_context=multiprocessing.get_context("spawn"), initializer=_child_setup
            )
        return _pool


def _submit(fn: Callable, *args) -> Future:
    try:
        return _map_process().submit(fn, *args)
    except BrokenProcessPool:  # the child died (killed, out of memory): start a new one
        return _map_process(renew=True).submit(fn, *args)


def run_elsewhere(fn: Callable, *args, timeout: float = MAP_TIMEOUT_S):
    """``fn(*args)`` in the map process; jobs run one at a time, in order of submission. A job that
    runs past ``timeout`` seconds is stopped with its process (the next job starts a new one) and
    raises ``TimeoutError``: the caller never waits forever."""
    future = _submit(fn, *args)
    try:
        return future.result(timeout=timeout)
    except FuturesTimeout:
        _stop_map_process()
        raise TimeoutError(f"the map process did not finish within {timeout:.0f} s; it was stopped") from None


def start_map_process() -> Future:
    """Start the map process and compile UMAP in it now; later maps queue behind the warm-up."""
    return _submit(warm_up)


def umap_map_elsewhere(
    latents: np.ndarray, previous: np.ndarray | None = None, config: MapConfig | None = None
) -> LatentMap:
    """:func:`umap_map` drawn in the map process; the caller's thread waits without holding the GIL."""
    return run_elsewhere(umap_map, latents, previous, config)
