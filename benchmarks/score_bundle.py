"""End-to-end batch scoring: ``deepsad score`` through ONNX on a generated 1,000,000-row table.

The table is the 9-column sensor table of ``benchmarks.scale`` (three operating modes, 1 % anomalies).
Trains the default detector on the first 20,000 rows (``deepsad train``), then times ``deepsad
score`` in a separate process, CSV to CSV and Parquet to Parquet, and reads that process's peak RSS.
Targets: >= 250,000 rows/s end to end and peak RSS <= 1.5 GB on 2 cores.

    python -m benchmarks.score_bundle --rows 1000000
"""

from __future__ import annotations

import argparse
import subprocess
import sys
import tempfile
from pathlib import Path

import pandas as pd
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from benchmarks.common import command_line, timed_cli, write_report
from benchmarks.scale import N_COLUMNS, write_sensor_csv


def main(argv: list[str] | None = None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--workdir", default=None)
    args = p.parse_args(argv)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="deepsad-score-"))
    work.mkdir(parents=True, exist_ok=True)
    csv = write_sensor_csv(work / f"sensors-{args.rows}.csv", args.rows)
    train = work / "train.csv"
    pacsv.write_csv(pacsv.read_csv(csv).slice(0, 20_000), train)
    deepsad = [sys.executable, "-m", "deepsad_core"]
    subprocess.run([*deepsad, "train", str(train), "--epochs", "10", "--ae-epochs", "10", "--out", str(work / "b.zip"),
                    "--force"], check=True, capture_output=True)  # fmt: skip
    parquet = work / f"sensors-{args.rows}.parquet"
    if not parquet.exists():
        pq.write_table(pacsv.read_csv(csv), parquet)
    rows = []
    for source, out in ((csv, work / "scores.csv"), (parquet, work / "scores.parquet")):
        # the scoring process's own peak RSS (the training process is not counted)
        seconds, peak_mb = timed_cli(["score", str(work / "b.zip"), str(source), "--out", str(out), "--quiet"])
        scored = pq.read_metadata(out).num_rows if out.suffix == ".parquet" else sum(1 for _ in out.open()) - 1
        kind = f"{source.suffix[1:]} -> {out.suffix[1:]}"
        rows.append({"input -> output": kind, "rows": scored, "seconds": round(seconds, 2),
                     "rows/s": int(scored / seconds), "peak RSS MB": int(peak_mb)})  # fmt: skip
    table = pd.DataFrame(rows)
    command = command_line("score_bundle", argv)
    notes = [
        f"{args.rows:,} rows x {N_COLUMNS} float columns and a truth column the bundle ignores "
        f"({csv.stat().st_size / 1e6:.0f} MB as CSV, {parquet.stat().st_size / 1e6:.0f} MB as Parquet); the "
        "default detector (the ensemble), ONNX backend, batches of 100,000 rows",
        "seconds: the whole `deepsad score` process (start-up, bundle check, read, preprocess, score, write)",
        "peak RSS: of the `deepsad score` process alone",
        "targets: >= 250,000 rows/s and <= 1,536 MB",
    ]
    write_report("score_bundle", "Batch scoring with `deepsad score`", command, notes, table)
    return table


if __name__ == "__main__":
    main()
