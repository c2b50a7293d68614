"""Export on every table at hand: ``deepsad train`` + ``deepsad score`` of the default detector.

Each ODDS table is written as a CSV twice, as stored and with every value x1000, beside the app's
samples (``sample_data/``: a table and a ZIP of digit images). Each is trained on with the CLI's
defaults (``deepsad train``), which refuses to write a bundle whose graph disagrees with the live
model, and then scored with ``deepsad score``.
The report gives the parity the manifest records, the range of the scores and the bound the
manifest documents.

    python -m benchmarks.export_parity --odds-dir ../shared/data/odds
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import command_line, load_npz, write_report

SAMPLES = ("breast_cancer.csv", "digits.zip")  # the app's sample table and photos


def tables(odds_dir: Path, work: Path) -> list[Path]:
    """What to export on: every ODDS table raw and x1000 (as CSVs), then the app's samples."""
    paths = []
    for npz in sorted(odds_dir.glob("*.npz")):
        X, _ = load_npz(npz)
        for factor, tag in ((1, ""), (1000, "_x1000")):
            path = work / f"{npz.stem}{tag}.csv"
            pd.DataFrame(X.astype(np.float64) * factor, columns=[f"c{j}" for j in range(X.shape[1])]).to_csv(
                path, index=False
            )
            paths.append(path)
    sample = Path(__file__).resolve().parent.parent / "sample_data"
    return paths + [sample / name for name in SAMPLES]


def run(table: Path, work: Path) -> dict:
    deepsad = [sys.executable, "-m", "deepsad_core"]
    bundle, scores = work / f"{table.stem}.zip", work / f"{table.stem}-scores.csv"
    trained = subprocess.run([*deepsad, "train", str(table), "--out", str(bundle), "--force"], capture_output=True,
                             text=True)  # fmt: skip
    row: dict = {"table": table.stem, "exported": trained.returncode == 0}
    if trained.returncode != 0:
        row["error"] = trained.stderr.strip().splitlines()[-1]
        return row
    manifest = json.loads(zipfile.ZipFile(bundle).read("manifest.json"))
    subprocess.run([*deepsad, "score", str(bundle), str(table), "--out", str(scores), "--quiet"], check=True,
                   capture_output=True)  # fmt: skip
    score = pd.read_csv(scores)["score"]
    low, high = manifest["detector"]["score"]["range"]
    row.update(
        {
            "parity (max rel. diff)": manifest["parity"]["onnx_max_rel_diff"],
            "min score": score.min(),
            "max score": score.max(),
            "within the documented range": bool(low <= score.min() and score.max() <= high),
        }
    )
    return row


def main(argv: list[str] | None = None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--odds-dir", required=True)
    args = p.parse_args(argv)
    with tempfile.TemporaryDirectory(prefix="deepsad-parity-") as work:
        rows = [run(path, Path(work)) for path in tables(Path(args.odds_dir), Path(work))]
        for row in rows:
            print(row, flush=True)
    table = pd.DataFrame(rows)
    exported = int(table["exported"].sum())
    notes = [
        "each table: `deepsad train TABLE --out B.zip` (the default detector, 50 + 50 epochs), then "
        "`deepsad score B.zip TABLE`; x1000: every value of the ODDS table times 1000",
        "parity: the largest difference between the bundle's ONNX scores and the live model's on the first "
        "1,000 rows, relative to each score floored at the spread of the scores; export refuses above 1e-4",
        f"exported: {exported} of {len(table)}; largest parity difference {table['parity (max rel. diff)'].max():.2e}",
        "the documented range: the manifest's detector.score.range, [e^-10, e^10] for the ensemble",
    ]
    write_report("export_parity", "Export and scoring on every table", command_line("export_parity", argv), notes,
                 table)  # fmt: skip
    return table


if __name__ == "__main__":
    main()
