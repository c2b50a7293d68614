"""scikit-learn baselines behind the project's score polarity (higher = more anomalous).

scikit-learn's ``decision_function`` is higher for inliers; the sign is flipped here, once.
"""

from __future__ import annotations

import numpy as np
from sklearn.svm import OneClassSVM

from deepsad_core.detectors.members import ForestMember


class IsolationForestBaseline:
    """100 trees, as the ensemble's own forest member (which flips the sign)."""

    def __init__(self, seed: int = 0) -> None:
        self.seed = seed

    def fit(self, X: np.ndarray) -> IsolationForestBaseline:
        self.member = ForestMember.fit(X.reshape(len(X), -1), n_estimators=100, seed=self.seed)
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return self.member.raw(X)


class OneClassSVMBaseline:
    def __init__(self, nu: float = 0.1) -> None:
        self.model = OneClassSVM(kernel="rbf", nu=nu, gamma="scale")

    def fit(self, X: np.ndarray) -> OneClassSVMBaseline:
        self.model.fit(X.reshape(len(X), -1))
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return -self.model.decision_function(X.reshape(len(X), -1))
