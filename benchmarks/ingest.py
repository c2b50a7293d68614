"""Loading a large CSV: ``load_dataset`` (and a workspace holding it) beside ``pandas.read_csv``.

Generates a 1,000,000-row x 20-column CSV (an id, 17 float columns, an integer and a 5-level text
column, with some blanks), then times, in one process: ``pandas.read_csv(engine="pyarrow")``,
``deepsad_core.data.load_dataset`` (read, choose columns, impute, encode, scale) and
``Project.create`` (the same plus writing the workspace). Target: load_dataset within 2x of pandas.

    python -m benchmarks.ingest --rows 1000000
"""

from __future__ import annotations

import argparse
import resource
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv

from benchmarks.common import command_line, write_report
from deepsad_core.data import load_dataset
from deepsad_core.studio import Project


def synthetic_csv(workdir: str | None, rows: int, prefix: str) -> Path:
    """``<workdir>/big.csv`` with ``rows`` rows, made unless already there (default: a new temp dir)."""
    work = Path(workdir or tempfile.mkdtemp(prefix=prefix))
    work.mkdir(parents=True, exist_ok=True)
    csv = work / "big.csv"
    if not csv.exists():
        make_csv(csv, rows)
    return csv


def make_csv(path: Path, rows: int, seed: int = 0) -> None:
    rng = np.random.default_rng(seed)
    columns = {"id": pa.array([f"row-{i}" for i in range(rows)])}
    for j in range(17):
        values = rng.normal(j, 1 + j / 10, rows)
        mask = rng.random(rows) < 0.001  # a few blanks to impute
        columns[f"sensor_{j:02d}"] = pa.array(values, mask=mask)
    columns["count"] = pa.array(rng.integers(0, 1000, rows))
    columns["line"] = pa.array(rng.choice(np.array(["A", "B", "C", "D", "E"]), rows))
    pacsv.write_csv(pa.table(columns), path)


def timed(fn):
    start = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - start


def main(argv: list[str] | None = None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rows", type=int, default=1_000_000)
    p.add_argument("--workdir", default=None, help="where to write the CSV and the workspace (default: a temp dir)")
    args = p.parse_args(argv)
    csv = synthetic_csv(args.workdir, args.rows, "deepsad-ingest-")
    work = csv.parent
    size_mb = csv.stat().st_size / 1e6
    _, t_pandas = timed(lambda: pd.read_csv(csv, engine="pyarrow"))
    ds, t_load = timed(lambda: load_dataset(csv))
    assert ds.X.shape == (args.rows, 23), ds.X.shape  # 17 floats + count + 5 one-hot levels; id set apart
    _, t_project = timed(lambda: Project.create(work / "ws", f"big-{time.time_ns()}", csv))
    peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    table = pd.DataFrame(
        [
            {"step": "pandas.read_csv(engine='pyarrow')", "seconds": t_pandas, "x pandas": 1.0},
            {"step": "load_dataset (read + features)", "seconds": t_load, "x pandas": t_load / t_pandas},
            {"step": "Project.create (load + workspace)", "seconds": t_project, "x pandas": t_project / t_pandas},
        ]
    ).round(2)
    command = command_line("ingest", argv)
    notes = [
        f"{args.rows:,} rows x 20 columns ({size_mb:.0f} MB CSV): id, 17 floats with 0.1 % blanks, an int, "
        f"a 5-level text column; features out: {ds.X.shape[1]}",
        f"target: load_dataset within 2x of pandas; peak RSS of the whole run {peak_mb:.0f} MB",
    ]
    write_report("ingest", "Ingesting a large CSV", command, notes, table)
    return table


if __name__ == "__main__":
    main()
