"""Why a sample scores high: per-feature (tables) or per-region (images) attributions of its score.

Occlusion: each feature, or each square patch of an image, is set to a typical value (the baseline:
the data's median row or image) and the drop in the score is that part's attribution. It asks the
detector itself, whatever it is (Deep SAD, the ensemble with its forest and kNN members, or either on
a backbone's features), so the attribution explains the score the expert sees. A part that makes the
sample look typical gets a negative attribution. It needs the model, not a bundle: a bundle holds
only the ONNX scoring graph.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

__all__ = ["attributions", "patch_size", "top_features"]

PATCHES_PER_SIDE = 8  # an image is explained on an 8 x 8 grid of patches


def patch_size(height: int, width: int) -> tuple[int, int]:
    """The side of the occluded squares for an image of this size."""
    return max(1, -(-height // PATCHES_PER_SIDE)), max(1, -(-width // PATCHES_PER_SIDE))


def _variants(x: np.ndarray, baseline: np.ndarray) -> tuple[np.ndarray, list[tuple[slice, ...]]]:
    """Copies of ``x`` with one part set to the baseline each, and which part."""
    if x.ndim == 1:
        parts = [(slice(j, j + 1),) for j in range(x.shape[0])]
    else:  # (C, H, W): square patches over every channel
        ph, pw = patch_size(*x.shape[-2:])
        parts = [
            (slice(None), slice(i, i + ph), slice(j, j + pw))
            for i in range(0, x.shape[-2], ph)
            for j in range(0, x.shape[-1], pw)
        ]
    out = np.repeat(x[None], len(parts), axis=0)
    for k, part in enumerate(parts):
        out[(k, *part)] = baseline[part]
    return out, parts


def attributions(score: Callable[[np.ndarray], np.ndarray], X: np.ndarray, baseline: np.ndarray) -> np.ndarray:
    """Attributions shaped like ``X`` (one row of a table, or one image per sample): for each feature
    or patch, how much the score falls when it is set to ``baseline`` (an image's patch attribution is
    spread over its pixels). ``score`` maps a batch of model inputs to anomaly scores."""
    X = np.asarray(X, dtype=np.float32)
    baseline = np.asarray(baseline, dtype=np.float32)
    out = np.zeros_like(X)
    for n, x in enumerate(X):
        variants, parts = _variants(x, baseline)
        drops = score(x[None])[0] - score(variants)
        for drop, part in zip(drops, parts, strict=True):
            region = out[(n, *part)]
            out[(n, *part)] = drop / region.size
    return out


def top_features(values: np.ndarray, names: list[str], k: int = 4) -> list[tuple[str, float]]:
    """The ``k`` largest attributions of one table row, summed per name (a one-hot column's levels
    together), largest first."""
    totals: dict[str, float] = {}
    for name, value in zip(names, values, strict=True):
        totals[name] = totals.get(name, 0.0) + float(value)
    return sorted(totals.items(), key=lambda item: -item[1])[:k]
