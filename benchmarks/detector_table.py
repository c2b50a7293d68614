"""The detector an expert gets from few labels, against its peers, on every data set at hand.

For each ODDS table (and MNIST digit 0 vs rest, pollution 0.1) and seed: the simulated expert labels
what the default queue asks (10 a round, up to ``--budget``), and each round records the test AUC of

- the new default (the ensemble, ``RoundConfig()``), with the default queue and with random labels;
- the old default (Deep SAD alone, eta 1, later rounds at lr 1e-4), with the default queue;
- IsolationForest (100 trees, no labels) and a logistic regression on the same labels (`deepsad simulate`'s
  peers);
- the ceiling: Deep SAD (the loop's round-0 settings) trained with every pool anomaly labeled;
- the new default's Deep SAD member alone, and the new default fused without it (same labels, weights);
- the map: over the pool, the ROC-AUC of the truth from each point's share of anomalies among its 10
  nearest neighbours on a UMAP of Deep SAD's latents (as the app draws it) at 0 and 50 labels, at 50
  also UMAP's semi-supervised mode with the labels, beside a UMAP of the inputs.

    python -m benchmarks.detector_table --odds-dir ../shared/data/odds --images-dir ../shared/data/images

Curves go to ``benchmarks/results/detector/<data set>.csv``; the table to ``detector_table.md``.
"""

from __future__ import annotations

import argparse
import os
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import RESULTS_DIR, command_line, int_list, write_report

ODDS = ("annthyroid", "breastw", "cardio", "glass", "ionosphere", "lympho", "mnist", "pendigits", "pima",
        "satellite", "thyroid", "vertebral", "wbc")  # fmt: skip
OLD_DEFAULT = {"detector": "deepsad", "eta": 1.0, "round_lr": 1e-4}
# MNIST digit 0: the paper's image LeNet on the pixels (named: auto now picks the pretrained backbone for
# images, measured in backbone_images.py) at cut epochs, so that 3 seeds x 3 runs fit on 2 cores
MAP_LABELS = (0, 50)  # the rounds whose maps are measured
IMAGE_EPOCHS = {"net": "mnist_lenet", "first_epochs": 10, "first_ae_epochs": 10, "epochs_per_round": 3}


def run_one(name: str, path: str, seed: int, budget: int, batch_size: int) -> pd.DataFrame:
    import torch

    torch.set_num_threads(1)  # one process per core
    from sklearn.metrics import roc_auc_score

    from deepsad_core.loop.projection import map_labels, neighbour_anomaly_auc, umap_map
    from deepsad_core.loop.settings import RoundConfig
    from deepsad_core.loop.simulate import load_simulation_data, simulate

    images = name == "mnist0"
    setup = load_simulation_data(path, seed, normal_class=0 if images else None, pollution=0.1)
    epochs = IMAGE_EPOCHS if images else {}
    truth = setup.truth_pool
    inputs_map = neighbour_anomaly_auc(umap_map(setup.X_pool.reshape(len(truth), -1)).coords, truth)

    def maps(strategy: str, result, semi: np.ndarray) -> dict[str, float]:
        n_labels = int((semi != 0).sum())
        if strategy != "hybrid" or n_labels not in MAP_LABELS:
            return {}
        latents = result.latents  # the round embedded the pool already
        out = {"map_auc": neighbour_anomaly_auc(umap_map(latents).coords, truth), "inputs_map_auc": inputs_map}
        if n_labels:
            labeled = umap_map(latents, labels=map_labels(semi)).coords
            out["labeled_map_auc"] = neighbour_anomaly_auc(labeled, truth)
        return out

    parts = []
    for detector, config, strategies, on_round in (
        ("new", RoundConfig(**epochs), ["hybrid", "random"], maps),
        ("old", RoundConfig(**OLD_DEFAULT, **epochs), ["hybrid"], None),
    ):
        curves = simulate(
            setup, strategies, budget=budget, batch_size=batch_size, config=config, seed=seed, on_round=on_round
        )
        parts.append(curves.assign(detector=detector))
    oracle = np.where(setup.truth_pool == 1, -1, 0)
    ceiling = RoundConfig(**OLD_DEFAULT, **epochs, seed=seed).estimator().fit(setup.X_pool, oracle)
    ceiling_auc = roc_auc_score(setup.truth_test, ceiling.decision_function(setup.X_test))
    print(f"{name} seed {seed} done", flush=True)
    return pd.concat(parts, ignore_index=True).assign(data=name, ceiling_auc=ceiling_auc)


