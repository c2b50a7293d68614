"""The detector a round produces: Deep SAD fused with a zero-label prior and a supervised member.

Four members score every sample, each on its own scale:

- ``iforest``: an IsolationForest on the model input (no labels);
- ``knn``: the mean squared distance to the ``n_neighbors`` nearest of a small random reference sample
  (no labels; a subsample ranks anomalies better than all rows, and keeps scoring cheap);
- ``deepsad``: ``log ||phi(x) - c||^2`` of a Deep SAD network; without labels it trains as Deep SAD on
  pseudo-labels (the prior's top ``pseudo_anomaly_share`` taken as anomalies), with labels on the
  labels alone;
- ``supervised``: a class-balanced logistic regression on the labeled samples (with fewer than two
  labeled normals: labeled anomalies against the unlabeled samples).

Each member's score is standardised by the median and interquartile range of its scores on the
training data (``z``). Without enough labels the fused score is the ``prior_weights`` mean of the
``z``; with them, each member weighs ``(2 (AUC - 0.5))^weight_power``, its ROC-AUC over the labeled
samples (out of fold for the supervised member; for Deep SAD, which trains on the labels, from
its scores before each label was given), so members that the labels contradict drop out
(:mod:`deepsad_core.fusion`). The score is ``exp(10 tanh(m / 10))`` of that weighted mean ``m``: positive, bounded in
[e^-10, e^10], and increasing in ``m``; near the usual thresholds (|m| < 3) its log is ``m`` within
3 %. Truth never enters; only the expert's labels do. ``docs/design.md`` gives the measurements
behind the defaults.
"""

from __future__ import annotations

import copy
import hashlib
import json
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator, clone
from sklearn.ensemble import IsolationForest
from sklearn.linear_model import LogisticRegression
from sklearn.metrics import roc_auc_score
from sklearn.model_selection import StratifiedKFold, cross_val_predict

from deepsad_core.atomic import atomic_folder
from deepsad_core.estimator import DeepSAD, _baseline, _is_int, _is_num, check_params
from deepsad_core.exceptions import NotFittedError
from deepsad_core.explain import attributions
from deepsad_core.fusion import fuse, label_weights, labeled_auc, robust_scale
from deepsad_core.labels import training_rows
from deepsad_core.threshold import flag
from deepsad_core.training import ProgressCallback

__all__ = ["MEMBERS", "DeepSADEnsemble", "load_model"]

ENSEMBLE_FORMAT = "deepsad-ensemble"
ENSEMBLE_FORMAT_VERSION = 2  # 1: the exp fusion (read, and kept for those models)
MEMBERS = ("iforest", "knn", "deepsad", "supervised")
DEFAULT_PRIOR_WEIGHTS = (("iforest", 1.0), ("knn", 0.15), ("deepsad", 0.15))
_LOG_EPS = 1e-12
_RANKING_SAMPLE = 4096  # unlabeled rows that stand in for normals while fewer than two are labeled
_KNN_BATCH_VALUES = 2**23  # distances held at once while scoring the kNN member (64 MB of float64)
_CONFIG_FILE, _MEMBERS_FILE, _REFERENCE_FILE, _SCORES_FILE = (
    "ensemble.json",
    "members.skops",
    "reference.npy",
    "decision_scores.npy",
)
_PREQUENTIAL_FILE, _MEMBER_SCORES_FILE = "deepsad_prequential.npy", "member_scores.npy"
_TRUSTED_SKOPS_TYPES = ["sklearn.tree._tree.Tree"]  # what an IsolationForest needs beyond skops' defaults


# One declarative table: parameter -> (check, what is allowed). Checked once, at the top of fit.
_PARAM_RULES = {
    "n_estimators": (lambda v: _is_int(v) and v > 0, "an int > 0"),
    "n_neighbors": (lambda v: _is_int(v) and v > 0, "an int > 0"),
    "max_train_samples": (lambda v: v is None or (_is_int(v) and v > 0), "None or an int > 0"),
    "max_reference": (lambda v: _is_int(v) and v > 1, "an int > 1"),
    "pseudo_anomaly_share": (lambda v: _is_num(v) and 0 <= v < 0.5, "a number in [0, 0.5)"),
    "weight_power": (lambda v: _is_num(v) and v > 0, "a number > 0"),
    "supervised_C": (lambda v: _is_num(v) and v > 0, "a number > 0"),
    "contamination": (lambda v: _is_num(v) and 0 < v < 0.5, "a number in (0, 0.5)"),
    "seed": (lambda v: _is_int(v) and v >= 0, "an int >= 0"),
}


