"""The Deep SAD estimator, scikit-learn/PyOD style."""

from __future__ import annotations

import copy
import json
import os
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import scipy.sparse as sp
import torch
from safetensors.torch import load_file, save_file
from sklearn.base import BaseEstimator

from deepsad_core import ddp
from deepsad_core.atomic import atomic_folder
from deepsad_core.exceptions import NotFittedError
from deepsad_core.explain import attributions
from deepsad_core.labels import training_rows
from deepsad_core.networks import NETWORK_NAMES, NetworkSpec, resolve_network, transfer_encoder_weights
from deepsad_core.threshold import flag
from deepsad_core.training import (
    ProgressCallback,
    batched_forward,
    init_center,
    train_autoencoder,
    train_deepsad,
)

__all__ = ["DeepSAD"]

MODEL_FORMAT = "deepsad-model"
MODEL_FORMAT_VERSION = 1
_CONFIG_FILE, _WEIGHTS_FILE = "config.json", "weights.safetensors"


def _is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and np.isfinite(v)


def _is_device(v: Any) -> bool:
    return isinstance(v, str) and (v in ("auto", "cpu", "cuda") or v.startswith("cuda:"))


# One declarative table: parameter -> (check, what is allowed). Checked once, at the top of fit.
_PARAM_RULES: dict[str, tuple[Callable[[Any], bool], str]] = {
    "net": (lambda v: v == "auto" or v in NETWORK_NAMES, f"'auto' or one of {', '.join(NETWORK_NAMES)}"),
    "rep_dim": (lambda v: v is None or (_is_int(v) and v > 0), "None or a positive int"),
    "hidden_dims": (
        lambda v: v is None or (len(v) > 0 and all(_is_int(h) and h > 0 for h in v)),
        "None or a non-empty sequence of positive ints",
    ),
    "eta": (lambda v: _is_num(v) and v > 0, "a number > 0"),
    "lr": (lambda v: _is_num(v) and v > 0, "a number > 0"),
    "epochs": (lambda v: _is_int(v) and v >= 0, "an int >= 0"),
    "lr_milestones": (lambda v: all(_is_int(m) and m > 0 for m in v), "a sequence of positive ints"),
    "batch_size": (lambda v: _is_int(v) and v >= 2, "an int >= 2"),
    "weight_decay": (lambda v: _is_num(v) and v >= 0, "a number >= 0"),
    "pretrain": (lambda v: isinstance(v, bool), "True or False"),
    "ae_epochs": (lambda v: _is_int(v) and v >= 0, "an int >= 0"),
    "ae_lr": (lambda v: _is_num(v) and v > 0, "a number > 0"),
    "ae_lr_milestones": (lambda v: all(_is_int(m) and m > 0 for m in v), "a sequence of positive ints"),
    "ae_weight_decay": (lambda v: _is_num(v) and v >= 0, "a number >= 0"),
    "contamination": (lambda v: _is_num(v) and 0 < v < 0.5, "a number in (0, 0.5)"),
    "max_train_samples": (lambda v: v is None or (_is_int(v) and v > 0), "None or an int > 0"),
    "device": (_is_device, "'auto', 'cpu', 'cuda' or 'cuda:N'"),
    "seed": (lambda v: _is_int(v) and v >= 0, "an int >= 0"),
}


