"""Are the estimates honest? Their 90 % intervals against the truth over the pool, on every ODDS table.

For each ODDS table and seed the simulated expert labels what the default queue asks (10 a round,
up to ``--budget``). Every round from ``--from-labels`` labels on records the estimated anomaly share
of the pool, and the estimated recall at the round's threshold, with their 90 % intervals
(:mod:`deepsad_core.loop.estimates`), beside the truth. The report gives how often the interval holds the
truth, and the error of the estimated recall.

    python -m benchmarks.estimates --odds-dir ../shared/data/odds

Curves go to ``benchmarks/results/estimates/<data set>.csv``; the table to ``estimates.md``.
"""

from __future__ import annotations

import argparse

import pandas as pd

from benchmarks.common import command_line, curves_on_every_table, loop_arguments, save_curves, write_report
from benchmarks.detector_table import ODDS


def mix_with_random_share(share: float | None) -> dict[str, float]:
    """The default queue mix, or with its random part set to ``share`` and the other parts scaled."""
    from deepsad_core.loop.query import DEFAULT_MIX

    if share is None:
        return dict(DEFAULT_MIX)
    others = {k: v for k, v in DEFAULT_MIX.items() if k != "random"}
    scale = (1 - share) / sum(others.values())
    return {**{k: v * scale for k, v in others.items()}, "random": share}


def summarise(curves: pd.DataFrame, from_labels: int) -> pd.DataFrame:
    """Per table and over all: the rounds judged, interval coverage, and the recall's error."""
    judged = curves[(curves.n_labels >= from_labels) & curves.est_recall.notna()].copy()
    judged["prevalence_held"] = judged.true_prevalence.between(judged.est_prevalence_low, judged.est_prevalence_high)
    judged["recall_held"] = judged.true_recall.between(judged.est_recall_low, judged.est_recall_high)
    judged["recall_error"] = (judged.est_recall - judged.true_recall).abs()
    judged["recall_width"] = judged.est_recall_high - judged.est_recall_low
    parts = {"prevalence_held": "mean", "recall_held": "mean", "recall_error": "mean", "recall_width": "mean"}
    table = judged.groupby("data").agg(rounds=("round", "size"), **{k: (k, v) for k, v in parts.items()})
    overall = judged.agg({"round": "size", **parts}).rename({"round": "rounds"})
    table.loc["all 13 tables"] = overall
    table = table.reset_index().rename(
        columns={
            "data": "data set",
            "prevalence_held": "prevalence in its 90 % interval",
            "recall_held": "recall in its 90 % interval",
            "recall_error": "recall: mean abs. error",
            "recall_width": "recall: mean interval width",
        }
    )
    table["rounds"] = table["rounds"].astype(int)
    return table.round(3)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    loop_arguments(parser)
    parser.add_argument("--from-labels", type=int, default=20)
    parser.add_argument("--random-share", type=float, help="the queue's random part (default: the app's mix)")
    args = parser.parse_args(argv)
    suffix = "" if args.random_share is None else f"-random{round(args.random_share * 100)}"
    mix = mix_with_random_share(args.random_share)
    curves = curves_on_every_table(ODDS, args, mix=mix)
    save_curves(curves, f"estimates{suffix}")
    table = summarise(curves, args.from_labels)
    queue = "the default queue" if args.random_share is None else "the default queue with its random part changed"
    notes = [
        f"Seeds {', '.join(map(str, args.seeds))}; budget {args.budget}, {args.batch_size} labels a round, {queue} "
        f"({', '.join(f'{k} {v:.2f}' for k, v in mix.items())}); every round from {args.from_labels} labels on is "
        "judged.",
        "Truth over the pool: its share of anomalies, and the share of them above the round's threshold (the one "
        "the app chooses from the labels).",
    ]
    title = "Estimates from the labels against the truth" + (
        "" if args.random_share is None else f", random part {args.random_share:.0%}"
    )
    write_report(f"estimates{suffix}", title, command_line("estimates", argv), notes, table)


if __name__ == "__main__":
    main()
