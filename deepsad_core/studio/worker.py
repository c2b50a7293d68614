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
import os
import threading
import time
import traceback
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
from sklearn.metrics import average_precision_score, roc_auc_score

from deepsad_core.audit import StopHint, label_free_scores, stop_hint
from deepsad_core.ensemble import load_model
from deepsad_core.estimates import RoundSample, estimate_pool, round_sample
from deepsad_core.exceptions import RoundBusyError, TrainingCancelled
from deepsad_core.labels import label_counts
from deepsad_core.projection import layout_shift, map_points, pca_map
from deepsad_core.rounds import RoundConfig, fit_round, score_and_queue
from deepsad_core.studio.maps import default_service
from deepsad_core.studio.project import Project
from deepsad_core.studio.store import now
from deepsad_core.training import Progress

__all__ = ["RoundStatus", "RoundWorker", "estimate_metrics", "round_metrics"]


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


def estimate_metrics(scores: np.ndarray, threshold: float, semi_targets: np.ndarray, samples: list) -> dict:
    """The pool's estimated anomaly share, and the estimated recall at ``threshold``, with intervals
    (empty until some random picks are labeled)."""
    found = estimate_pool(scores, threshold, semi_targets, samples)
    if found is None:
        return {}
    return {
        f"est_{name}{part}": getattr(getattr(found, name), field)
        for name in ("prevalence", "recall")
        for part, field in (("", "value"), ("_low", "low"), ("_high", "high"))
    }


def round_metrics(scores: np.ndarray, semi_targets: np.ndarray, truth: np.ndarray | None) -> dict:
    """Label counts, and with truth: ROC-AUC / AP over all and over unlabeled samples, anomalies found."""
    metrics: dict = label_counts(semi_targets)
    if truth is not None and 0 < truth.sum() < len(truth):
        unlabeled = semi_targets == 0
        metrics["auc"] = float(roc_auc_score(truth, scores))
        metrics["ap"] = float(average_precision_score(truth, scores))
        if 0 < truth[unlabeled].sum() < unlabeled.sum():
            metrics["auc_unlabeled"] = float(roc_auc_score(truth[unlabeled], scores[unlabeled]))
        metrics["anomalies_found"] = int(((semi_targets == -1) & (truth == 1)).sum())
    return metrics


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
            model, X, metrics = self._train(config, semi)
            self._set(phase="score", message="scoring every sample")
            out = score_and_queue(model, X, semi, config, number)
            sample = round_sample(semi != 0, out.queue)
            metrics = {**round_metrics(out.scores, semi, project.truth()), **metrics}
            metrics.update(estimate_metrics(out.scores, out.threshold.value, semi, project.round_samples()))
            metrics["stop"] = self._stop_hint(previous, out.scores, metrics.get("est_recall")).to_dict()
            label_free = label_free_scores(model)  # of X, as the fit scored it
            shown = self._map_points(out, semi)
            metrics["round_seconds"] = time.perf_counter() - t0
            row = self._row("done", started_at, t0, semi, config, metrics)
            self._persist(number, model, out, sample, label_free, shown, previous, row)
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
            target=self._add_umap, args=(number, shown, out.latents[shown], previous), name="deepsad-map", daemon=True
        )
        self._map_thread.start()
        return self.status()

    def _train(self, config: RoundConfig, semi: np.ndarray) -> tuple[object, np.ndarray, dict]:
        """The round's model, the input it learned on, and what the round records about both."""
        X, extractor = self.project.model_input(config, progress=self._on_features)
        model, view, note = self._last_loadable_model()
        features_key = extractor.key() if extractor is not None else None
        trained_on = view.metrics.get("features_key") if view is not None else None
        if trained_on != features_key:
            model = None  # trained on other input (another backbone's features, or none): start afresh
        model = fit_round(model, X, semi, config, callback=self._on_progress, on_features=extractor is not None)
        recorded = {"note": note} if note else {}
        if features_key is not None:
            recorded["features_key"] = features_key  # which backbone's features this model learned on
        return model, X, recorded

    def _stop_hint(self, previous, scores: np.ndarray, recall: float | None) -> StopHint:
        """Against the previous round: how far the scores moved, and how many of the answers to its queue
        it had predicted."""
        if previous is None:
            return stop_hint(None, scores, None, {})
        labels = self.project.labels()
        answered = {q["index"]: labels[q["index"]] for q in previous.queue if q["index"] in labels}
        return stop_hint(
            previous.scores, scores, previous.threshold["value"], answered, previous.metrics.get("est_recall"), recall
        )

    def _persist(
        self,
        number: int,
        model,
        out,
        sample: RoundSample,
        label_free: np.ndarray,
        shown: np.ndarray,
        previous,
        row: dict,
    ) -> None:
        """The round's files (model, scores, label-free scores for the audit, latents, the PCA map of the
        samples a map shows, threshold, queue and its random design), then its row."""
        project = self.project
        before = previous.map_coords_for(shown) if previous is not None else None
        pca = pca_map(out.latents[shown], before)

        model.threshold_ = out.threshold.value  # the saved model flags as the round does
        # what drives each queued row's score, worked out once here: a card then costs no model call
        picked = [p.index for p in out.queue]
        drivers = project.drivers(model, picked) if project.kind == "tabular" and picked else None

        def write(folder: Path) -> None:
            model.save(folder / "model")
            np.save(folder / "scores.npy", out.scores)
            np.save(folder / "label_free.npy", label_free)
            np.save(folder / "latents.npy", out.latents)
            np.save(folder / "map_index.npy", shown)
            np.save(folder / "map_pca.npy", pca.coords)
            (folder / "threshold.json").write_text(json.dumps(out.threshold.to_dict()))
            np.save(folder / "frame.npy", sample.frame)  # what the queue's random part drew from
            random_share = len(sample.random_picks) / max(int(sample.frame.sum()), 1)
            queue = [
                {
                    "index": p.index,
                    "sample_id": str(project.sample_ids[p.index]),
                    "strategy": p.strategy,
                    "reason": p.reason,
                    "score": float(out.scores[p.index]),
                    "inclusion": random_share if p.strategy == "random" else 1.0,  # the chance it was picked
                    **({"drivers": [[c, str(v), float(d)] for c, v, d in drivers[j]]} if drivers else {}),
                }
                for j, p in enumerate(out.queue)
            ]
            (folder / "queue.json").write_text(json.dumps(queue))

        project.commit_round(number, write, row)

    @staticmethod
    def _map_points(out, semi: np.ndarray) -> np.ndarray:
        """The samples the round's map shows: a fixed sample, and every labeled and queued one."""
        return map_points(len(out.scores), np.union1d(np.flatnonzero(semi != 0), [p.index for p in out.queue]))

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
        self._set(phase=p.phase, epoch=p.epoch, epochs=p.epochs, loss=p.loss, seconds_left=p.seconds_left)
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

    def _add_umap(self, number: int, shown: np.ndarray, latents: np.ndarray, previous) -> None:
        """The UMAP layout of the samples ``shown``, started from the previous one; written beside the
        round atomically."""
        with self._map_lock:
            self._draw_umap(number, shown, latents, previous)

    def _draw_umap(self, number: int, shown: np.ndarray, latents: np.ndarray, previous) -> None:
        try:
            before = previous.map_coords_for(shown) if previous is not None else None
            umap = default_service().umap_map(latents, before)
            folder = self.project.round_path(number)
            tmp = folder / ".map_umap.npy"
            np.save(tmp, umap.coords)
            os.replace(tmp, folder / "map_umap.npy")
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
