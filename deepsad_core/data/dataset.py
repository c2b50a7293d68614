"""The ``Dataset`` every loader returns, and the limits every loader honours."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Literal

import numpy as np
import pandas as pd
from PIL import Image

from deepsad_core.data.preprocess import ImagePreprocessor, TabularPreprocessor

__all__ = ["Dataset", "LoadLimits", "LoadReport"]


@dataclass(frozen=True)
class LoadLimits:
    """Refusal thresholds for untrusted input; every one is configurable."""

    max_file_bytes: int = 2 * 1024**3
    max_samples: int = 5_000_000
    max_zip_members: int = 100_000
    max_uncompressed_bytes: int = 4 * 1024**3
    max_compression_ratio: float = 200.0  # per ZIP member, .npz array or large image: beyond it, a bomb
    # below these sizes an image or an .npz array may compress as it likes (an icon; 0/1 truth does
    # several hundred-fold)
    ratio_free_image_bytes: int = 4 * 1024**2
    ratio_free_array_bytes: int = 64 * 1024**2
    max_categories: int = 20  # one-hot encode categorical columns up to this many levels
    max_image_side: int = 8192
    max_image_pixels: int = 64 * 1024**2  # per image: a 65 KB PNG can declare 8192 x 8192
    max_decoded_bytes: int = 32 * 1024**3  # all images' declared pixels together, checked before decoding

    def expansion(self, declared: int, stored: int, ratio_free: int = 0) -> float | None:
        """How many times ``stored`` bytes expand into ``declared`` ones, when that is past the
        compression-ratio limit (a decompression bomb); else ``None``. Up to ``ratio_free`` bytes, never."""
        ratio = declared / max(stored, 1)
        return ratio if declared > ratio_free and ratio > self.max_compression_ratio else None


@dataclass
class LoadReport:
    """What the loader changed or could not use, for the user to read."""

    dropped_columns: dict[str, str] = field(default_factory=dict)  # column -> why
    one_hot_columns: dict[str, int] = field(default_factory=dict)  # column -> levels
    imputed: dict[str, int] = field(default_factory=dict)  # column -> values filled
    skipped_files: dict[str, str] = field(default_factory=dict)  # file -> why
    notes: list[str] = field(default_factory=list)

    def lines(self) -> list[str]:
        """One readable line per finding."""
        out = [f"column '{c}' dropped: {why}" for c, why in self.dropped_columns.items()]
        out += [f"column '{c}' one-hot encoded ({k} levels)" for c, k in self.one_hot_columns.items()]
        out += [f"column '{c}': {k} missing value(s) filled in" for c, k in self.imputed.items()]
        out += [f"file '{f}' skipped: {why}" for f, why in self.skipped_files.items()]
        return out + list(self.notes)


@dataclass
class Dataset:
    """Samples ready for the engine, with what is needed to show them to a person.

    ``X`` is float32, ``(n, d)`` for tables (preprocessed: imputed, encoded, scaled to [0, 1] on the
    data itself) or ``(n, C, H, W)`` in [0, 1] for images. ``truth`` (1 = anomaly, 0 = normal), when
    the data came with it, is for evaluation only and never reaches training.
    """

    ids: np.ndarray
    X: np.ndarray
    kind: Literal["tabular", "image"]
    preprocessor: TabularPreprocessor | ImagePreprocessor
    source_name: str
    raw: pd.DataFrame | None = None  # tables: the rows as read, for display
    pixels: np.ndarray | None = None  # images: uint8 (n, H, W, C) at working size, for display
    truth: np.ndarray | None = None
    truth_classes: np.ndarray | None = None  # the class value each truth came from
    report: LoadReport = field(default_factory=LoadReport)

    @classmethod
    def from_pixels(
        cls,
        ids: list[str],
        pixels: np.ndarray,
        preprocessor: ImagePreprocessor,
        source_name: str,
        truth: np.ndarray | None,
        truth_classes: np.ndarray | None,
        report: LoadReport,
    ) -> Dataset:
        """An image data set from uint8 ``(n, H, W, C)`` pixels at the working size."""
        return cls(
            ids=np.asarray(ids, dtype=object),
            X=preprocessor.to_model_input(pixels),
            kind="image",
            preprocessor=preprocessor,
            source_name=source_name,
            pixels=pixels,
            truth=truth,
            truth_classes=truth_classes,
            report=report,
        )

    def __len__(self) -> int:
        return len(self.ids)

    @property
    def feature_names(self) -> list[str] | None:
        return self.preprocessor.feature_names if self.kind == "tabular" else None

    @property
    def image_size(self) -> tuple[int, int] | None:
        return self.preprocessor.size if self.kind == "image" else None

    def render(self, i: int) -> dict[str, Any] | Image.Image:
        """Sample ``i`` for display: a row's original values, or the image."""
        if self.kind == "image":
            px = self.pixels[i]
            return Image.fromarray(px[..., 0] if px.shape[-1] == 1 else px)
        return self.raw.iloc[i].to_dict()
