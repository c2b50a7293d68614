"""Deep SAD vs Deep SVDD, IsolationForest and OC-SVM on ODDS tables, the paper's protocol.

Per seed: normals and anomalies each split 60/40 train/test (once, disjointly); the training set is
every training normal (unlabeled) plus labeled anomalies making 1 % of it, drawn from the training
anomalies; the other training anomalies are left out. Standard then [0, 1] min-max scaling, fitted
on the training set. All methods see the same rows; the unsupervised ones ignore the labels.

    python -m benchmarks.paper_odds --data-dir ../shared/data/odds --datasets cardio,satellite,thyroid --seeds 0,1,2,3,4
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from benchmarks.baselines import IsolationForestBaseline, OneClassSVMBaseline
from benchmarks.common import command_line, int_list, load_npz, stopwatch, write_report
from deepsad_core import DeepSAD
from deepsad_core.data.protocols import TrainingSet, scale_like_paper, semisupervised_training_set, split_train_test


def paper_split(
    X: np.ndarray, y: np.ndarray, seed: int, ratio_known: float = 0.01
) -> tuple[np.ndarray, TrainingSet, np.ndarray, np.ndarray]:
    """One seed of the protocol: scaled training rows, their semi-targets, scaled test rows, test truth."""
    train, test = split_train_test(y, seed)
    ts = semisupervised_training_set(y[train], [0], [1], ratio_known, 0.0, np.random.default_rng(seed))
    X_train, X_test = scale_like_paper(X[train][ts.idx], X[test])
    return X_train, ts, X_test, y[test]


def run_one(X: np.ndarray, y: np.ndarray, seed: int, args: argparse.Namespace) -> list[dict]:
    X_train, ts, X_test, y_test = paper_split(X, y, seed, args.ratio_known)
    deep = dict(epochs=args.epochs, ae_epochs=args.ae_epochs, pretrain=args.ae_epochs > 0, lr=args.lr, seed=seed)
    methods = {
        "Deep SAD": lambda: DeepSAD(**deep).fit(X_train, ts.semi_targets),
        "Deep SVDD": lambda: DeepSAD(**deep).fit(X_train),
        "IsolationForest": lambda: IsolationForestBaseline(seed).fit(X_train),
        "OC-SVM": lambda: OneClassSVMBaseline().fit(X_train),
    }
    rows = []
    for name, fit in methods.items():
        with stopwatch() as t:
            model = fit()
        auc = roc_auc_score(y_test, model.decision_function(X_test))
        rows.append({"method": name, "seed": seed, "auc": auc, "fit_s": t[0], "n_labeled": ts.n_labeled_anomalies})
        print(f"  seed {seed} {name:16s} AUC {auc:.4f}  fit {t[0]:.1f}s", file=sys.stderr)
    return rows


def odds_arguments(description: str, name: str) -> argparse.ArgumentParser:
    """The options of every ODDS benchmark: data folder, data sets, seeds, epochs, report name."""
    p = argparse.ArgumentParser(description=description)
    p.add_argument("--data-dir", required=True, help="folder holding the ODDS .npz files")
    p.add_argument("--datasets", default="cardio,satellite,thyroid")
    p.add_argument("--seeds", default="0,1,2,3,4", type=int_list)
    p.add_argument("--epochs", type=int, default=150, help="Deep SAD epochs (paper: 150)")
    p.add_argument("--ae-epochs", type=int, default=150, help="autoencoder epochs (paper: 150; 0 = no pretraining)")
    p.add_argument("--name", default=name, help="report name under benchmarks/results/")
    return p


def odds_datasets(args: argparse.Namespace) -> Iterator[tuple[str, np.ndarray, np.ndarray]]:
    """``(name, X, y)`` of each data set named by ``--datasets``."""
    for ds in args.datasets.split(","):
        X, y = load_npz(Path(args.data_dir) / f"{ds}.npz")
        print(f"{ds}: {X.shape}, {int(y.sum())} anomalies", file=sys.stderr)
        yield ds, X, y


def main(argv: list[str] | None = None) -> pd.DataFrame:
    p = odds_arguments(__doc__.splitlines()[0], "paper_odds")
    p.add_argument("--lr", type=float, default=1e-4, help="Deep SAD / Deep SVDD learning rate (paper: 1e-4)")
    p.add_argument("--ratio-known", type=float, default=0.01, help="labeled anomalies / training set")
    args = p.parse_args(argv)

    rows = []
    for ds, X, y in odds_datasets(args):
        for seed in args.seeds:
            rows += [{"dataset": ds, **r} for r in run_one(X, y, seed, args)]
    df = pd.DataFrame(rows)
    summary = (
        df.groupby(["dataset", "method"], sort=False)
        .agg(auc_mean=("auc", "mean"), auc_std=("auc", "std"), fit_s=("fit_s", "mean"), labeled=("n_labeled", "mean"))
        .reset_index()
    )
    table = pd.DataFrame(
        {
            "data set": summary["dataset"],
            "method": summary["method"],
            "test ROC-AUC (mean ± std)": [
                f"{m:.3f} ± {s:.3f}" for m, s in zip(summary.auc_mean, summary.auc_std.fillna(0), strict=False)
            ],
            "fit s (mean)": summary["fit_s"].round(2),
            "labeled anomalies": summary["labeled"].round(0).astype(int),
        }
    )
    command = command_line("paper_odds", argv)
    notes = [
        f"seeds {args.seeds}; Deep SAD / Deep SVDD: {args.ae_epochs} autoencoder + {args.epochs} training epochs, "
        f"Adam lr {args.lr:g} dropped x0.1 at epoch 50, batch 128, eta 1, weight decay as the paper (paper lr: 1e-4)",
        "split once per seed, 60/40 per class, disjoint: the reference loader reuses ~60 % of test rows in "
        "training, so the paper's ODDS figures are optimistic and not directly comparable",
        "IsolationForest: 100 trees; OC-SVM: RBF, nu 0.1, gamma 'scale'; both see the same rows, labels ignored",
    ]
    write_report(args.name, "ODDS tables, paper protocol", command, notes, table)
    return df


if __name__ == "__main__":
    main()
