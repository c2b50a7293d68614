"""``load_dataset``: one entry point from a path, uploaded bytes or a DataFrame to a ``Dataset``."""

from __future__ import annotations

import io
import os
import zipfile
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from deepsad_core.data.dataset import Dataset, LoadLimits, LoadReport
from deepsad_core.data.images import load_images
from deepsad_core.data.preprocess import ImagePreprocessor, TabularPreprocessor
from deepsad_core.data.tables import read_table
from deepsad_core.exceptions import DataError

__all__ = ["SUPPORTED_SUFFIXES", "load_dataset", "read_any_table"]

TABLE_SUFFIXES = (".csv", ".tsv", ".txt", ".parquet", ".pq")
ARRAY_SUFFIXES = (".npy", ".npz")
SUPPORTED_SUFFIXES = (*TABLE_SUFFIXES, *ARRAY_SUFFIXES, ".zip")
ID_COLUMN_NAMES = ("id", "sample_id")
TRUTH_COLUMN_NAMES = ("truth", "is_anomaly", "anomaly", "outlier")
NORMAL_VALUES = ("normal", "good", "ok", "inlier", "benign", "nominal", "0", "false", "no")


def _read_source(source: Any, name: str | None, limits: LoadLimits) -> tuple[bytes | Path, str]:
    """Bytes (or a folder path) and a display name from a path, bytes or an uploaded file object."""
    if isinstance(source, (str, os.PathLike)):
        path = Path(source)
        if path.is_dir():
            return path, name or path.name
        if not path.exists():
            raise DataError(f"{path} does not exist")
        size = path.stat().st_size
        if size > limits.max_file_bytes:
            raise DataError(f"{path.name} is {size / 1e9:.1f} GB; the limit is {limits.max_file_bytes / 1e9:.1f} GB")
        return path, name or path.name  # read by the format's own reader, without a copy here
    if hasattr(source, "read"):  # an uploaded file (Streamlit's UploadedFile) or any binary file object
        name = name or getattr(source, "name", None)
        data = source.read(limits.max_file_bytes + 1)
    elif isinstance(source, (bytes, bytearray, memoryview)):
        data = bytes(source)
    else:
        raise DataError(f"cannot load a {type(source).__name__}; pass a path, bytes, a file object or a DataFrame")
    if not name:
        raise DataError("uploaded data needs a file name (its extension tells the format)")
    if len(data) > limits.max_file_bytes:
        raise DataError(f"{name} is larger than the limit of {limits.max_file_bytes / 1e9:.1f} GB")
    return data, name


def _suffix(name: str) -> str:
    return Path(name).suffix.lower()


def read_any_table(source: Any, filename: str | None = None, limits: LoadLimits | None = None) -> pd.DataFrame:
    """The raw DataFrame of a table file (CSV/TSV/Parquet) or a 2-D array file, for scoring."""
    limits = limits or LoadLimits()
    if isinstance(source, pd.DataFrame):
        return source
    data, name = _read_source(source, filename, limits)
    if _suffix(name) in ARRAY_SUFFIXES:
        X, _ = _read_arrays(data, name, limits)
        if X.ndim != 2:
            raise DataError(f"{name} holds arrays of shape {X.shape}; a table needs shape (rows, columns)")
        return pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
    if _suffix(name) not in TABLE_SUFFIXES:
        raise DataError(f"{name}: unsupported table format; use one of {', '.join(TABLE_SUFFIXES)}")
    return read_table(data, name)


