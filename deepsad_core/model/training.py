"""Training loops over in-memory tensors: autoencoder pretraining, centre c, Deep SAD.

The trainer owns the loop; networks supply only their forward pass; the loss is one function.
Mini-batches are index slices of one tensor per epoch (no per-sample ``Dataset``), and scoring
runs in large no-grad batches.
"""

from __future__ import annotations

import contextlib
import math
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass

import torch
from torch import nn
from torch.optim.adam import adam

from deepsad_core.exceptions import TrainingCancelled, TrainingDivergedError
from deepsad_core.model import ddp

__all__ = [
    "Adam",
    "Progress",
    "ProgressCallback",
    "Schedule",
    "batched_forward",
    "deepsad_loss",
    "init_center",
    "loss_terms",
    "train_autoencoder",
    "train_deepsad",
]

LOSS_EPS = 1e-6  # the paper's epsilon in eta * (d + eps) ** y
CENTER_EPS = 0.1  # |c_k| below this is pushed to +-CENTER_EPS
# Below this many multiply-adds per sample, a second intra-op thread costs more than it gives
# (docs/design.md, "Training and speed").
SINGLE_THREAD_MACS = 100_000


@dataclass(frozen=True)
class Progress:
    """One epoch's report: ``phase`` is ``"pretrain"`` or ``"train"``; ``epoch`` counts from 1."""

    phase: str
    epoch: int
    epochs: int
    loss: float
    seconds: float  # elapsed in this phase

    @property
    def seconds_left(self) -> float:
        """Estimated seconds left in this phase, from the mean epoch time so far."""
        return self.seconds / self.epoch * (self.epochs - self.epoch)


# A callback gets each epoch's Progress; returning True (or raising TrainingCancelled) stops training.
ProgressCallback = Callable[[Progress], "bool | None"]


def deepsad_loss(dist: torch.Tensor, semi_targets: torch.Tensor, eta: float) -> torch.Tensor:
    """Mean Deep SAD loss of a batch from squared distances ``dist = ||phi(x) - c||^2``.

    Per sample: ``d`` if unlabeled (0), ``eta * (d + eps)`` if labeled normal (+1),
    ``eta / (d + eps)`` if labeled anomaly (-1); one 1/batch factor for all.
    """
    return _loss_from_terms(dist, *loss_terms(semi_targets, eta, dist.dtype))


