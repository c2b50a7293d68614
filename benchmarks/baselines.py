"""scikit-learn baselines behind the project's score polarity (higher = more anomalous).

scikit-learn's ``decision_function`` is higher for inliers; the sign is flipped here, once.
"""

from __future__ import annotations

import numpy as np
from sklearn.ensemble import IsolationForest
from sklearn.svm import OneClassSVM


class IsolationForestBaseline:
    def __init__(self, seed: int = 0) -> None:
        self.model = IsolationForest(n_estimators=100, random_state=seed)

    def fit(self, X: np.ndarray) -> IsolationForestBaseline:
        self.model.fit(X.reshape(len(X), -1))
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return -self.model.decision_function(X.reshape(len(X), -1))


class OneClassSVMBaseline:
    def __init__(self, nu: float = 0.1) -> None:
        self.model = OneClassSVM(kernel="rbf", nu=nu, gamma="scale")

    def fit(self, X: np.ndarray) -> OneClassSVMBaseline:
        self.model.fit(X.reshape(len(X), -1))
        return self

    def decision_function(self, X: np.ndarray) -> np.ndarray:
        return -self.model.decision_function(X.reshape(len(X), -1))