def load_dataset(
    source: Any,
    *,
    filename: str | None = None,
    id_column: str | None = None,
    truth_column: str | bool | None = None,
    normal_value: Any = None,
    image_size: int | tuple[int, int] | None = None,
    channels: int | None = None,
    limits: LoadLimits | None = None,
) -> Dataset:
    """Load a table, an array file or images into a :class:`Dataset`; refusals raise ``DataError``.

    Parameters
    ----------
    source : path, bytes, binary file object (with ``.name``) or DataFrame
        CSV/TSV/TXT (delimiter and encoding detected), Parquet, ``.npy``/``.npz`` (``X``, optional
        ``y`` as truth), a ZIP of images, or a folder of images (searched recursively).
    filename : str, optional
        File name for bytes (its extension tells the format) and for messages.
    id_column : str, optional
        Column of sample ids; by default a column named ``id`` if present, else row numbers.
    truth_column : str, False or None
        Column of ground truth (for evaluation only); ``None`` looks for a column named ``truth``,
        ``is_anomaly``, ``anomaly`` or ``outlier``; ``False`` uses none.
    normal_value : optional
        The truth value (or image class folder) meaning normal; by default 0, a name such as
        ``normal``/``good``/``benign``, or else the most frequent value.
    image_size, channels : optional
        Working image size (``int`` or ``(height, width)``) and channels (1 or 3); chosen from the
        images by default.
    limits : LoadLimits, optional
        File size, sample count and ZIP limits.
    """
    limits = limits or LoadLimits()
    if isinstance(source, pd.DataFrame):
        return _from_table(source, filename or "table", id_column, truth_column, normal_value, limits)
    data, name = _read_source(source, filename, limits)
    if isinstance(data, Path) and data.is_dir():
        return load_images(data, name, limits, image_size, channels, normal_class=normal_value)
    suffix = _suffix(name)
    if suffix == ".zip":
        data = data.read_bytes() if isinstance(data, Path) else data
        return load_images(data, name, limits, image_size, channels, normal_class=normal_value)
    if suffix in ARRAY_SUFFIXES:
        return _from_arrays(data, name, normal_value, image_size, channels, limits)
    if suffix in TABLE_SUFFIXES:
        df = read_table(data, name)
        return _from_table(df, name, id_column, truth_column, normal_value, limits)
    raise DataError(f"{name}: unsupported file type '{suffix or '(none)'}'; use one of {', '.join(SUPPORTED_SUFFIXES)}")


# --- tables ---------------------------------------------------------------------------------------


def _find_column(df: pd.DataFrame, wanted: str | None, defaults: tuple[str, ...], what: str) -> str | None:
    if wanted is not None:
        if wanted not in df.columns:
            raise DataError(f"{what} column '{wanted}' not found; the columns are {', '.join(map(repr, df.columns))}")
        return wanted
    lower = {str(c).lower(): c for c in df.columns}
    return next((lower[d] for d in defaults if d in lower), None)


def _ids(df: pd.DataFrame, id_column: str | None, name: str) -> np.ndarray:
    if id_column is None:
        return np.asarray([str(i) for i in range(len(df))], dtype=object)
    col = df[id_column]
    if col.isna().any():
        raise DataError(f"{name}: id column '{id_column}' is empty in row {int(np.argmax(col.isna().to_numpy())) + 1}")
    ids = col.astype(str)
    duplicated = ids.duplicated(keep=False)
    if duplicated.any():
        counts = ids[duplicated].value_counts()
        dupes = counts[counts > 1]
        shown = ", ".join(f"'{v}' ({n}x)" for v, n in dupes.head(5).items())
        raise DataError(
            f"{name}: id column '{id_column}' has {len(dupes)} duplicated id(s): {shown}; ids must be unique"
        )
    return ids.to_numpy(dtype=object)


def _binary_truth(values: pd.Series | np.ndarray, normal_value: Any, what: str, report: LoadReport) -> np.ndarray:
    """1 = anomaly, 0 = normal, from a truth column or class labels."""
    values = pd.Series(values)
    if values.isna().any():
        raise DataError(f"{what} has {int(values.isna().sum())} missing value(s); fill them or load without truth")
    text = values.astype(str).str.strip().str.lower()
    levels = set(text)
    if normal_value is not None:
        normal = str(normal_value).strip().lower()
        if normal not in levels:
            raise DataError(f"normal value {normal_value!r} does not occur in {what}; it holds {sorted(levels)[:10]}")
    elif levels <= {"0", "1", "0.0", "1.0", "true", "false"}:
        return text.isin({"1", "1.0", "true"}).to_numpy(dtype=np.int64)
    else:
        named = [v for v in NORMAL_VALUES if v in levels]
        normal = named[0] if named else Counter(text).most_common(1)[0][0]
    report.notes.append(f"{what}: '{normal}' is normal, every other value anomalous (for evaluation only)")
    return (text != normal).to_numpy(dtype=np.int64)


