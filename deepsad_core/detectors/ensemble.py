"""The detector a round produces: Deep SAD fused with label-free members and a supervised member.

Members: ``iforest`` and ``knn`` (:mod:`deepsad_core.detectors.members`), label-free; ``deepsad``,
``log ||phi(x) - c||^2`` of a Deep SAD network trained on the expert's labels and on pseudo-labels
(the top share of what the other members say together, as anomalies, where the expert said nothing);
``supervised`` (:mod:`deepsad_core.detectors.supervised`), a class-balanced logistic regression on
the labels. Each member's score is standardised by its median and IQR on the training data (``z``);
the fused score is ``exp(10 tanh(m / 10))`` of the weighted mean ``m`` of the ``z``: the prior
weights before labels, then ``(2 (AUC - 0.5))^weight_power`` from each member's ROC-AUC over the
labels, held out where a member learned them (:mod:`deepsad_core.detectors.fusion`). Truth never
enters; only the expert's labels do. ``docs/design.md`` gives the measurements behind the defaults.
"""

from __future__ import annotations

import copy
import hashlib
import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
from sklearn.base import BaseEstimator, clone

from deepsad_core.base.labels import training_rows
from deepsad_core.base.threshold import contamination_threshold, flag
from deepsad_core.detectors.deepsad import DeepSAD, _baseline
from deepsad_core.detectors.fusion import (
    MEMBERS,
    fuse,
    fusion_weights,
    labeled_auc,
    robust_scale,
    standardise,
    teacher_scores,
)
from deepsad_core.detectors.knn import same_rows
from deepsad_core.detectors.members import LOG_EPS, DeepSADMember, ForestMember, KNNMember, SupervisedMember
from deepsad_core.detectors.saved import load_ensemble, save_ensemble
from deepsad_core.detectors.supervised import (
    fit_supervised_member,
    prequential_scores,
    pseudo_targets,
    ranking_targets,
)
from deepsad_core.detectors.validation import ENSEMBLE_PARAMS, check_params
from deepsad_core.exceptions import NotFittedError
from deepsad_core.model.explain import attributions
from deepsad_core.model.training import ProgressCallback

__all__ = ["DEFAULT_PRIOR_WEIGHTS", "MEMBERS", "DeepSADEnsemble"]

DEFAULT_PRIOR_WEIGHTS = (("iforest", 1.0), ("knn", 0.15), ("deepsad", 0.15))


