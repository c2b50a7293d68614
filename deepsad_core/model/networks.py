"""The paper's networks phi, each paired with an autoencoder whose encoder is the same network.

Every layer is bias-free and every BatchNorm has no learnable scale or shift (``affine=False``,
``eps=1e-4``), with leaky ReLU (slope 0.01) activations: the measures that keep phi from mapping
everything onto the centre c (Ruff et al. 2018, 2020). Networks are plain ``nn.Sequential`` stacks so
that they export to TorchScript and ONNX unchanged.

The autoencoder holds its encoder as ``autoencoder.encoder``, built by the same function as phi, so
the pretrained weights transfer by structure (:func:`transfer_encoder_weights`), not by key-name
matching, which is what silently copies nothing in the reference code.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

import torch
from torch import nn

from deepsad_core.exceptions import WeightTransferError

__all__ = [
    "NETWORK_NAMES",
    "Autoencoder",
    "NetworkSpec",
    "resolve_network",
    "transfer_encoder_weights",
]

_BN_EPS = 1e-4
_LEAK = 0.01


def _bn1d(n: int) -> nn.BatchNorm1d:
    return nn.BatchNorm1d(n, eps=_BN_EPS, affine=False)


def _bn2d(n: int) -> nn.BatchNorm2d:
    return nn.BatchNorm2d(n, eps=_BN_EPS, affine=False)


def _act() -> nn.LeakyReLU:
    return nn.LeakyReLU(_LEAK)


def _conv_block(c_in: int, c_out: int) -> list[nn.Module]:
    """Conv 5x5 (same size) -> BN -> leaky ReLU -> 2x2 max-pool, as in the paper's LeNets."""
    return [nn.Conv2d(c_in, c_out, 5, padding=2, bias=False), _bn2d(c_out), _act(), nn.MaxPool2d(2)]


class Autoencoder(nn.Module):
    """``decoder(encoder(x))``; the encoder is structurally identical to phi."""

    def __init__(self, encoder: nn.Module, decoder: nn.Module) -> None:
        super().__init__()
        self.encoder = encoder
        self.decoder = decoder

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.decoder(self.encoder(x))


# --- MLP (the paper's ODDS networks) -------------------------------------------------------------


