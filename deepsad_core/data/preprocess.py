"""Fitted, JSON-serialisable preprocessors that travel with the model.

Tables, as in the paper: impute, one-hot encode, standardise, then min-max scale to [0, 1], all
fitted on the training file and applied unchanged to later files with the same schema. Images:
mode to grey or RGB (transparency over white), resize to the working size, scale to [0, 1].
The scalers' statistics are plain arrays, stored as JSON.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from PIL import Image

from deepsad_core.exceptions import DataError

__all__ = ["MISSING_LEVEL", "ImagePreprocessor", "TabularPreprocessor"]

MISSING_LEVEL = "(missing)"
_MAX_ABS = 1e30  # beyond this, squares overflow in scaling


def _as_numbers(series: pd.Series) -> np.ndarray | None:
    """The column as float64 (NaN/inf where missing), or None when some present value is not a number."""
    if pd.api.types.is_bool_dtype(series) or pd.api.types.is_numeric_dtype(series):
        return series.to_numpy(dtype=np.float64, na_value=np.nan)
    head = series.dropna().head(1000)
    if (pd.to_numeric(head, errors="coerce").isna()).any():  # cheap early "no" for text columns
        return None
    values = pd.to_numeric(series, errors="coerce")
    if (values.isna() & series.notna()).any():
        return None
    return values.to_numpy(dtype=np.float64, na_value=np.nan)


def _shown(value: Any) -> str:
    return str(value.item() if hasattr(value, "item") else value)


@dataclass
class TabularPreprocessor:
    """Columns in, features in [0, 1] out; ``fit_transform`` on the data set, ``transform`` later."""

    columns: list[str]  # every column of the fitted file (the schema), id/truth included
    ignored: list[str]  # id and truth columns: allowed in later files, never features
    numeric: dict[str, float] = field(default_factory=dict)  # column -> median used for imputation
    categorical: dict[str, list[str]] = field(default_factory=dict)  # column -> levels
    mean: list[float] = field(default_factory=list)
    scale: list[float] = field(default_factory=list)
    data_min: list[float] = field(default_factory=list)
    data_range: list[float] = field(default_factory=list)

    kind = "tabular"

    @property
    def feature_names(self) -> list[str]:
        return list(self.numeric) + [f"{c}={level}" for c, levels in self.categorical.items() for level in levels]

    @property
    def feature_columns(self) -> list[str]:
        """The file's column behind each feature (a one-hot feature's categorical column)."""
        return list(self.numeric) + [c for c, levels in self.categorical.items() for _ in levels]

    @classmethod
    def fit_transform(
        cls, df: pd.DataFrame, ignored: list[str], max_categories: int, report: Any
    ) -> tuple[TabularPreprocessor, np.ndarray]:
        """Choose and fit the features of ``df``; findings go to ``report`` (a ``LoadReport``)."""
        pre = cls(columns=[str(c) for c in df.columns], ignored=list(ignored))
        converted: dict[str, np.ndarray] = {}  # numeric columns as arrays, converted once
        for name in df.columns:
            if name in ignored:
                continue
            col = df[name]
            if pd.api.types.is_datetime64_any_dtype(col):
                report.dropped_columns[name] = "dates and times are not used as features"
            elif (numbers := _as_numbers(col)) is not None:
                pre._fit_numeric(name, numbers, report)
                converted[name] = numbers
            else:
                pre._fit_text(name, col, max_categories, report)
        if not pre.numeric:
            found = {**report.dropped_columns, **{c: "text" for c in pre.categorical}}
            shown = [f"'{c}': {w}" for c, w in list(found.items())[:5]]
            shown += [f"and {len(found) - 5} more"] if len(found) > 5 else []
            why = "; ".join(shown) or "the file has no data columns"
            raise DataError(
                f"no numeric column to learn from ({why}). A table needs at least one numeric column; "
                "text columns are used only beside numeric ones."
            )
        encoded = pre._encode(df, converted)
        # standard scaler then min-max scaler, fitted here: min/max of the standardised data follow
        # from the raw min/max, since standardising is increasing and affine
        mean, scale = encoded.mean(axis=0), encoded.std(axis=0)
        scale[scale == 0] = 1.0  # a one-hot level present in every row
        low, high = encoded.min(axis=0), encoded.max(axis=0)
        span = (high - low) / scale
        pre.mean, pre.scale = mean.tolist(), scale.tolist()
        pre.data_min, pre.data_range = ((low - mean) / scale).tolist(), np.where(span == 0, 1, span).tolist()
        return pre, pre._scale(encoded)  # in [0, 1] up to round-off; transform() reproduces it exactly

    def _fit_numeric(self, name: str, values: np.ndarray, report: Any) -> None:
        present = values[np.isfinite(values)]
        if present.size == 0:
            report.dropped_columns[name] = "no values"
        elif (high := present.max()) - (low := present.min()) < np.finfo(np.float64).tiny:
            # equal values, or a spread so tiny (denormal) that scaling by it overflows
            report.dropped_columns[name] = f"constant (every value is {_shown(low)})"
        elif (peak := max(abs(low), abs(high))) > _MAX_ABS:
            raise DataError(f"column '{name}' holds values too large to use (up to {peak:.3g}); rescale it")
        else:
            self.numeric[name] = float(np.median(present))
            if present.size < values.size:
                report.imputed[name] = int(values.size - present.size)

    def _fit_text(self, name: str, col: pd.Series, max_categories: int, report: Any) -> None:
        present = col.dropna().astype(str)
        levels = sorted(present.unique().tolist())
        if not levels:
            report.dropped_columns[name] = "no values"
        elif len(levels) == 1 and len(present) == len(col):
            report.dropped_columns[name] = f"constant (every value is {levels[0]})"
        elif len(levels) > max_categories:
            report.dropped_columns[name] = (
                f"text with {len(levels)} distinct values, more than the one-hot limit of {max_categories}"
            )
        else:
            if len(present) < len(col):
                levels.append(MISSING_LEVEL)
                report.imputed[name] = len(col) - len(present)
            self.categorical[name] = levels
            report.one_hot_columns[name] = len(levels)

    def transform(self, df: pd.DataFrame) -> np.ndarray:
        """Features of a new file with the fitted schema; a differing schema raises ``DataError``."""
        self.check_columns(df.columns)
        return self._scale(self._encode(df))

    def check_columns(self, names) -> None:
        """``DataError`` naming the missing and unexpected columns, unless ``names`` fit the schema."""
        columns = [str(c) for c in names]
        missing = [c for c in [*self.numeric, *self.categorical] if c not in columns]
        extra = [c for c in columns if c not in self.columns]
        if missing or extra:
            parts = []
            if missing:
                parts.append("missing column(s) " + ", ".join(f"'{c}'" for c in missing))
            if extra:
                parts.append("unexpected column(s) " + ", ".join(f"'{c}'" for c in extra))
            raise DataError(
                f"the file's columns differ from the ones the detector was trained on: {'; '.join(parts)}. "
                f"Expected the columns {', '.join(repr(c) for c in self.columns)}."
            )

    def _encode(self, df: pd.DataFrame, converted: dict[str, np.ndarray] | None = None) -> np.ndarray:
        n_features = len(self.numeric) + sum(len(v) for v in self.categorical.values())
        # column-major: each feature is filled, and later reduced, as one contiguous run
        out = np.empty((len(df), n_features), dtype=np.float64, order="F")
        for j, (name, median) in enumerate(self.numeric.items()):
            numbers = converted[name] if converted and name in converted else _as_numbers(df[name])
            if numbers is None:
                bad = pd.to_numeric(df[name], errors="coerce").isna() & df[name].notna()
                row = int(np.argmax(bad.to_numpy()))
                raise DataError(
                    f"column '{name}' must be numeric, but row {row + 1} holds {df[name].iloc[row]!r}; "
                    "fix or blank that value"
                )
            column = out[:, j]
            column[:] = numbers
            column[~np.isfinite(column)] = median  # missing, NaN and inf: the training median
        j = len(self.numeric)
        for name, levels in self.categorical.items():
            values = df[name].astype("string").fillna(MISSING_LEVEL)
            codes = pd.Index(levels).get_indexer(values)  # unseen levels -> -1 -> all zeros
            out[:, j : j + len(levels)] = codes[:, None] == np.arange(len(levels))[None]
            j += len(levels)
        return out

    def _scale(self, encoded: np.ndarray) -> np.ndarray:
        """Standardise then min-max, as one affine map per column."""
        scale, data_range = np.asarray(self.scale), np.asarray(self.data_range)
        factor = 1.0 / (scale * data_range)
        offset = -(np.asarray(self.mean) / scale + np.asarray(self.data_min)) / data_range
        encoded *= factor
        encoded += offset
        return np.ascontiguousarray(encoded, dtype=np.float32)

    def to_dict(self) -> dict:
        return {"kind": self.kind, **asdict(self)}

    @classmethod
    def from_dict(cls, d: dict) -> TabularPreprocessor:
        return cls(**{k: v for k, v in d.items() if k != "kind"})


@dataclass
class ImagePreprocessor:
    """Any readable image in, ``(C, H, W)`` float32 in [0, 1] at the working size out."""

    size: tuple[int, int]  # (height, width)
    channels: int  # 1 (grey) or 3 (RGB)

    kind = "image"

    def draft(self, image: Image.Image) -> None:
        """Let a JPEG not yet decoded decode at 1/2, 1/4 or 1/8 scale when the working size allows it:
        a camera photo then never exists at full size in memory. Training and scoring both pass here."""
        if image.format == "JPEG":
            image.draft("L" if self.channels == 1 else "RGB", (self.size[1], self.size[0]))

    def pixels(self, image: Image.Image) -> np.ndarray:
        """uint8 ``(H, W, C)`` at the working size: transparency over white, then grey or RGB."""
        self.draft(image)
        if image.mode in ("RGBA", "LA", "PA") or (image.mode == "P" and "transparency" in image.info):
            rgba = image.convert("RGBA")
            image = Image.alpha_composite(Image.new("RGBA", rgba.size, "white"), rgba)
        elif image.mode.startswith("I;16") or image.mode in ("I", "F"):
            a = np.asarray(image, dtype=np.float64)
            span = a.max() - a.min()
            image = Image.fromarray(((a - a.min()) / (span or 1) * 255).astype(np.uint8))
        image = image.convert("L" if self.channels == 1 else "RGB")
        if image.size != (self.size[1], self.size[0]):
            image = image.resize((self.size[1], self.size[0]), Image.Resampling.BILINEAR)
        px = np.asarray(image, dtype=np.uint8)
        return px[..., None] if px.ndim == 2 else px

    @staticmethod
    def to_model_input(pixels: np.ndarray) -> np.ndarray:
        """uint8 ``(n, H, W, C)`` -> float32 ``(n, C, H, W)`` in [0, 1]."""
        return np.ascontiguousarray(pixels.transpose(0, 3, 1, 2), dtype=np.float32) / np.float32(255)

    def transform(self, images: list[Image.Image]) -> np.ndarray:
        return self.to_model_input(np.stack([self.pixels(im) for im in images]))

    def to_dict(self) -> dict:
        return {"kind": self.kind, "size": list(self.size), "channels": self.channels}

    @classmethod
    def from_dict(cls, d: dict) -> ImagePreprocessor:
        return cls(tuple(d["size"]), int(d["channels"]))


def preprocessor_from_dict(d: dict) -> TabularPreprocessor | ImagePreprocessor:
    """Rebuild either preprocessor from its ``to_dict``."""
    kinds = {"tabular": TabularPreprocessor, "image": ImagePreprocessor}
    if d.get("kind") not in kinds:
        raise DataError(f"unknown preprocessor kind {d.get('kind')!r}; expected 'tabular' or 'image'")
    return kinds[d["kind"]].from_dict(d)
