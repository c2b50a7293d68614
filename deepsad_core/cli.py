"""The ``deepsad`` command line: one sub-command per job, each with its own ``--help``."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import deepsad_core


def _int_list(text: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _add_simulate(commands) -> None:
    p = commands.add_parser(
        "simulate",
        help="benchmark query strategies with a simulated expert answering from the truth",
        description="Run the labeling loop with a simulated expert on an .npz (X, y) and write learning curves.",
    )
    p.add_argument("data", help=".npz with X and y (y: 1 = anomaly, or classes with --normal-class)")
    p.add_argument("--normal-class", type=int, default=None, help="class of y that is normal; the rest are anomalies")
    p.add_argument("--pollution", type=float, default=0.1, help="anomaly share of the pool with --normal-class")
    p.add_argument(
        "--strategy", action="append", dest="strategies", help="repeatable; default: random, most_anomalous, hybrid"
    )
    p.add_argument("--budget", type=int, default=100, help="labels to give in total")
    p.add_argument("--batch-size", type=int, default=10, help="labels per round")
    p.add_argument("--seeds", type=_int_list, default=[0, 1, 2])
    p.add_argument("--epochs", type=int, default=30, help="round 0 training epochs")
    p.add_argument("--ae-epochs", type=int, default=30, help="round 0 autoencoder epochs")
    p.add_argument("--epochs-per-round", type=int, default=10)
    p.add_argument("--out", required=True, help="folder for curves.csv and curves.png")
    p.set_defaults(run=_run_simulate)


def _run_simulate(args: argparse.Namespace) -> int:
    from deepsad_core.rounds import RoundConfig
    from deepsad_core.simulate import load_simulation_data, plot_curves, simulate

    strategies = args.strategies or ["random", "most_anomalous", "hybrid"]
    config = RoundConfig(
        first_epochs=args.epochs,
        first_ae_epochs=args.ae_epochs,
        pretrain=args.ae_epochs > 0,
        epochs_per_round=args.epochs_per_round,
    )
    out = Path(args.out)
    out.mkdir(parents=True, exist_ok=True)
    import pandas as pd

    parts = []
    for seed in args.seeds:
        setup = load_simulation_data(args.data, seed, args.normal_class, args.pollution)
        log = lambda line: print(line, file=sys.stderr, flush=True)  # noqa: E731
        parts.append(
            simulate(
                setup, strategies, budget=args.budget, batch_size=args.batch_size, config=config, seed=seed, log=log
            )
        )
    curves = pd.concat(parts, ignore_index=True)
    curves.to_csv(out / "curves.csv", index=False)
    plot_curves(curves, out / "curves.png", title=Path(args.data).stem)
    summary = curves.groupby(["strategy", "labels_used"])[["test_auc", "anomalies_found"]].mean().unstack(0)
    print(summary.round(3).to_string())
    print(f"wrote {out / 'curves.csv'} and {out / 'curves.png'}", file=sys.stderr)
    return 0


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="deepsad",
        description="DeepSAD Studio: semi-supervised anomaly detection with Deep SAD.",
    )
    parser.add_argument("--version", action="version", version=f"deepsad {deepsad_core.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    _add_simulate(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    if getattr(args, "run", None) is None:
        parser.print_help(sys.stderr)
        return 2
    return int(args.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
