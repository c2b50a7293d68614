"""Reading tables: CSV/TSV (delimiter and encoding detected) and Parquet, into a DataFrame."""

from __future__ import annotations

import csv
import io
from collections import Counter
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.csv as pacsv
import pyarrow.parquet as pq

from deepsad_core.exceptions import DataError

__all__ = ["read_table"]

_SNIFF_BYTES = 64 * 1024
_DELIMITERS = ",;\t|"


def _decode_head(head: bytes, name: str) -> tuple[str, str]:
    """The start of the file as text, and the encoding that reads it (UTF-8, else Windows-1252)."""
    if b"\x00" in head:
        raise DataError(f"{name} is not a text table: it holds binary data (NUL bytes). Upload a CSV, TSV or Parquet.")
    for encoding in ("utf-8-sig", "cp1252"):
        try:
            # the sniffed head may end inside a multi-byte character: ignore the last few bytes
            return head.decode(encoding) if len(head) < _SNIFF_BYTES else head[:-4].decode(encoding), encoding
        except UnicodeDecodeError:
            continue
    raise DataError(f"{name} is neither UTF-8 nor Windows-1252 text; save it as UTF-8 CSV and upload it again")


def _sniff_delimiter(text: str, name: str) -> str:
    lines = [ln for ln in text.splitlines() if ln.strip()][:50]
    if not lines:
        raise DataError(f"{name} is empty: no header and no rows")
    try:
        return csv.Sniffer().sniff("\n".join(lines), delimiters=_DELIMITERS).delimiter
    except csv.Error:
        # one column, or a table the sniffer cannot decide on: take the most frequent delimiter
        counts = {d: lines[0].count(d) for d in _DELIMITERS}
        return max(counts, key=counts.get) if max(counts.values()) else ","


def _head(data: bytes | Path, n: int) -> bytes:
    if isinstance(data, Path):
        with data.open("rb") as f:
            return f.read(n)
    return data[:n]


def _stream(data: bytes | Path) -> str | io.BytesIO:
    """What pyarrow reads: the path itself (no copy in Python) or the bytes."""
    return str(data) if isinstance(data, Path) else io.BytesIO(data)


def _read_csv(data: bytes | Path, name: str) -> pd.DataFrame:
    text, encoding = _decode_head(_head(data, _SNIFF_BYTES), name)
    delimiter = _sniff_delimiter(text, name)
    encoding = "utf8" if encoding == "utf-8-sig" else encoding
    try:
        table = pacsv.read_csv(
            _stream(data),
            read_options=pacsv.ReadOptions(encoding=encoding),
            parse_options=pacsv.ParseOptions(delimiter=delimiter, newlines_in_values=False),
            convert_options=pacsv.ConvertOptions(strings_can_be_null=True),
        )
    except pa.ArrowInvalid as e:
        msg = str(e)
        if "Expected" in msg and "columns" in msg:
            raise DataError(
                f"{name} has rows with a different number of fields than its header ({msg.strip()}); "
                "every row needs one value per column"
            ) from None
        if "Empty CSV" in msg:
            raise DataError(f"{name} is empty: no header and no rows") from None
        if "UTF8" in msg or "utf8" in msg.lower():
            table = None
        else:
            raise DataError(f"{name} could not be read as a table: {msg.strip()}") from None
    if table is None:  # the head was UTF-8, a later line is not: read it all as Windows-1252
        return _read_csv_encoding(data, name, delimiter, "cp1252")
    if table.num_rows == 0:
        raise DataError(f"{name} has a header but no rows: {', '.join(table.column_names)}")
    return table.to_pandas()


def _read_csv_encoding(data: bytes | Path, name: str, delimiter: str, encoding: str) -> pd.DataFrame:
    try:
        table = pacsv.read_csv(
            _stream(data),
            read_options=pacsv.ReadOptions(encoding=encoding),
            parse_options=pacsv.ParseOptions(delimiter=delimiter),
        )
    except pa.ArrowInvalid as e:
        raise DataError(f"{name} could not be read as a table: {str(e).strip()}") from None
    return table.to_pandas()


def _read_parquet(data: bytes | Path, name: str) -> pd.DataFrame:
    try:
        table = pq.read_table(_stream(data))
    except (pa.ArrowException, OSError) as e:
        raise DataError(f"{name} is not a readable Parquet file (truncated or corrupt?): {str(e).strip()}") from None
    if table.num_rows == 0:
        raise DataError(f"{name} has no rows")
    return table.to_pandas()


def read_table(data: bytes | Path, name: str) -> pd.DataFrame:
    """A DataFrame from a CSV/TSV/TXT or Parquet file (its path or its bytes) named ``name``."""
    if name.lower().endswith((".parquet", ".pq")) or _head(data, 4) == b"PAR1":
        df = _read_parquet(data, name)
    else:
        df = _read_csv(data, name)
    names = [str(c).strip() for c in df.columns]
    df.columns = names
    dupes = sorted(c for c, k in Counter(names).items() if k > 1)  # one pass: a file may have 100k columns
    if dupes:
        raise DataError(f"{name} has duplicate column names: {', '.join(repr(c) for c in dupes)}; rename them")
    return df
