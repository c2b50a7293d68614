"""The ensemble's members as objects: each is fitted, scores the model input on its own raw scale
(higher = more anomalous), says whether it learns from the labels, and gives the torch module that
scores as it does inside the bundle's graph (:mod:`deepsad_core.detectors.graphs`).

- ``iforest``: an IsolationForest (scikit-learn's decision flipped here, once); no labels.
- ``knn``: the mean squared distance to the ``k`` nearest rows of a small reference sample of the
  training rows (:mod:`deepsad_core.detectors.knn`); no labels.
- ``deepsad``: ``log ||phi(x) - c||^2`` of a fitted Deep SAD; it learns from the labels.
- ``supervised``: a class-balanced logistic regression on the labels.

The graph hands every member's module the same four tensors: the input ``x``, its rows flattened,
Deep SAD's latent vectors, and the IsolationForest's decision (which the forest's own ONNX nodes
compute in front of the graph).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, ClassVar, Protocol

import numpy as np
import torch
from sklearn.ensemble import IsolationForest
from sklearn.linear_model import LogisticRegression
from torch import nn

from deepsad_core.detectors.knn import knn_scores, knn_sq_distances

__all__ = ["LOG_EPS", "DeepSADMember", "ForestMember", "KNNMember", "Member", "SupervisedMember"]

LOG_EPS = 1e-12  # Deep SAD's distance is logged: 0 must stay finite


class Member(Protocol):
    """One member of the ensemble."""

    name: ClassVar[str]
    uses_labels: ClassVar[bool]

    def raw(self, X: np.ndarray) -> np.ndarray:
        """Raw scores of model input ``X``, shape (n,), float64; higher = more anomalous."""
        ...

    def scoring_module(self) -> nn.Module:
        """``(x, flat, latent, forest_decision) -> raw``: this member's part of the exported graph."""
        ...


def _flat(X: np.ndarray) -> np.ndarray:
    return X.reshape(len(X), -1)


class _ForestRaw(nn.Module):
    def forward(self, x, flat, latent, forest_decision):  # the forest itself runs as ONNX nodes, in front
        return -forest_decision.reshape(-1)


class _KNNRaw(nn.Module):
    def __init__(self, reference: np.ndarray, k: int) -> None:
        super().__init__()
        self.k = k
        self.register_buffer("reference", torch.as_tensor(np.asarray(reference, dtype=np.float64)))

    def forward(self, x, flat, latent, forest_decision):
        return knn_sq_distances(flat, self.reference, self.k)


class _DistanceRaw(nn.Module):
    def __init__(self, center: np.ndarray) -> None:
        super().__init__()
        self.register_buffer("center", torch.as_tensor(np.asarray(center, dtype=np.float32)))

    def forward(self, x, flat, latent, forest_decision):
        return torch.log(((latent - self.center) ** 2).sum(dim=1) + LOG_EPS)


class _LinearRaw(nn.Module):
    def __init__(self, model: LogisticRegression) -> None:
        super().__init__()
        self.register_buffer("coef", torch.as_tensor(model.coef_[0], dtype=torch.float32))
        self.register_buffer("intercept", torch.as_tensor(model.intercept_, dtype=torch.float32))

    def forward(self, x, flat, latent, forest_decision):
        return flat @ self.coef + self.intercept


@dataclass(frozen=True)
class ForestMember:
    forest: IsolationForest
    name: ClassVar[str] = "iforest"
    uses_labels: ClassVar[bool] = False

    @classmethod
    def fit(cls, flat: np.ndarray, *, n_estimators: int, seed: int) -> ForestMember:
        return cls(IsolationForest(n_estimators=n_estimators, random_state=seed).fit(flat))

    def raw(self, X: np.ndarray) -> np.ndarray:
        return -self.forest.decision_function(_flat(X))  # scikit-learn's points the other way: higher = normal

    def scoring_module(self) -> nn.Module:
        return _ForestRaw()


@dataclass(frozen=True)
class KNNMember:
    reference: np.ndarray  # flattened model input, (m, n_features)
    reference_index: np.ndarray  # where the reference rows sit in the data it was drawn from
    k: int
    name: ClassVar[str] = "knn"
    uses_labels: ClassVar[bool] = False

    @classmethod
    def fit(cls, flat: np.ndarray, rows: np.ndarray, *, n_neighbors: int, max_reference: int, seed: int) -> KNNMember:
        """At most ``max_reference`` of ``rows`` (a seeded draw, in their order) as the reference."""
        rng = np.random.default_rng(seed)
        index = rows[np.sort(rng.choice(len(rows), min(max_reference, len(rows)), replace=False))]
        return cls(np.ascontiguousarray(flat[index]), index, min(n_neighbors, len(index) - 1))

    def raw(self, X: np.ndarray, own_rows: np.ndarray | None = None) -> np.ndarray:
        """``own_rows``: where ``X`` holds the reference's own rows, which then skip themselves."""
        return knn_scores(_flat(X), self.reference, self.k, own_rows)

    def scoring_module(self) -> nn.Module:
        return _KNNRaw(self.reference, self.k)


@dataclass(frozen=True)
class DeepSADMember:
    model: Any  # a fitted DeepSAD
    name: ClassVar[str] = "deepsad"
    uses_labels: ClassVar[bool] = True

    def raw(self, X: np.ndarray) -> np.ndarray:
        return np.log(self.model.decision_function(X) + LOG_EPS)

    def scoring_module(self) -> nn.Module:
        return _DistanceRaw(self.model.center_)


@dataclass(frozen=True)
class SupervisedMember:
    model: LogisticRegression
    name: ClassVar[str] = "supervised"
    uses_labels: ClassVar[bool] = True

    def raw(self, X: np.ndarray) -> np.ndarray:
        return self.model.decision_function(_flat(X))

    def scoring_module(self) -> nn.Module:
        return _LinearRaw(self.model)
