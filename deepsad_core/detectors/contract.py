"""The detector contract: what every detector offers the rest of the house, and nothing more.

Three detectors keep it: :class:`~deepsad_core.detectors.deepsad.DeepSAD` (the paper's method),
:class:`~deepsad_core.detectors.ensemble.DeepSADEnsemble` (the default: Deep SAD fused with
label-free and supervised members) and, for scoring only, a bundle read back from disk
(:class:`~deepsad_core.bundle.read.BundleDetector`). Code outside :mod:`deepsad_core.detectors` asks a
detector through these methods and never reads its members. ``tests/test_detectors_contract.py`` runs
one suite on all three.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any, Protocol, Self, runtime_checkable

import numpy as np

from deepsad_core.detectors.deepsad import DeepSAD
from deepsad_core.detectors.ensemble import DeepSADEnsemble
from deepsad_core.detectors.saved import ENSEMBLE_FILE
from deepsad_core.model.training import ProgressCallback

__all__ = ["DETECTOR_KINDS", "AnomalyDetector", "TrainableDetector", "load_model"]


@runtime_checkable
class AnomalyDetector(Protocol):
    """Scores samples; higher = more anomalous. ``predict``: 1 = anomaly (score above ``threshold_``)."""

    detector_kind: str  # "deepsad" or "ensemble" (a bundle: what it was exported from)
    threshold_: float

    def decision_function(self, X: Any) -> np.ndarray: ...

    def predict(self, X: Any) -> np.ndarray: ...

    def embed(self, X: Any) -> np.ndarray:
        """Deep SAD's latent vectors, shape (n, rep_dim): what the map shows."""
        ...

    def explain(self, X: Any, baseline: np.ndarray | None = None) -> np.ndarray:
        """How much each feature (or image patch) raises each sample's score, shaped like ``X``."""
        ...

    def label_free_scores(self, X: Any = None) -> np.ndarray:
        """Scores that no label has shaped (what the label audit compares labels against)."""
        ...


@runtime_checkable
class TrainableDetector(AnomalyDetector, Protocol):
    """A detector the loop trains: fit, continue, save, and describe itself for a bundle."""

    input_shape_: tuple[int, ...]
    decision_scores_: np.ndarray
    center_: np.ndarray
    network_spec_: Any

    def fit(
        self,
        X: Any,
        semi_targets: Any = None,
        warm_start: bool = False,
        epochs: int | None = None,
        callback: ProgressCallback | None = None,
    ) -> Self: ...

    def deepsad_scores(self, X: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """Deep SAD's own scores of ``X`` and the detector's scores without Deep SAD (``None`` where Deep SAD
        is all there is): what the benchmarks measure Deep SAD's share by."""
        ...

    def held_out_scores(self) -> np.ndarray:
        """The last fit's scores of its data, each labeled sample as a view that had not seen its label
        scores it (where the detector keeps one): what estimates over the pool may trust."""
        ...

    def for_next_round(self, *, lr: float, eta: float, max_train_samples: int | None) -> Self: ...

    def scoring_graph(self) -> bytes:
        """ONNX bytes of ``input -> (score, latent)`` that score as :meth:`decision_function` does."""
        ...

    def scoring_torchscript(self) -> bytes | None: ...

    def bundle_description(self) -> dict[str, Any]: ...

    def bundle_params(self) -> dict[str, Any]: ...

    def score_batch(self) -> int: ...

    def save(self, path: str | os.PathLike) -> Path: ...


DETECTOR_KINDS: dict[str, type] = {"ensemble": DeepSADEnsemble, "deepsad": DeepSAD}


def load_model(path: str | os.PathLike, device: str = "auto") -> TrainableDetector:
    """A saved detector of either kind (a round's ``model`` folder)."""
    path = Path(path)
    kind = DeepSADEnsemble if (path / ENSEMBLE_FILE).is_file() else DeepSAD
    return kind.load(path, device=device)
