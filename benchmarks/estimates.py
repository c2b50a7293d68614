"""Are the estimates honest, and is the suggested threshold right? Both against the truth over the pool,
on every ODDS table.

For each ODDS table and seed the simulated expert labels the first 10 cards of each default queue, in
the order the Label page shows them, up to ``--budget`` labels. Every round from ``--from-labels``
labels on records the estimated anomaly share of the pool and the estimated recall at the round's
threshold (the one the app suggests), with their 90 % intervals
(:mod:`deepsad_core.loop.estimates`), beside the truth. The report gives how often the intervals
hold the truth, the recall's error and interval width, and at the last round how good the suggested
threshold is: its true F1 against the best F1 any threshold reaches on the pool, and the share it
flags against the true anomaly share.

    python -m benchmarks.estimates --odds-dir ../shared/data/odds
    python -m benchmarks.estimates --odds-dir ../shared/data/odds --budget 100

Curves go to ``benchmarks/results/estimates[-budget100]/<data set>.csv``; the table to
``estimates[-budget100].md``.
"""

from __future__ import annotations

import argparse

import pandas as pd

from benchmarks.common import command_line, curves_on_every_table, loop_arguments, save_curves, write_report
from benchmarks.detector_table import ODDS

COLUMNS = {
    "prevalence_held": "prevalence in its 90 % interval",
    "recall_held": "recall in its 90 % interval",
    "recall_error": "recall: mean abs. error",
    "recall_width": "recall: mean interval width",
    "f1_ratio": "last round: F1 / best F1",
    "share_ratio": "last round: flagged / true share",
}


def summarise(curves: pd.DataFrame, from_labels: int) -> tuple[pd.DataFrame, dict[str, float]]:
    """Per table and over all: the rounds judged, interval coverage, the recall's error and width, and
    the suggested threshold at the last round; with the figures at the last round alone."""
    judged = curves[(curves.n_labels >= from_labels) & curves.est_recall.notna()].copy()
    judged["prevalence_held"] = judged.true_prevalence.between(judged.est_prevalence_low, judged.est_prevalence_high)
    judged["recall_held"] = judged.true_recall.between(judged.est_recall_low, judged.est_recall_high)
    judged["recall_error"] = (judged.est_recall - judged.true_recall).abs()
    judged["recall_width"] = judged.est_recall_high - judged.est_recall_low
    judged["f1_ratio"] = judged.true_f1 / judged.best_f1
    judged["share_ratio"] = judged.flagged_share / judged.true_prevalence
    last = judged[judged.n_labels == judged.groupby(["data", "seed"]).n_labels.transform("max")]
    parts = ["prevalence_held", "recall_held", "recall_error", "recall_width"]
    table = judged.groupby("data").agg(rounds=("round", "size"), **{k: (k, "mean") for k in parts})
    table = table.join(last.groupby("data")[["f1_ratio", "share_ratio"]].mean())
    table.loc["all 13 tables"] = [len(judged), *judged[parts].mean(), *last[["f1_ratio", "share_ratio"]].mean()]
    table = table.reset_index().rename(columns={"data": "data set", **COLUMNS})
    table["rounds"] = table["rounds"].astype(int)
    at_last = {
        "labels": float(last.n_labels.median()),
        **last[["prevalence_held", "recall_held", "recall_error", "recall_width"]].mean().to_dict(),
        "share_within_half_and_double": int(last.groupby("data").share_ratio.mean().between(0.5, 2).sum()),
    }
    return table.round(3), at_last


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    loop_arguments(parser)
    parser.add_argument("--from-labels", type=int, default=20)
    args = parser.parse_args(argv)
    suffix = "" if args.budget == 50 else f"-budget{args.budget}"
    curves = curves_on_every_table(ODDS, args)
    save_curves(curves, f"estimates{suffix}")
    table, last = summarise(curves, args.from_labels)
    from deepsad_core.loop.query import DEFAULT_MIX

    notes = [
        f"Seeds {', '.join(map(str, args.seeds))}; budget {args.budget}; each round the expert answers the first "
        f"{args.batch_size} cards of the default queue of 20 in the Label page's order "
        f"({', '.join(f'{k} {v:.2f}' for k, v in DEFAULT_MIX.items())}); every round from {args.from_labels} "
        "labels on is judged.",
        "Truth over the pool: its share of anomalies, and the share of them above the round's threshold (the one "
        "the app suggests: the best estimated F1 among the shares within the anomaly share's interval).",
        f"At the last round ({last['labels']:.0f} labels): prevalence in its interval {last['prevalence_held']:.3f}, "
        f"recall in its interval {last['recall_held']:.3f}, recall error {last['recall_error']:.3f}, recall "
        f"width {last['recall_width']:.3f}; the suggested threshold flags within half and twice the true "
        f"anomaly share on {last['share_within_half_and_double']} of 13 tables.",
    ]
    title = "Estimates and the suggested threshold against the truth" + (
        "" if args.budget == 50 else f", budget {args.budget}"
    )
    write_report(f"estimates{suffix}", title, command_line("estimates", argv), notes, table)


if __name__ == "__main__":
    main()
