"""The labeling-loop table: mean test AUC and anomalies found at a label count, from `deepsad simulate` curves.

    for ds in cardio satellite thyroid; do
      deepsad simulate ../shared/data/odds/$ds.npz --strategy random --strategy most_anomalous \\
        --strategy hybrid --seeds 0,1,2 --budget 100 --batch-size 10 --out benchmarks/results/simulate_$ds
    done
    python -m benchmarks.simulation_table --at 50
"""

from __future__ import annotations

import argparse

import pandas as pd

from benchmarks.common import RESULTS_DIR, command_line, write_report
from deepsad_core.query import DEFAULT_MIX


def main(argv: list[str] | None = None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--at", type=int, default=50, help="labels used")
    args = p.parse_args(argv)
    rows = []
    for folder in sorted(RESULTS_DIR.glob("simulate_*")):
        curves = pd.read_csv(folder / "curves.csv")
        at = curves[curves.labels_used == args.at]
        for strategy, part in at.groupby("strategy", sort=False):
            rows.append(
                {
                    "data set": folder.name.removeprefix("simulate_"),
                    "strategy": strategy,
                    "seeds": part.seed.nunique(),
                    f"test AUC at {args.at} labels": f"{part.test_auc.mean():.3f} ± {part.test_auc.std():.3f}",
                    f"anomalies found in {args.at} queries": round(part.anomalies_found.mean(), 1),
                    "AUC before labels": round(curves[curves.labels_used == 0].test_auc.mean(), 3),
                }
            )
    table = pd.DataFrame(rows)
    command = command_line("simulation_table", argv)
    notes = [
        "simulated expert answering from the truth; per seed a 60/40 split per class, the pool is the training "
        "part with its natural anomaly share; round 0: 30 + 30 epochs without labels (lr 1e-3), then 10 labels "
        "and 20 warm-start epochs per round (lr 1e-4); hybrid = "
        + ", ".join(f"{share:.0%} {name.replace('_', ' ')}" for name, share in DEFAULT_MIX.items())
        + " (the app's defaults); MNIST: cut epochs, see below",
        "curves: benchmarks/results/simulate_<data set>/curves.csv and curves.png",
    ]
    write_report("simulate", "Labeling loop: strategies against random", command, notes, table)
    return table


if __name__ == "__main__":
    main()
