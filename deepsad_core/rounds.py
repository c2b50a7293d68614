"""One labeling round, engine side: labels -> fit -> scores -> threshold -> queue.

Shared by the studio's worker (which adds persistence and maps) and the simulated expert, so that
what is benchmarked is what the app runs.
"""

from __future__ import annotations

import copy
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from deepsad_core.backbone import (
    DEFAULT_BACKBONE,
    FeatureExtractor,
    cached_features,
    extract_features,
    load_backbone,
    wants_backbone,
)
from deepsad_core.ensemble import DEFAULT_PRIOR_WEIGHTS, DeepSADEnsemble
from deepsad_core.estimator import DeepSAD
from deepsad_core.query import DEFAULT_MIX, Pick, QueryPool, QueryStrategy, make_strategy
from deepsad_core.threshold import ThresholdChoice, choose_threshold
from deepsad_core.training import ProgressCallback

__all__ = ["DETECTORS", "NETWORKS", "RoundConfig", "RoundOutput", "fit_round", "model_input", "score_and_queue"]

# "ensemble": Deep SAD fused with label-free members and a supervised one (the default);
# "deepsad": the paper's Deep SAD alone.
DETECTORS = ("ensemble", "deepsad")
# "auto" and "backbone" (a pretrained image backbone with an MLP head), then the paper's networks
NETWORKS = ("auto", "backbone", "mlp", "mnist_lenet", "fmnist_lenet", "cifar10_lenet", "conv")
# On a pretrained backbone's features the kNN distance is the zero-label detector of the field (PANDA,
# DN2) and beats the IsolationForest there (docs/benchmarks.md); Deep SAD and the forest keep a say.
FEATURE_PRIOR_WEIGHTS = (("knn", 1.0), ("deepsad", 0.15), ("iforest", 0.15))


@dataclass(frozen=True)
class RoundConfig:
    """Settings of the labeling loop; sensible defaults for a CPU and a person waiting.

    ``detector`` is ``"ensemble"`` (Deep SAD fused with label-free and supervised members) or
    ``"deepsad"`` (the paper's method alone). The first round pretrains and trains fully
    (``first_ae_epochs`` + ``first_epochs``) at 10x the paper's learning rate; later rounds warm-start
    from the previous model with the centre fixed (``epochs_per_round``) at the paper's rate
    (``round_lr``). Why these values: docs/design.md.

    A round trains on every labeled sample and at most ``max_train_samples`` unlabeled ones, drawn
    afresh each round, and scores every sample: its time and memory stop growing with the data
    (``None`` trains on everything).

    ``net="auto"`` gives images a pretrained ``backbone`` whose features Deep SAD's MLP head and the
    other members train on, and tables the paper's MLP (``"backbone"`` asks for the backbone outright);
    a network name (``"mnist_lenet"``, ``"fmnist_lenet"``, ``"cifar10_lenet"``, ``"conv"``, ``"mlp"``)
    asks for that network on the pixels.
    """

    detector: str = "ensemble"
    net: str = "auto"
    backbone: str = DEFAULT_BACKBONE
    rep_dim: int | None = None
    eta: float = 1.0
    lr: float = 1e-3
    batch_size: int = 128
    weight_decay: float = 0.5e-6
    pretrain: bool = True
    first_ae_epochs: int = 30
    first_epochs: int = 30
    epochs_per_round: int = 20
    round_lr: float = 1e-4
    queue_size: int = 20
    max_train_samples: int | None = 50_000
    mix: dict[str, float] = field(default_factory=lambda: dict(DEFAULT_MIX))
    contamination: float = 0.05
    threshold_method: str = "best_f1"
    seed: int = 0

    def estimator(self, on_features: bool = False) -> DeepSAD | DeepSADEnsemble:
        """A fresh detector: the ensemble (``detector="ensemble"``) around this Deep SAD, or Deep SAD alone.

        ``on_features``: the input is a pretrained backbone's features, where the kNN distance leads the
        ensemble before labels (on tables the IsolationForest does; docs/design.md)."""
        if self.detector not in DETECTORS:
            raise ValueError(f"detector must be one of {', '.join(DETECTORS)}; got {self.detector!r}")
        deepsad = self.deepsad()
        if self.detector == "deepsad":
            return deepsad
        prior = FEATURE_PRIOR_WEIGHTS if on_features else DEFAULT_PRIOR_WEIGHTS
        return DeepSADEnsemble(
            deepsad=deepsad,
            prior_weights=prior,
            contamination=min(self.contamination, 0.49),
            max_train_samples=self.max_train_samples,
            seed=self.seed,
        )

    def uses_backbone(self, input_shape: tuple[int, ...]) -> bool:
        """Whether samples of ``input_shape`` (one sample's) go through the pretrained backbone."""
        is_image = len(input_shape) == 3
        return is_image and (self.net == "backbone" or (self.net == "auto" and wants_backbone(tuple(input_shape))))

    def deepsad(self) -> DeepSAD:
        """The Deep SAD settings of round 0."""
        return DeepSAD(
            net="auto" if self.net == "backbone" else self.net,
            rep_dim=self.rep_dim,
            eta=self.eta,
            lr=self.lr,
            epochs=self.first_epochs,
            lr_milestones=(),
            batch_size=self.batch_size,
            weight_decay=self.weight_decay,
            pretrain=self.pretrain,
            ae_epochs=self.first_ae_epochs,
            ae_lr=self.lr,
            ae_lr_milestones=(),
            contamination=min(self.contamination, 0.49),
            max_train_samples=self.max_train_samples,
            seed=self.seed,
        )

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RoundConfig:
        known = cls.__dataclass_fields__
        unknown = set(d) - set(known)
        if unknown:
            raise ValueError(f"unknown round settings {sorted(unknown)}; known: {sorted(known)}")
        return cls(**d)


