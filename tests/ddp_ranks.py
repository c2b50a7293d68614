"""One rank of the DDP tests (tests/test_model_ddp.py), started by torchrun: what this rank computed, saved.

python -m torch.distributed.run --standalone --nproc-per-node 2 tests/ddp_ranks.py OUT_FOLDER
"""

import sys
from pathlib import Path

import numpy as np
import torch

from deepsad_core import DeepSAD
from deepsad_core.model import ddp
from deepsad_core.model.networks import resolve_network
from deepsad_core.model.training import init_center


def data() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """400 rows, a tenth anomalous (shifted), 6 features in [0, 1], and 8 of the anomalies labeled
    (semi-targets); the same in every rank."""
    rng = np.random.default_rng(0)
    truth = np.r_[np.zeros(360, int), np.ones(40, int)]
    X = np.clip(rng.normal(0.5, 0.08, (400, 6)) + truth[:, None] * 0.3, 0, 1).astype(np.float32)
    semi = np.zeros(400, dtype=np.int64)
    semi[360:368] = -1
    return X, truth, semi


def main(out: Path) -> None:
    assert ddp.start_from_env()
    rank, size = ddp.rank_and_size()
    X, _, semi = data()
    torch.manual_seed(0)
    net = resolve_network("mlp", (6,)).build_encoder()
    center = init_center(net, torch.as_tensor(X[ddp.split(len(X))]), 256)
    model = DeepSAD(epochs=3, ae_epochs=3, lr=1e-3, ae_lr=1e-3, batch_size=32, seed=0).fit(X, semi)
    weights = torch.cat([p.detach().flatten() for p in model.net_.parameters()]).numpy()
    np.savez(out / f"rank{rank}.npz", center=center.numpy(), weights=weights, scores=model.decision_scores_,
             size=size, share=len(ddp.split(len(X))))  # fmt: skip
    ddp.finish()


if __name__ == "__main__":
    main(Path(sys.argv[1]))
