"""What a finished round left on disk (its row, model, scores, latents, maps and queue), read lazily."""

from __future__ import annotations

import json
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np

from deepsad_core.base.threshold import ThresholdChoice
from deepsad_core.loop.estimates import RoundSample
from deepsad_core.loop.query import SAMPLED_PARTS
from deepsad_core.loop.settings import RoundConfig

__all__ = ["RoundView"]


@dataclass
class RoundView:
    """What a finished round left on disk, read lazily.

    Parameters
    ----------
    number : int
        The round's number, from 0.
    path : Path
        Its folder in the project.
    row : dict
        Its row in the project's database; read it through the properties.
    """

    number: int
    path: Path
    row: dict[str, Any]

    @property
    def status(self) -> str:
        """``"done"``, ``"failed"`` or ``"cancelled"``."""
        return self.row["status"]

    @property
    def config(self) -> RoundConfig:
        """The settings the round ran with."""
        return RoundConfig.from_dict(self.row["config"] or {})

    @property
    def metrics(self) -> dict[str, Any]:
        """Label counts, round time, and with truth AUC, AP and anomalies found (empty if it failed)."""
        return self.row["metrics"] or {}

    @property
    def n_labels(self) -> int:
        """How many labels the round trained with."""
        return self.row["n_labels"]

    @property
    def seconds(self) -> float:
        """The round's wall time."""
        return self.row["seconds"]

    @property
    def finished_at(self) -> str:
        """When it ended (ISO 8601, UTC)."""
        return self.row["finished_at"]

    @property
    def error(self) -> str | None:
        """Why a failed or cancelled round stopped."""
        return self.row["error"]

    @cached_property
    def scores(self) -> np.ndarray:
        return np.load(self.path / "scores.npy")

    @cached_property
    def held_out(self) -> np.ndarray | None:
        """Each sample's score from a view that had not seen its label (rounds saved before: ``None``)."""
        path = self.path / "held_out.npy"
        return np.load(path) if path.exists() else None

    @cached_property
    def latents(self) -> np.ndarray:
        return np.load(self.path / "latents.npy", mmap_mode="r")

    @cached_property
    def threshold(self) -> ThresholdChoice:
        return ThresholdChoice.from_dict(json.loads((self.path / "threshold.json").read_text()))

    @cached_property
    def queue(self) -> list[dict[str, Any]]:
        return json.loads((self.path / "queue.json").read_text())

    def sample(self) -> RoundSample | None:
        """What its queue's check draw drew from, what it drew and each pick's chance (rounds saved
        before estimates have none)."""
        if not (self.path / "frame.npy").exists():
            return None
        frame = np.load(self.path / "frame.npy")
        drawn = [q for q in self.queue if q["strategy"] in SAMPLED_PARTS]
        # queues saved before the check draw drew their random part uniformly from the frame
        uniform = len(drawn) / max(int(frame.sum()), 1)
        return RoundSample(
            frame,
            np.asarray([q["index"] for q in drawn], dtype=np.int64),
            np.asarray([q.get("inclusion", uniform) for q in drawn], dtype=np.float64),
        )

    @property
    def map_method(self) -> str:
        return "umap" if (self.path / "map_umap.npy").exists() else "pca"

    @cached_property
    def map_index(self) -> np.ndarray:
        """The samples its map shows, sorted (see :func:`deepsad_core.loop.projection.map_points`)."""
        return np.load(self.path / "map_index.npy")

    def map_coords(self) -> np.ndarray:
        """The UMAP layout once computed, else the PCA view: one row per sample of :attr:`map_index`."""
        return np.load(self.path / f"map_{self.map_method}.npy")

    def map_coords_for(self, index: np.ndarray) -> np.ndarray:
        """Where its map placed the samples ``index``; NaN for those it does not show."""
        coords, shown = self.map_coords(), self.map_index
        out = np.full((len(index), 2), np.nan, dtype=np.float32)
        at = np.minimum(np.searchsorted(shown, index), len(shown) - 1)
        found = shown[at] == index
        out[found] = coords[at[found]]
        return out