def _at(curves: pd.DataFrame, labels: int) -> pd.DataFrame:
    """Each run's row at ``labels`` labels, or its last row where the pool ran out first."""
    runs = curves.groupby(["data", "detector", "strategy", "seed"], sort=False)
    return runs.apply(lambda r: r[r.n_labels <= labels].iloc[-1], include_groups=False).reset_index()


def _mean(part: pd.DataFrame, detector: str, strategy: str, column: str = "test_auc") -> float:
    return part[(part.detector == detector) & (part.strategy == strategy)][column].mean()


def summarise(curves: pd.DataFrame, budget: int) -> tuple[pd.DataFrame, list[str]]:
    rows = []
    at = {n: _at(curves, n) for n in (0, 50, budget)}
    for data in curves.data.unique():
        row: dict = {"data set": data}
        for n, frame in at.items():
            part = frame[frame.data == data]
            row[f"old @{n}"] = _mean(part, "old", "hybrid")
            row[f"new @{n}"] = _mean(part, "new", "hybrid")
            if n == 0:
                row["IF"] = _mean(part, "new", "hybrid", "iforest_auc")
                continue
            row[f"new random @{n}"] = _mean(part, "new", "random")
            row[f"supervised @{n}"] = _mean(part, "new", "hybrid", "supervised_auc")
            row[f"Deep SAD member @{n}"] = _mean(part, "new", "hybrid", "deepsad_auc")
            row[f"without Deep SAD @{n}"] = _mean(part, "new", "hybrid", "without_deepsad_auc")
            if n == 50:
                row["found @50"] = _mean(part, "new", "hybrid", "anomalies_found")
                row["found random @50"] = _mean(part, "new", "random", "anomalies_found")
        row["ceiling"] = curves[curves.data == data].ceiling_auc.mean()
        if "map_auc" in curves:
            row["inputs map"] = _mean(at[0][at[0].data == data], "new", "hybrid", "inputs_map_auc")
            row["map @0"] = _mean(at[0][at[0].data == data], "new", "hybrid", "map_auc")
            row["map @50"] = _mean(at[50][at[50].data == data], "new", "hybrid", "map_auc")
            row["labeled map @50"] = _mean(at[50][at[50].data == data], "new", "hybrid", "labeled_map_auc")
        rows.append(row)
    table = pd.DataFrame(rows)
    t = table[table["data set"] != "mnist0"]
    n = len(t)
    count = lambda mask: f"{int(mask.sum())} of {n}"  # noqa: E731
    means = lambda who: " / ".join(f"{t[f'{who} @{k}'].mean():.3f}" for k in (0, 50, budget))  # noqa: E731
    checks = [
        f"round 0, new >= IF - 0.02: {count(t['new @0'] >= t['IF'] - 0.02)} tables; "
        f"mean new {t['new @0'].mean():.3f} vs IF {t['IF'].mean():.3f}",
        f"50 labels, new above IF and supervised: {count(t['new @50'] > t[['IF', 'supervised @50']].max(axis=1))}",
        f"50 labels, default queue above random labels: {count(t['new @50'] > t['new random @50'])}; "
        f"finds >= 1.5x random's anomalies: {count(t['found @50'] >= 1.5 * t['found random @50'])}",
        f"{budget} labels, within 0.03 of the ceiling: {count(t[f'new @{budget}'] >= t['ceiling'] - 0.03)}",
        f"mean over the tables at 0 / 50 / {budget} labels: old {means('old')}, new {means('new')}",
        f"Deep SAD member alone, mean at 50 / {budget} labels: {t['Deep SAD member @50'].mean():.3f} / "
        f"{t[f'Deep SAD member @{budget}'].mean():.3f}",
        *(
            f"{k} labels, new minus without Deep SAD: mean {gain.mean():+.3f}, lowest {gain.min():+.3f} "
            f"({t['data set'][gain.idxmin()]}), below -0.01 on {count(gain < -0.01)}"
            for k in (50, budget)
            for gain in [t[f"new @{k}"] - t[f"without Deep SAD @{k}"]]
        ),
    ]
    if "map @50" in t:
        checks.append(
            f"map at 50 labels >= inputs map: {count(t['map @50'] >= t['inputs map'])} "
            f"(labeled map: {count(t['labeled map @50'] >= t['inputs map'])}); map falls from 0 to 50 labels on "
            f"{count(t['map @50'] < t['map @0'])} (labeled map: {count(t['labeled map @50'] < t['map @0'])}); mean "
            f"inputs {t['inputs map'].mean():.3f}, map @0 {t['map @0'].mean():.3f}, @50 {t['map @50'].mean():.3f}, "
            f"labeled @50 {t['labeled map @50'].mean():.3f}"
        )
    return table, checks