def _of_deepsad(name: str) -> property:
    """An attribute the ensemble shares with its Deep SAD member (read-only)."""
    return property(lambda self: getattr(self.deepsad_, name), doc=f"The Deep SAD member's ``{name}``.")


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
        each fit, stratified by the last scores (:func:`~deepsad_core.base.labels.training_rows`); every
        sample is still scored. ``None`` trains on all of ``X``.
    max_reference : int, default 256
        Reference rows of the kNN member (a random sample of the training data beyond that; why:
        docs/design.md).
    prior_weights : sequence of (member, weight), default iforest 1, knn 0.15, deepsad 0.15
        The fusion before there are two labels of each kind.
    pseudo_anomaly_share : float, default 0.1
        At a fresh fit, the share of the training data that the other members rank highest and Deep
        SAD trains on as anomalies where the expert said nothing (continuing on the same data: the
        share the last fit flags); 0 trains plain Deep SVDD and Deep SAD on the labels alone.
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
    members_ : dict of str to Member
        The fitted members (:mod:`deepsad_core.detectors.members`): ``iforest``, ``knn`` (its reference
        rows, flattened model input), ``deepsad`` and, once there are labels of both kinds, ``supervised``.
    deepsad_ : DeepSAD
        The fitted Deep SAD member (``embed`` gives its latents).
    scales_ : dict of str to (float, float)
        Each member's median and IQR on the training data.
    weights_ : dict of str to float
        The fusion weights in use.
    fusion_ : {"bounded", "exp"}
        How the weighted mean becomes the score (:func:`~deepsad_core.detectors.fusion.bounded`): ``"exp"`` only
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
    >>> from deepsad_core.detectors.ensemble import DeepSADEnsemble
    >>> X = np.random.default_rng(0).random((200, 6), dtype=np.float32)
    >>> model = DeepSADEnsemble(deepsad=DeepSAD(epochs=2, ae_epochs=2)).fit(X)
    >>> model.decision_function(X).shape
    (200,)
    """

    detector_kind = "ensemble"  # what RoundConfig.detector names it

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

    def _check_params(self) -> None:
        check_params(self, ENSEMBLE_PARAMS)
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

    deepsad_ = property(lambda self: self.members_["deepsad"].model, doc="The fitted Deep SAD member.")
    center_ = _of_deepsad("center_")
    input_shape_ = _of_deepsad("input_shape_")
    n_features_in_ = _of_deepsad("n_features_in_")
    history_ = _of_deepsad("history_")
    network_spec_ = _of_deepsad("network_spec_")

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
        digest = _fingerprint(X)
        # the same data again: the label-free members' scores stand, and Deep SAD's say what it thought
        same_data = warm_start and getattr(self, "_fit_fingerprint", None) == digest
        fit_number = getattr(self, "n_fits_", 0) if warm_start else 0
        rows = training_rows(
            semi,
            self.max_train_samples,
            np.random.default_rng([self.seed, fit_number]),
            self.decision_scores_ if same_data else None,
        )
        capped = len(rows) < len(X)
        if warm_start:  # the label-free members and the reference stay; Deep SAD continues
            forest, knn = self.members_["iforest"], self.members_["knn"]
            deepsad = copy.copy(self.deepsad_)  # fit below replaces its attributes: self keeps the old ones
        else:
            forest = ForestMember.fit(flat[rows] if capped else flat, n_estimators=self.n_estimators, seed=self.seed)
            knn = KNNMember.fit(
                flat, rows, n_neighbors=self.n_neighbors, max_reference=self.max_reference, seed=self.seed
            )
            deepsad = clone(template).set_params(seed=self.seed)
        if same_data:
            z = {name: self.member_scores_[name] for name in ("iforest", "knn")}
            scales = dict(self.scales_)
        else:
            own_rows = knn.reference_index if same_rows(flat, knn.reference, knn.reference_index) else None
            raw = {"iforest": forest.raw(X), "knn": knn.raw(X, own_rows)}
            scales = {name: robust_scale(raw[name]) for name in raw} if not warm_start else dict(self.scales_)
            z = {name: standardise(raw[name], scales[name]) for name in raw}
        # the labels, or with fewer than two labeled normals, labeled anomalies against unlabeled rows
        ranking = ranking_targets(semi, self.seed)
        aucs = {name: labeled_auc(z[name], ranking) for name in ("iforest", "knn")}
        supervised = fit_supervised_member(flat, ranking, self.supervised_C, self.seed)
        if supervised is not None:
            z["supervised"], scales["supervised"], aucs["supervised"] = supervised.z, supervised.scale, supervised.auc
        # Deep SAD's AUC over labels it learned says little: rank it by its scores before each label
        prequential = prequential_scores(
            semi, *((self.deepsad_prequential_, self.member_scores_["deepsad"]) if same_data else (None, None))
        )
        seen = np.isfinite(prequential) & (semi != 0)
        aucs["deepsad"] = labeled_auc(np.where(seen, prequential, 0.0), np.where(seen, semi, 0))
        # Deep SAD learns the labels and, among the unlabeled, takes the top share of what the other
        # members say together as anomalies (latent outlier exposure): a few labels alone barely move it
        teacher = teacher_scores(z, aucs, self.weight_power)
        share = self.pseudo_anomaly_share
        if warm_start and same_data and share:  # the share the last fit flags: in the loop, the round's estimate
            share = float(np.clip(np.mean(flag(self.decision_scores_, self.threshold_)), 0.01, 0.3))
        train_targets = np.where(semi != 0, semi, pseudo_targets(teacher, share))
        X_train, train_targets = (X[rows], train_targets[rows]) if capped else (X, train_targets)
        if warm_start:
            # continue with the template's current training settings (a later round's lr, eta)
            params = template.get_params()
            deepsad.set_params(**{key: params[key] for key in ("eta", "lr", "weight_decay", "batch_size")})
            deepsad.fit(X_train, train_targets, warm_start=True, epochs=epochs, callback=callback)
        else:
            deepsad.fit(X_train, train_targets, epochs=epochs, callback=callback)
        distances = deepsad.decision_function(X) if capped else deepsad.decision_scores_
        deepsad_raw = np.log(distances + LOG_EPS)
        scales["deepsad"] = robust_scale(deepsad_raw)
        z["deepsad"] = standardise(deepsad_raw, scales["deepsad"])
        if aucs["deepsad"] is None:  # no label it was scored on before seeing it: only its (optimistic) own view
            aucs["deepsad"] = labeled_auc(z["deepsad"], ranking)
        weights = fusion_weights(aucs, semi, self.weight_power, self.prior_weights)
        scores = fuse(z, weights)  # a fit always scores on the bounded scale, whatever the model it continues
        held_out = dict(z)  # each labeled sample as the members that had not seen its label score it
        held_out["deepsad"] = np.where(seen, prequential, z["deepsad"])
        if supervised is not None and supervised.held_out_z is not None:
            held_out["supervised"] = np.where(np.isnan(supervised.held_out_z), supervised.z, supervised.held_out_z)

        self.members_ = {"iforest": forest, "knn": knn, "deepsad": DeepSADMember(deepsad)}
        if supervised is not None:
            self.members_["supervised"] = SupervisedMember(supervised.model)
        self.deepsad_prequential_ = prequential
        self.member_scores_ = z
        self._fit_fingerprint = digest
        self.n_fits_ = fit_number + 1
        self.scales_ = {name: scales[name] for name in z}
        self.label_auc_ = aucs
        self.weights_ = weights
        self.fusion_ = "bounded"
        self.decision_scores_ = scores
        self.held_out_scores_ = fuse(held_out, weights)
        self.threshold_ = contamination_threshold(scores, self.contamination)
        return self

    # --- scoring --------------------------------------------------------------------------------

    def member_scores(self, X: Any) -> dict[str, np.ndarray]:
        """Each member's standardised score ``z`` on ``X`` (the fused score is their weighted mean)."""
        self._check_fitted()
        X = self.deepsad_._validate_X(X, reset=False)
        return self._member_z(X)

    def _member_z(self, X: np.ndarray) -> dict[str, np.ndarray]:
        return {name: standardise(member.raw(X), self.scales_[name]) for name, member in self.members_.items()}

    def decision_function(self, X: Any) -> np.ndarray:
        """Fused anomaly scores of shape (n,); higher = more anomalous."""
        return fuse(self.member_scores(X), self.weights_, self.fusion_)

    def explain(self, X: Any, baseline: np.ndarray | None = None) -> np.ndarray:
        """Attributions of each sample's fused score, shaped like ``X`` (see :meth:`DeepSAD.explain`)."""
        self._check_fitted()
        X = self.deepsad_._validate_X(X, reset=False)
        return attributions(self.decision_function, X, _baseline(self.deepsad_, baseline))

    def deepsad_scores(self, X: Any) -> tuple[np.ndarray, np.ndarray | None]:
        """The Deep SAD member's ``z`` of ``X``; the others' fused score at their weights (or None)."""
        z = self.member_scores(X)
        others = {name: w for name, w in self.weights_.items() if name != "deepsad"}
        return z["deepsad"], fuse(z, others, self.fusion_) if others else None

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

    # --- the rest of the detector contract (deepsad_core.detectors.contract) ----------------------

    def label_free_scores(self, X: Any = None) -> np.ndarray:
        """Scores that no label has shaped: the forest's and the kNN member's ``z``, averaged (``X=None``:
        of the data just fitted, from what the fit computed)."""
        self._check_fitted()
        z = self.member_scores_ if X is None else self.member_scores(X)
        free = [name for name, member in self.members_.items() if not member.uses_labels]
        return sum(z[name] for name in free) / len(free)

    def held_out_scores(self) -> np.ndarray:
        """The fit's scores of its data, each labeled sample scored as no member that learned its label
        would: the supervised member from the folds that left it out, Deep SAD as it scored the sample
        at the fit before its label (label-free members as they are). What the estimates over the pool
        place check samples by (:mod:`deepsad_core.loop.estimates`); a model loaded from disk has only
        its scores."""
        self._check_fitted()
        return getattr(self, "held_out_scores_", self.decision_scores_)

    def for_next_round(self, *, lr: float, eta: float, max_train_samples: int | None) -> DeepSADEnsemble:
        """A copy to warm-start with a later round's settings (Deep SAD's rate and eta); this one is not changed."""
        self._check_fitted()
        later = {"deepsad__lr": lr, "deepsad__eta": eta, "max_train_samples": max_train_samples}
        return copy.deepcopy(self).set_params(**later)

    def scoring_graph(self) -> bytes:
        """ONNX bytes of ``input -> (score, latent)``: every member and the fusion in one graph."""
        from deepsad_core.detectors.graphs import ensemble_onnx  # onnx only when a graph is asked for

        self._check_fitted()
        return ensemble_onnx(self)

    def scoring_torchscript(self) -> bytes | None:
        """None: TorchScript cannot hold the IsolationForest."""
        return None

    def bundle_description(self) -> dict[str, Any]:
        """Kind, weights, backends and the score's meaning, for a bundle's manifest."""
        self._check_fitted()
        from deepsad_core.detectors.graphs import ensemble_description

        return ensemble_description(self)

    def bundle_params(self) -> dict[str, Any]:
        params = {k: v for k, v in self.get_params(deep=False).items() if k != "deepsad"}
        return params | {"deepsad": self.deepsad_.get_params()}

    def score_batch(self) -> int:
        """Rows per scoring call of a bundle: the kNN member's float64 distance matrix stays near 64 MB."""
        return max(256, 2**23 // len(self.members_["knn"].reference))

    # --- persistence ----------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted ensemble to the folder ``path`` atomically: JSON, safetensors, npy and skops, no pickle."""
        return save_ensemble(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "auto") -> DeepSADEnsemble:
        """Load an ensemble written by :meth:`save`; skops admits only the types an IsolationForest needs."""
        return load_ensemble(cls, DeepSAD, path, device)


def _fingerprint(X: np.ndarray) -> str:
    """A digest of the data: a warm start on the same data may keep what the last fit computed on it."""
    digest = hashlib.blake2b(str(X.shape).encode(), digest_size=16)
    digest.update(np.ascontiguousarray(X).data)
    return digest.hexdigest()
