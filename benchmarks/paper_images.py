"""Deep SAD vs Deep SVDD, IsolationForest and OC-SVM on MNIST one-vs-rest, the paper's image protocol.

Per normal class and seed: training set = every training image of the normal class (unlabeled),
unlabeled anomalies from all nine other classes making ``--pollution`` of the unlabeled part, and
labeled anomalies from one known anomaly class making ``--ratio-known`` of the whole training set
(drawn disjointly from the unlabeled ones). Test: the full official test split, normal vs rest.

    python -m benchmarks.paper_images --data-dir ../shared/data/images \
        --normal-classes 0,1,2,3,4 --epochs 20 --ae-epochs 20
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import roc_auc_score

from benchmarks.baselines import IsolationForestBaseline, OneClassSVMBaseline
from benchmarks.common import command_line, int_list, load_npz, stopwatch, write_report
from deepsad_core import DeepSAD
from deepsad_core.data.protocols import semisupervised_training_set
from deepsad_core.detectors.ensemble import DeepSADEnsemble
from deepsad_core.loop.settings import RoundConfig


def run_one(data, normal: int, seed: int, args: argparse.Namespace) -> list[dict]:
    (X_train, y_train), (X_test, y_test) = data
    rng = np.random.default_rng([seed, normal])
    known = args.known_class if args.known_class is not None else int(rng.choice([c for c in range(10) if c != normal]))
    ts = semisupervised_training_set(y_train, [normal], [known], args.ratio_known, args.pollution, rng)
    Xtr = X_train[ts.idx]
    deep = dict(epochs=args.epochs, ae_epochs=args.ae_epochs, pretrain=args.ae_epochs > 0, seed=seed)
    methods = {
        "Deep SAD": lambda: DeepSAD(**deep).fit(Xtr, ts.semi_targets),
        "Deep SVDD": lambda: DeepSAD(**deep).fit(Xtr),
        "IsolationForest": lambda: IsolationForestBaseline(seed).fit(Xtr),
        "OC-SVM": lambda: OneClassSVMBaseline().fit(Xtr),
        # the app's detector at the labeling loop's round-0 settings, given the same labels
        "Studio default": lambda: RoundConfig(seed=seed).estimator().fit(Xtr, ts.semi_targets),
        # the same ensemble around the paper-setting Deep SAD of the first row
        "Ensemble of paper Deep SAD": lambda: DeepSADEnsemble(deepsad=DeepSAD(**deep), seed=seed).fit(
            Xtr, ts.semi_targets
        ),
    }
    truth = (y_test != normal).astype(int)
    rows = []
    for name in args.methods.split(","):
        with stopwatch() as t:
            model = methods[name]()
        auc = roc_auc_score(truth, model.decision_function(X_test))
        rows.append({"normal": normal, "known": known, "method": name, "seed": seed, "auc": auc, "fit_s": t[0]})
        print(f"  class {normal} (known {known}) seed {seed} {name:16s} AUC {auc:.4f} fit {t[0]:.1f}s", file=sys.stderr)
    return rows


def main(argv: list[str] | None = None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True, help="folder holding mnist_train.npz and mnist_test.npz")
    p.add_argument("--normal-classes", default="0,1,2,3,4", type=int_list)
    p.add_argument("--seeds", default="0", type=int_list)
    p.add_argument("--known-class", type=int, default=None, help="default: one drawn per class and seed")
    p.add_argument("--ratio-known", type=float, default=0.05)
    p.add_argument("--pollution", type=float, default=0.1)
    p.add_argument("--epochs", type=int, default=150, help="Deep SAD epochs (paper: 150; cut on a CPU)")
    p.add_argument("--ae-epochs", type=int, default=150, help="autoencoder epochs (paper: 150)")
    p.add_argument("--methods", default="Deep SAD,Deep SVDD,IsolationForest,OC-SVM")
    p.add_argument("--name", default="paper_images")
    args = p.parse_args(argv)

    def images(name: str) -> tuple[np.ndarray, np.ndarray]:
        X, y = load_npz(Path(args.data_dir) / name)
        return (X[:, None].astype(np.float32) / 255.0), y

    data = images("mnist_train.npz"), images("mnist_test.npz")
    rows = [r for c in args.normal_classes for s in args.seeds for r in run_one(data, c, s, args)]
    df = pd.DataFrame(rows)
    summary = (
        df.groupby(["normal", "method"], sort=False)
        .agg(auc_mean=("auc", "mean"), auc_std=("auc", "std"), fit_s=("fit_s", "mean"), known=("known", "first"))
        .reset_index()
    )
    wide = summary.pivot(index="normal", columns="method", values="auc_mean")[args.methods.split(",")]
    table = wide.map(lambda v: f"{v:.3f}").reset_index().rename(columns={"normal": "normal class"})
    table.insert(1, "known anomaly class", summary.groupby("normal")["known"].first().values)
    fit_s = summary.groupby("method", sort=False)["fit_s"].mean().round(1)
    command = command_line("paper_images", argv)
    notes = [
        f"MNIST, test ROC-AUC on the full official test split (10,000 images); seeds {args.seeds}",
        f"labeled anomalies {args.ratio_known:.0%} of the training set from one known class; pollution "
        f"{args.pollution:.0%} of the unlabeled part from all nine anomaly classes",
        f"Deep SAD / Deep SVDD: MNIST LeNet (rep 32), {args.ae_epochs} autoencoder + {args.epochs} training epochs "
        "(the paper: 150 + 150), other hyperparameters as the paper",
        "Studio default: the app's ensemble detector (Deep SAD at 30 + 30 epochs, lr 1e-3, fused with "
        "IsolationForest, kNN and a supervised member), given the same labels; Ensemble of paper Deep SAD: "
        "the same ensemble around the Deep SAD of the first column",
        "mean fit seconds: " + ", ".join(f"{m} {s}" for m, s in fit_s.items()),
    ]
    write_report(args.name, "MNIST one-vs-rest, paper protocol", command, notes, table)
    return df


if __name__ == "__main__":
    main()
