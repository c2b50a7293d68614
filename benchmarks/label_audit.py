"""Does the label audit find the expert's mistakes? A simulated expert who errs, on every ODDS table.

For each ODDS table and seed the simulated expert answers what the default queue asks (10 a round,
up to ``--budget``) and gives the wrong answer with probability ``--label-noise``. After each round
the audit (:func:`deepsad_core.loop.audit.audit_labels`) ranks the labels; the report gives, at the
budget, the share of the audit's five most doubted labels that are wrong, beside the share of wrong
labels overall (what five labels drawn at random would hold). It also gives how often the stopping
hint fired, and the test AUC the later rounds still added after it first did.

    python -m benchmarks.label_audit --odds-dir ../shared/data/odds

Curves go to ``benchmarks/results/label_audit/<data set>.csv``; the table to ``label_audit.md``.
"""

from __future__ import annotations

import argparse

import numpy as np
import pandas as pd

from benchmarks.common import command_line, curves_on_every_table, loop_arguments, save_curves, write_report
from benchmarks.detector_table import ODDS


def _after_hint(run: pd.DataFrame) -> float:
    """Test AUC gained from the round the stopping hint first fired to the last round (NaN if never)."""
    fired = run[run.stop_hint == 1]
    return float(run.test_auc.iloc[-1] - fired.test_auc.iloc[0]) if len(fired) else np.nan


def summarise(curves: pd.DataFrame, budget: int) -> pd.DataFrame:
    last = curves[curves.n_labels == budget]
    table = last.groupby("data").agg(
        runs=("seed", "size"),
        wrong_labels=("wrong_labels", "mean"),
        audit=("audit_precision_at_5", "mean"),
    )
    table["wrong share"] = table.pop("wrong_labels") / budget
    runs = curves.groupby(["data", "seed"])
    hints = runs.stop_hint.max().groupby("data").mean()
    gained = runs.apply(_after_hint, include_groups=False).groupby("data").mean()
    table["runs where the hint fired"] = hints
    table["test AUC gained after it"] = gained
    overall = table.mean(numeric_only=True)
    overall["runs"] = table["runs"].sum()
    table.loc["all 13 tables"] = overall
    table = table.reset_index().rename(
        columns={"data": "data set", "audit": "wrong among the audit's top 5", "wrong share": "wrong among all labels"}
    )
    table["runs"] = table["runs"].astype(int)
    return table.round(3)


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    loop_arguments(parser)
    parser.add_argument("--label-noise", type=float, default=0.1)
    args = parser.parse_args(argv)
    curves = curves_on_every_table(ODDS, args, label_noise=args.label_noise)
    save_curves(curves, "label_audit")
    notes = [
        f"Seeds {', '.join(map(str, args.seeds))}; budget {args.budget}, {args.batch_size} labels a round, the default "
        f"queue; the simulated expert answers wrongly with probability {args.label_noise}. Audit figures at "
        f"{args.budget} labels.",
        "The audit averages three doubts per label: how far the ensemble's label-free members (IsolationForest, kNN) "
        "rank it from its label, a logistic regression of the other labels (out of fold), and the labels of its "
        "five nearest labeled neighbours.",
        "The simulated expert's mistakes come from a generator seeded by the seed alone: the same rounds' answers "
        "are flipped on every table.",
        "The stopping hint fires when the scores rank-correlate at least 0.98 with the last round's, the detector "
        "had predicted at least 90 % of the last answers, and the estimated recall moved by at most 0.05.",
    ]
    write_report("label_audit", "The label audit and the stopping hint, with an expert who errs",
                 command_line("label_audit", argv), notes, summarise(curves, args.budget))  # fmt: skip


if __name__ == "__main__":
    main()
