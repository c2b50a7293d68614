"""Photographs: Deep SAD from scratch against Deep SAD on a pretrained backbone's features, and peers.

CIFAR-10 one-vs-rest: each class in turn is normal; per seed every class is split 60/40 into pool
and test, the pool keeps that class's pool share plus other classes' images making 10 % of it
(`deepsad simulate`'s protocol). The simulated expert labels what the default queue asks, 10 a
round, up to ``--budget``. Test ROC-AUC, at 0 labels and at the budget, of

- scratch: the paper's Deep SAD with its CIFAR-10 LeNet on the pixels (``net="cifar10_lenet"``);
- head: Deep SAD (an MLP head) on the backbone's features (``detector="deepsad"``);
- studio: the app's default on photographs (``net="auto"``: the ensemble on the backbone's features);
- IF and kNN on the same features (no labels), and a logistic regression on the labels (supervised).

MNIST digits (``--mnist``, ``--digits``) compare, on small grey images, the ensemble with the paper's
LeNet on the pixels (lenet) and the ensemble on the backbone's features (studio). Features are
computed once per file, with their rate. ``--summarise`` rewrites the report from the saved curves.

    python -m benchmarks.backbone_images --cifar ../shared/data/images/cifar10_test.npz \
        --mnist ../shared/data/images/mnist_test.npz
"""

from __future__ import annotations

import argparse
import os
import time
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import RESULTS_DIR, command_line, int_list, write_report

STRATEGY = "hybrid"


def features_of(path: str, cache: Path) -> tuple[Path, float]:
    """The file of the default backbone's features of every image in ``path`` (made once), and the
    images/s measured when they were computed."""
    import torch

    from deepsad_core.data import load_dataset
    from deepsad_core.model.backbone import extract_features, load_backbone

    extractor = load_backbone()
    file = cache / f"{Path(path).stem}-{extractor.key()}.npy"
    rate_file = file.with_suffix(".rate")
    if file.exists() and rate_file.exists():
        return file, float(rate_file.read_text())
    torch.set_num_threads(os.cpu_count() or 1)
    X = load_dataset(Path(path)).X
    extract_features(extractor, X[:64])  # the graph is exported and warmed up outside the timing
    start = time.perf_counter()
    features = extract_features(extractor, X)
    rate = len(X) / (time.perf_counter() - start)
    cache.mkdir(parents=True, exist_ok=True)
    np.save(file, features)
    rate_file.write_text(f"{rate:.1f}")
    return file, rate


def _knn_auc(setup, k: int = 10) -> float:
    from sklearn.metrics import roc_auc_score
    from sklearn.neighbors import NearestNeighbors

    distances = NearestNeighbors(n_neighbors=k).fit(setup.X_pool).kneighbors(setup.X_test)[0]
    return float(roc_auc_score(setup.truth_test, distances.mean(1)))


def run_one(data: str, path: str, features_file: str, normal: int, seed: int, budget: int, batch: int, methods):
    import torch

    torch.set_num_threads(1)  # one process per core
    from deepsad_core.loop.settings import RoundConfig
    from deepsad_core.loop.simulate import SimulationSetup, load_simulation_data, simulate, simulation_split

    setup = load_simulation_data(path, seed, normal_class=normal, pollution=0.1)
    features = np.load(features_file, mmap_mode="r")
    with np.load(path, allow_pickle=False) as f:
        y = f["y"]
    pool, test = simulation_split(y, seed, normal, 0.1)
    on_features = SimulationSetup(
        np.asarray(features[pool]), setup.truth_pool, np.asarray(features[test]), setup.truth_test
    )
    parts = []
    for method in methods:
        started = time.perf_counter()
        if method == "scratch":
            net = "cifar10_lenet" if setup.X_pool.shape[1] == 3 else "mnist_lenet"
            config, chosen, flag = RoundConfig(detector="deepsad", net=net), setup, False
        elif method == "lenet":  # the app's ensemble with the paper's LeNet on the pixels
            net = "cifar10_lenet" if setup.X_pool.shape[1] == 3 else "mnist_lenet"
            config, chosen, flag = RoundConfig(net=net), setup, False
        elif method == "head":
            config, chosen, flag = RoundConfig(detector="deepsad"), on_features, True
        else:  # studio: the ensemble on the features
            config, chosen, flag = RoundConfig(), on_features, True
        curves = simulate(
            chosen, [STRATEGY], budget=budget, batch_size=batch, config=config, seed=seed, on_features=flag
        )
        parts.append(curves.assign(method=method, run_seconds=time.perf_counter() - started))
    curves = pd.concat(parts, ignore_index=True)
    curves["knn_auc"] = _knn_auc(on_features)
    curves["feature_iforest_auc"] = curves.loc[curves.method.isin(["head", "studio"]), "iforest_auc"].mean()
    curves["feature_supervised_auc"] = np.nan
    on = curves.method == "studio"
    curves.loc[on, "feature_supervised_auc"] = curves.loc[on, "supervised_auc"]
    print(f"{data} class {normal} seed {seed} done", flush=True)
    return curves.assign(data=data, normal_class=normal)


