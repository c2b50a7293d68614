"""One labeling round, the only place one is assembled: labels -> fit -> scores -> threshold -> queue.

:func:`run_round` is what the studio's worker (which adds persistence and maps), the simulated expert,
``deepsad train`` and the latency benchmark all call, so that what is measured is what the app runs.
It changes nothing it is given: a warm start trains a copy of the previous model.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from deepsad_core.base.labels import label_counts
from deepsad_core.base.threshold import ThresholdChoice
from deepsad_core.detectors.contract import TrainableDetector
from deepsad_core.loop.audit import StopHint, stop_hint
from deepsad_core.loop.estimates import PoolEstimates, RoundSample, choose_round_threshold, round_sample
from deepsad_core.loop.exploration import Exploration, PartAnswer, explore, explored_mix
from deepsad_core.loop.query import Pick, QueryPool, QueryStrategy, make_strategy
from deepsad_core.loop.settings import RoundConfig
from deepsad_core.model.backbone import FeatureExtractor, cached_features, extract_features, load_backbone
from deepsad_core.model.training import ProgressCallback

__all__ = [
    "PreviousRound",
    "RoundResult",
    "estimate_metrics",
    "fit_round",
    "model_input",
    "round_metrics",
    "run_round",
]

# what explains a queued row's score: (model, rows) -> per row, its (feature, value, share) drivers
Drivers = Callable[[TrainableDetector, list[int]], list[list[tuple[str, Any, float]]]]


@dataclass(frozen=True)
class PreviousRound:
    """What the next round compares itself with: the last round's scores and threshold, the answers the
    expert gave to its queue (index -> "normal" / "anomalous") and its estimated recall."""

    scores: np.ndarray
    threshold: float
    answered: Mapping[int, str]
    est_recall: float | None = None


@dataclass(frozen=True)
class RoundResult:
    """Everything a round produced. ``model`` flags as the round does (its ``threshold_`` is the round's)."""

    model: TrainableDetector
    scores: np.ndarray  # of every sample, as the fit scored them
    latents: np.ndarray
    threshold: ThresholdChoice
    queue: tuple[Pick, ...]
    sample: RoundSample  # the queue's check draw: its frame, picks and their chances
    label_free: np.ndarray  # scores no label has shaped, for the label audit
    held_out: np.ndarray  # each labeled sample scored by a view that had not seen its label, for the estimates
    metrics: dict[str, Any]  # label counts, truth metrics (with truth), estimates, the stop hint
    stop: StopHint
    drivers: tuple[list[tuple[str, Any, float]], ...] | None = None  # per queued row, when asked for
    exploration: Exploration = field(default_factory=Exploration)  # how far the default queue explored, and why

    def queue_records(self, sample_ids: np.ndarray) -> list[dict[str, Any]]:
        """The queue as stored with a round: index, id, part, reason, score, inclusion probability, drivers."""
        return [
            {
                "index": p.index,
                "sample_id": str(sample_ids[p.index]),
                "strategy": p.strategy,
                "reason": p.reason,
                "score": float(self.scores[p.index]),
                "inclusion": p.inclusion,
                **({"drivers": [[c, str(v), float(d)] for c, v, d in self.drivers[j]]} if self.drivers else {}),
            }
            for j, p in enumerate(self.queue)
        ]


def fit_round(
    model: TrainableDetector | None,
    X: np.ndarray,
    semi_targets: np.ndarray,
    config: RoundConfig,
    callback: ProgressCallback | None = None,
    *,
    on_features: bool = False,
) -> TrainableDetector:
    """Round 0 (``model=None``): a fresh fit. Later rounds: warm start, c fixed, a few epochs.

    A model of another kind than ``config.detector``, or for other input (the backbone was switched on
    or off), is not continued: the round trains a fresh detector of the chosen kind, with the labels.
    The model given is left as it was: a warm start trains a copy.
    """
    if model is None or model.detector_kind != config.detector or tuple(model.input_shape_) != tuple(X.shape[1:]):
        return config.estimator(on_features).fit(X, semi_targets, callback=callback)
    model = model.for_next_round(lr=config.round_lr, eta=config.eta, max_train_samples=config.max_train_samples)
    return model.fit(X, semi_targets, warm_start=True, epochs=config.epochs_per_round, callback=callback)


def model_input(
    X: np.ndarray, config: RoundConfig, progress=None, cache: Path | None = None
) -> tuple[np.ndarray, FeatureExtractor | None]:
    """What the detector trains on: ``X`` itself, or its backbone features when ``config`` asks for them
    (with the extractor, which the exported bundle needs). ``progress`` as in
    :func:`~deepsad_core.model.backbone.extract_features`; with ``cache`` (a folder) the features are kept
    there and computed once (:func:`~deepsad_core.model.backbone.cached_features`)."""
    if not config.uses_backbone(X.shape[1:]):
        return X, None
    extractor = load_backbone(config.backbone)
    if cache is not None:
        return cached_features(extractor, X, cache, progress), extractor
    return extract_features(extractor, X, progress=progress), extractor


def run_round(
    model: TrainableDetector | None,
    X: np.ndarray,
    semi_targets: np.ndarray,
    config: RoundConfig,
    number: int,
    *,
    on_features: bool = False,
    fitted: bool = False,
    strategy: QueryStrategy | None = None,
    samples: Sequence[RoundSample] = (),
    previous: PreviousRound | None = None,
    history: Sequence[PartAnswer] = (),
    truth: np.ndarray | None = None,
    drivers: Drivers | None = None,
    callback: ProgressCallback | None = None,
) -> RoundResult:
    """Round ``number``: fit (warm from ``model`` unless it is ``None``), score and embed every sample,
    choose the threshold from the estimates over the pool (``config.threshold_method``), queue
    ``config.queue_size`` unlabeled samples in the order the Label page shows them, and measure.

    ``fitted=True`` takes ``model`` as already fitted on exactly these labels (the simulated expert's
    strategies share one round 0). ``strategy`` defaults to the hybrid of ``config.mix``, moved towards
    exploration as far as ``history`` (the earlier queues' answered cards, oldest first) asks
    (:mod:`deepsad_core.loop.exploration`). ``samples`` are the earlier queues' random designs (for the
    estimates), ``previous`` the last round (for the stop hint); ``truth`` (evaluation only) adds AUC and
    AP to the metrics; ``drivers`` explains the queued rows. Nothing given is changed.
    """
    if not fitted:
        model = fit_round(model, X, semi_targets, config, callback, on_features=on_features)
    scores = model.decision_scores_  # the fit just scored X
    latents = model.embed(X)
    held_out = model.held_out_scores()
    threshold, found = choose_round_threshold(
        scores, semi_targets, list(samples), config.threshold_method, config.contamination, held_out
    )
    if not fitted:
        model.threshold_ = threshold.value  # the round's model flags as the round does
    labeled = semi_targets != 0
    n = min(config.queue_size, int((~labeled).sum()))
    rng = np.random.default_rng([config.seed, number])
    pool = QueryPool(scores, labeled, threshold.value, latents, labels=semi_targets)
    exploration = Exploration()  # a strategy given (the simulated expert's others) does not explore
    if strategy is None:
        exploration = explore(history, found.prevalence.value if found is not None else None)
        mix = explored_mix(config.mix, exploration.level)
        strategy = make_strategy("hybrid", mix, follow_labels=exploration.exploring)
    queue = tuple(strategy.query(pool, n, rng) if n else [])
    metrics = {
        **round_metrics(scores, semi_targets, truth),
        **estimate_metrics(found),
        "exploration": exploration.to_dict(),
    }
    if previous is None:
        stop = stop_hint(None, scores, None, {})
    else:
        recall = metrics.get("est_recall")
        stop = stop_hint(
            previous.scores, scores, previous.threshold, dict(previous.answered), previous.est_recall, recall
        )
    metrics["stop"] = stop.to_dict()
    picked = [p.index for p in queue]
    explained = tuple(drivers(model, picked)) if drivers is not None and picked else None
    return RoundResult(
        model=model,
        scores=scores,
        latents=latents,
        threshold=threshold,
        queue=queue,
        sample=round_sample(labeled, list(queue)),
        label_free=model.label_free_scores(),
        held_out=held_out,
        metrics=metrics,
        stop=stop,
        drivers=explained,
        exploration=exploration,
    )


def round_metrics(scores: np.ndarray, semi_targets: np.ndarray, truth: np.ndarray | None) -> dict:
    """Label counts, and with truth: ROC-AUC / AP over all and over unlabeled samples, anomalies found."""
    metrics: dict = label_counts(semi_targets)
    if truth is not None and 0 < truth.sum() < len(truth):
        unlabeled = semi_targets == 0
        metrics["auc"] = float(roc_auc_score(truth, scores))
        metrics["ap"] = float(average_precision_score(truth, scores))
        if 0 < truth[unlabeled].sum() < unlabeled.sum():
            metrics["auc_unlabeled"] = float(roc_auc_score(truth[unlabeled], scores[unlabeled]))
        metrics["anomalies_found"] = int(((semi_targets == -1) & (truth == 1)).sum())
    return metrics


def estimate_metrics(found: PoolEstimates | None) -> dict[str, float]:
    """Estimates over the pool flattened to ``est_<name>``, ``est_<name>_low``, ``est_<name>_high``
    (prevalence, recall, precision, F1), with ``est_recall_lower`` and ``est_check_labels`` (empty
    until some check samples are answered)."""
    if found is None:
        return {}
    out = {
        f"est_{name}{part}": getattr(getattr(found, name), field)
        for name in ("prevalence", "recall", "precision", "f1")
        for part, field in (("", "value"), ("_low", "low"), ("_high", "high"))
    }
    return {**out, "est_recall_lower": found.recall_lower, "est_check_labels": found.check_labels}
