"""Scoring files of any size with a loaded bundle, in bounded memory.

CSV/TSV and Parquet tables stream in batches of rows (pyarrow's streaming readers); each batch is
preprocessed, scored and appended to the output, so memory does not grow with the file. Other inputs
(array files, images) are scored in one go.
"""

from __future__ import annotations

import io
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from deepsad_core.base.threshold import flag
from deepsad_core.bundle.read import BundleDetector, images_in_zip
from deepsad_core.data.tables import _decode_head, _sniff_delimiter
from deepsad_core.exceptions import DataError

__all__ = ["score_to_file"]


class _CountingReader(io.RawIOBase):
    """A binary file that counts the bytes read, for the progress bar."""

    def __init__(self, path: Path, on_read) -> None:
        self._f = path.open("rb")
        self._on_read = on_read

    def readable(self) -> bool:
        return True

    def readinto(self, buffer) -> int:
        n = self._f.readinto(buffer)
        self._on_read(n or 0)
        return n

    def close(self) -> None:
        self._f.close()
        super().close()


def _csv_batches(path: Path, detector: BundleDetector, batch_rows: int, on_read) -> Iterator[pd.DataFrame]:
    with path.open("rb") as f:
        head = f.read(64 * 1024)
    text, encoding = _decode_head(head, path.name)
    pre = detector.preprocessor
    types = {c: pa.float64() for c in pre.numeric} | {c: pa.string() for c in [*pre.categorical, *pre.ignored]}
    reader = pacsv.open_csv(
        _CountingReader(path, on_read),
        read_options=pacsv.ReadOptions(encoding="utf8" if encoding == "utf-8-sig" else encoding, block_size=1 << 22),
        parse_options=pacsv.ParseOptions(delimiter=_sniff_delimiter(text, path.name)),
        convert_options=pacsv.ConvertOptions(column_types=types, strings_can_be_null=True),
    )
    pending: list[pa.RecordBatch] = []
    rows = 0
    try:
        for batch in reader:
            pending.append(batch)
            rows += batch.num_rows
            if rows >= batch_rows:
                yield pa.Table.from_batches(pending).to_pandas()
                pending, rows = [], 0
    except pa.ArrowInvalid as e:
        raise DataError(f"{path.name} could not be read with the bundle's schema: {str(e).strip()}") from None
    if pending:
        yield pa.Table.from_batches(pending).to_pandas()


def _parquet_batches(path: Path, batch_rows: int, on_read) -> Iterator[pd.DataFrame]:
    try:
        file = pq.ParquetFile(path)
    except (pa.ArrowException, OSError) as e:
        raise DataError(f"{path.name} is not a readable Parquet file: {e}") from None
    per_row = path.stat().st_size / max(file.metadata.num_rows, 1)
    for batch in file.iter_batches(batch_size=batch_rows):
        on_read(int(batch.num_rows * per_row))
        yield batch.to_pandas()


def _output_frame(detector: BundleDetector, frame: pd.DataFrame | None, scores: np.ndarray, start: int) -> pd.DataFrame:
    """Id-like columns the input carried (or the row number), then score and anomaly."""
    out = pd.DataFrame(index=range(len(scores)))
    kept = [c for c in getattr(detector.preprocessor, "ignored", []) if frame is not None and c in frame.columns]
    for c in kept:
        out[c] = frame[c].to_numpy()
    if not kept:
        out["row"] = np.arange(start, start + len(scores))
    out["score"] = scores
    out["anomaly"] = flag(scores, detector.threshold_).astype(np.int8)
    return out


def score_to_file(
    detector: BundleDetector, source: str | Path, out: str | Path, *, batch_rows: int = 100_000, progress: bool = True
) -> int:
    """Score ``source`` into ``out`` (``.csv`` or ``.parquet``); returns the number of samples scored."""
    source, out = Path(source), Path(out)
    if out.suffix.lower() not in (".csv", ".parquet"):
        raise DataError(f"--out must end in .csv or .parquet; got {out.name}")
    if not source.exists():
        raise DataError(f"{source} does not exist")
    bar = _progress_bar(source, progress)
    suffix = source.suffix.lower()
    if detector.kind == "tabular" and suffix in (".csv", ".tsv", ".txt"):
        frames: Any = _csv_batches(source, detector, batch_rows, bar.update)
    elif detector.kind == "tabular" and suffix in (".parquet", ".pq"):
        frames = _parquet_batches(source, batch_rows, bar.update)
    else:
        frames = None
    writer = None
    n = 0
    try:
        if frames is None:  # arrays or images: one go
            if detector.kind == "image" and suffix == ".zip":
                names, images = images_in_zip(source)
                scores = detector.decision_function(images)
            else:
                scores = detector.decision_function(source)
                names = _image_names(source) if detector.kind == "image" else None
            table = _output_frame(detector, None, scores, 0)
            if names is not None and len(names) == len(scores):
                table.insert(0, "file", names)
            writer = _write(out, pa.Table.from_pandas(table, preserve_index=False), None)
            bar.update(bar.total - bar.n if bar.total else 0)
            return len(scores)
        for frame in frames:
            scores = detector.score_model_input(detector.preprocessor.transform(frame))
            table = pa.Table.from_pandas(_output_frame(detector, frame, scores, n), preserve_index=False)
            writer = _write(out, table, writer)
            n += len(scores)
            bar.set_postfix_str(f"{n:,} rows")
        return n
    finally:
        if writer is not None:
            writer.close()
        bar.close()


def _image_names(source: Path) -> list[str] | None:
    from deepsad_core.data.images import IMAGE_SUFFIXES

    if source.is_dir():
        return [
            p.relative_to(source).as_posix() for p in sorted(source.rglob("*")) if p.suffix.lower() in IMAGE_SUFFIXES
        ]
    return [source.name] if source.suffix.lower() in IMAGE_SUFFIXES else None


def _write(out: Path, table: pa.Table, writer):
    if writer is None:
        if out.suffix.lower() == ".parquet":
            writer = pq.ParquetWriter(out, table.schema)
        else:
            writer = pacsv.CSVWriter(out, table.schema)
    writer.write_table(table)
    return writer


def _progress_bar(source: Path, enabled: bool):
    from tqdm import tqdm

    total = source.stat().st_size if source.is_file() else None
    return tqdm(total=total, unit="B", unit_scale=True, desc=f"scoring {source.name}", disable=not enabled)
