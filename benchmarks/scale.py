"""Rounds on large tables: project creation, round 0, later rounds, the map and peak memory at 10k to 1M rows.

For each size, a generated sensor table (9 float columns and a truth column, 1 % anomalies: one
column pushed 4 to 8 standard deviations) is written as CSV; then a fresh process does what the app
does with the default settings: ``Project.create`` from the CSV, round 0 (``RoundWorker.run``),
three later rounds each after labeling 10 queued samples (answered from the truth), and the UMAP
map of the last round. It reports each step's seconds, the process's peak RSS (``VmHWM``: the app's
process) and the map process's. Targets at 1,000,000 rows on 2 cores: creation + round 0 <= 120 s,
each later round <= 60 s, peak RSS <= 3 GB.

    python -m benchmarks.scale --rows 10000,100000,1000000
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from benchmarks.common import command_line, int_list, write_report

N_COLUMNS = 9


def sensor_table(rows: int, seed: int = 0) -> pa.Table:
    """``rows`` rows of 9 correlated float columns (three operating modes) and ``truth`` (1 % anomalies)."""
    rng = np.random.default_rng(seed)
    centres, mixing = rng.normal(0, 3, (3, 4)), rng.normal(0, 1, (4, N_COLUMNS))
    X = (centres[rng.integers(0, 3, rows)] + rng.normal(0, 1, (rows, 4))) @ mixing
    X += rng.normal(0, 0.3, (rows, N_COLUMNS))
    truth = rng.random(rows) < 0.01
    hit = np.flatnonzero(truth)
    column = rng.integers(0, N_COLUMNS, len(hit))
    X[hit, column] += rng.choice([-1, 1], len(hit)) * rng.uniform(4, 8, len(hit)) * X.std(axis=0)[column]
    columns = {f"sensor_{j}": pa.array(X[:, j].astype(np.float32)) for j in range(N_COLUMNS)}
    return pa.table({**columns, "truth": pa.array(truth.astype(np.int8))})


def write_sensor_csv(path: Path, rows: int, seed: int = 0) -> Path:
    if not path.exists():
        pacsv.write_csv(sensor_table(rows, seed), path)
    return path


def peak_rss_mb(pid: int | str = "self") -> float:
    """The process's peak resident memory (``VmHWM``), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM"):
            return int(line.split()[1]) / 1024
    return float("nan")


def one_size(csv: Path, workspace: Path, later_rounds: int) -> dict:
    """What the app does with a table of this size; run in its own process (its peak RSS is the answer)."""
    from deepsad_core.studio import Project
    from deepsad_core.studio.maps import default_service
    from deepsad_core.studio.worker import RoundWorker

    default_service().warm_up().result()  # UMAP's compile is not the table's cost
    start = time.perf_counter()
    project = Project.create(workspace, f"scale-{time.time_ns()}", csv)
    created = time.perf_counter() - start
    worker = RoundWorker(project)
    seconds = []
    for k in range(later_rounds + 1):
        if k:  # the expert answers 10 of the queue
            truth = project.truth()
            for q in project.current_round().queue[:10]:
                project.label(q["index"], "anomalous" if truth[q["index"]] else "normal", round_number=k - 1)
        start = time.perf_counter()
        status = worker.run()
        seconds.append(time.perf_counter() - start)
        if status.state != "done":
            raise RuntimeError(f"round {k} {status.state}: {status.message}")
        if k < later_rounds:
            worker.wait_for_map()  # each round's map is drawn before the next round, as while an expert reads
    start = time.perf_counter()
    worker.wait_for_map()
    mapped = time.perf_counter() - start
    current = project.current_round()
    first = project.rounds()[0]
    return {
        "rows": len(project),
        "create s": created,
        "round 0 s": seconds[0],
        "create + round 0 s": created + seconds[0],
        "later round s (max)": max(seconds[1:]),
        "UMAP map s": mapped,
        "map points": len(current.map_index),
        "peak RSS MB": peak_rss_mb(),
        "map process peak RSS MB": peak_rss_mb(default_service().pid),
        "AUC round 0": first.metrics.get("auc"),
        f"AUC at {current.n_labels} labels": current.metrics.get("auc"),
    }


def main(argv: list[str] | None = None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int_list, default=[10_000, 100_000, 1_000_000])
    p.add_argument("--later-rounds", type=int, default=3)
    p.add_argument("--workdir", default=None, help="where the CSVs and workspaces go (default: a temp dir)")
    p.add_argument("--one", nargs=2, metavar=("CSV", "WORKSPACE"), help=argparse.SUPPRESS)  # the child's job
    args = p.parse_args(argv)
    if args.one:
        print(json.dumps(one_size(Path(args.one[0]), Path(args.one[1]), args.later_rounds)))
        return pd.DataFrame()
    work = Path(args.workdir or tempfile.mkdtemp(prefix="deepsad-scale-"))
    work.mkdir(parents=True, exist_ok=True)
    rows = []
    for n in args.rows:
        csv = write_sensor_csv(work / f"sensors-{n}.csv", n)
        child = [sys.executable, "-m", "benchmarks.scale", "--later-rounds", str(args.later_rounds)]
        done = subprocess.run([*child, "--one", str(csv), str(work / "ws")], check=True, capture_output=True, text=True)
        rows.append(json.loads(done.stdout.strip().splitlines()[-1]))
        print(rows[-1], file=sys.stderr, flush=True)
    table = pd.DataFrame(rows).round(3)
    table["rows"] = table["rows"].map("{:,}".format)
    notes = [
        f"a generated sensor table: {N_COLUMNS} float columns in three operating modes, 1 % anomalies "
        "(one column 4 to 8 standard deviations off), as CSV; the app's default settings "
        "(ensemble; round 0: 30 + 30 epochs; later rounds: 20 epochs; training sample capped at 50,000 "
        "unlabeled rows; maps of at most 20,000 points plus labeled and queued ones)",
        f"each size in a fresh process: `Project.create` from the CSV, round 0, then {args.later_rounds} "
        "rounds each after 10 labels from the queue (answered from the truth); a round is training, "
        "scores and latents of every row, threshold, queue, estimates and saving",
        "UMAP map s: the last round's map, drawn in the map process after the round (the PCA map is "
        "there at once); peak RSS: VmHWM of the app's process and of the map process",
        "targets at 1,000,000 rows: create + round 0 <= 120 s, later rounds <= 60 s, peak RSS <= 3,072 MB",
    ]
    write_report("scale", "Rounds on large tables", command_line("scale", argv), notes, table)
    return table


if __name__ == "__main__":
    main()