def check_params(estimator: BaseEstimator, rules: dict[str, tuple[Callable[[Any], bool], str]]) -> None:
    """Check each parameter against its rule; the error names it, what is allowed and what was given."""
    for name, (ok, allowed) in rules.items():
        value = getattr(estimator, name)
        try:
            valid = ok(value)
        except TypeError:
            valid = False
        if not valid:
            raise ValueError(f"{name} must be {allowed}; got {value!r}")


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
        fit (:func:`~deepsad_core.labels.training_rows`); every sample is still scored. ``None``
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
        check_params(self, _PARAM_RULES)

    def _check_fitted(self) -> None:
        if not hasattr(self, "net_"):
            raise NotFittedError(
                f"this {type(self).__name__} is not fitted yet; call fit(X) first or DeepSAD.load(path)"
            )

    def _validate_X(self, X: Any, *, reset: bool) -> np.ndarray:
        """Float32 array of shape (n, d) or (n, C, H, W); (n, H, W) is read as grey images."""
        if sp.issparse(X):
            raise TypeError("X is a sparse matrix; sparse input is not supported: pass a dense array (X.toarray())")
        try:
            X = np.asarray(X)
            if np.iscomplexobj(X):
                raise ValueError("Complex data not supported")
            X = X.astype(np.float32, copy=not X.flags.writeable)  # torch wants writable memory
        except (TypeError, ValueError) as e:
            raise type(e)(f"X must be a real numeric array; could not convert it: {e}") from None
        if X.ndim == 3:
            X = X[:, None]
        if X.ndim not in (2, 4):
            raise ValueError(
                f"X must have shape (n, d) for tables or (n, C, H, W) for images; got shape {X.shape}. "
                "Reshape your data: X.reshape(1, -1) for one sample, X.reshape(-1, 1) for one feature"
            )
        if len(X) == 0 or X[0].size == 0:
            raise ValueError(f"X is empty: 0 feature(s) (shape={X.shape}) while a minimum of 1 is required.")
        bad_rows = ~np.isfinite(X.reshape(len(X), -1)).all(axis=1)
        if bad_rows.any():
            raise ValueError(
                f"X contains NaN or infinite values in {int(bad_rows.sum())} sample(s), the first at row "
                f"{int(np.argmax(bad_rows))}; impute or drop them first"
            )
        if X.ndim == 4 and (X.min() < 0 or X.max() > 1):
            raise ValueError(
                f"image values must lie in [0, 1]; got [{X.min():g}, {X.max():g}] (divide 8-bit pixels by 255)"
            )
        if reset:
            if len(X) < 2:
                raise ValueError(f"fit needs at least 2 samples (BatchNorm); got n_samples = {len(X)}")
        elif X.shape[1:] != self.input_shape_:
            what = f"{X.shape[1]} features" if X.ndim == 2 else f"samples of shape {X.shape[1:]}"
            raise ValueError(
                f"X has {what}, but {type(self).__name__} is expecting {self.n_features_in_} features as input "
                f"(samples of shape {self.input_shape_})"
            )
        return X

    @staticmethod
    def _validate_semi_targets(semi_targets: Any, n: int) -> np.ndarray:
        if semi_targets is None:
            return np.zeros(n, dtype=np.int64)
        st = np.asarray(semi_targets)
        if st.shape != (n,):
            raise ValueError(f"semi_targets must have shape ({n},) like X's first axis; got {st.shape}")
        if st.dtype.kind == "f" and not np.all(np.isfinite(st)):
            raise ValueError("semi_targets must be -1, 0 or 1; got NaN or infinite values")
        bad = np.setdiff1d(np.unique(st), [-1, 0, 1])
        if bad.size:
            raise ValueError(
                "semi_targets must be +1 (labeled normal), -1 (labeled anomaly) or 0 (unlabeled); "
                f"got {bad[:5].tolist()}"
            )
        st = st.astype(np.int64)
        if (st == -1).all():
            raise ValueError(
                "every sample is labeled anomalous (-1): Deep SAD needs normal or unlabeled data to learn "
                "what normal looks like"
            )
        return st

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
            Called with a :class:`~deepsad_core.training.Progress` after every epoch; returning
            True stops training with :class:`~deepsad_core.exceptions.TrainingCancelled`.

        Returns
        -------
        self

        Cancellation or divergence raises and leaves the model exactly as it was before the call.
        """
        self._check_params()
        if warm_start:
            self._check_fitted()
        if epochs is not None and not (_is_int(epochs) and epochs >= 0):
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
                losses = train_autoencoder(
                    autoencoder,
                    Xt,
                    epochs=self.ae_epochs,
                    lr=self.ae_lr,
                    weight_decay=self.ae_weight_decay,
                    milestones=self.ae_lr_milestones,
                    batch_size=self.batch_size,
                    generator=generator,
                    callback=callback,
                )
                history += _records(fit_number, "pretrain", losses)
                transfer_encoder_weights(autoencoder.encoder, net)
            center = init_center(net, ddp.own_share(Xt), score_batch)  # across ranks: each its share

        losses = train_deepsad(
            net,
            Xt,
            torch.as_tensor(semi[rows], device=device),
            center,
            eta=self.eta,
            epochs=self.epochs if epochs is None else epochs,
            lr=self.lr,
            weight_decay=self.weight_decay,
            milestones=self.lr_milestones,
            batch_size=self.batch_size,
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
        self.threshold_ = float(np.quantile(scores, 1 - self.contamination))
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
        :mod:`deepsad_core.explain`."""
        self._check_fitted()
        X = self._validate_X(X, reset=False)
        return attributions(self.decision_function, X, _baseline(self, baseline))

    # --- persistence ----------------------------------------------------------------------------

    def save(self, path: str | os.PathLike) -> Path:
        """Write the fitted model to the folder ``path`` (config JSON + safetensors), atomically."""
        self._check_fitted()
        config = {
            "format": MODEL_FORMAT,
            "format_version": MODEL_FORMAT_VERSION,
            "params": _jsonable(self.get_params()),
            "network": self.network_spec_.to_dict(),
            "center": self.center_.tolist(),
            "threshold": self.threshold_,
            "input_shape": list(self.input_shape_),
            "history": self.history_,
            "fit_count": self._fit_count,
        }
        tensors = {f"net.{k}": v.detach().cpu().contiguous() for k, v in self.net_.state_dict().items()}
        tensors["decision_scores"] = torch.as_tensor(self.decision_scores_)
        if getattr(self, "typical_input_", None) is not None:
            tensors["typical_input"] = torch.as_tensor(self.typical_input_)
        with atomic_folder(path) as tmp:
            (tmp / _CONFIG_FILE).write_text(json.dumps(config, indent=1))
            save_file(tensors, str(tmp / _WEIGHTS_FILE))
        return Path(path)

    @classmethod
    def load(cls, path: str | os.PathLike, device: str = "auto") -> DeepSAD:
        """Load a model written by :meth:`save`; no pickle is read."""
        path = Path(path)
        try:
            config = json.loads((path / _CONFIG_FILE).read_text())
        except FileNotFoundError:
            raise FileNotFoundError(f"{path} is not a saved DeepSAD model (no {_CONFIG_FILE})") from None
        if config.get("format") != MODEL_FORMAT or config.get("format_version") != MODEL_FORMAT_VERSION:
            raise ValueError(
                f"{path} holds format {config.get('format')!r} v{config.get('format_version')}, "
                f"expected {MODEL_FORMAT!r} v{MODEL_FORMAT_VERSION}"
            )
        params = config["params"]
        for key in ("lr_milestones", "ae_lr_milestones", "hidden_dims"):
            if params.get(key) is not None:
                params[key] = tuple(params[key])
        params["device"] = device
        model = cls(**params)
        model.device_ = model._resolve_device()
        tensors = load_file(str(path / _WEIGHTS_FILE), device=str(model.device_))
        model.network_spec_ = NetworkSpec.from_dict(config["network"])
        net = model.network_spec_.build_encoder()
        net.load_state_dict({k[4:]: v for k, v in tensors.items() if k.startswith("net.")}, strict=True)
        model.net_ = net.to(model.device_).eval()
        model.center_ = np.asarray(config["center"], dtype=np.float32)
        model.threshold_ = float(config["threshold"])
        model.input_shape_ = tuple(config["input_shape"])
        model.n_features_in_ = int(np.prod(model.input_shape_))
        model.decision_scores_ = tensors["decision_scores"].cpu().numpy()
        typical = tensors.get("typical_input")  # absent in models saved before explain() existed
        model.typical_input_ = typical.cpu().numpy() if typical is not None else None
        model.history_ = config["history"]
        model._fit_count = int(config["fit_count"])
        return model


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


def _jsonable(params: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}
