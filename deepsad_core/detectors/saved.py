"""Detectors on disk: JSON, safetensors, npy and skops files in a folder written atomically; no pickle.

Deep SAD is a config and its weights; the ensemble adds its members (the IsolationForest and the
logistic regression through skops, which admits only their types), the kNN reference, the scales,
weights and the scores of its last fit (so a warm start on the same data scores nothing again).
"""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors.torch import load_file, save_file
from sklearn.base import clone

from deepsad_core.base.atomic import atomic_folder
from deepsad_core.detectors.members import DeepSADMember, ForestMember, KNNMember, SupervisedMember
from deepsad_core.model.networks import NetworkSpec

__all__ = ["ENSEMBLE_FILE", "load_deepsad", "load_ensemble", "save_deepsad", "save_ensemble"]

MODEL_FORMAT = "deepsad-model"
MODEL_FORMAT_VERSION = 1
ENSEMBLE_FORMAT = "deepsad-ensemble"
ENSEMBLE_FORMAT_VERSION = 2  # 1: the exp fusion (read, and kept for those models)
_CONFIG_FILE, _WEIGHTS_FILE = "config.json", "weights.safetensors"
ENSEMBLE_FILE = "ensemble.json"  # what marks a folder as an ensemble's
_MEMBERS_FILE, _REFERENCE_FILE, _SCORES_FILE = "members.skops", "reference.npy", "decision_scores.npy"
_PREQUENTIAL_FILE, _MEMBER_SCORES_FILE = "deepsad_prequential.npy", "member_scores.npy"
_TRUSTED_SKOPS_TYPES = ["sklearn.tree._tree.Tree"]  # what an IsolationForest needs beyond skops' defaults


def save_deepsad(model: Any, path: str | os.PathLike) -> Path:
    model._check_fitted()
    config = {
        "format": MODEL_FORMAT,
        "format_version": MODEL_FORMAT_VERSION,
        "params": _jsonable(model.get_params()),
        "network": model.network_spec_.to_dict(),
        "center": model.center_.tolist(),
        "threshold": model.threshold_,
        "input_shape": list(model.input_shape_),
        "history": model.history_,
        "fit_count": model._fit_count,
    }
    tensors = {f"net.{k}": v.detach().cpu().contiguous() for k, v in model.net_.state_dict().items()}
    tensors["decision_scores"] = torch.as_tensor(model.decision_scores_)
    if getattr(model, "typical_input_", None) is not None:
        tensors["typical_input"] = torch.as_tensor(model.typical_input_)
    with atomic_folder(path) as tmp:
        (tmp / _CONFIG_FILE).write_text(json.dumps(config, indent=1))
        save_file(tensors, str(tmp / _WEIGHTS_FILE))
    return Path(path)


def load_deepsad(cls: type, path: str | os.PathLike, device: str = "auto") -> Any:
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


def save_ensemble(model: Any, path: str | os.PathLike) -> Path:
    import skops.io as sio

    model._check_fitted()
    config = {
        "format": ENSEMBLE_FORMAT,
        "format_version": 1 if model.fusion_ == "exp" else ENSEMBLE_FORMAT_VERSION,  # the version names the scale
        "params": {k: v for k, v in model.get_params(deep=False).items() if k != "deepsad"},
        "n_neighbors": model.members_["knn"].k,
        "scales": model.scales_,
        "weights": model.weights_,
        "label_auc": model.label_auc_,
        "threshold": model.threshold_,
        "n_fits": model.n_fits_,
        "fit_fingerprint": model._fit_fingerprint,
        "member_scores": list(model.member_scores_),
    }
    config["params"]["prior_weights"] = [list(p) for p in model.prior_weights]
    with atomic_folder(path) as tmp:
        model.deepsad_.save(tmp / "deepsad")
        (tmp / ENSEMBLE_FILE).write_text(json.dumps(config, indent=1))
        members = model.members_
        supervised = members["supervised"].model if "supervised" in members else None
        (tmp / _MEMBERS_FILE).write_bytes(sio.dumps({"iforest": members["iforest"].forest, "supervised": supervised}))
        np.save(tmp / _REFERENCE_FILE, members["knn"].reference)
        np.save(tmp / "reference_index.npy", members["knn"].reference_index)
        np.save(tmp / _SCORES_FILE, model.decision_scores_)
        np.save(tmp / _PREQUENTIAL_FILE, model.deepsad_prequential_)
        stacked = np.stack(list(model.member_scores_.values()), axis=1).astype(np.float32)
        np.save(tmp / _MEMBER_SCORES_FILE, stacked)
    return Path(path)


def load_ensemble(cls: type, deepsad_class: type, path: str | os.PathLike, device: str = "auto") -> Any:
    import skops.io as sio

    path = Path(path)
    config = json.loads((path / ENSEMBLE_FILE).read_text())
    version = config.get("format_version")
    if config.get("format") != ENSEMBLE_FORMAT or version not in (1, ENSEMBLE_FORMAT_VERSION):
        raise ValueError(
            f"{path} holds format {config.get('format')!r} v{version}, "
            f"expected {ENSEMBLE_FORMAT!r} v1 or v{ENSEMBLE_FORMAT_VERSION}"
        )
    deepsad = deepsad_class.load(path / "deepsad", device=device)
    params = dict(config["params"])
    params["prior_weights"] = tuple(tuple(p) for p in params["prior_weights"])
    model = cls(deepsad=clone(deepsad), **params)
    members = sio.loads((path / _MEMBERS_FILE).read_bytes(), trusted=_TRUSTED_SKOPS_TYPES)
    model.members_ = {
        "iforest": ForestMember(members["iforest"]),
        "knn": KNNMember(
            np.load(path / _REFERENCE_FILE, allow_pickle=False),
            np.load(path / "reference_index.npy", allow_pickle=False),
            int(config["n_neighbors"]),
        ),
        "deepsad": DeepSADMember(deepsad),
    }
    if members["supervised"] is not None:
        model.members_["supervised"] = SupervisedMember(members["supervised"])
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


def _jsonable(params: dict) -> dict:
    return {k: list(v) if isinstance(v, tuple) else v for k, v in params.items()}
