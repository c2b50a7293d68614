"""``deepsad score`` in one process against ``--engine spark`` on ``local[2]``: rows/s and equal scores.

Per size, a generated sensor table (``benchmarks.scale.sensor_table``, 9 float columns, plus an
``id``) is written as one Parquet file. A detector is trained on 20,000 other rows of the same kind
(``deepsad train``); then each engine scores the file in its own process, timed as a whole (start-up,
reading, scoring, writing Parquet). The scores are compared row by row through the ids.

    python -m benchmarks.spark_score --rows 1000000,10000000
"""

from __future__ import annotations

import argparse
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from benchmarks.common import command_line, int_list, timed_cli, write_report
from benchmarks.scale import sensor_table


def with_ids(rows: int, seed: int, first_id: int = 0) -> pa.Table:
    table = sensor_table(rows, seed).drop_columns(["truth"])
    return table.add_column(0, "id", pa.array(np.arange(first_id, first_id + rows, dtype=np.int64)))


def write_table(path: Path, rows: int, seed: int) -> Path:
    """``rows`` rows in one Parquet file, written a million at a time (bounded memory)."""
    if not path.exists():
        with pq.ParquetWriter(path, with_ids(1, seed).schema) as writer:
            for start in range(0, rows, 1_000_000):
                writer.write_table(with_ids(min(1_000_000, rows - start), seed + start, first_id=start))
    return path


def scores_by_id(path: Path) -> pd.Series:
    frame = pq.read_table(path, columns=["id", "score"]).to_pandas()
    return frame.set_index("id")["score"].sort_index()


def main(argv: list[str] | None = None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int_list, default=[1_000_000, 10_000_000])
    p.add_argument("--master", default="local[2]")
    p.add_argument("--workdir", default=None)
    args = p.parse_args(argv)
    work = Path(args.workdir or tempfile.mkdtemp(prefix="deepsad-spark-"))
    work.mkdir(parents=True, exist_ok=True)
    train = work / "train.parquet"
    pq.write_table(with_ids(20_000, seed=99), train)
    bundle = work / "detector.zip"
    subprocess.run([sys.executable, "-m", "deepsad_core", "train", str(train), "--out", str(bundle), "--force"],
                   check=True, capture_output=True)  # fmt: skip
    rows = []
    for n in args.rows:
        source = write_table(work / f"sensors-{n}.parquet", n, seed=0)
        single, spark = work / f"single-{n}.parquet", work / f"spark-{n}"
        single.unlink(missing_ok=True)
        shutil.rmtree(spark, ignore_errors=True)
        engines = {"one process": (single, []), f"Spark {args.master}": (spark, ["--engine", "spark", "--master",
                                                                               args.master])}  # fmt: skip
        # seconds of the whole `deepsad score` process, and its peak RSS (the Python driver's, for Spark)
        results = {
            name: timed_cli(["score", str(bundle), str(source), "--out", str(out), "--quiet", *engine])
            for name, (out, engine) in engines.items()
        }
        a, b = scores_by_id(single), scores_by_id(spark)
        assert a.index.equals(b.index), "the two engines scored different rows"
        worst = float((np.abs(a.to_numpy() - b.to_numpy()) / np.maximum(np.abs(a.to_numpy()), 1e-12)).max())
        for name, (seconds, peak) in results.items():
            rows.append({"rows": f"{n:,}", "engine": name, "seconds": seconds, "rows/s": int(n / seconds),
                         "peak RSS MB (Python)": int(peak), "max rel. score difference": worst})  # fmt: skip
            print(rows[-1], file=sys.stderr, flush=True)
    table = pd.DataFrame(rows).round(2)
    notes = [
        "a generated sensor table (9 float columns and an id) in one Parquet file; the detector: "
        "`deepsad train` on 20,000 other rows (the default ensemble, 50 + 50 epochs), as an ONNX bundle",
        "seconds: the whole `deepsad score BUNDLE FILE --out OUT.parquet` process, start-up, reading, "
        "scoring and writing included; Spark adds `--engine spark --master " + args.master + "` (its JVM "
        "start included; peak RSS is the Python driver's, not the JVM's or the Python workers')",
        "max rel. score difference: over every row, joined by id; criterion <= 1e-5",
    ]
    write_report("spark_score", "Batch scoring: one process against Spark", command_line("spark_score", argv), notes,
                 table)  # fmt: skip
    return table


if __name__ == "__main__":
    main()
