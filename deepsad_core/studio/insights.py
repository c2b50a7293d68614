"""What a project tells the expert about its rounds: estimates over the pool, the label audit, why a
sample scores as it does, the stopping hint and the suggested threshold.

A part of :class:`~deepsad_core.studio.project.Project` (it reads the project's data, labels and
rounds); kept apart because none of it changes the project.
"""

from __future__ import annotations

from functools import cached_property
from typing import Any

import numpy as np

from deepsad_core.exceptions import DataError
from deepsad_core.loop.audit import Doubt, StopHint, audit_labels
from deepsad_core.loop.estimates import (
    Estimate,
    PoolEstimates,
    estimate_curve,
    estimate_pool,
    label_free_prevalence,
    suggest_threshold,
)
from deepsad_core.loop.exploration import EXPLORE_PART, Exploration
from deepsad_core.model.backbone import extract_features, feature_cache, load_backbone
from deepsad_core.model.explain import attributions, top_features
from deepsad_core.studio.layout import DATA_DIR
from deepsad_core.studio.round_view import RoundView

__all__ = ["ProjectInsights"]


class ProjectInsights:
    """Read-only views of a project's rounds (mixed into :class:`~deepsad_core.studio.project.Project`)."""

    @cached_property
    def _feature_reference(self) -> tuple[np.ndarray, np.ndarray]:
        """Median and spread (IQR, floored) of every feature or pixel: what a typical sample holds."""
        q1, median, q3 = np.quantile(np.asarray(self.X, dtype=np.float64), [0.25, 0.5, 0.75], axis=0)
        return median, np.maximum(q3 - q1, 1e-6)

    def standout(self, sample_idx: int, k: int = 4) -> list[tuple[str, Any, float]]:
        """A table row's ``k`` values that lie farthest from the typical row, farthest first: ``(column,
        raw value, distance)``, the distance in interquartile ranges, signed (above or below the median)."""
        if self.kind != "tabular":
            raise ValueError("standout values are for table rows; images are shown as they are")
        median, spread = self._feature_reference
        z = (np.asarray(self.X[sample_idx], dtype=np.float64) - median) / spread
        columns = self.preprocessor.feature_columns
        raw = self.raw.iloc[sample_idx]
        return [(columns[j], raw[columns[j]], float(z[j])) for j in np.argsort(-np.abs(z))[:k]]

    def estimates(self, threshold: float | None = None, round_number: int | None = None) -> PoolEstimates | None:
        """The pool's anomaly share, and recall, precision and F1 at ``threshold`` (default: the round's
        own), estimated from the answered check samples with 90 % intervals; ``None`` until one is
        answered."""
        view = self._done_round(round_number)
        value = view.threshold.value if threshold is None else threshold
        return estimate_pool(view.scores, value, self.semi_targets(), self.round_samples(), view.held_out)

    def estimate_curve(self, thresholds: np.ndarray, round_number: int | None = None) -> list[PoolEstimates] | None:
        """The estimates at each of ``thresholds`` (for a chart); ``None`` until a check sample is answered."""
        view = self._done_round(round_number)
        return estimate_curve(view.scores, self.semi_targets(), self.round_samples(), thresholds, view.held_out)

    def label_free_prevalence(self, round_number: int | None = None) -> Estimate:
        """A rough anomaly share from a round's scores alone, for before any check sample is answered."""
        return label_free_prevalence(self._done_round(round_number).scores)

    def audit(self, k: int = 5) -> list[Doubt]:
        """The ``k`` labels the current round most doubts (see :func:`deepsad_core.loop.audit.audit_labels`):
        its label-free scores against each label, and the other labels against it."""
        view = self._done_round(None)
        scores = np.load(view.path / "label_free.npy")
        return audit_labels(scores, self.semi_targets(), k=k, X=np.asarray(self.X_for(view)))

    def X_for(self, view: RoundView) -> np.ndarray:
        """The input the round's model learned on: the data, or the backbone features it was trained on."""
        key = view.metrics.get("features_key")
        cached = feature_cache(self.path / DATA_DIR, key) if key else None
        return np.load(cached, mmap_mode="r") if cached is not None and cached.exists() else self.X

    def explain(self, sample_idx: int, k: int = 3) -> list[tuple[str, Any, float]] | np.ndarray:
        """What drives a sample's score in the current round (see :mod:`deepsad_core.model.explain`).

        A table row: its ``k`` columns whose typical value would lower the score most, as ``(column, raw
        value, score drop)``. An image: a map of the score's drop per pixel, shaped ``(height, width)``."""
        view = self._done_round(None)
        model = self._round_model(view.number)
        if self.kind == "tabular":
            return self.drivers(model, [sample_idx], k)[0]
        pixels = np.asarray(self.X[[sample_idx]], dtype=np.float32)
        baseline = self._typical_input
        key = view.metrics.get("features_key")
        if key is None:  # the model learned on the images themselves
            return model.explain(pixels, baseline=baseline)[0].sum(axis=0)
        extractor = load_backbone(view.config.backbone)

        def score(batch: np.ndarray) -> np.ndarray:
            return model.decision_function(extract_features(extractor, batch))

        return attributions(score, pixels, baseline)[0].sum(axis=0)

    def drivers(self, model: Any, sample_idx: list[int], k: int = 3) -> list[list[tuple[str, Any, float]]]:
        """For table rows: each one's ``k`` columns whose typical value would lower ``model``'s score most,
        as ``(column, raw value, score drop)``, in one pass over the rows."""
        # the project's typical row as the baseline: models saved before they kept their own work too
        values = model.explain(np.asarray(self.X[sample_idx]), baseline=self._typical_input)
        columns = self.preprocessor.feature_columns
        rows = self.raw.iloc[sample_idx]
        return [
            [(c, row[c], v) for c, v in top_features(attribution, columns, k)]
            for attribution, (_, row) in zip(values, rows.iterrows(), strict=True)
        ]

    @property
    def _typical_input(self) -> np.ndarray:
        """The median row or image of the project's data: what an explanation compares a sample with."""
        return self._feature_reference[0].astype(np.float32)

    def _round_model(self, number: int):
        """A round's model, loaded once per project object (explanations ask for it on every card)."""
        from deepsad_core.detectors.contract import load_model

        if number not in self._models:
            self._models = {number: load_model(self.round_path(number) / "model", device="cpu")}
        return self._models[number]

    def stop_hint(self, view: RoundView | None = None) -> StopHint | None:
        """Whether the last labels still changed the detector, as a round (default: the current one)
        recorded it."""
        view = view or self.current_round()
        recorded = view.metrics.get("stop") if view is not None else None
        return StopHint(**recorded) if recorded else None

    def exploration(self, view: RoundView | None = None) -> str:
        """Why a round's queue (default: the current one's) explores and what it does about it, in words;
        ``""`` when it does not."""
        view = view or self.current_round()
        if view is None:
            return ""
        queue = view.queue
        drawn = sum(q["strategy"] == EXPLORE_PART for q in queue) / max(len(queue), 1)
        return Exploration.from_dict(view.metrics.get("exploration")).describe(drawn)

    def suggested_threshold(self, round_number: int | None = None) -> PoolEstimates | None:
        """The threshold with the best estimated F1 over the pool, with its estimates, from the labels as
        they are now (``None`` until a check sample is answered)."""
        view = self._done_round(round_number)
        return suggest_threshold(view.scores, self.semi_targets(), self.round_samples(), view.held_out)

    def _done_round(self, round_number: int | None) -> RoundView:
        done = {r.number: r for r in self.rounds() if r.status == "done"}
        if not done:
            raise DataError("this project has no finished round yet: run a round first")
        number = max(done) if round_number is None else round_number
        if number not in done:
            raise DataError(f"round {number} did not finish; finished rounds: {sorted(done)}")
        return done[number]
