"""Training across processes with PyTorch's distributed data parallelism (torchrun, DDP).

``deepsad train DATA --out B --nproc N`` starts N processes with torchrun (``torch.distributed.run``).
Each loads the data; in every epoch each trains on its own share of every batch (as
``DistributedSampler`` deals an epoch). The processes train one network: DistributedDataParallel
averages the gradients of every step (gloo on CPUs, NCCL on GPUs), the pretraining included, and the
centre c is the mean over every rank's share (an all-reduce). Rank 0 writes the bundle. On a
cluster, ``torchrun --nnodes ...`` starts the same command on every node.

Outside torchrun (no process group) every function here is a no-op, and training is single-process.
"""

from __future__ import annotations

import os
import sys

import numpy as np
import torch
import torch.distributed as dist
from torch import nn

__all__ = [
    "active",
    "all_reduce_sum",
    "broadcast_buffers",
    "finish",
    "is_main",
    "local_device",
    "own_share",
    "rank_and_size",
    "split",
    "start_from_env",
    "torchrun_command",
    "wrap",
]


def active() -> bool:
    """Whether this process trains as one rank of several."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def rank_and_size() -> tuple[int, int]:
    """This process's rank and the number of processes (0 and 1 outside torchrun)."""
    return (dist.get_rank(), dist.get_world_size()) if active() else (0, 1)


def is_main() -> bool:
    """Whether this process writes results (rank 0, or the only process)."""
    return rank_and_size()[0] == 0


def start_from_env() -> bool:
    """Join the process group that torchrun describes in the environment (``RANK``, ``WORLD_SIZE``,
    ``MASTER_ADDR``...): NCCL where there are GPUs, else gloo. False when not started by torchrun."""
    if "RANK" not in os.environ or "WORLD_SIZE" not in os.environ or dist.is_initialized():
        return False
    if torch.cuda.is_available():
        torch.cuda.set_device(int(os.environ.get("LOCAL_RANK", 0)))
    dist.init_process_group(backend="nccl" if torch.cuda.is_available() else "gloo")
    return True


def finish() -> None:
    """Leave the process group (at the end of a distributed command)."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def local_device(device: torch.device) -> torch.device:
    """A rank's own GPU (``LOCAL_RANK``) where ``device`` is CUDA; the CPU stays the CPU."""
    if device.type == "cuda" and active():
        return torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
    return device


def split(n: int) -> np.ndarray:
    """This rank's share of ``n`` rows: every ``size``-th one, from its rank (all of them in one process)."""
    rank, size = rank_and_size()
    return np.arange(rank, n, size)


def own_share(X: torch.Tensor) -> torch.Tensor:
    """This rank's rows of ``X`` (:func:`split`); ``X`` itself, not a copy, in one process."""
    return X[torch.as_tensor(split(len(X)), device=X.device)] if active() else X


def wrap(module: nn.Module) -> nn.Module:
    """``module`` in DistributedDataParallel, which averages its gradients across ranks on every step."""
    if not active():
        return module
    device = next(module.parameters()).device
    return nn.parallel.DistributedDataParallel(module, device_ids=[device] if device.type == "cuda" else None)


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """The sum of ``tensor`` over every rank (in place, and returned)."""
    if active():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_buffers(module: nn.Module) -> None:
    """Give every rank rank 0's buffers (BatchNorm's running statistics), so all score alike."""
    if active():
        for buffer in module.buffers():
            dist.broadcast(buffer, src=0)


def torchrun_command(nproc: int, argv: list[str]) -> list[str]:
    """``python -m torch.distributed.run --standalone --nproc-per-node N -m deepsad_core ARGV``: one
    machine; a cluster runs ``torchrun --nnodes ...`` itself."""
    return [sys.executable, "-m", "torch.distributed.run", "--standalone", f"--nproc-per-node={nproc}",
            "-m", "deepsad_core", *argv]  # fmt: skip
