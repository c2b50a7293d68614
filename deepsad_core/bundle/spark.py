"""Batch scoring on Apache Spark: an exported bundle applied to a Spark DataFrame, in Arrow batches.

The bundle is verified on the driver, which also refuses a frame whose columns differ from the
bundle's schema before any task runs. Its bytes travel to the executors once (a broadcast); each
Python worker opens the ONNX model once and scores the partitions' Arrow batches with it
(``mapInPandas``), so the scores are the single-process path's. ``pyspark`` is an optional
dependency (``pip install deepsad-studio[spark]``); nothing here imports it at module load.
"""

from __future__ import annotations

import hashlib
import io
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import numpy as np

from deepsad_core.base.threshold import flag
from deepsad_core.bundle.read import BundleDetector, load_detector
from deepsad_core.exceptions import DataError

__all__ = ["read_for_scoring", "score_spark"]

_OPENED: dict[str, BundleDetector] = {}  # per Python worker: bundle digest -> detector, opened once


def _bundle_bytes(bundle: Path) -> bytes:
    """A bundle as ZIP bytes (a folder bundle is zipped in memory)."""
    if bundle.is_file():
        return bundle.read_bytes()
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for path in sorted(p for p in bundle.iterdir() if p.is_file()):
            zf.write(path, path.name)
    return buffer.getvalue()


def _open(data: bytes) -> BundleDetector:
    """The detector of a bundle's bytes, opened once per process."""
    digest = hashlib.sha256(data).hexdigest()
    if digest not in _OPENED:
        folder = Path(tempfile.mkdtemp(prefix="deepsad-bundle-"))
        path = folder / "bundle.zip"
        path.write_bytes(data)
        _OPENED[digest] = load_detector(path)
    return _OPENED[digest]


def _check_columns(detector: BundleDetector, columns: list[str]) -> None:
    """Refuse on the driver, before any task runs, what every task would refuse."""
    if not hasattr(detector.preprocessor, "check_columns"):
        raise DataError("this bundle scores images; Spark scoring takes tables")
    detector.preprocessor.check_columns(columns)


def score_spark(frame: Any, bundle: str | Path, verify_key: bytes | str | Path | None = None) -> Any:
    """``frame`` (a Spark DataFrame) with ``score`` (double) and ``anomaly`` (int, 1 = above the
    bundle's threshold) added, computed on the executors."""
    from pyspark.sql.types import DoubleType, IntegerType, StructField, StructType

    bundle = Path(bundle)
    detector = load_detector(bundle, verify_key=verify_key)  # verified here, once
    _check_columns(detector, list(frame.columns))
    shipped = frame.sparkSession.sparkContext.broadcast(_bundle_bytes(bundle))
    threshold = detector.threshold_
    schema = StructType(
        [*frame.schema.fields, StructField("score", DoubleType()), StructField("anomaly", IntegerType())]
    )

    def score_batches(batches):
        opened = _open(shipped.value)
        for batch in batches:
            scores = opened.decision_function(batch).astype(np.float64)
            yield batch.assign(score=scores, anomaly=flag(scores, threshold).astype(np.int32))

    return frame.mapInPandas(score_batches, schema)


def read_for_scoring(spark: Any, source: str) -> Any:
    """CSV, TSV or Parquet files, a folder of them, or a glob, as one Spark DataFrame (CSV with a
    header row; column types inferred, as pandas would)."""
    suffixes = {Path(source).suffix.lower()}
    if Path(source).is_dir():
        suffixes = {
            p.suffix.lower() for p in Path(source).iterdir() if p.is_file() and not p.name.startswith((".", "_"))
        }
    if suffixes <= {".parquet", ".pq"}:
        return spark.read.parquet(source)
    if suffixes <= {".csv", ".tsv", ".txt"}:
        return spark.read.csv(source, header=True, inferSchema=True, sep="\t" if suffixes == {".tsv"} else ",")
    raise DataError(f"{source}: Spark scoring reads CSV, TSV or Parquet; found {', '.join(sorted(suffixes))}")
