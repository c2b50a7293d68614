"""Rounds run by the worker: persisted, warm-started, cancellable, and failing without harm."""

import time
from typing import ClassVar

import numpy as np
import pytest
from scipy.stats import spearmanr

import deepsad_core.studio.worker as worker_module
from deepsad_core.detectors.contract import load_model
from deepsad_core.detectors.ensemble import DeepSADEnsemble
from deepsad_core.loop.settings import RoundConfig
from deepsad_core.studio import Project
from deepsad_core.studio.worker import RoundWorker

FAST = RoundConfig(first_ae_epochs=2, first_epochs=3, epochs_per_round=2, queue_size=8, batch_size=64)


@pytest.fixture
def project(tmp_path, blobs) -> Project:
    X, truth = blobs
    import pandas as pd

    df = pd.DataFrame(X, columns=[f"x{i}" for i in range(X.shape[1])]).assign(truth=truth)
    return Project.create(tmp_path, "blobs", df)


class PCAMaps:
    """Stands in for the map service: UMAP's first compile takes a minute (tested in test_studio_maps).
    Keeps the labels each map was told."""

    told: ClassVar[list[np.ndarray]] = []

    def umap_map(self, latents, previous=None, config=None, labels=None):
        PCAMaps.told.append(labels)
        return worker_module.pca_map(latents)


@pytest.fixture(autouse=True)
def no_umap(monkeypatch):
    monkeypatch.setattr(worker_module, "default_service", PCAMaps)


def test_a_round_persists_scores_queue_map_and_metrics(project):
    status = RoundWorker(project).run(FAST)
    assert status.state == "done" and status.round_number == 0
    r = project.current_round()
    assert r.scores.shape == (330,) and r.latents.shape[0] == 330
    assert len(r.queue) == 8
    assert {q["strategy"] for q in r.queue} <= {"most_anomalous", "most_uncertain", "diverse", "check"}
    assert r.map_coords().shape == (330, 2)
    assert r.threshold.method == "score_distribution"  # no check sample answered yet
    metrics = r.metrics
    assert metrics["n_labels"] == 0 and 0 <= metrics["auc"] <= 1
    assert isinstance(load_model(r.path / "model"), DeepSADEnsemble)  # the default detector


def test_later_rounds_warm_start_from_the_previous_model_and_use_the_labels(project):
    worker = RoundWorker(project)
    worker.run(FAST)
    first = project.current_round()
    picked = [q["index"] for q in first.queue]
    project.label(picked[:3], "anomalous", round_number=0)
    project.label(picked[3:6], "normal", round_number=0)
    PCAMaps.told.clear()
    worker.run(FAST)
    worker.wait_for_map()
    second = project.current_round()
    assert second.number == 1 and second.n_labels == 6
    # the map is told the labels: 1 anomalous, 0 normal, -1 the rest (every sample is shown here)
    told = PCAMaps.told[-1]
    assert told[picked[:3]].tolist() == [1] * 3 and told[picked[3:6]].tolist() == [0] * 3
    assert (np.delete(told, picked[:6]) == -1).all()
    m0, m1 = load_model(first.path / "model"), load_model(second.path / "model")
    np.testing.assert_array_equal(m0.center_, m1.center_)  # c kept
    np.testing.assert_array_equal(
        m0.members_["knn"].reference, m1.members_["knn"].reference
    )  # the label-free members kept
    assert [h["phase"] for h in m1.history_ if h["fit"] == 1] == ["train"] * FAST.epochs_per_round
    assert not set(q["index"] for q in second.queue) & set(picked[:6])  # labeled samples are not queued again
    checks = [q for q in first.queue if q["strategy"] == "check"]
    answered = [q for q in checks if q["index"] in picked[:6]]
    assert second.threshold.method == ("estimated_f1" if answered else "score_distribution")
    # what the next steps read: the check draw, label-free scores for the audit, held-out scores for
    # the estimates, the stopping hint
    assert first.sample().picks.tolist() == [q["index"] for q in checks]
    assert first.sample().inclusion.tolist() == [q["inclusion"] for q in checks]
    assert all(q["inclusion"] == 1.0 for q in first.queue if q["strategy"] != "check")
    assert all(0 < q["inclusion"] < 1 for q in checks)
    assert np.load(second.path / "label_free.npy").shape == (330,)
    held_out = second.held_out
    assert held_out.shape == (330,) and (held_out[second.scores != held_out] != 0).all()
    hint = project.stop_hint()  # against round 0: how the ranks moved, how many answers it had foreseen
    assert hint.rank_correlation == pytest.approx(spearmanr(first.scores, second.scores).statistic)
    foreseen = first.scores[picked[:6]] > first.threshold.value
    assert hint.predicted == pytest.approx(np.mean(foreseen == np.array([True] * 3 + [False] * 3)))
    assert {d.index for d in project.audit(k=6)} == set(picked[:6])
    # the queue carries what drives each row's score, as the saved model explains it
    item = second.queue[0]
    live = project.explain(item["index"])
    assert [d[0] for d in item["drivers"]] == [column for column, _, _ in live]
    np.testing.assert_allclose([d[2] for d in item["drivers"]], [drop for *_, drop in live], rtol=1e-4, atol=1e-9)