def main(argv: list[str] | None = None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--odds-dir", required=True)
    p.add_argument("--images-dir", default=None, help="holding mnist_train.npz; omit to skip MNIST digit 0")
    p.add_argument("--datasets", default=",".join(ODDS), help="comma-separated ODDS names")
    p.add_argument("--seeds", type=int_list, default=[0, 1, 2])
    p.add_argument("--budget", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=10)
    p.add_argument("--jobs", type=int, default=os.cpu_count() or 1)
    args = p.parse_args(argv)
    jobs = [(name, str(Path(args.odds_dir) / f"{name}.npz")) for name in args.datasets.split(",") if name]
    if args.images_dir:
        jobs.append(("mnist0", str(Path(args.images_dir) / "mnist_train.npz")))
    with ProcessPoolExecutor(args.jobs) as pool:
        futures = [
            pool.submit(run_one, n, path, s, args.budget, args.batch_size) for n, path in jobs for s in args.seeds
        ]
        curves = pd.concat([f.result() for f in futures], ignore_index=True)
    folder = RESULTS_DIR / "detector"
    folder.mkdir(parents=True, exist_ok=True)
    for data, part in curves.groupby("data"):
        part.to_csv(folder / f"{data}.csv", index=False)
    table, checks = summarise(curves, args.budget)
    notes = [
        f"test ROC-AUC, mean over seeds {','.join(map(str, args.seeds))}; per seed a 60/40 split per class; "
        f"{args.batch_size} labels a round from the default queue (random: uniformly drawn labels)",
        "new: the ensemble (the app's default); old: Deep SAD alone, eta 1, later rounds at lr 1e-4; "
        "IF: IsolationForest, 100 trees, no labels; supervised: logistic regression on the same labels; "
        "ceiling: Deep SAD with every pool anomaly labeled; Deep SAD member: the new default's member alone; "
        "without Deep SAD: the new default fused without it (same weights)",
        "map: ROC-AUC of the truth over the pool from each point's share of anomalies among its 10 nearest "
        "neighbours on the 2-D UMAP of Deep SAD's latents (labeled map: UMAP's semi-supervised mode with the "
        "labels); inputs map: the same on a UMAP of the inputs",
        "mnist0: MNIST digit 0 normal, pollution 0.1, LeNet at 10 + 10 epochs and 3 per later round; "
        "a pool smaller than the budget (lympho) reports its last round",
        *checks,
    ]
    title = "The detector from few labels, against its peers"
    write_report("detector_table", title, command_line("detector_table", argv), notes, table.round(3))
    return table


if __name__ == "__main__":
    main()
