"""How long the expert waits for a round: warm-start training, scoring and the queue, and the map apart.

For 10,000 table rows (21 features, cardio-sized MLP) and 10,000 MNIST images (LeNet): fit round 0
once, label 20 samples, then time one warm-start round of 10 epochs + scores and latents for every
sample + threshold + queue. The UMAP map of the 10,000 latents is timed apart, after a warm-up.
Targets on 2 cores: table <= 5 s, images <= 30 s, UMAP about 15 s.

    python -m benchmarks.round_latency --data-dir ../shared/data/images
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import command_line, load_npz, write_report
from deepsad_core.projection import umap_map, warm_up
from deepsad_core.rounds import RoundConfig, fit_round, score_and_queue


def one_round(name: str, X: np.ndarray, first_epochs: int) -> dict:
    config = RoundConfig(first_epochs=first_epochs, first_ae_epochs=first_epochs, epochs_per_round=10)
    semi = np.zeros(len(X), dtype=np.int64)
    model = fit_round(None, X, semi, config)
    semi[:10], semi[10:20] = -1, 1  # the expert's first labels
    start = time.perf_counter()
    model = fit_round(model, X, semi, config)
    trained = time.perf_counter()
    out = score_and_queue(model, X, semi, config, 1)
    done = time.perf_counter()
    print(f"{name}: train {trained - start:.2f}s, score+queue {done - trained:.2f}s", file=sys.stderr)
    return {"data": name, "warm-start 10 epochs s": trained - start, "scores + latents + queue s": done - trained,
            "round s": done - start, "latents": out.latents}  # fmt: skip


def main(argv: list[str] | None = None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True, help="folder holding mnist_train.npz")
    p.add_argument("--n", type=int, default=10_000)
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    table = rng.random((args.n, 21), dtype=np.float32)
    images, _ = load_npz(Path(args.data_dir) / "mnist_train.npz")
    images = (images[: args.n, None] / 255.0).astype(np.float32)
    rows = [one_round(f"{args.n:,} table rows", table, 5), one_round(f"{args.n:,} MNIST images", images, 2)]
    warm = warm_up()
    umap_seconds = umap_map(rows[1].pop("latents")).seconds
    rows[0].pop("latents")
    table_out = pd.DataFrame(rows).round(2)
    table_out["target s"] = [5, 30]
    command = command_line("round_latency", argv)
    notes = [
        "a round after the first, with the default detector (the ensemble): warm start (c fixed) with 20 labels, "
        "batch 128, then every sample scored and "
        "embedded, threshold from the labels, hybrid queue of 20; the map is not included",
        f"UMAP of {args.n:,} latents (MNIST LeNet, rep 32) after warm-up: {umap_seconds:.1f} s (target about 15 s); "
        f"the warm-up itself took {warm:.1f} s with numba's cache",
    ]
    write_report("round_latency", "Round latency on this machine", command, notes, table_out)
    return table_out


if __name__ == "__main__":
    main()
