"""The ``deepsad`` command line: one sub-command per job, each with its own ``--help``."""

from __future__ import annotations

import argparse
import os
import sys
from pathlib import Path

import deepsad_core


def _int_list(text: str) -> list[int]:
    try:
        return [int(t) for t in text.split(",") if t.strip()]
    except ValueError:
        raise argparse.ArgumentTypeError(f"expected comma-separated integers, got {text!r}") from None


def _positive_int(text: str) -> int:
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value < 1:
        raise argparse.ArgumentTypeError(f"expected a whole number of at least 1, got {text!r}")
    return value


def _add_simulate(commands) -> None:
    from deepsad_core.loop.settings import DETECTORS, RoundConfig

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
    p.add_argument("--epochs", type=int, default=RoundConfig.first_epochs, help="round 0 training epochs")
    p.add_argument("--ae-epochs", type=int, default=RoundConfig.first_ae_epochs, help="round 0 autoencoder epochs")
    p.add_argument("--epochs-per-round", type=int, default=RoundConfig.epochs_per_round)
    p.add_argument("--detector", choices=DETECTORS, default=DEFAULT_DETECTOR, help="the app's default: ensemble")
    p.add_argument("--eta", type=float, default=RoundConfig.eta, help="weight of the labeled samples in Deep SAD")
    p.add_argument("--round-lr", type=float, default=RoundConfig.round_lr, help="Deep SAD learning rate after round 0")
    p.add_argument(
        "--label-noise", type=float, default=0.0, help="the simulated expert answers wrongly with this probability"
    )
    p.add_argument("--out", required=True, help="folder for curves.csv and curves.png")
    p.set_defaults(run=_run_simulate)


def _run_simulate(args: argparse.Namespace) -> int:
    from deepsad_core.loop.settings import RoundConfig
    from deepsad_core.loop.simulate import load_simulation_data, part_summary, plot_curves, simulate

    strategies = args.strategies or ["random", "most_anomalous", "hybrid"]
    config = RoundConfig(
        detector=args.detector,
        first_epochs=args.epochs,
        first_ae_epochs=args.ae_epochs,
        pretrain=args.ae_epochs > 0,
        epochs_per_round=args.epochs_per_round,
        eta=args.eta,
        round_lr=args.round_lr,
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
                setup,
                strategies,
                budget=args.budget,
                batch_size=args.batch_size,
                config=config,
                seed=seed,
                log=log,
                label_noise=args.label_noise,
            )
        )
    curves = pd.concat(parts, ignore_index=True)
    curves.to_csv(out / "curves.csv", index=False)
    plot_curves(curves, out / "curves.png", title=Path(args.data).stem)
    summary = curves.groupby(["strategy", "n_labels"])[["test_auc", "anomalies_found"]].mean().unstack(0)
    print(summary.round(3).to_string())
    print(part_summary(curves))
    print(f"wrote {out / 'curves.csv'} and {out / 'curves.png'}", file=sys.stderr)
    return 0


def _add_export(commands) -> None:
    p = commands.add_parser("export", help="write a detector bundle from a project round",
                            description="Export a project's round (default: the current one) as a bundle.")  # fmt: skip
    p.add_argument("project", help="the project folder")
    p.add_argument("--round", type=int, default=None, dest="round_number", help="round number (default: current)")
    p.add_argument("--out", required=True, help="bundle path: a folder, or a name ending in .zip")
    p.add_argument("--force", action="store_true", help="replace a bundle already at --out (nothing else is)")
    p.add_argument("--sign-key", help="a key file: sign the bundle (HMAC-SHA256 of its checksums)")
    p.set_defaults(run=_run_export)


def _run_export(args: argparse.Namespace) -> int:
    from deepsad_core.bundle.format import read_key
    from deepsad_core.studio import Project

    key = read_key(args.sign_key) if args.sign_key else None
    path = Project.open(args.project).export(args.round_number, out=args.out, force=args.force, sign_key=key)
    print(f"wrote {path}")
    return 0


