"""The background worker that runs a project's rounds, one at a time, with live progress.

``RoundWorker.start`` runs a round in a daemon thread and returns at once; ``run`` does the same work
synchronously (tests, the CLI). Progress (phase, epoch, loss, ETA) is read with :meth:`status`, a
copy taken under a lock. :meth:`cancel` stops training at the next epoch. A round that fails or is
cancelled is recorded with its reason; the previous round stays current. After a round is committed
the worker draws its UMAP map in another thread (the layout itself in a low-priority child process,
see :mod:`deepsad_core.studio.maps`) and adds it to the round folder.
"""

from __future__ import annotations

import json
import threading
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np

from deepsad_core.base.atomic import atomic_file
from deepsad_core.detectors.contract import load_model
from deepsad_core.exceptions import RoundBusyError, TrainingCancelled
from deepsad_core.loop.projection import layout_shift, map_labels, map_points, pca_map
from deepsad_core.loop.round import PreviousRound, RoundResult, run_round
from deepsad_core.loop.settings import RoundConfig
from deepsad_core.model.training import Progress
from deepsad_core.studio.maps import default_service
from deepsad_core.studio.project import Project
from deepsad_core.studio.store import now

__all__ = ["RoundStatus", "RoundWorker"]


@dataclass(frozen=True)
class RoundStatus:
    state: str = "idle"  # idle, running, done, failed, cancelled
    round_number: int | None = None
    phase: str = ""  # pretrain, train, score, map
    epoch: int = 0
    epochs: int = 0
    loss: float | None = None
    seconds_left: float | None = None
    message: str = ""
    started: float | None = None  # time.time() at start

    @property
    def fraction(self) -> float:
        return self.epoch / self.epochs if self.epochs else 0.0

    def describe(self) -> str:
        """One line for a progress bar: what runs, how far, and the time left."""
        if self.phase == "features":
            what = f"image features {self.epoch:,}/{self.epochs:,} (once per project)"
        else:
            what = f"{self.phase} epoch {self.epoch}/{self.epochs}"
        loss = f" · loss {self.loss:.4g}" if self.loss is not None else ""
        left = f" · about {self.seconds_left:.0f} s left in this phase" if self.seconds_left else ""
        return f"Round {self.round_number}: {what}{loss}{left}"