def test_rounds_on_more_data_than_the_caps_train_on_a_sample_and_map_a_sample(project, monkeypatch):
    import deepsad_core.loop.projection as projection

    monkeypatch.setattr(projection, "MAX_MAP_POINTS", 100)
    capped = RoundConfig(**{**FAST.to_dict(), "max_train_samples": 120})
    worker = RoundWorker(project)
    worker.run(capped)
    first = project.current_round()
    picked = [q["index"] for q in first.queue]
    project.label(picked[:4], "anomalous", round_number=0)
    project.label(picked[4:], "normal", round_number=0)
    worker.run(capped)
    second = project.current_round()
    model = load_model(second.path / "model")
    assert len(model.deepsad_.decision_scores_) == 120 + 8 and second.scores.shape == (330,)
    shown = second.map_index
    assert set(picked) | {q["index"] for q in second.queue} <= set(shown.tolist())  # labeled and queued
    assert 100 <= len(shown) < 330 and second.map_coords().shape == (len(shown), 2)
    both = np.intersect1d(first.map_index, shown)
    assert len(both) >= 100  # the same fixed sample: the new map is aligned with the old one on it
    old = first.map_coords_for(shown)
    assert np.isnan(old).any(axis=1).sum() == len(shown) - len(both)


def test_background_round_reports_progress_and_can_be_cancelled(project):
    worker = RoundWorker(project)
    slow = RoundConfig(first_ae_epochs=400, first_epochs=400, batch_size=16)
    assert worker.start(slow)
    assert not worker.start(slow)  # one at a time
    deadline = time.time() + 60
    while worker.status().epoch < 2 and time.time() < deadline:
        time.sleep(0.05)
    seen = worker.status()
    assert seen.state == "running" and seen.phase == "pretrain" and seen.loss is not None
    worker.cancel()
    final = worker.wait(60)
    assert final.state == "cancelled" and "cancelled" in final.message
    assert project.current_round() is None
    assert project.rounds()[0].status == "cancelled"


def test_a_failed_round_is_recorded_and_the_previous_stays_current(project, monkeypatch):
    worker = RoundWorker(project)
    worker.run(FAST)

    def diverge(*args, **kwargs):
        raise FloatingPointError("loss became nan")

    monkeypatch.setattr(worker_module, "run_round", diverge)
    status = worker.run(FAST)
    assert status.state == "failed" and "loss became nan" in status.message
    rounds = project.rounds()
    assert [r.status for r in rounds] == ["done", "failed"]
    assert "FloatingPointError" in rounds[1].error and (rounds[1].path / "error.txt").exists()
    assert project.current_round().number == 0


def test_a_cancel_right_after_start_is_not_lost(project):
    worker = RoundWorker(project)
    assert worker.start(RoundConfig(first_ae_epochs=400, first_epochs=400, batch_size=16))
    worker.cancel()  # before the thread has run a line of the round
    final = worker.wait(60)
    assert final.state == "cancelled" and project.current_round() is None


def test_a_failure_while_setting_up_a_round_is_reported_not_left_running(project, monkeypatch):
    worker = RoundWorker(project)

    def broken(*args, **kwargs):
        raise OSError("database is locked")

    monkeypatch.setattr(project, "semi_targets", broken)
    status = worker.run(FAST)
    assert status.state == "failed" and "database is locked" in status.message
    assert worker.start(FAST)  # and in the background: the worker is free again afterwards
    final = worker.wait(60)
    assert final.state == "failed" and not worker.busy


def test_the_progress_line_says_what_runs_and_what_is_left():
    from deepsad_core.studio.worker import RoundStatus

    features = RoundStatus("running", 0, "features", 320, 1000, None, 3.2)
    assert features.describe() == "Round 0: image features 320/1,000 (once per project) · about 3 s left in this phase"
    assert features.fraction == pytest.approx(0.32)
    training = RoundStatus("running", 2, "train", 5, 20, 0.0123, None)
    assert training.describe() == "Round 2: train epoch 5/20 · loss 0.0123"


def test_one_round_at_a_time_per_project_across_processes(project, tmp_path):
    import subprocess
    import sys

    ready = tmp_path / "ready"
    holder = (
        "import sys, time, pathlib; from deepsad_core.studio import Project; "
        f"p = Project.open({str(project.path)!r}); lock = p.round_lock(); lock.__enter__(); "
        f"pathlib.Path({str(ready)!r}).touch(); time.sleep(60)"
    )
    other = subprocess.Popen([sys.executable, "-c", holder])
    try:
        deadline = time.time() + 60
        while not ready.exists() and time.time() < deadline:
            time.sleep(0.1)
        status = RoundWorker(project).run(RoundConfig(first_ae_epochs=1, first_epochs=1))
        assert status.state == "failed" and "already running in another process" in status.message
        assert project.rounds() == []  # nothing recorded, no round number taken
    finally:
        other.kill()  # a killed process releases the lock
        other.wait()
    assert RoundWorker(project).run(RoundConfig(first_ae_epochs=1, first_epochs=1)).state == "done"


def test_a_damaged_model_does_not_stop_later_rounds(project):
    import shutil

    worker = RoundWorker(project)
    quick = RoundConfig(first_ae_epochs=1, first_epochs=1, epochs_per_round=1)
    assert worker.run(quick).state == "done" and worker.run(quick).state == "done"
    shutil.rmtree(project.round_path(1) / "model")  # the current round's model is gone
    status = worker.run(quick)
    assert status.state == "done", status.message
    assert "continued from round 0; could not load round 1" in status.message
    assert "could not load round 1" in project.current_round().metrics["note"]