def _at(curves: pd.DataFrame, labels: int) -> pd.DataFrame:
    runs = curves.groupby(["data", "normal_class", "method", "seed"], sort=False)
    return runs.apply(lambda r: r[r.n_labels <= labels].iloc[-1], include_groups=False).reset_index()


def summarise(curves: pd.DataFrame, budget: int) -> pd.DataFrame:
    rows = []
    zero, full = _at(curves, 0), _at(curves, budget)
    for (data, normal), part in curves.groupby(["data", "normal_class"], sort=True):
        row: dict = {"data": data, "normal class": normal}
        for method in part.method.unique():
            for n, frame in ((0, zero), (budget, full)):
                sel = frame[(frame.data == data) & (frame.normal_class == normal) & (frame.method == method)]
                row[f"{method} @{n}"] = sel.test_auc.mean()
        row["IF (features)"] = part.feature_iforest_auc.mean()
        row["kNN (features)"] = part.knn_auc.mean()
        sel = full[(full.data == data) & (full.normal_class == normal) & (full.method == "studio")]
        row[f"supervised @{budget}"] = sel.feature_supervised_auc.mean() if len(sel) else np.nan
        rows.append(row)
    return pd.DataFrame(rows)


def main(argv: list[str] | None = None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--cifar", default=None, help="cifar10_test.npz")
    p.add_argument("--mnist", default=None, help="mnist_test.npz: the check for small grey images")
    p.add_argument("--classes", type=int_list, default=list(range(10)), help="CIFAR-10 classes")
    p.add_argument("--digits", type=int_list, default=[0], help="MNIST digits")
    p.add_argument("--seeds", type=int_list, default=[0, 1, 2])
    p.add_argument("--budget", type=int, default=50)
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--methods", default="scratch,head,studio")
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    p.add_argument("--cache", default=os.path.join(os.path.expanduser("~"), ".cache", "deepsad-benchmarks"))
    p.add_argument("--name", default="backbone_images")
    p.add_argument("--summarise", action="store_true", help="only rewrite the report from the saved curves")
    args = p.parse_args(argv)
    cache, methods = Path(args.cache), args.methods.split(",")
    jobs, rates = [], {}
    for data, path, classes, chosen in (
        ("cifar10", args.cifar, args.classes, methods),
        ("mnist", args.mnist, args.digits, ["lenet", "studio"]),
    ):
        if path is None:
            continue
        file, rates[data] = features_of(path, cache)
        jobs += [
            (data, path, str(file), c, s, args.budget, args.batch_size, chosen) for c in classes for s in args.seeds
        ]
    saved = RESULTS_DIR / "backbone" / f"{args.name}.csv"
    if args.summarise:
        curves = pd.read_csv(saved)
    else:
        with ProcessPoolExecutor(args.jobs) as pool:
            futures = [pool.submit(run_one, *job) for job in jobs]
            curves = pd.concat([f.result() for f in futures], ignore_index=True)
        saved.parent.mkdir(parents=True, exist_ok=True)
        curves.to_csv(saved, index=False)
    table = summarise(curves, args.budget)
    means = {
        f"{data}: {c}": part[c].mean()
        for data, part in table.groupby("data")
        for c in part.columns
        if ("@" in c or "(" in c) and part[c].notna().any()
    }
    seconds = curves.groupby("method").run_seconds.mean()
    checks = []
    for base in ("scratch", "lenet"):
        part = table.dropna(subset=[f"{base} @0"]) if f"{base} @0" in table else table.iloc[:0]
        if len(part):
            wins = [int((part[f"studio @{n}"] >= part[f"{base} @{n}"]).sum()) for n in (0, args.budget)]
            checks.append(
                f"studio at least {base} on {wins[0]} of {len(part)} classes with no labels and "
                f"{wins[1]} of {len(part)} at {args.budget} labels"
            )
    notes = [
        f"test ROC-AUC, mean over seeds {','.join(map(str, args.seeds))}; {args.batch_size} labels a round from "
        f"the default queue, up to {args.budget}",
        "scratch: Deep SAD with the paper's LeNet on the pixels; head: Deep SAD's MLP head on the backbone "
        "(EfficientNet-Lite0, ImageNet) features; studio: the app's default ensemble on those features; "
        "lenet: the app's ensemble with the paper's LeNet on the pixels; "
        "IF, kNN (k=10): no labels, on the features; supervised: logistic regression on the studio run's labels",
        "mean over the classes: " + ", ".join(f"{c} {v:.3f}" for c, v in means.items()),
        "feature extraction (2 CPU threads, ONNX Runtime, 224 px): "
        + ", ".join(f"{d} {r:.0f} images/s" for d, r in rates.items()),
        "mean seconds per run (round 0 + every later round, one core): "
        + ", ".join(f"{m} {s:.0f}" for m, s in seconds.items()),
        *checks,
    ]
    write_report(
        args.name,
        "Photographs: pretrained backbone against Deep SAD from scratch"
        if args.cifar
        else "Digits: pretrained backbone against the paper's LeNet",
        command_line("backbone_images", argv),
        notes,
        table.round(3),
    )
    return table


if __name__ == "__main__":
    main()
