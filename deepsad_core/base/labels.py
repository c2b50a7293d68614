"""The expert's labels as the engine takes them: ``semi_targets``, +1 normal, -1 anomalous, 0 unlabeled."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["LABELS", "label_counts", "semi_targets", "training_rows"]

LABELS = ("normal", "anomalous")


def semi_targets(n: int, labels: Mapping[int, str]) -> np.ndarray:
    """Targets for ``n`` samples from ``{sample index: "normal" | "anomalous"}``."""
    semi = np.zeros(n, dtype=np.int64)
    if labels:
        index = np.fromiter(labels.keys(), dtype=np.int64, count=len(labels))
        values = np.array([1 if v == LABELS[0] else -1 for v in labels.values()], dtype=np.int64)
        unknown = set(labels.values()) - set(LABELS)
        if unknown:
            raise ValueError(f"labels must be one of {LABELS}; got {sorted(unknown)}")
        semi[index] = values
    return semi


def label_counts(semi: np.ndarray) -> dict[str, int]:
    """How many labels, and of which kind (what rounds, bundles and pages report)."""
    return {
        "n_labels": int((semi != 0).sum()),
        "labeled_normal": int((semi == 1).sum()),
        "labeled_anomalous": int((semi == -1).sum()),
    }


def training_rows(
    semi: np.ndarray, cap: int | None, rng: np.random.Generator, strata: np.ndarray | None = None
) -> np.ndarray:
    """The rows a capped fit trains on, sorted: every labeled sample, plus at most ``cap`` unlabeled ones.

    All rows when there are at most ``cap`` unlabeled samples (or ``cap`` is None). Otherwise the
    unlabeled part is a random sample stratified by ``strata`` (e.g. the last scores) in ten quantile
    bins, each bin in proportion to its size: the rare high scores are represented as in the pool,
    without the luck of one uniform draw.
    """
    n = len(semi)
    unlabeled = np.flatnonzero(semi == 0)
    if cap is None or len(unlabeled) <= cap:
        return np.arange(n)
    if strata is None:
        chosen = rng.choice(unlabeled, cap, replace=False)
    else:
        values = np.asarray(strata, dtype=np.float64)[unlabeled]
        edges = np.quantile(values, np.linspace(0, 1, 11)[1:-1])
        bins = np.searchsorted(edges, values, side="right")
        sizes = np.bincount(bins, minlength=10)
        share = sizes / len(unlabeled) * cap
        counts = np.floor(share).astype(np.int64)
        counts[np.argsort(-(share - counts))[: cap - counts.sum()]] += 1  # largest remainders
        chosen = np.concatenate(
            [rng.choice(unlabeled[bins == b], counts[b], replace=False) for b in range(10) if counts[b]]
        )
    return np.sort(np.concatenate([np.flatnonzero(semi != 0), chosen]))