def _add_score(commands) -> None:
    p = commands.add_parser(
        "score",
        help="score a file or image folder with a bundle",
        description="Score INPUT (CSV/TSV/Parquet/.npy/.npz, an image or a folder of images) with a bundle. "
        "Tables stream in batches, so memory stays bounded however large the file.",
    )
    p.add_argument("bundle", help="bundle folder or .zip")
    p.add_argument("input", help="file or folder to score")
    p.add_argument("--out", required=True, help="scores.csv or scores.parquet: id, score, anomaly (1/0)")
    p.add_argument("--backend", choices=["onnx", "torchscript"], default="onnx",
                   help="torchscript runs code stored in the bundle: only for bundles you trust")  # fmt: skip
    p.add_argument("--verify-key", help="a key file: refuse the bundle unless it is signed with this key")
    p.add_argument("--batch-rows", type=int, default=100_000, help="rows per streamed batch")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    p.add_argument(
        "--engine", choices=["local", "spark"], default="local",
        help="spark: score CSV/TSV/Parquet files, folders or globs on Apache Spark into a Parquet folder "
        "(pip install pyspark; Java 17)",
    )  # fmt: skip
    p.add_argument("--master", default="local[*]", help="the Spark master with --engine spark, e.g. spark://host:7077")
    p.set_defaults(run=_run_score)


def _run_score(args: argparse.Namespace) -> int:
    from deepsad_core.bundle.read import load_detector
    from deepsad_core.bundle.scoring import score_to_file

    if args.engine == "spark":
        return _run_score_spark(args)
    detector = load_detector(args.bundle, args.backend, verify_key=args.verify_key)
    n = score_to_file(detector, args.input, args.out, batch_rows=args.batch_rows, progress=not args.quiet)
    print(f"scored {n} samples -> {args.out}")
    return 0


def _run_score_spark(args: argparse.Namespace) -> int:
    """``deepsad score --engine spark``: the bundle's scores, with the input's columns, as Parquet."""
    from deepsad_core.bundle.spark import read_for_scoring, score_spark
    from deepsad_core.exceptions import DataError

    try:
        from pyspark.errors import PySparkException
        from pyspark.sql import SparkSession
    except ImportError:
        raise DataError("--engine spark needs pyspark: pip install pyspark (and Java 17)") from None
    if Path(args.out).exists():
        raise DataError(f"{args.out} exists; Spark writes a new Parquet folder")
    spark = SparkSession.builder.master(args.master).appName("deepsad score").getOrCreate()
    spark.sparkContext.setLogLevel("OFF")  # a failing task is reported below in one line, not as Spark logs it
    try:
        frame = read_for_scoring(spark, args.input)
        scored = score_spark(frame, args.bundle, verify_key=args.verify_key)
        scored.write.parquet(args.out)
        n = spark.read.parquet(args.out).count()
    except PySparkException as e:  # a task's own error (a bad row) comes back wrapped: say what it was
        detail = str(e)
        found = [line for line in detail.splitlines() if "DataError:" in line or "AnalysisException" in line]
        raise DataError(found[-1].split("DataError:")[-1].strip() if found else detail.splitlines()[0]) from None
    finally:
        spark.stop()
    print(f"scored {n} samples on Spark ({args.master}) -> {args.out}")
    return 0


# rounds.DETECTORS and RoundConfig.detector, written out: importing rounds here would load torch for
# every command, `deepsad score` included (a test keeps them equal)
DETECTORS, DEFAULT_DETECTOR = ("ensemble", "deepsad"), "ensemble"