class RoundWorker:
    """Runs rounds for one project; share one per project between browser tabs.

    A round trains (warm from the last good round, on the project's labels), scores every sample,
    chooses the threshold and the next queue, and commits its folder and row; then its UMAP map
    follows in the map service. One round runs at a time per project, across processes too.

    Parameters
    ----------
    project : Project
        The project whose rounds it runs.

    Attributes
    ----------
    project : Project
        The project.
    busy : bool
        Whether a background round is running.

    Examples
    --------
    >>> worker = RoundWorker(project)  # doctest: +SKIP
    >>> worker.start()  # in the background; worker.status() for progress, worker.cancel() to stop
    >>> worker.wait().state  # doctest: +SKIP
    'done'
    """

    def __init__(self, project: Project) -> None:
        self.project = project
        self._lock = threading.Lock()
        self._status = RoundStatus()
        self._cancel = threading.Event()
        self._thread: threading.Thread | None = None
        self._map_thread: threading.Thread | None = None
        self._map_lock = threading.Lock()

    # --- control --------------------------------------------------------------------------------

    def status(self) -> RoundStatus:
        with self._lock:
            return self._status

    def _set(self, **changes) -> None:
        with self._lock:
            self._status = replace(self._status, **changes)

    @property
    def busy(self) -> bool:
        return self._thread is not None and self._thread.is_alive()

    def start(self, config: RoundConfig | None = None) -> bool:
        """Start a round in the background; False if one is already running."""
        with self._lock:
            if self._thread is not None and self._thread.is_alive():
                return False
            self._cancel.clear()
            self._status = RoundStatus(state="running", phase="starting", started=time.time())
            # the flag was cleared above, under the lock: a cancel from now on is for this round
            self._thread = threading.Thread(target=self._run, args=(config,), name="deepsad-round", daemon=True)
            self._thread.start()
        return True

    def cancel(self) -> None:
        self._cancel.set()

    def wait(self, timeout: float | None = None) -> RoundStatus:
        if self._thread is not None:
            self._thread.join(timeout)
        return self.status()

    # --- the round ------------------------------------------------------------------------------

    def run(self, config: RoundConfig | None = None) -> RoundStatus:
        """Run one round now, in this thread; returns the final status. Never raises for a bad round."""
        self._cancel.clear()  # a cancel left from an earlier round is not for this one
        return self._run(config)

    def _run(self, config: RoundConfig | None) -> RoundStatus:
        try:
            with self.project.round_lock():
                return self._run_locked(config)
        except RoundBusyError as e:  # another process runs this project's round: nothing is recorded here
            self._set(state="failed", phase="", message=str(e))
            return self.status()

    def _run_locked(self, config: RoundConfig | None) -> RoundStatus:
        project = self.project
        started_at, t0 = now(), time.perf_counter()
        number = semi = None
        try:  # everything, setup included: a round that fails anywhere is reported, never left "running"
            config = config or project.round_config()
            number = project.next_round_number()
            self._set(state="running", round_number=number, phase="starting", started=time.time(), message="")
            semi = project.semi_targets()
            previous = project.current_round()
            result, recorded = self._train(config, semi, number, previous)
            metrics = {**result.metrics, **recorded}
            shown = self._map_points(result, semi)
            metrics["round_seconds"] = time.perf_counter() - t0
            row = self._row("done", started_at, t0, semi, config, metrics)
            self._persist(number, result, shown, previous, row)
        except TrainingCancelled as e:
            self._record_failure(number, "cancelled", str(e), started_at, t0, semi, config)
            return self.status()
        except Exception as e:  # a bad round is recorded, never raised into the UI
            detail = f"{type(e).__name__}: {e}"
            self._record_failure(number, "failed", detail, started_at, t0, semi, config, traceback.format_exc())
            return self.status()
        note = f" ({metrics['note']})" if "note" in metrics else ""
        self._set(state="done", phase="", message=f"round {number} ready{note}; the UMAP map follows")
        # the map is drawn in its own thread: the next round may start meanwhile (maps run one at a time)
        self._map_thread = threading.Thread(
            target=self._add_umap,
            args=(number, shown, result.latents[shown], map_labels(semi[shown]), previous),
            name="deepsad-map",
            daemon=True,
        )
        self._map_thread.start()
        return self.status()

    def _train(self, config: RoundConfig, semi: np.ndarray, number: int, previous) -> tuple[RoundResult, dict]:
        """The round (:func:`~deepsad_core.loop.round.run_round`) and what the worker adds to its record:
        which backbone's features it learned on, and a note when it could not continue the last round."""
        project = self.project
        X, extractor = project.model_input(config, progress=self._on_features)
        model, view, note = self._last_loadable_model()
        features_key = extractor.key() if extractor is not None else None
        trained_on = view.metrics.get("features_key") if view is not None else None
        if trained_on != features_key:
            model = None  # trained on other input (another backbone's features, or none): start afresh
        self._set(phase="train", message="")
        result = run_round(
            model, X, semi, config, number,
            on_features=extractor is not None,
            samples=project.round_samples(),
            previous=self._previous(previous),
            history=project.answered_history(),
            truth=project.truth(),
            drivers=project.drivers if project.kind == "tabular" else None,
            callback=self._on_progress,
        )  # fmt: skip
        recorded = {"note": note} if note else {}
        if features_key is not None:
            recorded["features_key"] = features_key  # which backbone's features this model learned on
        return result, recorded

    def _previous(self, view) -> PreviousRound | None:
        """The last round as the next one compares itself with it: its scores, threshold, the answers to
        its queue, and its estimated recall."""
        if view is None:
            return None
        labels = self.project.labels()
        answered = {q["index"]: labels[q["index"]] for q in view.queue if q["index"] in labels}
        return PreviousRound(view.scores, view.threshold.value, answered, view.metrics.get("est_recall"))

    def _persist(self, number: int, result: RoundResult, shown: np.ndarray, previous, row: dict) -> None:
        """The round's files (model, scores, label-free scores for the audit, latents, the PCA map of the
        samples a map shows, threshold, queue and its random design), then its row."""
        project = self.project
        before = previous.map_coords_for(shown) if previous is not None else None
        pca = pca_map(result.latents[shown], before)

        def write(folder: Path) -> None:
            result.model.save(folder / "model")
            np.save(folder / "scores.npy", result.scores)
            np.save(folder / "label_free.npy", result.label_free)
            np.save(folder / "held_out.npy", result.held_out)  # what the estimates place check samples by
            np.save(folder / "latents.npy", result.latents)
            np.save(folder / "map_index.npy", shown)
            np.save(folder / "map_pca.npy", pca.coords)
            (folder / "threshold.json").write_text(json.dumps(result.threshold.to_dict()))
            np.save(folder / "frame.npy", result.sample.frame)  # what the queue's check draw drew from
            (folder / "queue.json").write_text(json.dumps(result.queue_records(project.sample_ids)))

        project.commit_round(number, write, row)

    @staticmethod
    def _map_points(result: RoundResult, semi: np.ndarray) -> np.ndarray:
        """The samples the round's map shows: a fixed sample, and every labeled and queued one."""
        queued = [p.index for p in result.queue]
        return map_points(len(result.scores), np.union1d(np.flatnonzero(semi != 0), queued))

    def _last_loadable_model(self):
        """The newest finished round's model that loads, its round, and a note when that is not the
        current round (a damaged model folder must not stop every later round); none trains afresh."""
        skipped = []
        for view in reversed([r for r in self.project.rounds() if r.status == "done"]):
            try:
                model = load_model(view.path / "model")
            except Exception as e:  # damaged or missing files: try the round before
                skipped.append(f"round {view.number} ({type(e).__name__}: {e})")
                continue
            note = f"continued from round {view.number}; could not load {', '.join(skipped)}" if skipped else ""
            return model, view, note
        return None, None, (f"trained afresh; could not load {', '.join(skipped)}" if skipped else "")

    def _on_features(self, done: int, total: int, seconds_left: float) -> bool:
        self._set(phase="features", epoch=done, epochs=total, loss=None, seconds_left=seconds_left,
                  message="image features from the pretrained backbone (once per project)")  # fmt: skip
        return self._cancel.is_set()

    def _on_progress(self, p: Progress) -> bool:
        trained = p.phase == "train" and p.epoch == p.epochs  # the rest of the round follows
        self._set(phase=p.phase, epoch=p.epoch, epochs=p.epochs, loss=p.loss, seconds_left=p.seconds_left,
                  message="scoring every sample and choosing the next queue" if trained else "")  # fmt: skip
        return self._cancel.is_set()

    def _row(self, status, started_at, t0, semi, config, metrics=None, error=None) -> dict:
        return {
            "status": status,
            "started_at": started_at,
            "finished_at": now(),
            "seconds": time.perf_counter() - t0,
            "n_labels": int((semi != 0).sum()),
            "config": config.to_dict(),
            "metrics": metrics,
            "error": error,
        }

    def _record_failure(self, number, status, detail, started_at, t0, semi, config, trace="") -> None:
        if number is None or semi is None or config is None:  # failed before the round existed: report only
            self._set(state=status, phase="", message=detail)
            return

        def write(folder: Path) -> None:
            (folder / "error.txt").write_text(f"{detail}\n\n{trace}")

        try:
            self.project.commit_round(number, write, self._row(status, started_at, t0, semi, config, error=detail))
        finally:
            self._set(state=status, phase="", message=detail)

    def wait_for_map(self, timeout: float | None = None) -> None:
        if self._map_thread is not None:
            self._map_thread.join(timeout)

    def _add_umap(self, number: int, shown: np.ndarray, latents: np.ndarray, labels: np.ndarray, previous) -> None:
        """The UMAP layout of the samples ``shown``, started from the previous one and told the expert's
        labels (UMAP's semi-supervised mode: on average over the tables the map then separates
        anomalies better than a map of the inputs, docs/design.md); written beside the round atomically."""
        with self._map_lock:
            self._draw_umap(number, shown, latents, labels, previous)

    def _draw_umap(self, number: int, shown: np.ndarray, latents: np.ndarray, labels: np.ndarray, previous) -> None:
        try:
            before = previous.map_coords_for(shown) if previous is not None else None
            umap = default_service().umap_map(latents, before, None, labels)
            folder = self.project.round_path(number)
            with atomic_file(folder / "map_umap.npy") as tmp, open(tmp, "wb") as f:
                np.save(f, umap.coords)
            info = {"seconds": umap.seconds}
            if before is not None:
                info["shift_vs_previous"] = layout_shift(before, umap.coords)
            (folder / "map.json").write_text(json.dumps(info))
            self._note_map(number, "UMAP map drawn")
        except Exception as e:  # the PCA map stays; the round itself is fine
            self._note_map(number, f"UMAP map failed ({type(e).__name__}: {e}), PCA shown")

    def _note_map(self, number: int, map_message: str) -> None:
        """Report on a map, unless a newer round has started meanwhile (its status is what counts)."""
        with self._lock:
            if self._status.round_number == number and self._status.state != "running":
                ready = self._status.message.split("; the UMAP map follows")[0]
                self._status = replace(self._status, message=f"{ready}; {map_message}")
