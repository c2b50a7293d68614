"""A project: one data set, its labels and its rounds, in one folder of the workspace.

```
<workspace>/<project>/
  project.db          SQLite (WAL): samples, label events, rounds, settings
  round.lock          held (flock) while a round runs, by whichever process runs it
  data/               X.npy (model input), pixels.npy or raw.parquet (display), preprocessor.json,
                      features-<backbone key>.npy (photographs: the backbone's features, made once)
  rounds/0007/        one folder per round, written under a temporary name and renamed
  exports/            bundles the user made
```
"""

from __future__ import annotations

import fcntl
import json
import os
import re
import shutil
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepsad_core.atomic import atomic_folder
from deepsad_core.audit import Doubt, StopHint, audit_labels
from deepsad_core.backbone import FeatureExtractor, extract_features, feature_cache, load_backbone
from deepsad_core.data import (
    Dataset,
    ImagePreprocessor,
    TabularPreprocessor,
    load_dataset,
    preprocessor_from_dict,
    read_any_table,
)
from deepsad_core.estimates import PoolEstimates, RoundSample, estimate_pool, suggest_threshold
from deepsad_core.exceptions import DataError, ProjectNameError, RoundBusyError
from deepsad_core.explain import attributions, top_features
from deepsad_core.labels import semi_targets
from deepsad_core.rounds import RoundConfig, model_input
from deepsad_core.studio.store import ProjectStore, now
from deepsad_core.threshold import flag

__all__ = ["Project", "RoundView", "slugify"]

_DB, _DATA, _ROUNDS, _EXPORTS = "project.db", "data", "rounds", "exports"
_ROUND_LOCK = "round.lock"


def slugify(name: str) -> str:
    """A safe folder name from a project name."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name.strip()).strip("-.")
    if not slug:
        raise ProjectNameError(f"the project name {name!r} has no usable characters; use letters, digits, '-' or '_'")
    return slug[:80]


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
    def latents(self) -> np.ndarray:
        return np.load(self.path / "latents.npy", mmap_mode="r")

    @cached_property
    def threshold(self) -> dict[str, Any]:
        return json.loads((self.path / "threshold.json").read_text())

    @cached_property
    def queue(self) -> list[dict[str, Any]]:
        return json.loads((self.path / "queue.json").read_text())

    def sample(self) -> RoundSample | None:
        """What its queue's random part drew from, and drew (rounds before estimates have none)."""
        if not (self.path / "frame.npy").exists():
            return None
        picks = [q["index"] for q in self.queue if q["strategy"] == "random"]
        return RoundSample(np.load(self.path / "frame.npy"), np.asarray(picks, dtype=np.int64))

    @property
    def map_method(self) -> str:
        return "umap" if (self.path / "map_umap.npy").exists() else "pca"

    @cached_property
    def map_index(self) -> np.ndarray:
        """The samples its map shows, sorted (see :func:`deepsad_core.projection.map_points`)."""
        path = self.path / "map_index.npy"
        return np.load(path) if path.exists() else np.arange(len(self.scores))  # rounds that mapped every sample

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