def loss_terms(
    semi_targets: torch.Tensor, eta: float, dtype: torch.dtype = torch.float32
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Each sample's constants in the Deep SAD loss ``weight * (d + offset) ** exponent``.

    ``1 * (d + 0) ** 1`` unlabeled, ``eta * (d + eps) ** 1`` labeled normal, ``eta * (d + eps) ** -1``
    labeled anomaly. The trainer computes them once per fit, so a batch's loss is four operations,
    not a select over two branches (the loss was a tenth of a small network's step).
    """
    y = semi_targets.to(dtype)
    labeled = y != 0
    weight = torch.where(labeled, eta, 1.0).to(dtype)
    offset = torch.where(labeled, LOSS_EPS, 0.0).to(dtype)
    exponent = torch.where(labeled, y, 1.0).to(dtype)
    return weight, offset, exponent


def _loss_from_terms(
    dist: torch.Tensor, weight: torch.Tensor, offset: torch.Tensor, exponent: torch.Tensor
) -> torch.Tensor:
    return (weight * (dist + offset) ** exponent).mean()


def batched_forward(net: nn.Module, X: torch.Tensor, batch_size: int) -> torch.Tensor:
    """``net(X)`` in eval mode, without gradients, in slices of ``batch_size`` rows."""
    net.eval()
    with torch.inference_mode():
        return torch.cat([net(X[i : i + batch_size]) for i in range(0, len(X), batch_size)])


def init_center(net: nn.Module, X: torch.Tensor, batch_size: int, eps: float = CENTER_EPS) -> torch.Tensor:
    """Centre c: the mean of phi over ``X`` from one forward pass, with |c_k| < eps set to +-eps.

    A component that is exactly 0 goes to +eps (the reference leaves it at 0). Across processes
    (:mod:`deepsad_core.model.ddp`) each rank passes its rows and c is the mean over all of them.
    """
    phi = batched_forward(net, X, batch_size)
    if ddp.active():
        total = ddp.all_reduce_sum(torch.cat([phi.sum(dim=0), phi.new_tensor([len(phi)])]))
        c = total[:-1] / total[-1]
    else:
        c = phi.mean(dim=0)
    small = c.abs() < eps
    return torch.where(small, torch.where(c < 0, -eps, eps), c).clone()


class Adam:
    """Adam with L2 weight decay, as ``torch.optim.Adam(params, lr, weight_decay=...)``, fused on CPU
    and CUDA: torch's own update (``torch.optim.adam.adam``, what ``Adam.step`` runs), called directly.

    ``Optimizer.step`` and ``zero_grad`` wrap that update in hooks, profiler records, grad-mode
    switches and state look-ups; for the paper's small ODDS networks the wrappers cost more than the
    update itself (about 0.25 ms of a 0.8 ms batch on a CPU core). Same arithmetic and state; a test
    checks the trained weights against the textbook ``torch.optim`` loop, bit for bit.
    """

    def __init__(self, params: list[nn.Parameter], lr: float, weight_decay: float) -> None:
        self.params, self.lr, self.weight_decay = params, lr, weight_decay
        self.fused = all(p.device.type in ("cpu", "cuda") for p in params)
        self.exp_avgs = [torch.zeros_like(p) for p in params]
        self.exp_avg_sqs = [torch.zeros_like(p) for p in params]
        # where torch.optim.Adam keeps its step counts: beside the weights when fused, else on the CPU
        self.steps = [torch.zeros((), device=p.device if self.fused else "cpu") for p in params]

    def zero_grad(self) -> None:
        for p in self.params:
            p.grad = None

    def step(self) -> None:
        adam(
            self.params, [p.grad for p in self.params], self.exp_avgs, self.exp_avg_sqs, [], self.steps,
            foreach=False, fused=self.fused, amsgrad=False, beta1=0.9, beta2=0.999, lr=self.lr,
            weight_decay=self.weight_decay, eps=1e-8, maximize=False,
        )  # fmt: skip


def _linear_macs_per_sample(model: nn.Module) -> int | None:
    """Multiply-adds per sample of a network made only of Linear layers (its weight count), else None."""
    weighted = [m for m in model.modules() if isinstance(getattr(m, "weight", None), nn.Parameter)]
    if not weighted or not all(isinstance(m, nn.Linear) for m in weighted):
        return None
    return sum(m.weight.numel() for m in weighted)


@contextlib.contextmanager
def _intra_op_threads(model: nn.Module, device: torch.device) -> Iterator[None]:
    """Train a small CPU network on one intra-op thread, then restore the caller's setting.

    Each op of a small MLP is a few microseconds of work, and splitting it across threads costs more
    than it saves. Threads that already ran torch keep their own setting (OpenMP's is per thread), so a
    training thread in the app leaves the other core to the page; a thread that first runs torch while
    this is in effect starts with one thread too.
    """
    macs = _linear_macs_per_sample(model)
    if device.type != "cpu" or macs is None or macs >= SINGLE_THREAD_MACS:
        yield
        return
    before = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        yield
    finally:
        torch.set_num_threads(before)


@dataclass(frozen=True)
class Schedule:
    """How one phase trains: ``epochs`` of Adam at ``lr`` with ``weight_decay``, the rate cut tenfold after
    each epoch in ``milestones``, on shuffled batches of ``batch_size``."""

    epochs: int
    lr: float
    weight_decay: float
    milestones: Sequence[int]
    batch_size: int


def _run_epochs(
    model: nn.Module,
    batch_loss: Callable[..., torch.Tensor],
    tensors: tuple[torch.Tensor, ...],
    *,
    phase: str,
    schedule: Schedule,
    generator: torch.Generator,
    callback: ProgressCallback | None,
) -> list[float]:
    """The shared loop: Adam with weight decay, lr x0.1 at each milestone, shuffled full batches.

    Each epoch gathers ``tensors`` once in a new random order and hands ``batch_loss`` the network and
    one view per tensor per batch (slices, no copies), so the per-batch cost is the network alone. The
    fused Adam kernel (CPU and CUDA) updates all parameters in one call, without ``torch.optim``'s
    wrappers.

    Across N processes (:mod:`deepsad_core.model.ddp`) every rank draws the same order and trains on its
    share of each batch one process would take (every N-th row of it, as ``DistributedSampler`` deals
    an epoch): DDP averages the shares' gradients, so each step is one process's step on the same
    batch, BatchNorm aside (each rank normalises its share). The epoch loss is the mean over ranks.
    """
    n, device = len(tensors[0]), tensors[0].device
    epochs, lr, milestones = schedule.epochs, schedule.lr, schedule.milestones
    rank, size = ddp.rank_and_size()
    network = ddp.wrap(model)
    optimizer = Adam([p for p in model.parameters() if p.requires_grad], lr, schedule.weight_decay)
    batch_size = min(schedule.batch_size, n)  # a set smaller than one batch still trains, as one batch
    n_batches = n // batch_size  # the last partial batch is dropped, as in the paper's code
    per_step = len(range(rank, batch_size, size))  # rows a step takes here: this rank's share of a batch
    losses: list[float] = []
    start = time.perf_counter()
    model.train()
    with _intra_op_threads(model, device):
        for epoch in range(1, epochs + 1):
            optimizer.lr = lr * 0.1 ** sum(epoch > m for m in milestones)  # as MultiStepLR(milestones, gamma=0.1)
            order = torch.randperm(n, generator=generator).to(device)
            if size > 1:  # this rank's rows of each batch
                order = order[: n_batches * batch_size].view(n_batches, batch_size)[:, rank::size].reshape(-1)
            shuffled = [t[order] for t in tensors]
            batch_losses = []
            for b in range(n_batches):
                batch = slice(b * per_step, (b + 1) * per_step)
                loss = batch_loss(network, *(t[batch] for t in shuffled))
                optimizer.zero_grad()
                loss.backward()
                optimizer.step()
                batch_losses.append(loss.detach())
            # every rank sees the same loss, and so stops alike
            epoch_loss = ddp.all_reduce_sum(torch.stack(batch_losses).sum()).item() / n_batches / size
            if not math.isfinite(epoch_loss):
                raise TrainingDivergedError(
                    f"{phase} loss became {epoch_loss} at epoch {epoch}; lower the learning rate or check the data"
                )
            losses.append(epoch_loss)
            progress = Progress(phase, epoch, epochs, epoch_loss, time.perf_counter() - start)
            if callback is not None and callback(progress):
                raise TrainingCancelled(f"training cancelled during {phase} epoch {epoch} of {epochs}")
    ddp.broadcast_buffers(model)  # BatchNorm's statistics: rank 0's everywhere
    return losses


def train_autoencoder(
    autoencoder: nn.Module,
    X: torch.Tensor,
    schedule: Schedule,
    *,
    generator: torch.Generator,
    callback: ProgressCallback | None = None,
) -> list[float]:
    """Pretrain by reconstruction: the mean squared error over every element of the batch.

    A mean, not a per-sample sum as the paper's Deep SAD loss: it sets how strongly the autoencoder's
    weight decay (0.5e-3, added to the gradient by Adam) weighs against the fit, and the paper's
    settings were chosen with the mean (the reference's ``MSELoss``).
    """

    def batch_loss(network: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return torch.nn.functional.mse_loss(network(x), x)

    return _run_epochs(
        autoencoder,
        batch_loss,
        (X,),
        phase="pretrain",
        schedule=schedule,
        generator=generator,
        callback=callback,
    )


def train_deepsad(
    net: nn.Module,
    X: torch.Tensor,
    semi_targets: torch.Tensor,
    center: torch.Tensor,
    schedule: Schedule,
    *,
    eta: float,
    generator: torch.Generator,
    callback: ProgressCallback | None = None,
) -> list[float]:
    """Train phi on the Deep SAD objective with the centre held fixed.

    Without labels the objective is Deep SVDD's mean distance, the same numbers bit for bit; it is
    computed directly, skipping the per-sample terms (a sixth of a small network's step).
    """

    def dist(network: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return ((network(x) - center) ** 2).sum(dim=1)

    def batch_loss(network: nn.Module, x: torch.Tensor, *terms: torch.Tensor) -> torch.Tensor:
        return _loss_from_terms(dist(network, x), *terms)

    def unlabeled_batch_loss(network: nn.Module, x: torch.Tensor) -> torch.Tensor:
        return dist(network, x).mean()

    labeled = bool((semi_targets != 0).any())
    return _run_epochs(
        net,
        batch_loss if labeled else unlabeled_batch_loss,
        (X, *loss_terms(semi_targets, eta, X.dtype)) if labeled else (X,),
        phase="train",
        schedule=schedule,
        generator=generator,
        callback=callback,
    )
