"""The labeling loop's settings: which detector, which network, how long each round trains, the queue.

Shared by the app (a project's settings), the CLI and the simulated expert.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

from deepsad_core.detectors.contract import DETECTOR_KINDS, TrainableDetector
from deepsad_core.detectors.deepsad import DeepSAD
from deepsad_core.detectors.ensemble import DEFAULT_PRIOR_WEIGHTS, DeepSADEnsemble
from deepsad_core.loop.query import DEFAULT_MIX
from deepsad_core.model.backbone import DEFAULT_BACKBONE, wants_backbone

__all__ = ["DETECTORS", "NETWORKS", "RoundConfig"]

# "ensemble": Deep SAD fused with label-free members and a supervised one (the default);
# "deepsad": the paper's Deep SAD alone.
DETECTORS = tuple(DETECTOR_KINDS)
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
    threshold_method: str = "estimated_f1"
    seed: int = 0

    def estimator(self, on_features: bool = False) -> TrainableDetector:
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
