"""``deepsad train --nproc N`` (torchrun, DDP) against one process: test AUC and epoch times on an ODDS table.

Per seed, the paper's ODDS protocol (``benchmarks.paper_odds.paper_split``: 60/40 split, labeled
anomalies making 1 % of the training set, scaling fitted on the training rows). The training rows
go to ``deepsad train`` as a CSV with a labels file, once per process count, for the default
detector (the ensemble) and for Deep SAD alone; the bundle scores the test rows. One process is
also run with another training seed on the same split: how far one process is from itself says how
much of a difference is noise. Epoch times come from the bundle's manifest (``training_seconds``).
Criterion: the test AUC with 2 processes within 0.01 of one process, on the mean over the seeds.

    python -m benchmarks.ddp --data-dir ../shared/data/odds --data satellite --seeds 0,1,2 --nproc 1,2
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from benchmarks.common import command_line, int_list, load_npz, write_report
from benchmarks.paper_odds import paper_split
from deepsad_core import load_detector


def write_training_files(folder: Path, X: np.ndarray, semi: np.ndarray) -> tuple[Path, Path]:
    """The training rows as a CSV with an id column, and the labeled ones as an ``id,label`` file."""
    table = pd.DataFrame(X, columns=[f"x{j}" for j in range(X.shape[1])])
    table.insert(0, "id", [f"r{i}" for i in range(len(X))])
    table.to_csv(folder / "train.csv", index=False)
    labeled = np.flatnonzero(semi != 0)
    labels = pd.DataFrame({"id": table["id"].to_numpy()[labeled], "label": "anomalous"})
    labels.to_csv(folder / "labels.csv", index=False)
    return folder / "train.csv", folder / "labels.csv"


def train(folder: Path, detector: str, nproc: int, seed: int, args: argparse.Namespace) -> tuple[Path, float]:
    bundle = folder / f"{detector}-{nproc}-{seed}.zip"
    command = [sys.executable, "-m", "deepsad_core", "train", str(folder / "train.csv"), "--labels",
               str(folder / "labels.csv"), "--out", str(bundle), "--force", "--detector", detector,
               "--seed", str(seed), "--epochs", str(args.epochs), "--ae-epochs", str(args.epochs),
               "--nproc", str(nproc)]  # fmt: skip
    start = time.perf_counter()
    subprocess.run(command, check=True, capture_output=True, text=True)
    return bundle, time.perf_counter() - start


def main(argv: list[str] | None = None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", type=Path, required=True, help="folder holding the ODDS .npz files")
    p.add_argument("--data", default="satellite")
    p.add_argument("--seeds", type=int_list, default=[0, 1, 2])
    p.add_argument("--nproc", type=int_list, default=[1, 2])
    p.add_argument("--detectors", default="ensemble,deepsad")
    p.add_argument("--epochs", type=int, default=50, help="pretraining and training epochs (deepsad train's default)")
    args = p.parse_args(argv)
    X, y = load_npz(args.data_dir / f"{args.data}.npz")
    rows = []
    for seed in args.seeds:
        X_train, ts, X_test, y_test = paper_split(X, y, seed)
        test = pd.DataFrame(X_test, columns=[f"x{j}" for j in range(X.shape[1])])
        with tempfile.TemporaryDirectory() as folder:
            write_training_files(Path(folder), X_train, ts.semi_targets)
            for detector in args.detectors.split(","):
                runs = [(str(n), n, seed) for n in args.nproc] + [("1, other seed", 1, seed + 100)]
                for label, nproc, training_seed in runs:
                    bundle, seconds = train(Path(folder), detector, nproc, training_seed, args)
                    model = load_detector(bundle)
                    spent = model.info()["training_seconds"]
                    rows.append({
                        "detector": detector, "processes": label, "seed": seed,
                        "test AUC": roc_auc_score(y_test, model.decision_function(test)),
                        "pretrain epoch s": spent["pretrain"] / args.epochs,
                        "train epoch s": spent["train"] / args.epochs, "command s": seconds,
                    })  # fmt: skip
                    print(rows[-1], file=sys.stderr, flush=True)
    runs = pd.DataFrame(rows)
    alone = runs[runs["processes"] == "1"].set_index(["detector", "seed"])["test AUC"]
    runs["|AUC - 1 process|"] = (runs["test AUC"] - alone.reindex(pd.MultiIndex.from_frame(runs[["detector", "seed"]]))
                                 .to_numpy()).abs()  # fmt: skip
    table = runs.groupby(["detector", "processes"], sort=False).mean(numeric_only=True).drop(columns="seed")
    single = table.xs("1", level="processes")["test AUC"]
    table["AUC - 1 process"] = table["test AUC"] - single.reindex(table.index.get_level_values("detector")).values
    table = table.reset_index().round(4)
    notes = [
        f"{args.data}: the paper's ODDS protocol, seeds {','.join(map(str, args.seeds))}: 60/40 split, labeled "
        "anomalies 1 % of the training set; `deepsad train --nproc N` with "
        f"{args.epochs} pretraining and {args.epochs} training epochs, batch 128",
        "N > 1 runs torchrun (gloo on the CPU): each process trains on its shard, gradients averaged "
        "every step, the centre c an all-reduced mean; rank 0 writes the bundle",
        "epoch s: the bundle's training_seconds over the epochs (Deep SAD's pretraining and training); "
        "command s: the whole command, start-up and export included; '1, other seed': one process trained "
        "with seed + 100 on the same split (the noise of training itself)",
        "AUC - 1 process: the difference of the means over the seeds; |AUC - 1 process|: the mean of each "
        "seed's absolute difference. Criterion: AUC - 1 process within +-0.01",
    ]
    write_report(f"ddp_{args.data}", f"Training with torchrun (DDP) on {args.data}", command_line("ddp", argv),
                 notes, table)  # fmt: skip
    return table


if __name__ == "__main__":
    main()