def _add_train(commands) -> None:
    p = commands.add_parser(
        "train",
        help="train a detector headlessly and write a bundle",
        description="Train Deep SAD on a table or image folder, with optional expert labels, and export a bundle.",
    )
    p.add_argument("input", help="table, array file, image folder or ZIP")
    p.add_argument("--labels", help="CSV with columns id,label (label: normal or anomalous)")
    p.add_argument("--id-column", help="the input's id column (default: a column named id, else row numbers)")
    p.add_argument("--epochs", type=int, default=50)
    p.add_argument("--ae-epochs", type=int, default=50)
    p.add_argument("--contamination", type=float, default=0.05, help="flagged share when labels cannot set it")
    p.add_argument(
        "--net",
        default="auto",
        help="auto (images: the pretrained backbone; tables: an MLP), backbone, "
        "mnist_lenet, fmnist_lenet, cifar10_lenet, conv or mlp",
    )
    p.add_argument("--backbone", default=None, help="efficientnet-lite0 (default), torchvision:<arch> or timm:<name>")
    p.add_argument("--detector", choices=DETECTORS, default=DEFAULT_DETECTOR, help="the app's default: ensemble")
    p.add_argument("--seed", type=int, default=0, help="seeds initialisation, shuffling and the members")
    p.add_argument(
        "--nproc", type=_positive_int, default=1,
        help="train in N processes on this machine (torchrun, DDP: gloo on CPUs, NCCL on GPUs); on a cluster, "
        "start `torchrun --nnodes ... -m deepsad_core train ...` yourself",
    )  # fmt: skip
    p.add_argument("--out", required=True, help="bundle path: a folder, or a name ending in .zip")
    p.add_argument("--force", action="store_true", help="replace a bundle already at --out (nothing else is)")
    p.add_argument("--sign-key", help="a key file: sign the bundle (HMAC-SHA256 of its checksums)")
    p.set_defaults(run=_run_train)


def _run_train(args: argparse.Namespace) -> int:
    import subprocess

    from deepsad_core.bundle.write import check_output
    from deepsad_core.model import ddp

    check_output(args.out, args.force)  # before training, so a taken path or a bad key costs no minutes
    if args.nproc > 1 and "RANK" not in os.environ:  # this process starts the others (torchrun), then waits
        return subprocess.call(ddp.torchrun_command(args.nproc, _without_nproc(args.argv)))
    ddp.start_from_env()
    try:
        return _train_here(args)
    finally:
        ddp.finish()


def _without_nproc(argv: list[str]) -> list[str]:
    """The command line without ``--nproc N`` (each torchrun process trains as one rank)."""
    out, skip = [], False
    for arg in argv:
        if skip:
            skip = False
        elif arg == "--nproc":
            skip = True
        elif not arg.startswith("--nproc="):
            out.append(arg)
    return out


def _train_here(args: argparse.Namespace) -> int:
    import numpy as np
    from tqdm import tqdm

    from deepsad_core.base.labels import label_counts
    from deepsad_core.bundle.format import read_key
    from deepsad_core.bundle.write import export_bundle
    from deepsad_core.data import load_dataset
    from deepsad_core.loop.round import model_input, run_round
    from deepsad_core.loop.settings import RoundConfig
    from deepsad_core.model import ddp

    key = read_key(args.sign_key) if args.sign_key else None
    dataset = load_dataset(args.input, id_column=args.id_column)
    semi = _semi_targets_from_labels(args.labels, dataset.ids) if args.labels else np.zeros(len(dataset), int)
    config = RoundConfig(
        first_epochs=args.epochs,
        first_ae_epochs=args.ae_epochs,
        pretrain=args.ae_epochs > 0,
        net=args.net,
        detector=args.detector,
        seed=args.seed,
        contamination=args.contamination,
        max_train_samples=None,  # a headless fit trains on everything given
        **({"backbone": args.backbone} if args.backbone else {}),
    )
    bars: dict = {}
    seconds: dict[str, float] = {}  # each training phase's time, for the manifest
    quiet = not ddp.is_main()  # one set of progress bars, rank 0's

    def features(done: int, total: int, seconds_left: float) -> None:
        if quiet:
            return
        if "features" not in bars:
            bars["features"] = tqdm(total=total, desc="features", unit="image", file=sys.stderr)
        bars["features"].update(done - bars["features"].n)

    def report(p) -> None:  # one progress bar per phase (features, pretrain, train)
        seconds[p.phase] = p.seconds
        if quiet:
            return
        if p.phase not in bars:
            bars[p.phase] = tqdm(total=p.epochs, desc=f"{p.phase:8s}", unit="epoch", file=sys.stderr)
        bars[p.phase].update(1)
        bars[p.phase].set_postfix(loss=f"{p.loss:.4g}")

    try:
        X, extractor = model_input(dataset.X, config, progress=features)
        result = run_round(None, X, semi, config, 0, on_features=extractor is not None, callback=report)
    finally:
        for bar in bars.values():
            bar.close()
    if not ddp.is_main():
        return 0  # rank 0 writes the bundle
    model, threshold = result.model, result.threshold  # the threshold from the labels, as the app chooses it
    info = {"training_config": config.to_dict(), "label_counts": label_counts(semi), "source": dataset.source_name,
            "training_seconds": seconds, "processes": ddp.rank_and_size()[1]}  # fmt: skip
    paths = export_bundle(
        model, dataset.preprocessor, args.out, X_sample=dataset.X[:1000], threshold=threshold,
        info=info, force=args.force, sign_key=key, backbone=extractor,
    )  # fmt: skip
    print(f"wrote {args.out} ({len(paths)} file(s)); threshold {threshold.value:.4g} ({threshold.method})")
    return 0


