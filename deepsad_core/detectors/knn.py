"""The kNN member's kernel: mean squared distance to the k nearest rows of a reference sample.

In float64, live and in the exported graph: the expansion ``|x|^2 - 2 x.r + |r|^2`` cancels, and in
float32 a duplicate's distance of 0 came out as round-off of the order of ``|x|^2 1e-7``, on tables
whose rows repeat a fair part of the member's spread.
"""

from __future__ import annotations

import numpy as np
import torch

__all__ = ["knn_scores", "knn_sq_distances", "nearest_sq", "same_rows"]

_BATCH_VALUES = 2**23  # distances held at once while scoring (64 MB of float64)


def nearest_sq(X: torch.Tensor, reference: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k`` smallest squared distances from each row of ``X`` to ``reference``, ascending.

    ``|r|^2 - 2 x.r`` is one fused product, and its ``k`` smallest per row are the nearest rows: ``|x|^2``,
    the same along a row, is added to those ``k`` only, so the n x m matrix is made once and read once.
    """
    partial = torch.addmm((reference * reference).sum(1), X, reference.T, alpha=-2)
    nearest = torch.topk(partial, k, dim=1, largest=False).values
    return (nearest + (X * X).sum(1, keepdim=True)).clamp_min(0)


def knn_sq_distances(X: torch.Tensor, reference: torch.Tensor, k: int) -> torch.Tensor:
    """Mean squared distance from each row of ``X`` to its ``k`` nearest reference rows, in float64: one
    matrix product, the same arithmetic as the exported graph, so the bundle reproduces it."""
    return nearest_sq(X.double(), reference.double(), k).mean(1)


def knn_scores(flat: np.ndarray, reference: np.ndarray, k: int, reference_index: np.ndarray | None) -> np.ndarray:
    """The kNN member's raw scores of ``flat``; rows of the reference (``reference_index``) skip themselves."""
    ref = torch.from_numpy(np.ascontiguousarray(reference, dtype=np.float32)).double()
    X = torch.from_numpy(np.ascontiguousarray(flat, dtype=np.float32))
    out = np.empty(len(flat), dtype=np.float64)
    own = np.zeros(len(flat), dtype=bool)
    if reference_index is not None:
        own[reference_index] = True
    batch = max(1, _BATCH_VALUES // len(ref))
    with torch.inference_mode():
        # each row once: others by their k nearest, the reference's own rows by their k nearest others
        for rows, skip in ((np.flatnonzero(~own), 0), (np.flatnonzero(own), 1)):
            for s in range(0, len(rows), batch):
                part = rows[s : s + batch]
                nearest = nearest_sq(X[part].double(), ref, k + skip)[:, skip:]
                out[part] = nearest.mean(1).numpy()
    return out


def same_rows(flat: np.ndarray, reference: np.ndarray, index: np.ndarray) -> bool:
    """Whether ``flat`` is the data the reference was drawn from (then its rows must skip themselves)."""
    return len(index) > 0 and int(index[-1]) < len(flat) and np.array_equal(flat[index], reference)
