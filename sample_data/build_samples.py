"""Rebuild the sample data sets from data that ships inside scikit-learn (no download).

    python sample_data/build_samples.py

- ``breast_cancer.csv``: the Wisconsin diagnostic breast cancer table; every benign tumour (normal)
  and a seeded 5 % sample of malignant ones (anomalies); columns ``id``, the 30 measurements and
  ``truth`` (``benign``/``malignant``).
- ``digits.zip``: the 8x8 handwritten digits as PNG files; every 0 (normal) and a seeded 5 % sample of
  the other digits (anomalies), one folder per digit, so the folder is the truth.
"""

from __future__ import annotations

import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
from PIL import Image
from sklearn.datasets import load_breast_cancer, load_digits

HERE = Path(__file__).parent
SEED = 0
ANOMALY_SHARE = 0.05


def _anomaly_count(n_normal: int) -> int:
    return round(n_normal * ANOMALY_SHARE / (1 - ANOMALY_SHARE))


def build_breast_cancer(rng: np.random.Generator) -> pd.DataFrame:
    data = load_breast_cancer(as_frame=True)
    df = data.frame.drop(columns="target")
    benign = np.flatnonzero(data.target == 1)  # sklearn: 1 = benign
    malignant = rng.choice(np.flatnonzero(data.target == 0), _anomaly_count(len(benign)), replace=False)
    rows = np.sort(np.concatenate([benign, malignant]))
    out = df.iloc[rows].reset_index(drop=True)
    out.insert(0, "id", [f"patient-{i:03d}" for i in rows])
    out["truth"] = np.where(data.target.to_numpy()[rows] == 1, "benign", "malignant")
    return out


def build_digits(rng: np.random.Generator) -> bytes:
    digits = load_digits()
    normal = np.flatnonzero(digits.target == 0)
    others = rng.choice(np.flatnonzero(digits.target != 0), _anomaly_count(len(normal)), replace=False)
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for i in np.sort(np.concatenate([normal, others])):
            pixels = np.round(digits.images[i] / 16 * 255).astype(np.uint8)  # 0..16 grey levels -> 0..255
            png = io.BytesIO()
            Image.fromarray(pixels, mode="L").save(png, format="PNG")
            info = zipfile.ZipInfo(f"digits/{digits.target[i]}/digit-{i:04d}.png", date_time=(2020, 1, 1, 0, 0, 0))
            zf.writestr(info, png.getvalue())
    return buffer.getvalue()


def main() -> None:
    rng = np.random.default_rng(SEED)
    build_breast_cancer(rng).to_csv(HERE / "breast_cancer.csv", index=False)
    (HERE / "digits.zip").write_bytes(build_digits(rng))


if __name__ == "__main__":
    main()
