"""The Deep SAD estimator, scikit-learn/PyOD style."""

from __future__ import annotations

import copy
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from sklearn.base import BaseEstimator

from deepsad_core.base.labels import training_rows
from deepsad_core.base.threshold import contamination_threshold, flag
from deepsad_core.detectors.saved import load_deepsad, save_deepsad
from deepsad_core.detectors.validation import (
    DEEPSAD_PARAMS,
    check_params,
    is_int,
    validate_input,
    validate_semi_targets,
)
from deepsad_core.exceptions import NotFittedError
from deepsad_core.model import ddp
from deepsad_core.model.explain import attributions
from deepsad_core.model.networks import resolve_network, transfer_encoder_weights
from deepsad_core.model.training import (
    ProgressCallback,
    Schedule,
    batched_forward,
    init_center,
    train_autoencoder,
    train_deepsad,
)

__all__ = ["DeepSAD"]


class DeepSAD(BaseEstimator):
    """Deep Semi-supervised Anomaly Detection (Ruff et al., ICLR 2020).

    Trains a bias-free network phi so that unlabeled and labeled-normal samples map close to a fixed
    centre c and labeled anomalies map far from it. With no labels it is Deep SVDD (one-class).

    Parameters
    ----------
    net : {"auto", "mlp", "mnist_lenet", "fmnist_lenet", "cifar10_lenet", "conv"}, default "auto"
        Network; ``"auto"`` picks by input shape (tables: MLP; 1x28x28: MNIST LeNet;
        3x32x32: CIFAR-10 LeNet; other images: a generic convolutional net).
    rep_dim : int or None
        Latent size; ``None`` takes the network's default (MLP: by input size, as in the paper).
    hidden_dims : sequence of int or None
        MLP hidden sizes; ``None`` takes the paper's by input size.
    eta : float, default 1.0
        Weight of the labeled samples' terms.
    lr, epochs, lr_milestones, batch_size, weight_decay
        Deep SAD training: Adam with ``weight_decay``, lr divided by 10 at each milestone epoch.
    pretrain : bool, default True
        Pretrain an autoencoder and start phi from its encoder.
    ae_epochs, ae_lr, ae_lr_milestones, ae_weight_decay
        Autoencoder pretraining settings.
    contamination : float, default 0.1
        Expected anomaly fraction, used only for the default ``threshold_``.
    max_train_samples : int or None, default None
        Train on every labeled sample and at most this many unlabeled ones, a new random sample each
        fit (:func:`~deepsad_core.base.labels.training_rows`); every sample is still scored. ``None``
        trains on all of ``X``, as the paper does.
    device : str, default "auto"
        ``"auto"`` uses CUDA when present, else the CPU.
    seed : int, default 0
        Seeds local generators (initialisation, shuffling); global RNG state is left untouched.

    Attributes
    ----------
    net_ : torch.nn.Module
        The trained network phi.
    network_spec_ : NetworkSpec
        What was built (name, input shape, rep dim, hidden sizes).
    center_ : ndarray of shape (rep_dim,)
        The fixed centre c.
    typical_input_ : ndarray shaped like one sample
        The training data's median input: the baseline of :meth:`explain`.
    decision_scores_ : ndarray of shape (n_samples,)
        Anomaly scores of ``X`` as given to ``fit`` (higher = more anomalous).
    threshold_ : float
        Score above which :meth:`predict` says anomaly; by default the ``1 - contamination``
        quantile of ``decision_scores_``; may be set by the caller.
    history_ : list of dict
        One record per epoch: ``fit`` (call number), ``phase`` ("pretrain"/"train"), ``epoch``, ``loss``.
    input_shape_ : tuple of int
        Shape of one sample seen in ``fit``.
    n_features_in_ : int
        Number of values in one sample.

    Examples
    --------
    >>> import numpy as np
    >>> from deepsad_core import DeepSAD
    >>> rng = np.random.default_rng(0)
    >>> X = rng.random((200, 6), dtype=np.float32)
    >>> y = np.zeros(200, dtype=int); y[:5] = -1
    >>> model = DeepSAD(epochs=2, ae_epochs=2).fit(X, y)
    >>> model.decision_function(X).shape
    (200,)
    """

    detector_kind = "deepsad"  # what RoundConfig.detector names it

    def __init__(
        self,
        *,
        net: str = "auto",
        rep_dim: int | None = None,
        hidden_dims: tuple[int, ...] | None = None,
        eta: float = 1.0,
        lr: float = 1e-4,
        epochs: int = 150,
        lr_milestones: tuple[int, ...] = (50,),
        batch_size: int = 128,
        weight_decay: float = 0.5e-6,
        pretrain: bool = True,
        ae_epochs: int = 150,
        ae_lr: float = 1e-4,
        ae_lr_milestones: tuple[int, ...] = (50,),
        ae_weight_decay: float = 0.5e-3,
        contamination: float = 0.1,
        max_train_samples: int | None = None,
        device: str = "auto",
        seed: int = 0,
    ) -> None:
        self.net = net
        self.rep_dim = rep_dim
        self.hidden_dims = hidden_dims
        self.eta = eta
        self.lr = lr
        self.epochs = epochs
        self.lr_milestones = lr_milestones
        self.batch_size = batch_size
        self.weight_decay = weight_decay
        self.pretrain = pretrain
        self.ae_epochs = ae_epochs
        self.ae_lr = ae_lr
        self.ae_lr_milestones = ae_lr_milestones
        self.ae_weight_decay = ae_weight_decay
        self.contamination = contamination
        self.max_train_samples = max_train_samples
        self.device = device
        self.seed = seed

    # --- checks ---------------------------------------------------------------------------------

    def _check_params(self) -> None:
        check_params(self, DEEPSAD_PARAMS)

    def _check_fitted(self) -> None:
        if not hasattr(self, "net_"):
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet; call fit(X) first or DeepSAD.load(path)"
            )

    def _validate_X(self, X: Any, *, reset: bool) -> np.ndarray:
        return validate_input(X, None if reset else self.input_shape_, type(self).__name__)

    _validate_semi_targets = staticmethod(validate_semi_targets)

    def _resolve_device(self) -> torch.device:
        if self.device == "auto":
            return torch.device("cuda" if torch.cuda.is_available() else "cpu")
        return torch.device(self.device)

    # --- fitting --------------------------------------------------------------------------------

    def fit(
        self,
        X: Any,
        semi_targets: Any = None,
        warm_start: bool = False,
        epochs: int | None = None,
        callback: ProgressCallback | None = None,
    ) -> DeepSAD:
        """Train on ``X`` with optional labels.

        Parameters
        ----------
        X : array-like of shape (n, d) or (n, C, H, W)
            Tables (ideally scaled to [0, 1]) or images with values in [0, 1].
        semi_targets : array-like of shape (n,) or None
            +1 labeled normal, -1 labeled anomaly, 0 unlabeled; ``None``: all unlabeled (Deep SVDD).
        warm_start : bool, default False
            Continue from the fitted weights with c fixed and no pretraining (incremental rounds).
        epochs : int or None
            Deep SAD epochs for this call only (default ``self.epochs``).
        callback : callable or None
            Called with a :class:`~deepsad_core.model.training.Progress` after every epoch; returning
            True stops training with :class:`~deepsad_core.exceptions.TrainingCancelled`.

        Returns
        -------
        self

        Cancellation or divergence raises and leaves the model exactly as it was before the call.
        """
        self._check_params()
        if warm_start:
            self._check_fitted()
        if epochs is not None and not (is_int(epochs) and epochs >= 0):
            raise ValueError(f"epochs must be None or an int >= 0; got {epochs!r}")
        X = self._validate_X(X, reset=not warm_start)
        semi = self._validate_semi_targets(semi_targets, len(X))
        device = ddp.local_device(self._resolve_device())
        fit_number = self._fit_count if warm_start else 0
        generator = torch.Generator().manual_seed(self.seed + fit_number)
        rows = training_rows(semi, self.max_train_samples, np.random.default_rng([self.seed, fit_number]))
        capped = len(rows) < len(X)
        Xt = torch.as_tensor(X[rows] if capped else X, device=device)
        history: list[dict] = list(self.history_) if warm_start else []
        score_batch = _score_batch_size(X.shape[1:])

        if warm_start:
            spec = self.network_spec_
            net = copy.deepcopy(self.net_).to(device)  # trained on a copy: cancel leaves self intact
            center = torch.as_tensor(self.center_, device=device)
        else:
            spec = resolve_network(
                self.net, X.shape[1:], self.rep_dim, tuple(self.hidden_dims) if self.hidden_dims else None
            )
            with torch.random.fork_rng(devices=[]):  # seeded initialisation, global state restored
                torch.manual_seed(self.seed)
                net = spec.build_encoder().to(device)
                autoencoder = spec.build_autoencoder().to(device) if self.pretrain and self.ae_epochs else None
            if autoencoder is not None:
                pretraining = Schedule(
                    self.ae_epochs, self.ae_lr, self.ae_weight_decay, self.ae_lr_milestones, self.batch_size
                )
                losses = train_autoencoder(autoencoder, Xt, pretraining, generator=generator, callback=callback)
                history += _records(fit_number, "pretrain", losses)
                transfer_encoder_weights(autoencoder.encoder, net)
            center = init_center(net, ddp.own_share(Xt), score_batch)  # across ranks: each its share

        losses = train_deepsad(
            net,
            Xt,
            torch.as_tensor(semi[rows], device=device),
            center,
            Schedule(
                self.epochs if epochs is None else epochs,
                self.lr,
                self.weight_decay,
                self.lr_milestones,
                self.batch_size,
            ),
            eta=self.eta,
            generator=generator,
            callback=callback,
        )
        history += _records(fit_number, "train", losses)
        net.eval()
        every = torch.as_tensor(X, device=device) if capped else Xt  # every sample is scored
        scores = _distances(batched_forward(net, every, score_batch), center)

        typical = np.median(X[rows] if capped else X, axis=0).astype(np.float32)  # the baseline of explain()

        # commit everything at once: an exception above leaves the previous state untouched
        self.typical_input_ = typical
        self.network_spec_ = spec
        self.net_ = net
        self.device_ = device
        self.center_ = center.cpu().numpy()
        self.input_shape_ = tuple(X.shape[1:])
        self.n_features_in_ = int(np.prod(self.input_shape_))
        self.decision_scores_ = scores
        self.threshold_ = contamination_threshold(scores, self.contamination)
        self.history_ = history
        self._fit_count = fit_number + 1
        return self

    # --- scoring --------------------------------------------------------------------------------

    def _forward(self, X: np.ndarray) -> torch.Tensor:
        Xt = torch.as_tensor(X, device=self.device_)
        return batched_forward(self.net_, Xt, _score_batch_size(X.shape[1:]))

    def decision_function(self, X: Any) -> np.ndarray:
        """Anomaly scores ``||phi(x) - c||^2`` of shape (n,); higher = more anomalous."""
        self._check_fitted()
        X = self._validate_X(X, reset=False)
        return _distances(self._forward(X), torch.as_tensor(self.center_, device=self.device_))

    def score_samples(self, X: Any) -> np.ndarray:
        """Same as :meth:`decision_function` (PyOD's name)."""
        return self.decision_function(X)

    def embed(self, X: Any) -> np.ndarray:
        """Latent vectors ``phi(x)`` of shape (n, rep_dim), float32."""
        self._check_fitted()
        X = self._validate_X(X, reset=False)
        return self._forward(X).cpu().numpy()

    def predict(self, X: Any) -> np.ndarray:
        """1 = anomaly (score above ``threshold_``), 0 = normal."""
        return flag(self.decision_function(X), self.threshold_)

    def explain(self, X: Any, baseline: np.ndarray | None = None) -> np.ndarray:
        """Attributions of each sample's score, shaped like ``X``: how much the score falls when a feature
        (or an image's patch) is set to ``baseline`` (default: the training data's median input); see
        :mod:`deepsad_core.model.explain`."""
        self._check_fitted()
        X = self._validate_X(X, reset=False)
        return attributions(self.decision_function, X, _baseline(self, baseline))

    # --- the rest of the detector contract (deepsad_core.detectors.contract) ----------------------

    def label_free_scores(self, X: Any = None) -> np.ndarray:
        """Scores that no label has shaped; a lone Deep SAD has only its own (``X=None``: the fit's data)."""
        self._check_fitted()
        return self.decision_scores_ if X is None else self.decision_function(X)

    def held_out_scores(self) -> np.ndarray:
        """The fit's scores of its data; a lone Deep SAD keeps no view that had not seen a label, so its
        labeled samples are scored as it learned them."""
        self._check_fitted()
        return self.decision_scores_

    def deepsad_scores(self, X: Any) -> tuple[np.ndarray, None]:
        """Its own scores of ``X``, and ``None``: there is nothing here without Deep SAD."""
        return self.decision_function(X), None

    def for_next_round(self, *, lr: float, eta: float, max_train_samples: int | None) -> DeepSAD:
        """A copy to warm-start with a later round's settings; this model is not changed."""
        self._check_fitted()
        return copy.deepcopy(self).set_params(lr=lr, eta=eta, max_train_samples=max_train_samples)

    def scoring_graph(self) -> bytes:
        """ONNX bytes of ``input -> (score, latent)``, scoring as :meth:`decision_function` does."""
        from deepsad_core.detectors.graphs import deepsad_onnx  # onnx only when a graph is asked for

        self._check_fitted()
        return deepsad_onnx(self)

    def scoring_torchscript(self) -> bytes | None:
        """The same graph as TorchScript."""
        from deepsad_core.detectors.graphs import deepsad_torchscript

        self._check_fitted()
        return deepsad_torchscript(self)

    def bundle_description(self) -> dict[str, Any]:
        """Kind, backends and the score's meaning, for a bundle's manifest."""
        self._check_fitted()
        from deepsad_core.detectors.graphs import deepsad_description

        return deepsad_description(self)

    def bundle_params(self) -> dict[str, Any]:
        return self.get_params()

    def score_batch(self) -> int:
        """Rows per scoring call of a bundle."""
        return 65536

    # --- persistence ----------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted model to the folder ``path`` (config JSON + safetensors), atomically."""
        return save_deepsad(self, path)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "auto") -> DeepSAD:
        """Load a model written by :meth:`save`; no pickle is read."""
        return load_deepsad(cls, path, device)


def _baseline(model: DeepSAD, baseline: np.ndarray | None) -> np.ndarray:
    if baseline is not None:
        return np.asarray(baseline, dtype=np.float32)
    if getattr(model, "typical_input_", None) is None:
        raise ValueError("this model was saved without its typical input; pass baseline= (e.g. np.median(X, 0))")
    return model.typical_input_


def _score_batch_size(sample_shape: tuple[int, ...]) -> int:
    """Rows per no-grad scoring batch: about 4M input values, at most 65,536 rows."""
    return int(max(256, min(65536, 2**22 // max(1, int(np.prod(sample_shape))))))


def _distances(latents: torch.Tensor, center: torch.Tensor) -> np.ndarray:
    return ((latents - center) ** 2).sum(dim=1).cpu().numpy().astype(np.float64)


def _records(fit_number: int, phase: str, losses: list[float]) -> list[dict]:
    return [{"fit": fit_number, "phase": phase, "epoch": i + 1, "loss": loss} for i, loss in enumerate(losses)]
