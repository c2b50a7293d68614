"""A project's way out: a round's detector as a bundle, and an uploaded file scored by a bundle.

A part of :class:`~deepsad_core.studio.project.Project`, kept apart because it alone reaches the
bundle layer.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepsad_core.base.threshold import ThresholdChoice, flag
from deepsad_core.data import load_dataset, read_any_table
from deepsad_core.loop.estimates import estimate_pool
from deepsad_core.model.backbone import load_backbone
from deepsad_core.studio.layout import EXPORTS_DIR

__all__ = ["ProjectExports"]


class ProjectExports:
    """Exporting and scoring uploads (mixed into :class:`~deepsad_core.studio.project.Project`)."""

    def export(
        self,
        round_number: int | None = None,
        *,
        out: str | os.PathLike | None = None,
        threshold: ThresholdChoice | None = None,
        force: bool = False,
        sign_key: bytes | None = None,
    ) -> Path:
        """Write a detector bundle of a round (default: the current one); returns its path.

        Default destination: ``exports/round-NNNN.zip`` in the project folder, which the project owns
        and re-exports replace. Elsewhere an existing path is replaced only if it is a bundle and
        ``force`` is set. ``threshold`` overrides the round's own;
        ``sign_key`` signs the bundle.
        """
        from deepsad_core.bundle.write import export_bundle
        from deepsad_core.detectors.contract import load_model

        view = self._done_round(round_number)
        number = view.number
        model = load_model(view.path / "model", device="cpu")
        config = view.config
        # the model itself says what it was trained on: images' features (1-D input) or the images
        on_features = len(model.input_shape_) == 1 and len(self.meta["input_shape"]) == 3
        if out is None:
            out, force = self.path / EXPORTS_DIR / f"round-{number:04d}.zip", True
        out = Path(out)
        rng = np.random.default_rng(0)
        sample = np.sort(rng.choice(len(self), min(1000, len(self)), replace=False))
        metrics = view.row["metrics"] or {}
        info = {
            "round": number,
            "project": self.name,
            "training_config": view.row["config"],
            "label_counts": {k: metrics.get(k) for k in ("n_labels", "labeled_normal", "labeled_anomalous")},
            "metrics": {k: v for k, v in metrics.items() if k in ("auc", "ap", "auc_unlabeled", "anomalies_found")},
        }
        chosen = (threshold or view.threshold).value
        found = estimate_pool(view.scores, chosen, self.semi_targets(), self.round_samples(), view.held_out)
        info["estimates"] = found.to_dict() if found is not None else None  # over the project's data
        paths = export_bundle(
            model,
            self.preprocessor,
            out,
            X_sample=np.asarray(self.X[sample]),
            threshold=threshold or view.threshold,
            info=info,
            force=force,
            sign_key=sign_key,
            backbone=load_backbone(config.backbone) if on_features else None,
        )
        return paths[0] if len(paths) == 1 else out

    def score_upload(self, bundle: str | os.PathLike, upload: Any) -> pd.DataFrame:
        """Score an uploaded file (a table with the project's columns, or a ZIP of images) with a bundle:
        id columns (or row numbers, or file names), ``score`` and ``anomaly``, most anomalous first."""
        from deepsad_core.bundle.read import load_detector

        detector = load_detector(bundle)
        if self.kind == "tabular":
            frame = read_any_table(upload, filename=upload.name)
            scores = detector.decision_function(frame)
            ids = [c for c in self.preprocessor.ignored if c in frame.columns]
            out = frame[ids].copy() if ids else pd.DataFrame({"row": np.arange(len(frame))})
        else:
            pre = self.preprocessor
            data = load_dataset(upload, filename=upload.name, image_size=pre.size, channels=pre.channels)
            scores = detector.score_model_input(data.X)
            out = pd.DataFrame({"file": data.ids})
        out["score"] = scores
        out["anomaly"] = flag(scores, detector.threshold_)
        return out.sort_values("score", ascending=False)
