"""Checks shared by the detectors: parameters against a declarative table, and the input of fit and
scoring (the data ``X`` and the semi-supervised targets). Each error names the input, what is allowed
and what was given."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import scipy.sparse as sp

from deepsad_core.model.networks import NETWORK_NAMES

__all__ = [
    "DEEPSAD_PARAMS",
    "ENSEMBLE_PARAMS",
    "check_params",
    "is_device",
    "is_int",
    "is_num",
    "validate_input",
    "validate_semi_targets",
]

Rules = dict[str, tuple[Callable[[Any], bool], str]]


def is_int(v: Any) -> bool:
    return isinstance(v, (int, np.integer)) and not isinstance(v, bool)


def is_num(v: Any) -> bool:
    return isinstance(v, (int, float, np.integer, np.floating)) and not isinstance(v, bool) and np.isfinite(v)


def is_device(v: Any) -> bool:
    return isinstance(v, str) and (v in ("auto", "cpu", "cuda") or v.startswith("cuda:"))


# One declarative table per detector: parameter -> (check, what is allowed). Checked once, at the top of fit.
DEEPSAD_PARAMS: Rules = {
    "net": (lambda v: v == "auto" or v in NETWORK_NAMES, f"'auto' or one of {', '.join(NETWORK_NAMES)}"),
    "rep_dim": (lambda v: v is None or (is_int(v) and v > 0), "None or a positive int"),
    "hidden_dims": (
        lambda v: v is None or (len(v) > 0 and all(is_int(h) and h > 0 for h in v)),
        "None or a non-empty sequence of positive ints",
    ),
    "eta": (lambda v: is_num(v) and v > 0, "a number > 0"),
    "lr": (lambda v: is_num(v) and v > 0, "a number > 0"),
    "epochs": (lambda v: is_int(v) and v >= 0, "an int >= 0"),
    "lr_milestones": (lambda v: all(is_int(m) and m > 0 for m in v), "a sequence of positive ints"),
    "batch_size": (lambda v: is_int(v) and v >= 2, "an int >= 2"),
    "weight_decay": (lambda v: is_num(v) and v >= 0, "a number >= 0"),
    "pretrain": (lambda v: isinstance(v, bool), "True or False"),
    "ae_epochs": (lambda v: is_int(v) and v >= 0, "an int >= 0"),
    "ae_lr": (lambda v: is_num(v) and v > 0, "a number > 0"),
    "ae_lr_milestones": (lambda v: all(is_int(m) and m > 0 for m in v), "a sequence of positive ints"),
    "ae_weight_decay": (lambda v: is_num(v) and v >= 0, "a number >= 0"),
    "contamination": (lambda v: is_num(v) and 0 < v < 0.5, "a number in (0, 0.5)"),
    "max_train_samples": (lambda v: v is None or (is_int(v) and v > 0), "None or an int > 0"),
    "device": (is_device, "'auto', 'cpu', 'cuda' or 'cuda:N'"),
    "seed": (lambda v: is_int(v) and v >= 0, "an int >= 0"),
}

ENSEMBLE_PARAMS: Rules = {
    "n_estimators": (lambda v: is_int(v) and v > 0, "an int > 0"),
    "n_neighbors": (lambda v: is_int(v) and v > 0, "an int > 0"),
    "max_train_samples": (lambda v: v is None or (is_int(v) and v > 0), "None or an int > 0"),
    "max_reference": (lambda v: is_int(v) and v > 1, "an int > 1"),
    "pseudo_anomaly_share": (lambda v: is_num(v) and 0 <= v < 0.5, "a number in [0, 0.5)"),
    "weight_power": (lambda v: is_num(v) and v > 0, "a number > 0"),
    "supervised_C": (lambda v: is_num(v) and v > 0, "a number > 0"),
    "contamination": (lambda v: is_num(v) and 0 < v < 0.5, "a number in (0, 0.5)"),
    "seed": (lambda v: is_int(v) and v >= 0, "an int >= 0"),
}


def check_params(estimator: Any, rules: Rules) -> None:
    """Check each parameter against its rule; the error names it, what is allowed and what was given."""
    for name, (ok, allowed) in rules.items():
        value = getattr(estimator, name)
        try:
            valid = ok(value)
        except TypeError:
            valid = False
        if not valid:
            raise ValueError(f"{name} must be {allowed}; got {value!r}")


def validate_input(X: Any, input_shape: tuple[int, ...] | None = None, owner: str = "the detector") -> np.ndarray:
    """Float32 array of shape (n, d) or (n, C, H, W); (n, H, W) is read as grey images. With ``input_shape``
    (a fitted detector's) each sample must have that shape; without (``fit``), at least 2 samples."""
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
    if input_shape is None:
        if len(X) < 2:
            raise ValueError(f"fit needs at least 2 samples (BatchNorm); got n_samples = {len(X)}")
    elif X.shape[1:] != tuple(input_shape):
        what = f"{X.shape[1]} features" if X.ndim == 2 else f"samples of shape {X.shape[1:]}"
        raise ValueError(
            f"X has {what}, but {owner} is expecting {int(np.prod(input_shape))} features as input "
            f"(samples of shape {tuple(input_shape)})"
        )
    return X


def validate_semi_targets(semi_targets: Any, n: int) -> np.ndarray:
    """+1 labeled normal, -1 labeled anomaly, 0 unlabeled, shape ``(n,)``; ``None`` is all unlabeled."""
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
            f"semi_targets must be +1 (labeled normal), -1 (labeled anomaly) or 0 (unlabeled); got {bad[:5].tolist()}"
        )
    st = st.astype(np.int64)
    if (st == -1).all():
        raise ValueError(
            "every sample is labeled anomalous (-1): Deep SAD needs normal or unlabeled data to learn "
            "what normal looks like"
        )
    return st