def _from_table(
    df: pd.DataFrame, name: str, id_column: str | None, truth_column: Any, normal_value: Any, limits: LoadLimits
) -> Dataset:
    if len(df) > limits.max_samples:
        raise DataError(f"{name} has {len(df)} rows; the limit is {limits.max_samples}")
    if len(df) < 2:
        raise DataError(f"{name} has {len(df)} row(s); a data set needs at least 2")
    report = LoadReport()
    id_col = _find_column(df, id_column, ID_COLUMN_NAMES, "id")
    truth_col = None if truth_column is False else _find_column(df, truth_column or None, TRUTH_COLUMN_NAMES, "truth")
    if id_col is not None and id_col == truth_col:
        raise DataError(f"column '{id_col}' cannot be both the id and the truth column")
    ids = _ids(df, id_col, name)
    truth = None
    if truth_col is not None:
        truth = _binary_truth(df[truth_col], normal_value, f"truth column '{truth_col}'", report)
    ignored = [c for c in (id_col, truth_col) if c is not None]
    pre, X = TabularPreprocessor.fit_transform(df, ignored, limits.max_categories, report)
    return Dataset(
        ids=ids,
        X=X,
        kind="tabular",
        preprocessor=pre,
        source_name=name,
        raw=df.reset_index(drop=True),
        truth=truth,
        truth_classes=df[truth_col].to_numpy() if truth_col else None,
        report=report,
    )


# --- arrays ---------------------------------------------------------------------------------------


def _size(n: float) -> str:
    return f"{n / 1e9:.1f} GB" if n >= 1e9 else f"{n / 1e6:.1f} MB" if n >= 1e6 else f"{n / 1e3:.1f} KB"


def _check_npz_sizes(data: bytes | Path, name: str, limits: LoadLimits) -> None:
    """Refuse an ``.npz`` whose arrays would inflate past the limit, from the ZIP's and the arrays'
    headers alone: ``np.load`` would inflate them without asking."""
    try:
        archive = zipfile.ZipFile(data if isinstance(data, Path) else io.BytesIO(data))
    except (zipfile.BadZipFile, OSError):
        return  # a plain .npy, or not readable: np.load says which
    with archive:
        total = 0
        for info in archive.infolist():
            declared = info.file_size
            try:
                with archive.open(info) as f:  # the .npy header: shape and dtype, a few hundred bytes
                    version = np.lib.format.read_magic(f)
                    read_header = {(1, 0): np.lib.format.read_array_header_1_0}.get(
                        version, np.lib.format.read_array_header_2_0
                    )
                    shape, _, dtype = read_header(f)
                declared = max(declared, int(np.prod(shape, dtype=np.float64)) * dtype.itemsize)
            except (ValueError, OSError, zipfile.BadZipFile, EOFError):
                pass  # np.load reports a malformed member itself
            if ratio := limits.expansion(declared, info.compress_size, limits.ratio_free_array_bytes):
                raise DataError(
                    f"{name} is refused as a bomb: '{info.filename}' declares {_size(declared)} from "
                    f"{_size(info.compress_size)} ({ratio:.0f}-fold; the limit is "
                    f"{limits.max_compression_ratio:.0f}-fold)"
                )
            total += declared
            if total > limits.max_uncompressed_bytes:
                raise DataError(
                    f"{name} would unpack to more than {_size(limits.max_uncompressed_bytes)} "
                    f"('{info.filename}' declares {_size(declared)}), the limit"
                )