@dataclass
class RoundOutput:
    scores: np.ndarray
    latents: np.ndarray
    threshold: ThresholdChoice
    queue: list[Pick]


def fit_round(
    model: DeepSAD | DeepSADEnsemble | None,
    X: np.ndarray,
    semi_targets: np.ndarray,
    config: RoundConfig,
    callback: ProgressCallback | None = None,
    *,
    on_features: bool = False,
) -> DeepSAD | DeepSADEnsemble:
    """Round 0 (``model=None``): a fresh fit. Later rounds: warm start, c fixed, a few epochs.

    A model of another kind than ``config.detector``, or for other input (the backbone was switched on
    or off), is not continued: the round trains a fresh detector of the chosen kind, with the labels.
    The model given is left as it was: a warm start trains a copy.
    """
    kind = "ensemble" if isinstance(model, DeepSADEnsemble) else "deepsad"
    if model is None or kind != config.detector or tuple(model.input_shape_) != tuple(X.shape[1:]):
        return config.estimator(on_features).fit(X, semi_targets, callback=callback)
    later = {"lr": config.round_lr, "eta": config.eta}
    if isinstance(model, DeepSADEnsemble):
        later = {f"deepsad__{key}": value for key, value in later.items()}
    later["max_train_samples"] = config.max_train_samples
    model = copy.deepcopy(model).set_params(**later)
    return model.fit(X, semi_targets, warm_start=True, epochs=config.epochs_per_round, callback=callback)


def model_input(
    X: np.ndarray, config: RoundConfig, progress=None, cache: Path | None = None
) -> tuple[np.ndarray, FeatureExtractor | None]:
    """What the detector trains on: ``X`` itself, or its backbone features when ``config`` asks for them
    (with the extractor, which the exported bundle needs). ``progress`` as in
    :func:`~deepsad_core.backbone.extract_features`; with ``cache`` (a folder) the features are kept
    there and computed once (:func:`~deepsad_core.backbone.cached_features`)."""
    if not config.uses_backbone(X.shape[1:]):
        return X, None
    extractor = load_backbone(config.backbone)
    if cache is not None:
        return cached_features(extractor, X, cache, progress), extractor
    return extract_features(extractor, X, progress=progress), extractor


def score_and_queue(
    model: DeepSAD | DeepSADEnsemble,
    X: np.ndarray,
    semi_targets: np.ndarray,
    config: RoundConfig,
    round_number: int,
    strategy: QueryStrategy | None = None,
) -> RoundOutput:
    """Scores and latents of every sample, the threshold from the labels, the next queue.

    ``model`` must have just been fitted on ``X`` (its ``decision_scores_`` are the scores); it is not
    changed (the caller decides whether the model keeps the threshold). The queue comes from
    ``strategy`` (default: the hybrid of ``config.mix``), ``config.queue_size`` long.
    """
    scores = model.decision_scores_  # fit just scored X
    latents = model.embed(X)
    threshold = choose_threshold(
        scores, semi_targets, method=config.threshold_method, contamination=config.contamination
    )
    labeled = semi_targets != 0
    n = min(config.queue_size, int((~labeled).sum()))
    rng = np.random.default_rng([config.seed, round_number])
    pool = QueryPool(scores, labeled, threshold.value, latents)
    strategy = strategy or make_strategy("hybrid", config.mix)
    queue = strategy.query(pool, n, rng) if n else []
    return RoundOutput(scores, latents, threshold, queue)
