"""How long the expert waits for a round: warm-start training, scoring and the queue, and the map apart.

For 10,000 table rows (21 features, cardio-sized MLP), 10,000 MNIST images (LeNet) and 10,000
CIFAR-10 photos (the pretrained backbone's features, computed once and timed apart): fit round 0
once, label 20 samples, then time one warm-start round of 10 epochs + scores and latents for every
sample + threshold + queue. The UMAP map of the 10,000 latents is timed apart, after a warm-up.
Targets on 2 cores: table <= 5 s, images <= 30 s, photos on features <= 5 s, UMAP about 15 s.

    python -m benchmarks.round_latency --data-dir ../shared/data/images
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import numpy as np
import pandas as pd

from benchmarks.common import command_line, load_npz, write_report
from deepsad_core.data import load_dataset
from deepsad_core.loop.projection import umap_map, warm_up
from deepsad_core.loop.round import run_round
from deepsad_core.loop.settings import RoundConfig
from deepsad_core.model.backbone import extract_features, load_backbone


def bundle_megabytes(model, photos: np.ndarray, extractor) -> float:
    """Size of the exported bundle (backbone + detector, one ONNX graph) of a photo project."""
    import tempfile

    from deepsad_core.bundle.write import export_bundle
    from deepsad_core.data import ImagePreprocessor

    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "photos.zip"
        export_bundle(model, ImagePreprocessor((32, 32), 3), out, X_sample=photos[:200], backbone=extractor)
        return out.stat().st_size / 1e6


def one_round(name: str, X: np.ndarray, first_epochs: int, on_features: bool = False) -> dict:
    config = RoundConfig(first_epochs=first_epochs, first_ae_epochs=first_epochs, epochs_per_round=10)
    semi = np.zeros(len(X), dtype=np.int64)
    first = run_round(None, X, semi, config, 0, on_features=on_features)
    semi = semi.copy()
    semi[:10], semi[10:20] = -1, 1  # the expert's first labels
    timings: dict[str, float] = {}

    def clock(progress) -> bool:  # the end of training, seen from the progress callback
        timings["trained"] = time.perf_counter()
        return False

    start = time.perf_counter()
    result = run_round(first.model, X, semi, config, 1, on_features=on_features, samples=[first.sample], callback=clock)
    done = time.perf_counter()
    trained = timings["trained"]
    print(f"{name}: train {trained - start:.2f}s, the rest of the round {done - trained:.2f}s", file=sys.stderr)
    return {"data": name, "warm-start 10 epochs s": trained - start,
            "scores, latents, queue, estimates, audit s": done - trained,
            "round s": done - start, "latents": result.latents, "model": result.model}  # fmt: skip


def main(argv: list[str] | None = None) -> pd.DataFrame:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--data-dir", required=True, help="folder holding mnist_train.npz and cifar10_test.npz")
    p.add_argument("--n", type=int, default=10_000)
    args = p.parse_args(argv)
    rng = np.random.default_rng(0)
    table = rng.random((args.n, 21), dtype=np.float32)
    images, _ = load_npz(Path(args.data_dir) / "mnist_train.npz")
    images = (images[: args.n, None] / 255.0).astype(np.float32)
    rows = [one_round(f"{args.n:,} table rows", table, 5), one_round(f"{args.n:,} MNIST images", images, 2)]
    photos = load_dataset(Path(args.data_dir) / "cifar10_test.npz").X[: args.n]
    extractor = load_backbone()
    extract_features(extractor, photos[:64])  # export and warm-up outside the timing
    start = time.perf_counter()
    features = extract_features(extractor, photos)
    feature_seconds = time.perf_counter() - start
    rows.append(one_round(f"{len(photos):,} CIFAR-10 photos (backbone features)", features, 30, on_features=True))
    rows[2].pop("latents")
    megabytes = bundle_megabytes(rows[2]["model"], photos, extractor)
    for row in rows:
        row.pop("model")
    warm = warm_up()
    umap_seconds = umap_map(rows[1].pop("latents")).seconds
    rows[0].pop("latents")
    table_out = pd.DataFrame(rows).round(2)
    table_out["target s"] = [5, 30, 5]
    command = command_line("round_latency", argv)
    notes = [
        "a round after the first, as the app runs it (run_round), with the default detector (the ensemble): warm start "
        "(c fixed) with 20 labels, batch 128, then every sample scored and embedded, threshold from the labels, "
        "hybrid queue of 20, estimates, label-free scores and the stop hint; persistence and the map are not included",
        f"UMAP of {args.n:,} latents (MNIST LeNet, rep 32) after warm-up: {umap_seconds:.1f} s (target about 15 s); "
        f"the warm-up itself took {warm:.1f} s with numba's cache",
        f"photos: the backbone's features of {len(photos):,} images (once per project, before round 0) took "
        f"{feature_seconds:.1f} s, {len(photos) / feature_seconds:.0f} images/s (target >= 100); round 0 at the "
        "app's 30 + 30 epochs; the exported bundle (backbone + detector, one ONNX graph, zip) holds "
        f"{megabytes:.1f} MB",
    ]
    write_report("round_latency", "Round latency on this machine", command, notes, table_out)
    return table_out


if __name__ == "__main__":
    main()