def knn_sq_distances(X: torch.Tensor, reference: torch.Tensor, k: int) -> torch.Tensor:
    """Mean squared distance from each row of ``X`` to its ``k`` nearest reference rows, in float64.

    ``|x|^2 - 2 x.r + |r|^2``, clamped at 0: one matrix product, the same arithmetic as the exported
    graph, so the bundle reproduces it. In float64, since the expansion cancels: in float32 a
    duplicate's distance of 0 came out as round-off of the order of |x|^2 1e-7, and on tables whose
    rows repeat that round-off was a fair part of the member's spread.
    """
    return _nearest_sq(X.double(), reference.double(), k).mean(1)


class DeepSADEnsemble(BaseEstimator):
    """Deep SAD fused with an IsolationForest, a kNN distance and a supervised member, weighted by the labels.

    Parameters
    ----------
    deepsad : DeepSAD or None
        The Deep SAD member's settings (cloned in ``fit``); ``None`` takes ``DeepSAD()``.
    n_estimators : int, default 100
        Trees of the IsolationForest member.
    n_neighbors : int, default 10
        Neighbours of the kNN member.
    max_train_samples : int or None, default None
        Train the members on every labeled sample and at most this many unlabeled ones, a new sample
        each fit, stratified by the last scores (:func:`~deepsad_core.labels.training_rows`); every
        sample is still scored. ``None`` trains on all of ``X``.
    max_reference : int, default 256
        Reference rows of the kNN member (a random sample of the training data beyond that). A
        subsample ranks anomalies better than every row (mean label-free AUC over the 13 ODDS tables
        0.825 against 0.798 with 4,096) and keeps each row's score to 256 distances.
    prior_weights : sequence of (member, weight), default iforest 1, knn 0.15, deepsad 0.15
        The fusion before there are two labels of each kind.
    pseudo_anomaly_share : float, default 0.1
        Without labels, the share of the training data the IsolationForest and kNN members rank
        highest that Deep SAD trains on as anomalies; 0 trains plain Deep SVDD.
    weight_power : float, default 2
        Sharpness of the label-based weights ``(2 (AUC - 0.5))^weight_power``.
    supervised_C : float, default 10.0
        Inverse regularisation of the supervised member's logistic regression (inputs in [0, 1]
        need little).
    contamination : float, default 0.1
        Expected anomaly share, for the default ``threshold_``.
    seed : int, default 0
        Seeds every member; global random state is left untouched.

    Attributes
    ----------
    deepsad_ : DeepSAD
        The fitted Deep SAD member (``embed`` gives its latents).
    iforest_ : IsolationForest
    reference_ : ndarray of shape (m, n_features)
        The kNN member's reference rows, flattened model input.
    supervised_ : LogisticRegression or None
        Fitted once there are labels of both kinds.
    scales_ : dict of str to (float, float)
        Each member's median and IQR on the training data.
    weights_ : dict of str to float
        The fusion weights in use.
    fusion_ : {"bounded", "exp"}
        How the weighted mean becomes the score (:func:`~deepsad_core.fusion.bounded`): ``"exp"`` only
        for models saved in format 1, so that their stored scores and thresholds keep their meaning.
    label_auc_ : dict of str to float or None
        Each member's ROC-AUC over the labeled samples: supervised out of fold, Deep SAD from its
        scores before each label was given.
    deepsad_prequential_ : ndarray of shape (n_samples,)
        Deep SAD's ``z`` of each labeled training sample at the last fit before its label; NaN elsewhere.
    member_scores_ : dict of str to ndarray of shape (n_samples,)
        Each member's ``z`` on ``X`` as given to ``fit`` (the kNN reference rows not counting
        themselves). A warm start on the same ``X`` keeps the label-free members' instead of scoring
        again.
    decision_scores_ : ndarray of shape (n_samples,)
        Fused scores of ``X`` as given to ``fit``; higher = more anomalous.
    threshold_ : float
        Score above which :meth:`predict` says anomaly.

    Examples
    --------
    >>> import numpy as np
    >>> from deepsad_core import DeepSAD
    >>> from deepsad_core.ensemble import DeepSADEnsemble
    >>> X = np.random.default_rng(0).random((200, 6), dtype=np.float32)
    >>> model = DeepSADEnsemble(deepsad=DeepSAD(epochs=2, ae_epochs=2)).fit(X)
    >>> model.decision_function(X).shape
    (200,)
    """

    def __init__(
        self,
        *,
        deepsad: DeepSAD | None = None,
        n_estimators: int = 100,
        n_neighbors: int = 10,
        max_train_samples: int | None = None,
        max_reference: int = 256,
        prior_weights: Sequence[tuple[str, float]] = DEFAULT_PRIOR_WEIGHTS,
        pseudo_anomaly_share: float = 0.1,
        weight_power: float = 2.0,
        supervised_C: float = 10.0,
        contamination: float = 0.1,
        seed: int = 0,
    ) -> None:
        self.deepsad = deepsad
        self.n_estimators = n_estimators
        self.n_neighbors = n_neighbors
        self.max_train_samples = max_train_samples
        self.max_reference = max_reference
        self.prior_weights = prior_weights
        self.pseudo_anomaly_share = pseudo_anomaly_share
        self.weight_power = weight_power
        self.supervised_C = supervised_C
        self.contamination = contamination
        self.seed = seed

    # --- checks ---------------------------------------------------------------------------------

    def _check_params(self) -> None:
        check_params(self, _PARAM_RULES)
        prior = dict(self.prior_weights)
        if set(prior) - {"iforest", "knn", "deepsad"} or any(w < 0 for w in prior.values()) or not sum(prior.values()):
            raise ValueError(
                "prior_weights must give non-negative weights, not all zero, to iforest, knn and deepsad; "
                f"got {self.prior_weights!r}"
            )

    def _check_fitted(self) -> None:
        if not hasattr(self, "deepsad_"):
            raise NotFittedError(f"this {type(self).__name__} is not fitted yet; call fit(X) first or load_model(path)")

    # --- what the rest of the house reads from a detector ----------------------------------------

    @property
    def center_(self) -> np.ndarray:
        return self.deepsad_.center_

    @property
    def input_shape_(self) -> tuple[int, ...]:
        return self.deepsad_.input_shape_

    @property
    def n_features_in_(self) -> int:
        return self.deepsad_.n_features_in_

    @property
    def history_(self) -> list[dict]:
        return self.deepsad_.history_

    @property
    def network_spec_(self):
        return self.deepsad_.network_spec_

    # --- fitting --------------------------------------------------------------------------------

    def fit(
        self,
        X: Any,
        semi_targets: Any = None,
        warm_start: bool = False,
        epochs: int | None = None,
        callback: ProgressCallback | None = None,
    ) -> DeepSADEnsemble:
        """Fit every member on ``X`` (+1 labeled normal, -1 labeled anomaly, 0 unlabeled) and weigh them.

        ``warm_start`` keeps the IsolationForest, the kNN reference and Deep SAD's centre, continues
        Deep SAD from its weights (with the current ``deepsad`` settings, e.g. a later round's
        learning rate) and refits the supervised member and the weights. Returns ``self``.
        """
        self._check_params()
        if warm_start:
            self._check_fitted()
        template = self.deepsad if self.deepsad is not None else DeepSAD()
        X = (self.deepsad_ if warm_start else template)._validate_X(X, reset=not warm_start)
        semi = DeepSAD._validate_semi_targets(semi_targets, len(X))
        flat = X.reshape(len(X), -1)
        fingerprint = _fingerprint(X)
        # the same data again: the label-free members' scores stand, and Deep SAD's say what it thought
        same_data = warm_start and getattr(self, "_fit_fingerprint", None) == fingerprint
        fit_number = getattr(self, "n_fits_", 0) if warm_start else 0
        rows = training_rows(
            semi,
            self.max_train_samples,
            np.random.default_rng([self.seed, fit_number]),
            self.decision_scores_ if same_data else None,
        )
        capped = len(rows) < len(X)
        if warm_start:
            iforest, reference, reference_index = self.iforest_, self.reference_, self._reference_index
            deepsad = copy.copy(self.deepsad_)  # fit below replaces its attributes: self keeps the old ones
        else:
            iforest = IsolationForest(n_estimators=self.n_estimators, random_state=self.seed)
            iforest.fit(flat[rows] if capped else flat)
            rng = np.random.default_rng(self.seed)
            reference_index = rows[np.sort(rng.choice(len(rows), min(self.max_reference, len(rows)), replace=False))]
            reference = np.ascontiguousarray(flat[reference_index])
            deepsad = clone(template).set_params(seed=self.seed)
        k = min(self.n_neighbors, len(reference) - 1)
        if same_data:
            z = {name: self.member_scores_[name] for name in ("iforest", "knn")}
            scales = dict(self.scales_)
        else:
            own_rows = reference_index if _same_rows(flat, reference, reference_index) else None
            raw = {"iforest": -iforest.decision_function(flat), "knn": self._knn(flat, reference, k, own_rows)}
            scales = {name: robust_scale(raw[name]) for name in raw} if not warm_start else dict(self.scales_)
            z = {name: _z(raw[name], scales[name]) for name in raw}
        # the expert's labels, once there are any, replace the pseudo-labels
        train_targets = semi if (semi != 0).any() else self._pseudo_targets(z["iforest"] + z["knn"])
        # Deep SAD trains on the labels, so its AUC over them says little; what counts is how it ranked
        # each label before it saw it: keep its score of every sample at the fit before the sample's label
        prequential = self._prequential(semi, same_data)
        X_train, train_targets = (X[rows], train_targets[rows]) if capped else (X, train_targets)
        if warm_start:
            # continue with the template's current training settings (a later round's lr, eta)
            params = template.get_params()
            deepsad.set_params(**{key: params[key] for key in ("eta", "lr", "weight_decay", "batch_size")})
            deepsad.fit(X_train, train_targets, warm_start=True, epochs=epochs, callback=callback)
        else:
            deepsad.fit(X_train, train_targets, epochs=epochs, callback=callback)
        distances = deepsad.decision_function(X) if capped else deepsad.decision_scores_
        deepsad_raw = np.log(distances + _LOG_EPS)
        scales["deepsad"] = robust_scale(deepsad_raw)
        z["deepsad"] = _z(deepsad_raw, scales["deepsad"])

        # what the members are ranked on: the labels, or, with fewer than two labeled normals, the labeled
        # anomalies against (a sample of) the unlabeled data, which is mostly normal
        ranking = self._ranking_targets(semi)
        aucs = {name: labeled_auc(z[name], ranking) for name in ("iforest", "knn")}
        seen = np.isfinite(prequential) & (semi != 0)
        aucs["deepsad"] = labeled_auc(np.where(seen, prequential, 0.0), np.where(seen, semi, 0))
        if aucs["deepsad"] is None:  # no label it was scored on before seeing it: only its (optimistic) own view
            aucs["deepsad"] = labeled_auc(z["deepsad"], ranking)
        supervised = None
        if (ranking == -1).any() and (ranking == 1).any():
            supervised = self._fit_supervised(flat, ranking)
            supervised_raw = supervised.decision_function(flat)
            scales["supervised"] = robust_scale(supervised_raw)
            z["supervised"] = _z(supervised_raw, scales["supervised"])
            aucs["supervised"] = self._out_of_fold_auc(flat, ranking, scales["supervised"])
        weights = label_weights(aucs, self.weight_power) if (semi == -1).sum() >= 2 else {}
        if not sum(weights.values()):  # too few labels, or the labels trust no member
            weights = {name: float(w) for name, w in self.prior_weights if w > 0}
        weights = {name: w for name, w in weights.items() if w > 0}
        scores = fuse(z, weights)  # a fit always scores on the bounded scale, whatever the model it continues

        self.deepsad_ = deepsad
        self.iforest_ = iforest
        self.reference_ = reference
        self._reference_index = reference_index
        self.n_neighbors_ = k
        self.supervised_ = supervised
        self.deepsad_prequential_ = prequential
        self.member_scores_ = z
        self._fit_fingerprint = fingerprint
        self.n_fits_ = fit_number + 1
        self.scales_ = {name: scales[name] for name in z}
        self.label_auc_ = aucs
        self.weights_ = weights
        self.fusion_ = "bounded"
        self.decision_scores_ = scores
        self.threshold_ = float(np.quantile(scores, 1 - self.contamination))
        return self

    def _prequential(self, semi: np.ndarray, same_data: bool) -> np.ndarray:
        """Deep SAD's ``z`` of each labeled sample from the last fit before its label (NaN where unknown)."""
        if not same_data:
            return np.full(len(semi), np.nan)
        before = self.member_scores_["deepsad"]
        prequential = self.deepsad_prequential_.copy()
        new = (semi != 0) & np.isnan(prequential)
        prequential[new] = before[new]
        return prequential

    def _pseudo_targets(self, prior: np.ndarray) -> np.ndarray:
        targets = np.zeros(len(prior), dtype=np.int64)
        if self.pseudo_anomaly_share > 0:
            targets[prior >= np.quantile(prior, 1 - self.pseudo_anomaly_share)] = -1
        return targets

    def _ranking_targets(self, semi: np.ndarray) -> np.ndarray:
        """``semi``, or with fewer than two labeled normals: labeled anomalies against unlabeled samples as
        normals (at most 4,096 of them). Their AUC against the unlabeled rises with the true AUC."""
        if (semi == 1).sum() >= 2 or not (semi == -1).any():
            return semi
        unlabeled = np.flatnonzero(semi == 0)
        if len(unlabeled) > _RANKING_SAMPLE:
            unlabeled = np.random.default_rng(self.seed).choice(unlabeled, _RANKING_SAMPLE, replace=False)
        ranking = np.where(semi == -1, -1, 0)
        ranking[unlabeled] = 1
        return ranking

    def _fit_supervised(self, flat: np.ndarray, semi: np.ndarray) -> LogisticRegression:
        labeled = semi != 0
        model = LogisticRegression(C=self.supervised_C, class_weight="balanced", max_iter=2000)
        return model.fit(flat[labeled], semi[labeled] == -1)

    def _out_of_fold_auc(self, flat: np.ndarray, semi: np.ndarray, scale: tuple[float, float]) -> float | None:
        """The supervised member's labeled AUC from out-of-fold predictions: in-fold it would always look perfect."""
        labeled = semi != 0
        y = semi[labeled] == -1
        folds = int(min(5, y.sum(), (~y).sum()))
        if folds < 2:
            return None
        cv = StratifiedKFold(folds, shuffle=True, random_state=self.seed)
        model = LogisticRegression(C=self.supervised_C, class_weight="balanced", max_iter=2000)
        oof = cross_val_predict(model, flat[labeled], y, cv=cv, method="decision_function")
        return float(roc_auc_score(y, _z(oof, scale)))

    # --- scoring --------------------------------------------------------------------------------

    @staticmethod
    def _knn(flat: np.ndarray, reference: np.ndarray, k: int, reference_index: np.ndarray | None) -> np.ndarray:
        """The kNN member's raw scores; rows of the reference (``reference_index``) skip themselves."""
        ref = torch.from_numpy(np.ascontiguousarray(reference, dtype=np.float32)).double()
        X = torch.from_numpy(np.ascontiguousarray(flat, dtype=np.float32))
        out = np.empty(len(flat), dtype=np.float64)
        own = np.zeros(len(flat), dtype=bool)
        if reference_index is not None:
            own[reference_index] = True
        batch = max(1, _KNN_BATCH_VALUES // len(ref))
        with torch.inference_mode():
            # each row once: others by their k nearest, the reference's own rows by their k nearest others
            for rows, skip in ((np.flatnonzero(~own), 0), (np.flatnonzero(own), 1)):
                for s in range(0, len(rows), batch):
                    part = rows[s : s + batch]
                    nearest = _nearest_sq(X[part].double(), ref, k + skip)[:, skip:]
                    out[part] = nearest.mean(1).numpy()
        return out

    def member_scores(self, X: Any) -> dict[str, np.ndarray]:
        """Each member's standardised score ``z`` on ``X`` (the fused score is their weighted mean)."""
        self._check_fitted()
        X = self.deepsad_._validate_X(X, reset=False)
        return self._member_z(X)

    def _member_z(self, X: np.ndarray) -> dict[str, np.ndarray]:
        flat = X.reshape(len(X), -1)
        raw = {
            "iforest": -self.iforest_.decision_function(flat),
            "knn": self._knn(flat, self.reference_, self.n_neighbors_, None),
            "deepsad": np.log(self.deepsad_.decision_function(X) + _LOG_EPS),
        }
        if self.supervised_ is not None:
            raw["supervised"] = self.supervised_.decision_function(flat)
        return {name: _z(raw[name], self.scales_[name]) for name in raw}

    def decision_function(self, X: Any) -> np.ndarray:
        """Fused anomaly scores of shape (n,); higher = more anomalous."""
        return fuse(self.member_scores(X), self.weights_, self.fusion_)

    def explain(self, X: Any, baseline: np.ndarray | None = None) -> np.ndarray:
        """Attributions of each sample's fused score, shaped like ``X`` (see :meth:`DeepSAD.explain`)."""
        self._check_fitted()
        X = self.deepsad_._validate_X(X, reset=False)
        return attributions(self.decision_function, X, _baseline(self.deepsad_, baseline))

    def score_samples(self, X: Any) -> np.ndarray:
        """Same as :meth:`decision_function` (PyOD's name)."""
        return self.decision_function(X)

    def predict(self, X: Any) -> np.ndarray:
        """1 = anomaly (score above ``threshold_``), 0 = normal."""
        return flag(self.decision_function(X), self.threshold_)

    def embed(self, X: Any) -> np.ndarray:
        """Latent vectors of the Deep SAD member, shape (n, rep_dim)."""
        self._check_fitted()
        return self.deepsad_.embed(X)

    # --- persistence ----------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted ensemble to the folder ``path`` atomically: JSON, safetensors, npy and skops, no pickle."""
        import skops.io as sio

        self._check_fitted()
        config = {
            "format": ENSEMBLE_FORMAT,
            "format_version": 1 if self.fusion_ == "exp" else ENSEMBLE_FORMAT_VERSION,  # the version names the scale
            "params": {k: v for k, v in self.get_params(deep=False).items() if k != "deepsad"},
            "n_neighbors": self.n_neighbors_,
            "scales": self.scales_,
            "weights": self.weights_,
            "label_auc": self.label_auc_,
            "threshold": self.threshold_,
            "n_fits": self.n_fits_,
            "fit_fingerprint": self._fit_fingerprint,
            "member_scores": list(self.member_scores_),
        }
        config["params"]["prior_weights"] = [list(p) for p in self.prior_weights]
        with atomic_folder(path) as tmp:
            self.deepsad_.save(tmp / "deepsad")
            (tmp / _CONFIG_FILE).write_text(json.dumps(config, indent=1))
            (tmp / _MEMBERS_FILE).write_bytes(sio.dumps({"iforest": self.iforest_, "supervised": self.supervised_}))
            np.save(tmp / _REFERENCE_FILE, self.reference_)
            np.save(tmp / "reference_index.npy", self._reference_index)
            np.save(tmp / _SCORES_FILE, self.decision_scores_)
            np.save(tmp / _PREQUENTIAL_FILE, self.deepsad_prequential_)
            members = np.stack(list(self.member_scores_.values()), axis=1).astype(np.float32)
            np.save(tmp / _MEMBER_SCORES_FILE, members)
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "auto") -> DeepSADEnsemble:
        """Load an ensemble written by :meth:`save`; skops admits only the types an IsolationForest needs."""
        import skops.io as sio

        path = Path(path)
        config = json.loads((path / _CONFIG_FILE).read_text())
        version = config.get("format_version")
        if config.get("format") != ENSEMBLE_FORMAT or version not in (1, ENSEMBLE_FORMAT_VERSION):
            raise ValueError(
                f"{path} holds format {config.get('format')!r} v{version}, "
                f"expected {ENSEMBLE_FORMAT!r} v1 or v{ENSEMBLE_FORMAT_VERSION}"
            )
        deepsad = DeepSAD.load(path / "deepsad", device=device)
        params = dict(config["params"])
        params["prior_weights"] = tuple(tuple(p) for p in params["prior_weights"])
        model = cls(deepsad=clone(deepsad), **params)
        members = sio.loads((path / _MEMBERS_FILE).read_bytes(), trusted=_TRUSTED_SKOPS_TYPES)
        model.deepsad_ = deepsad
        model.iforest_ = members["iforest"]
        model.supervised_ = members["supervised"]
        model.reference_ = np.load(path / _REFERENCE_FILE, allow_pickle=False)
        model._reference_index = np.load(path / "reference_index.npy", allow_pickle=False)
        model.n_neighbors_ = int(config["n_neighbors"])
        model.scales_ = {k: tuple(v) for k, v in config["scales"].items()}
        model.weights_ = config["weights"]
        model.label_auc_ = config["label_auc"]
        model.threshold_ = float(config["threshold"])
        model.fusion_ = "exp" if version == 1 else "bounded"  # its stored scores and threshold are on that scale
        model.decision_scores_ = np.load(path / _SCORES_FILE, allow_pickle=False)
        model.deepsad_prequential_ = np.load(path / _PREQUENTIAL_FILE, allow_pickle=False)
        model.n_fits_ = int(config.get("n_fits", 1))
        # models saved before they kept their members' scores score the data again on a warm start
        model._fit_fingerprint = config.get("fit_fingerprint")
        names = config.get("member_scores", [])
        stacked = np.load(path / _MEMBER_SCORES_FILE, allow_pickle=False) if names else np.empty((0, 0))
        model.member_scores_ = {name: stacked[:, j] for j, name in enumerate(names)}
        return model


