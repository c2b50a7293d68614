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
from functools import cached_property
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from deepsad_core.base.atomic import atomic_folder
from deepsad_core.base.labels import semi_targets
from deepsad_core.data import (
    Dataset,
    ImagePreprocessor,
    TabularPreprocessor,
    load_dataset,
    preprocessor_from_dict,
)
from deepsad_core.exceptions import DataError, ProjectNameError, RoundBusyError
from deepsad_core.loop.estimates import RoundSample
from deepsad_core.loop.exploration import PartAnswer, answered_history
from deepsad_core.loop.round import model_input
from deepsad_core.loop.settings import RoundConfig
from deepsad_core.model.backbone import FeatureExtractor
from deepsad_core.studio.exports import ProjectExports
from deepsad_core.studio.insights import ProjectInsights
from deepsad_core.studio.layout import DATA_DIR, DB_FILE, EXPORTS_DIR, ROUND_LOCK, ROUNDS_DIR, migrate
from deepsad_core.studio.round_view import RoundView
from deepsad_core.studio.store import ProjectStore, now

__all__ = ["Project", "RoundView", "slugify"]


def slugify(name: str) -> str:
    """A safe folder name from a project name."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", name.strip()).strip("-.")
    if not slug:
        raise ProjectNameError(f"the project name {name!r} has no usable characters; use letters, digits, '-' or '_'")
    return slug[:80]


class Project(ProjectInsights, ProjectExports):
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
        self.store = ProjectStore(self.path / DB_FILE)
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
            data = tmp / DATA_DIR
            data.mkdir()
            np.save(data / "X.npy", dataset.X)
            if dataset.kind == "image":
                np.save(data / "pixels.npy", dataset.pixels)
            else:
                dataset.raw.to_parquet(data / "raw.parquet", index=False)
            (data / "preprocessor.json").write_text(json.dumps(dataset.preprocessor.to_dict()))
            (tmp / ROUNDS_DIR).mkdir()
            (tmp / EXPORTS_DIR).mkdir()
            store = ProjectStore(tmp / DB_FILE)
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
        if not (path / DB_FILE).is_file() or not (path / DATA_DIR / "X.npy").is_file():
            raise DataError(f"{path} is not a DeepSAD Studio project (no {DB_FILE} or data/X.npy)")
        project = cls(path)
        project._discard_unfinished_rounds()
        migrate(project.rounds_dir, project.store)  # once: folders of earlier releases to today's layout
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
        found = [p for p in workspace.iterdir() if (p / DB_FILE).is_file() and not p.name.startswith(".")]
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
        return np.load(self.path / DATA_DIR / "X.npy", mmap_mode="r")

    @cached_property
    def preprocessor(self) -> TabularPreprocessor | ImagePreprocessor:
        return preprocessor_from_dict(json.loads((self.path / DATA_DIR / "preprocessor.json").read_text()))

    @cached_property
    def sample_ids(self) -> np.ndarray:
        return self.store.sample_ids()

    @cached_property
    def raw(self) -> pd.DataFrame | None:
        """Tables: the rows as read, for display."""
        path = self.path / DATA_DIR / "raw.parquet"
        return pd.read_parquet(path) if path.exists() else None

    @cached_property
    def pixels(self) -> np.ndarray | None:
        """Images: uint8 ``(n, H, W, C)`` at the working size, for display."""
        path = self.path / DATA_DIR / "pixels.npy"
        return np.load(path, mmap_mode="r") if path.exists() else None

    def model_input(self, config: RoundConfig, progress=None) -> tuple[np.ndarray, FeatureExtractor | None]:
        """What a round with ``config`` trains on: the samples, or, where ``config`` sends them through a
        pretrained backbone, their features with the extractor.

        Features are computed once per backbone (``progress(done, total, seconds_left)`` reports on it)
        and kept in ``data/features-<key>.npy``; the key changes with the backbone's name, weights or
        input size, so another backbone never reads features that are not its own.
        """
        X, extractor = model_input(self.X, config, progress, cache=self.path / DATA_DIR)
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
        return self.path / ROUNDS_DIR

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
        """Every finished round's random design, for :mod:`deepsad_core.loop.estimates`."""
        return [x for x in (r.sample() for r in self.rounds() if r.status == "done") if x is not None]

    def answered_history(self) -> list[PartAnswer]:
        """The finished rounds' queue cards the expert answered, oldest first, each with its queue part:
        what the next queue's exploration follows (:mod:`deepsad_core.loop.exploration`)."""
        return answered_history((r.queue for r in self.rounds() if r.status == "done"), self.labels())

    @contextmanager
    def round_lock(self) -> Iterator[None]:
        """Held while a round runs: one round at a time per project, across processes too (two app
        servers on one workspace, the CLI beside the app). Raises :class:`RoundBusyError` at once when
        another process holds it. The lock is the OS's (``flock``): a killed process releases it."""
        with open(self.path / ROUND_LOCK, "a+b") as handle:
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
