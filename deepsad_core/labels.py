"""The expert's labels as the engine takes them: ``semi_targets``, +1 normal, -1 anomalous, 0 unlabeled."""

from __future__ import annotations

from collections.abc import Mapping

import numpy as np

__all__ = ["LABELS", "label_counts", "semi_targets"]

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