def _read_arrays(
    data: bytes | Path, name: str, limits: LoadLimits | None = None
) -> tuple[np.ndarray, np.ndarray | None]:
    _check_npz_sizes(data, name, limits or LoadLimits())
    try:
        loaded = np.load(data if isinstance(data, Path) else io.BytesIO(data), allow_pickle=False)
    except ValueError as e:
        if "pickle" in str(e).lower():
            raise DataError(f"{name} holds Python objects (pickled), which are not loaded for safety") from None
        raise DataError(f"{name} is not a readable NumPy file: {e}") from None
    except (OSError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{name} is not a readable NumPy file (truncated or corrupt?): {e}") from None
    if isinstance(loaded, np.ndarray):
        return loaded, None
    with loaded:
        keys = list(loaded.keys())
        if "X" not in keys:
            raise DataError(f"{name} holds the arrays {keys}; expected 'X' (samples) and optionally 'y' (truth)")
        try:
            return loaded["X"], (loaded["y"] if "y" in keys else None)
        except ValueError as e:
            raise DataError(f"{name} holds Python objects (pickled), which are not loaded for safety: {e}") from None


def _from_arrays(
    data: bytes | Path, name: str, normal_value: Any, image_size: Any, channels: int | None, limits: LoadLimits
) -> Dataset:
    X, y = _read_arrays(data, name, limits)
    if X.dtype.kind not in "biuf":
        raise DataError(f"{name}: 'X' must be numeric; got dtype {X.dtype}")
    if X.ndim not in (2, 3, 4) or len(X) < 2:
        raise DataError(
            f"{name}: 'X' has shape {X.shape}; expected (rows, features), (n, H, W) or (n, C, H, W) with n >= 2"
        )
    if len(X) > limits.max_samples:
        raise DataError(f"{name} has {len(X)} samples; the limit is {limits.max_samples}")
    if y is not None and (y.ndim != 1 or len(y) != len(X)):
        raise DataError(f"{name}: 'y' has shape {y.shape}, but 'X' has {len(X)} samples; 'y' needs shape ({len(X)},)")
    if X.ndim == 2:
        df = pd.DataFrame(X, columns=[f"f{i}" for i in range(X.shape[1])])
        if y is not None:
            df["truth"] = y
        return _from_table(df, name, None, "truth" if y is not None else False, normal_value, limits)
    return _image_arrays(X, y, name, normal_value, image_size, channels)


def _image_arrays(
    X: np.ndarray, y: np.ndarray | None, name: str, normal_value: Any, image_size: Any, channels: int | None
) -> Dataset:
    if X.ndim == 3:
        X = X[..., None]
    elif X.shape[1] in (1, 3) and X.shape[-1] not in (1, 3):
        X = X.transpose(0, 2, 3, 1)  # (n, C, H, W) -> (n, H, W, C)
    if X.shape[-1] not in (1, 3):
        raise DataError(f"{name}: images must have 1 or 3 channels; got shape {X.shape}")
    if X.dtype.kind == "f":
        if not np.isfinite(X).all():
            raise DataError(f"{name}: 'X' contains NaN or infinite pixel values")
        top = 1.0 if X.max() <= 1.0 else 255.0
        if X.min() < 0 or X.max() > 255:
            raise DataError(f"{name}: pixel values must lie in [0, 1] or [0, 255]; got [{X.min():g}, {X.max():g}]")
        X = np.round(X / top * 255)
    pixels = X.astype(np.uint8)
    pre = ImagePreprocessor((pixels.shape[1], pixels.shape[2]), channels or pixels.shape[-1])
    report = LoadReport()
    if image_size is not None or pre.channels != pixels.shape[-1]:
        if image_size is not None:
            pre = ImagePreprocessor(
                (image_size, image_size) if isinstance(image_size, int) else tuple(image_size), pre.channels
            )
        pixels = np.stack([pre.pixels(Image.fromarray(p[..., 0] if p.shape[-1] == 1 else p)) for p in pixels])
    truth = None
    if y is not None:
        truth = _binary_truth(y, normal_value, f"{name} 'y'", report)
    return Dataset.from_pixels([str(i) for i in range(len(pixels))], pixels, pre, name, truth, y, report)