class Project:
    """A labeling project on disk; open it with :meth:`open`, make one with :meth:`create`.

    The folder holds ``project.db`` (SQLite: samples, the append-only label log, skips, rounds,
    settings), ``data/`` (the model input, raw rows or pixels, the preprocessor, cached image
    features), ``rounds/NNNN/`` (each finished round's model, scores, latents, maps and queue) and
    ``exports/``. Every label is durable when the call returns; a round's folder is complete before
    its row is committed.

    Parameters
    ----------
    path : Path
        The project folder.

    Attributes
    ----------
    path : Path
        The project folder.
    store : ProjectStore
        Its database.

    Examples
    --------
    >>> project = Project.create("~/deepsad-workspace", "pump 3", "sensors.csv")  # doctest: +SKIP
    >>> RoundWorker(project).run()  # round 0  # doctest: +SKIP
    >>> project.label([q["index"] for q in project.current_round().queue[:2]], "anomalous")  # doctest: +SKIP
    """

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        self.store = ProjectStore(self.path / _DB)
        self._models: dict[int, Any] = {}  # the current round's model, for explanations

    # --- creating and opening ---------------------------------------------------------------------

    @classmethod
    def create(cls, workspace: str | os.PathLike, name: str, source: Any, **load_options: Any) -> Project:
        """Load ``source`` (see :func:`deepsad_core.data.load_dataset`) into a new project folder."""
        cls.path_for(workspace, name)  # a bad name is refused before the data is read
        dataset = source if isinstance(source, Dataset) else load_dataset(source, **load_options)
        return cls.from_dataset(workspace, name, dataset)

    @classmethod
    def from_dataset(cls, workspace: str | os.PathLike, name: str, dataset: Dataset) -> Project:
        workspace = Path(workspace)
        workspace.mkdir(parents=True, exist_ok=True)
        path = cls.path_for(workspace, name)
        if path.exists():
            raise FileExistsError(f"a project named '{path.name}' already exists in {workspace}; choose another name")
        # build the whole project under a temporary name: a crash leaves no half-made project behind
        with atomic_folder(path, replace=False) as tmp:
            data = tmp / _DATA
            data.mkdir()
            np.save(data / "X.npy", dataset.X)
            if dataset.kind == "image":
                np.save(data / "pixels.npy", dataset.pixels)
            else:
                dataset.raw.to_parquet(data / "raw.parquet", index=False)
            (data / "preprocessor.json").write_text(json.dumps(dataset.preprocessor.to_dict()))
            (tmp / _ROUNDS).mkdir()
            (tmp / _EXPORTS).mkdir()
            store = ProjectStore(tmp / _DB)
            store.add_samples(dataset.ids, dataset.truth)
            store.set_meta(
                {
                    "name": name,
                    "kind": dataset.kind,
                    "source": dataset.source_name,
                    "created_at": now(),
                    "n_samples": len(dataset),
                    "input_shape": list(dataset.X.shape[1:]),
                    "report": dataset.report.lines(),
                }
            )
        return cls(path)

    @classmethod
    def open(cls, path: str | os.PathLike) -> Project:
        path = Path(path)
        if not (path / _DB).is_file() or not (path / _DATA / "X.npy").is_file():
            raise DataError(f"{path} is not a DeepSAD Studio project (no {_DB} or data/X.npy)")
        project = cls(path)
        project._discard_unfinished_rounds()
        return project

    @staticmethod
    def path_for(workspace: str | os.PathLike, name: str) -> Path:
        """Where a project named ``name`` lives in ``workspace`` (whether or not it exists yet)."""
        return Path(workspace) / slugify(name)

    @staticmethod
    def folders(workspace: str | os.PathLike) -> list[Path]:
        """Project folders in ``workspace``, newest first."""
        workspace = Path(workspace)
        if not workspace.is_dir():
            return []
        found = [p for p in workspace.iterdir() if (p / _DB).is_file() and not p.name.startswith(".")]
        return sorted(found, key=lambda p: p.stat().st_mtime, reverse=True)

    # --- data ---------------------------------------------------------------------------------------

    @cached_property
    def meta(self) -> dict[str, Any]:
        return self.store.meta()

    @property
    def name(self) -> str:
        return self.meta["name"]

    @property
    def kind(self) -> str:
        return self.meta["kind"]

    @cached_property
    def X(self) -> np.ndarray:
        """Model input for every sample, memory-mapped read-only."""
        return np.load(self.path / _DATA / "X.npy", mmap_mode="r")

    @cached_property
    def preprocessor(self) -> TabularPreprocessor | ImagePreprocessor:
        return preprocessor_from_dict(json.loads((self.path / _DATA / "preprocessor.json").read_text()))

    @cached_property
    def sample_ids(self) -> np.ndarray:
        return self.store.sample_ids()

    @cached_property
    def raw(self) -> pd.DataFrame | None:
        """Tables: the rows as read, for display."""
        path = self.path / _DATA / "raw.parquet"
        return pd.read_parquet(path) if path.exists() else None

    @cached_property
    def pixels(self) -> np.ndarray | None:
        """Images: uint8 ``(n, H, W, C)`` at the working size, for display."""
        path = self.path / _DATA / "pixels.npy"
        return np.load(path, mmap_mode="r") if path.exists() else None

    def model_input(self, config: RoundConfig, progress=None) -> tuple[np.ndarray, FeatureExtractor | None]:
        """What a round with ``config`` trains on: the samples, or, where ``config`` sends them through a
        pretrained backbone, their features with the extractor.

        Features are computed once per backbone (``progress(done, total, seconds_left)`` reports on it)
        and kept in ``data/features-<key>.npy``; the key changes with the backbone's name, weights or
        input size, so another backbone never reads features that are not its own.
        """
        X, extractor = model_input(self.X, config, progress, cache=self.path / _DATA)
        return np.asarray(X), extractor

    def truth(self) -> np.ndarray | None:
        """Ground truth for metrics only: never for training, queues or thresholds."""
        return self.store.truth()

    def __len__(self) -> int:
        return int(self.meta["n_samples"])

    # --- labels -------------------------------------------------------------------------------------

    def label(
        self, sample_idx: int | list[int], label: str | None, annotator: str = "expert", round_number: int | None = None
    ) -> str:
        """Record a label (``"normal"``/``"anomalous"``, or ``None`` to take it away); durable on return.

        Returns the action's id (what :meth:`undo` takes back)."""
        idx = [sample_idx] if isinstance(sample_idx, (int, np.integer)) else list(sample_idx)
        return self.store.add_labels(idx, label, annotator, round_number)[0]

    def label_unlabeled(
        self, sample_idx: list[int], label: str, annotator: str = "expert", round_number: int | None = None
    ) -> tuple[str, list[int]]:
        """Label those of ``sample_idx`` that are still unlabeled when the labels are committed (bulk labels:
        another tab may have labeled some since the page was drawn). Returns the action id and the samples
        labeled."""
        return self.store.add_labels(sample_idx, label, annotator, round_number, only_unlabeled=True)

    def undo(self, annotator: str = "expert", actions: list[str] | None = None) -> list[int]:
        """Take back the latest action of ``annotator`` (among ``actions``, a session's own, when given)."""
        return self.store.undo_last(annotator, actions)

    def labels(self) -> dict[int, str]:
        return self.store.current_labels()

    @cached_property
    def _feature_reference(self) -> tuple[np.ndarray, np.ndarray]:
        """Median and spread (IQR, floored) of every feature or pixel: what a typical sample holds."""
        q1, median, q3 = np.quantile(np.asarray(self.X, dtype=np.float64), [0.25, 0.5, 0.75], axis=0)
        return median, np.maximum(q3 - q1, 1e-6)

    def standout(self, sample_idx: int, k: int = 4) -> list[tuple[str, Any, float]]:
        """A table row's ``k`` values that lie farthest from the typical row, farthest first: ``(column,
        raw value, distance)``, the distance in interquartile ranges, signed (above or below the median)."""
        if self.kind != "tabular":
            raise ValueError("standout values are for table rows; images are shown as they are")
        median, spread = self._feature_reference
        z = (np.asarray(self.X[sample_idx], dtype=np.float64) - median) / spread
        columns = self.preprocessor.feature_columns
        raw = self.raw.iloc[sample_idx]
        return [(columns[j], raw[columns[j]], float(z[j])) for j in np.argsort(-np.abs(z))[:k]]

    def annotator_counts(self) -> dict[str, dict[str, int]]:
        """How many standing labels each annotator gave, by kind."""
        return {
            who: {kind: sum(v == kind for v in given.values()) for kind in ("normal", "anomalous")}
            for who, given in sorted(self.store.labels_by_annotator().items())
        }

    def conflicts(self) -> list[dict[str, Any]]:
        """Samples that annotators labeled differently: each one's labels by annotator, and the label that
        trains the model (``used``: the latest given, by whoever gave it)."""
        by_annotator = self.store.labels_by_annotator()
        current = self.labels()
        samples = sorted({i for given in by_annotator.values() for i in given})
        out = []
        for i in samples:
            given = {who: labels[i] for who, labels in sorted(by_annotator.items()) if i in labels}
            if len(set(given.values())) > 1:
                out.append({"index": i, "sample_id": str(self.sample_ids[i]), "labels": given, "used": current.get(i)})
        return out

    def skip(self, sample_idx: int, round_number: int, annotator: str = "expert") -> None:
        """Take a sample out of that round's queue without labeling it ("not now"); durable on return."""
        self.store.add_skip(round_number, sample_idx, annotator)

    def skipped(self, round_number: int) -> set[int]:
        """The samples skipped in that round's queue, by anyone."""
        return self.store.skipped(round_number)

    def semi_targets(self) -> np.ndarray:
        """The engine's targets from the current labels: +1 normal, -1 anomalous, 0 unlabeled."""
        return semi_targets(len(self), self.labels())

    # --- rounds -------------------------------------------------------------------------------------

    @property
    def rounds_dir(self) -> Path:
        return self.path / _ROUNDS

    def round_path(self, number: int) -> Path:
        return self.rounds_dir / f"{number:04d}"

    def round_config(self) -> RoundConfig:
        """The labeling-loop settings: the project's own, over the defaults."""
        return RoundConfig.from_dict(self.store.settings().get("round", {}))  # unset fields: the defaults

    def update_round_config(self, **changes: Any) -> RoundConfig:
        """Change some settings, in one transaction: another tab's changes to other fields are kept."""

        def check(merged: dict) -> dict:
            return RoundConfig.from_dict(merged).to_dict()

        return RoundConfig.from_dict(self.store.merge_setting("round", changes, check))

    def rounds(self) -> list[RoundView]:
        return [RoundView(r["number"], self.round_path(r["number"]), r) for r in self.store.rounds()]

    def current_round(self) -> RoundView | None:
        """The latest round that finished well: failed and cancelled rounds never replace it."""
        done = [r for r in self.rounds() if r.status == "done"]
        return done[-1] if done else None

    def round_samples(self) -> list[RoundSample]:
        """Every finished round's random design, for :mod:`deepsad_core.estimates`."""
        return [x for x in (r.sample() for r in self.rounds() if r.status == "done") if x is not None]

    def estimates(self, threshold: float | None = None, round_number: int | None = None) -> PoolEstimates | None:
        """The pool's anomaly share, and recall and precision at ``threshold`` (default: the round's
        own), estimated from every label so far with 90 % intervals; ``None`` until a random pick is
        labeled."""
        view = self._done_round(round_number)
        value = view.threshold["value"] if threshold is None else threshold
        return estimate_pool(view.scores, value, self.semi_targets(), self.round_samples())

    def audit(self, k: int = 5) -> list[Doubt]:
        """The ``k`` labels the current round most doubts (see :func:`deepsad_core.audit.audit_labels`):
        its label-free scores against each label, and the other labels against it."""
        view = self._done_round(None)
        path = view.path / "label_free.npy"
        scores = np.load(path) if path.exists() else view.scores
        return audit_labels(scores, self.semi_targets(), k=k, X=np.asarray(self.X_for(view)))

    def X_for(self, view: RoundView) -> np.ndarray:
        """The input the round's model learned on: the data, or the backbone features it was trained on."""
        key = view.metrics.get("features_key")
        cached = feature_cache(self.path / _DATA, key) if key else None
        return np.load(cached, mmap_mode="r") if cached is not None and cached.exists() else self.X

    def explain(self, sample_idx: int, k: int = 3) -> list[tuple[str, Any, float]] | np.ndarray:
        """What drives a sample's score in the current round (see :mod:`deepsad_core.explain`).

        A table row: its ``k`` columns whose typical value would lower the score most, as ``(column, raw
        value, score drop)``. An image: a map of the score's drop per pixel, shaped ``(height, width)``."""
        view = self._done_round(None)
        model = self._round_model(view.number)
        if self.kind == "tabular":
            return self.drivers(model, [sample_idx], k)[0]
        pixels = np.asarray(self.X[[sample_idx]], dtype=np.float32)
        baseline = self._typical_input
        key = view.metrics.get("features_key")
        if key is None:  # the model learned on the images themselves
            return model.explain(pixels, baseline=baseline)[0].sum(axis=0)
        extractor = load_backbone(view.config.backbone)

        def score(batch: np.ndarray) -> np.ndarray:
            return model.decision_function(extract_features(extractor, batch))

        return attributions(score, pixels, baseline)[0].sum(axis=0)

    def drivers(self, model: Any, sample_idx: list[int], k: int = 3) -> list[list[tuple[str, Any, float]]]:
        """For table rows: each one's ``k`` columns whose typical value would lower ``model``'s score most,
        as ``(column, raw value, score drop)``, in one pass over the rows."""
        # the project's typical row as the baseline: models saved before they kept their own work too
        values = model.explain(np.asarray(self.X[sample_idx]), baseline=self._typical_input)
        columns = self.preprocessor.feature_columns
        rows = self.raw.iloc[sample_idx]
        return [
            [(c, row[c], v) for c, v in top_features(attribution, columns, k)]
            for attribution, (_, row) in zip(values, rows.iterrows(), strict=True)
        ]

    @property
    def _typical_input(self) -> np.ndarray:
        """The median row or image of the project's data: what an explanation compares a sample with."""
        return self._feature_reference[0].astype(np.float32)

    def _round_model(self, number: int):
        """A round's model, loaded once per project object (explanations ask for it on every card)."""
        from deepsad_core.ensemble import load_model

        if number not in self._models:
            self._models = {number: load_model(self.round_path(number) / "model", device="cpu")}
        return self._models[number]

    def stop_hint(self, view: RoundView | None = None) -> StopHint | None:
        """Whether the last labels still changed the detector, as a round (default: the current one)
        recorded it."""
        view = view or self.current_round()
        recorded = view.metrics.get("stop") if view is not None else None
        return StopHint(**recorded) if recorded else None

    def suggested_threshold(self, round_number: int | None = None) -> PoolEstimates | None:
        """The threshold with the best estimated F1 over the pool, with its estimates (``None`` until a
        random pick is labeled: then the round's own threshold, from the labels, is all there is)."""
        view = self._done_round(round_number)
        return suggest_threshold(view.scores, self.semi_targets(), self.round_samples())

    def _done_round(self, round_number: int | None) -> RoundView:
        done = {r.number: r for r in self.rounds() if r.status == "done"}
        if not done:
            raise DataError("this project has no finished round yet: run a round first")
        number = max(done) if round_number is None else round_number
        if number not in done:
            raise DataError(f"round {number} did not finish; finished rounds: {sorted(done)}")
        return done[number]

    def export(
        self,
        round_number: int | None = None,
        *,
        out: str | os.PathLike | None = None,
        threshold: dict[str, Any] | None = None,
        force: bool = False,
        sign_key: bytes | None = None,
    ) -> Path:
        """Write a detector bundle of a round (default: the current one); returns its path.

        Default destination: ``exports/round-NNNN.zip`` in the project folder, which the project owns
        and re-exports replace. Elsewhere an existing path is replaced only if it is a bundle and
        ``force`` is set. ``threshold`` (``{"value", "method", "detail"}``) overrides the round's own;
        ``sign_key`` signs the bundle.
        """
        from deepsad_core.ensemble import load_model
        from deepsad_core.export import export_bundle

        view = self._done_round(round_number)
        number = view.number
        model = load_model(view.path / "model", device="cpu")
        config = view.config
        # the model itself says what it was trained on: images' features (1-D input) or the images
        on_features = len(model.input_shape_) == 1 and len(self.meta["input_shape"]) == 3
        if out is None:
            out, force = self.path / _EXPORTS / f"round-{number:04d}.zip", True
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
        chosen = (threshold or view.threshold)["value"]
        found = estimate_pool(view.scores, chosen, self.semi_targets(), self.round_samples())
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

    @contextmanager
    def round_lock(self) -> Iterator[None]:
        """Held while a round runs: one round at a time per project, across processes too (two app
        servers on one workspace, the CLI beside the app). Raises :class:`RoundBusyError` at once when
        another process holds it. The lock is the OS's (``flock``): a killed process releases it."""
        with open(self.path / _ROUND_LOCK, "a+b") as handle:
            try:
                fcntl.flock(handle.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                raise RoundBusyError(
                    f"a round of '{self.name}' is already running in another process; wait for it to finish"
                ) from None
            try:
                yield
            finally:
                fcntl.flock(handle.fileno(), fcntl.LOCK_UN)

    def score_upload(self, bundle: str | os.PathLike, upload: Any) -> pd.DataFrame:
        """Score an uploaded file (a table with the project's columns, or a ZIP of images) with a bundle:
        id columns (or row numbers, or file names), ``score`` and ``anomaly``, most anomalous first."""
        from deepsad_core.detector import load_detector

        detector = load_detector(bundle)
        if self.kind == "tabular":
            frame = read_any_table(upload, filename=upload.name)
            scores = detector.decision_function(frame)
            ids = [c for c in self.preprocessor.ignored if c in frame.columns]
            out = frame[ids].copy() if ids else pd.DataFrame({"row": np.arange(len(frame))})
        else:
            pre = self.preprocessor
            data = load_dataset(upload, filename=upload.name, image_size=pre.size, channels=pre.channels)
            scores = detector.score_features(data.X)
            out = pd.DataFrame({"file": data.ids})
        out["score"] = scores
        out["anomaly"] = flag(scores, detector.threshold_)
        return out.sort_values("score", ascending=False)

    def next_round_number(self) -> int:
        return max((r["number"] for r in self.store.rounds()), default=-1) + 1

    def commit_round(self, number: int, write: Callable[[Path], None], row: dict[str, Any]) -> Path:
        """Write a round's files atomically, then commit its row: a crash leaves the last round as it was.

        ``write`` fills a temporary folder; it is renamed to ``rounds/NNNN``; the SQLite row is
        committed last, so a round without a row (a crash in between) is discarded on the next open.
        """
        final = self.round_path(number)
        if number in {r["number"] for r in self.store.rounds()}:
            raise FileExistsError(f"round {number} already exists in {self.path}")
        # a folder already at ``final`` was renamed but never committed (a crash): it is replaced;
        # the files are flushed to disk before the rename, and the rename before the row
        with atomic_folder(final) as tmp:
            write(tmp)
        self.store.add_round({**row, "number": number})
        return final

    def _discard_unfinished_rounds(self, min_age_s: float = 3600.0) -> None:
        """Remove temporary round folders a crash left behind (old enough not to be in progress)."""
        cutoff = time.time() - min_age_s
        for entry in self.rounds_dir.iterdir() if self.rounds_dir.is_dir() else []:
            if entry.name.startswith(".") and entry.stat().st_mtime < cutoff:
                shutil.rmtree(entry, ignore_errors=True)