def _mlp_encoder(input_dim: int, hidden_dims: tuple[int, ...], rep_dim: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    dims = [input_dim, *hidden_dims]
    for d_in, d_out in itertools.pairwise(dims):
        layers += [nn.Linear(d_in, d_out, bias=False), _bn1d(d_out), _act()]
    layers.append(nn.Linear(dims[-1], rep_dim, bias=False))
    return nn.Sequential(*layers)


def _mlp_decoder(input_dim: int, hidden_dims: tuple[int, ...], rep_dim: int) -> nn.Sequential:
    layers: list[nn.Module] = []
    dims = [rep_dim, *reversed(hidden_dims)]
    for d_in, d_out in itertools.pairwise(dims):
        layers += [nn.Linear(d_in, d_out, bias=False), _bn1d(d_out), _act()]
    layers += [nn.Linear(dims[-1], input_dim, bias=False), nn.Sigmoid()]
    return nn.Sequential(*layers)


def default_mlp_dims(input_dim: int) -> tuple[tuple[int, ...], int]:
    """Hidden sizes and rep dim by input size, following the paper's ODDS networks.

    arrhythmia (274 features): 128-64-32; cardio, satellite, shuttle (9-36): 32-16-8;
    thyroid (6): 32-16-4.
    """
    if input_dim >= 100:
        return (128, 64), 32
    if input_dim <= 8:
        return (32, 16), 4
    return (32, 16), 8


# --- the paper's LeNet-type image networks ---------------------------------------------------------


def _mnist_encoder(rep_dim: int) -> nn.Sequential:
    return nn.Sequential(
        *_conv_block(1, 8), *_conv_block(8, 4), nn.Flatten(), nn.Linear(4 * 7 * 7, rep_dim, bias=False)
    )


def _mnist_decoder(rep_dim: int) -> nn.Sequential:
    c0 = rep_dim // 16
    return nn.Sequential(
        nn.Unflatten(1, (c0, 4, 4)),
        _act(),
        nn.Upsample(scale_factor=2),
        nn.ConvTranspose2d(c0, 4, 5, padding=2, bias=False),  # 8x8
        _bn2d(4),
        _act(),
        nn.Upsample(scale_factor=2),
        nn.ConvTranspose2d(4, 8, 5, padding=3, bias=False),  # 16 -> 14
        _bn2d(8),
        _act(),
        nn.Upsample(scale_factor=2),
        nn.ConvTranspose2d(8, 1, 5, padding=2, bias=False),  # 28x28
        nn.Sigmoid(),
    )


def _fmnist_encoder(rep_dim: int) -> nn.Sequential:
    return nn.Sequential(
        *_conv_block(1, 16),
        *_conv_block(16, 32),
        nn.Flatten(),
        nn.Linear(32 * 7 * 7, 128, bias=False),
        _bn1d(128),
        _act(),
        nn.Linear(128, rep_dim, bias=False),
    )


def _fmnist_decoder(rep_dim: int) -> nn.Sequential:
    return nn.Sequential(
        nn.Linear(rep_dim, 128, bias=False),
        _bn1d(128),
        nn.Unflatten(1, (8, 4, 4)),
        _act(),
        nn.Upsample(scale_factor=2),
        nn.ConvTranspose2d(8, 32, 5, padding=2, bias=False),  # 8x8
        _bn2d(32),
        _act(),
        nn.Upsample(scale_factor=2),
        nn.ConvTranspose2d(32, 16, 5, padding=3, bias=False),  # 16 -> 14
        _bn2d(16),
        _act(),
        nn.Upsample(scale_factor=2),
        nn.ConvTranspose2d(16, 1, 5, padding=2, bias=False),  # 28x28
        nn.Sigmoid(),
    )


def _cifar_encoder(rep_dim: int) -> nn.Sequential:
    return nn.Sequential(
        *_conv_block(3, 32),
        *_conv_block(32, 64),
        *_conv_block(64, 128),
        nn.Flatten(),
        nn.Linear(128 * 4 * 4, rep_dim, bias=False),
    )


def _cifar_decoder(rep_dim: int) -> nn.Sequential:
    c0 = rep_dim // 16
    return nn.Sequential(
        nn.Unflatten(1, (c0, 4, 4)),
        _act(),
        nn.ConvTranspose2d(c0, 128, 5, padding=2, bias=False),  # 4x4
        _bn2d(128),
        _act(),
        nn.Upsample(scale_factor=2),
        nn.ConvTranspose2d(128, 64, 5, padding=2, bias=False),  # 8x8
        _bn2d(64),
        _act(),
        nn.Upsample(scale_factor=2),
        nn.ConvTranspose2d(64, 32, 5, padding=2, bias=False),  # 16x16
        _bn2d(32),
        _act(),
        nn.Upsample(scale_factor=2),
        nn.ConvTranspose2d(32, 3, 5, padding=2, bias=False),  # 32x32
        nn.Sigmoid(),
    )


# --- a generic convolutional net for any other image size -----------------------------------------


def _conv_plan(channels: int, height: int, width: int) -> tuple[list[int], list[tuple[int, int]]]:
    """Channel widths and the spatial size after each pooling stage (at most 4 stages)."""
    widths, sizes = [channels], [(height, width)]
    h, w = height, width
    while min(h, w) // 2 >= 4 and len(widths) <= 4:
        h, w = h // 2, w // 2
        widths.append(min(16 * 2 ** (len(widths) - 1), 64))
        sizes.append((h, w))
    return widths, sizes


def _conv_encoder(shape: tuple[int, int, int], rep_dim: int) -> nn.Sequential:
    widths, sizes = _conv_plan(*shape)
    layers: list[nn.Module] = []
    for c_in, c_out in itertools.pairwise(widths):
        layers += _conv_block(c_in, c_out)
    h, w = sizes[-1]
    layers += [nn.Flatten(), nn.Linear(widths[-1] * h * w, rep_dim, bias=False)]
    return nn.Sequential(*layers)


def _conv_decoder(shape: tuple[int, int, int], rep_dim: int) -> nn.Sequential:
    widths, sizes = _conv_plan(*shape)
    h, w = sizes[-1]
    layers: list[nn.Module] = [
        nn.Linear(rep_dim, widths[-1] * h * w, bias=False),
        nn.Unflatten(1, (widths[-1], h, w)),
        _bn2d(widths[-1]),
        _act(),
    ]
    for stage in range(len(widths) - 1, 0, -1):
        c_out = widths[stage - 1]
        # explicit sizes, not a scale factor, so odd image sizes come back exactly
        layers += [
            nn.Upsample(size=sizes[stage - 1]),
            nn.ConvTranspose2d(widths[stage], c_out, 5, padding=2, bias=False),
        ]
        if stage > 1:
            layers += [_bn2d(c_out), _act()]
    layers.append(nn.Sigmoid())
    return nn.Sequential(*layers)


# --- choosing and building ------------------------------------------------------------------------

NETWORK_NAMES = ("mlp", "mnist_lenet", "fmnist_lenet", "cifar10_lenet", "conv")
_FIXED_SHAPES = {"mnist_lenet": (1, 28, 28), "fmnist_lenet": (1, 28, 28), "cifar10_lenet": (3, 32, 32)}
_DEFAULT_REP = {"mnist_lenet": 32, "fmnist_lenet": 64, "cifar10_lenet": 128, "conv": 64}


@dataclass(frozen=True)
class NetworkSpec:
    """Everything needed to rebuild a network: JSON-friendly, stored with every saved model."""

    name: str
    input_shape: tuple[int, ...]
    rep_dim: int
    hidden_dims: tuple[int, ...] = ()

    def build_encoder(self) -> nn.Sequential:
        """Build phi, freshly initialised."""
        if self.name == "mlp":
            return _mlp_encoder(self.input_shape[0], self.hidden_dims, self.rep_dim)
        if self.name == "conv":
            return _conv_encoder(self.input_shape, self.rep_dim)  # type: ignore[arg-type]
        return {"mnist_lenet": _mnist_encoder, "fmnist_lenet": _fmnist_encoder, "cifar10_lenet": _cifar_encoder}[
            self.name
        ](self.rep_dim)

    def build_autoencoder(self) -> Autoencoder:
        """Build the autoencoder whose ``encoder`` has exactly phi's structure."""
        if self.name == "mlp":
            decoder = _mlp_decoder(self.input_shape[0], self.hidden_dims, self.rep_dim)
        elif self.name == "conv":
            decoder = _conv_decoder(self.input_shape, self.rep_dim)  # type: ignore[arg-type]
        else:
            decoder = {"mnist_lenet": _mnist_decoder, "fmnist_lenet": _fmnist_decoder, "cifar10_lenet": _cifar_decoder}[
                self.name
            ](self.rep_dim)
        return Autoencoder(self.build_encoder(), decoder)

    def to_dict(self) -> dict:
        return asdict(self)

    @classmethod
    def from_dict(cls, d: dict) -> NetworkSpec:
        return cls(d["name"], tuple(d["input_shape"]), int(d["rep_dim"]), tuple(d.get("hidden_dims", ())))


def resolve_network(
    net: str, input_shape: tuple[int, ...], rep_dim: int | None = None, hidden_dims: tuple[int, ...] | None = None
) -> NetworkSpec:
    """Pick the network for an input shape (``net="auto"``) or check that the named one fits it.

    ``input_shape`` is one sample's shape: ``(d,)`` for tables, ``(C, H, W)`` for images.
    """
    input_shape = tuple(int(s) for s in input_shape)
    if net == "auto":
        if len(input_shape) == 1:
            net = "mlp"
        else:
            net = next((name for name, shape in _FIXED_SHAPES.items() if shape == input_shape), "conv")
    if net not in NETWORK_NAMES:
        raise ValueError(f"net must be 'auto' or one of {', '.join(NETWORK_NAMES)}; got {net!r}")
    if net == "mlp":
        if len(input_shape) != 1:
            raise ValueError(f"net='mlp' needs tabular input of shape (n, d); got samples of shape {input_shape}")
        default_hidden, default_rep = default_mlp_dims(input_shape[0])
        hidden = tuple(hidden_dims) if hidden_dims else default_hidden
        return NetworkSpec("mlp", input_shape, int(rep_dim or default_rep), hidden)
    if len(input_shape) != 3:
        raise ValueError(f"net={net!r} needs images of shape (n, C, H, W); got samples of shape {input_shape}")
    rep = int(rep_dim or _DEFAULT_REP[net])
    if net in _FIXED_SHAPES:
        if input_shape != _FIXED_SHAPES[net]:
            raise ValueError(
                f"net={net!r} needs images of shape {_FIXED_SHAPES[net]}; got {input_shape}. "
                "Use net='conv' (or 'auto') for other sizes."
            )
        if net != "fmnist_lenet" and rep % 16:
            raise ValueError(f"rep_dim for net={net!r} must be a multiple of 16 (its decoder starts at 4x4); got {rep}")
    elif min(input_shape[1:]) < 4:
        raise ValueError(f"images must be at least 4x4 pixels; got {input_shape[1]}x{input_shape[2]}")
    return NetworkSpec(net, input_shape, rep)


def transfer_encoder_weights(source: nn.Module, target: nn.Module) -> int:
    """Copy every tensor (weights and BatchNorm statistics) of ``source`` into ``target``.

    Both must have the same structure: same tensor names in the same order with the same shapes.
    Returns the number of tensors copied; raises :class:`WeightTransferError` when the structures
    differ or when any target tensor does not equal its source afterwards.
    """
    src, dst = source.state_dict(), target.state_dict()
    missing, extra = sorted(set(dst) - set(src)), sorted(set(src) - set(dst))
    mismatched = [k for k in dst if k in src and src[k].shape != dst[k].shape]
    if missing or extra or mismatched or not dst:
        raise WeightTransferError(
            "pretrained encoder does not match the network: "
            f"missing {missing or 'none'}, unexpected {extra or 'none'}, "
            f"shape mismatch {[(k, tuple(src[k].shape), tuple(dst[k].shape)) for k in mismatched] or 'none'}"
        )
    with torch.no_grad():
        for name, tensor in dst.items():
            tensor.copy_(src[name])
    unfilled = [k for k, t in target.state_dict().items() if not torch.equal(t, src[k])]
    if unfilled:
        raise WeightTransferError(f"weight transfer left these tensors unfilled: {unfilled}")
    return len(dst)