def load_model(path: str | os.PathLike, device: str = "auto") -> DeepSAD | DeepSADEnsemble:
    """A saved detector of either kind (a round's ``model`` folder)."""
    path = Path(path)
    if (path / _CONFIG_FILE).is_file():
        return DeepSADEnsemble.load(path, device=device)
    return DeepSAD.load(path, device=device)


def _z(raw: np.ndarray, scale: tuple[float, float]) -> np.ndarray:
    return (np.asarray(raw, dtype=np.float64) - scale[0]) / scale[1]


def _nearest_sq(X: torch.Tensor, reference: torch.Tensor, k: int) -> torch.Tensor:
    """The ``k`` smallest squared distances from each row of ``X`` to ``reference``, ascending.

    ``|r|^2 - 2 x.r`` is one fused product, and its ``k`` smallest per row are the nearest rows: ``|x|^2``,
    the same along a row, is added to those ``k`` only, so the n x m matrix is made once and read once.
    """
    partial = torch.addmm((reference * reference).sum(1), X, reference.T, alpha=-2)
    nearest = torch.topk(partial, k, dim=1, largest=False).values
    return (nearest + (X * X).sum(1, keepdim=True)).clamp_min(0)


def _fingerprint(X: np.ndarray) -> str:
    """A digest of the data: a warm start on the same data may keep what the last fit computed on it."""
    digest = hashlib.blake2b(str(X.shape).encode(), digest_size=16)
    digest.update(np.ascontiguousarray(X).data)
    return digest.hexdigest()


def _same_rows(flat: np.ndarray, reference: np.ndarray, index: np.ndarray) -> bool:
    """Whether ``flat`` is the data the reference was drawn from (then its rows must skip themselves)."""
    return len(index) > 0 and int(index[-1]) < len(flat) and np.array_equal(flat[index], reference)