def _semi_targets_from_labels(path: str, ids):
    import pandas as pd

    from deepsad_core.base.labels import semi_targets
    from deepsad_core.exceptions import DataError

    labels = pd.read_csv(path, dtype=str)
    if not {"id", "label"} <= set(labels.columns):
        raise DataError(f"{path} needs the columns id and label; it has {', '.join(labels.columns)}")
    bad = sorted(set(labels["label"].str.strip().str.lower()) - {"normal", "anomalous"})
    if bad:
        raise DataError(f"{path}: labels must be 'normal' or 'anomalous'; found {bad[:5]}")
    position = {str(i): k for k, i in enumerate(ids)}
    unknown = [i for i in labels["id"] if i not in position]
    if unknown:
        raise DataError(f"{path} names {len(unknown)} id(s) not in the data, e.g. {unknown[:5]}")
    given = dict(zip((position[i] for i in labels["id"]), labels["label"].str.strip().str.lower(), strict=True))
    return semi_targets(len(ids), given)


def _add_info(commands) -> None:
    p = commands.add_parser("info", help="describe a bundle", description="Verify a bundle and print its manifest.")
    p.add_argument("bundle", help="bundle folder or .zip")
    p.add_argument("--verify-key", help="a key file: refuse the bundle unless it is signed with this key")
    p.set_defaults(run=_run_info)


def _run_info(args: argparse.Namespace) -> int:
    import json

    from deepsad_core.bundle.read import load_detector

    info = load_detector(args.bundle, verify_key=args.verify_key).info()
    print(json.dumps(info, indent=2))
    return 0


_COMMANDS = {"train": _add_train, "export": _add_export, "score": _add_score, "info": _add_info,
             "simulate": _add_simulate}  # fmt: skip


def build_parser(command: str | None = None) -> argparse.ArgumentParser:
    """The parser of every command, or of ``command`` alone: simulate's defaults come from the training
    settings, whose import loads torch, and `deepsad score` should not wait a second for that."""
    parser = argparse.ArgumentParser(
        prog="deepsad",
        description="DeepSAD Studio: semi-supervised anomaly detection with Deep SAD.",
    )
    parser.add_argument("--version", action="version", version=f"deepsad {deepsad_core.__version__}")
    commands = parser.add_subparsers(dest="command", metavar="COMMAND")
    for name, add in _COMMANDS.items():
        if command in (None, name):
            add(commands)
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    parser = build_parser(argv[0] if argv and argv[0] in _COMMANDS else None)
    args = parser.parse_args(argv)
    args.argv = argv  # what a command that starts others passes on
    if getattr(args, "run", None) is None:
        parser.print_help(sys.stderr)
        return 2
    from deepsad_core.exceptions import DeepSADError, OutputExistsError

    try:
        return int(args.run(args) or 0)
    except OutputExistsError as e:  # a usage error: the command was refused, nothing was written
        print(f"deepsad {args.command}: error: {e}", file=sys.stderr)
        return 2
    except (DeepSADError, FileExistsError, FileNotFoundError) as e:  # a clear line, not a traceback
        print(f"deepsad {args.command}: error: {e}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
