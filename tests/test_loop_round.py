"""One round, assembled in one place: the app's worker and the simulated expert run the same rounds."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.metrics import roc_auc_score

from deepsad_core.detectors.contract import load_model
from deepsad_core.loop.round import run_round
from deepsad_core.loop.settings import RoundConfig
from deepsad_core.loop.simulate import SimulationSetup, simulate
from deepsad_core.studio import Project, RoundWorker

CONFIG = RoundConfig(first_epochs=3, first_ae_epochs=2, epochs_per_round=2, queue_size=10, seed=0)


@pytest.fixture
def table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    frame = pd.DataFrame(rng.normal(size=(240, 5)), columns=[f"f{j}" for j in range(5)])
    frame.iloc[-24:] += 3.0
    frame["truth"] = np.r_[np.zeros(216, int), np.ones(24, int)]
    return frame


def test_the_simulated_expert_runs_the_rounds_the_app_runs(table, tmp_path):
    project = Project.create(tmp_path, "same", table)
    truth = project.truth()
    worker = RoundWorker(project)
    assert worker.run(CONFIG).state == "done"
    first = project.current_round()
    picked = [q["index"] for q in first.queue]
    for i in picked:  # the expert answers round 0's queue from the truth, as the simulated one does
        project.label(i, "anomalous" if truth[i] else "normal")
    assert worker.run(CONFIG).state == "done"
    rounds = project.rounds()

    X = np.asarray(project.X)
    curves = simulate(SimulationSetup(X, truth, X, truth), ["hybrid"], budget=10, batch_size=10, config=CONFIG, seed=0)
    assert list(curves["n_labels"]) == [0, 10] and curves["anomalies_found"].iloc[1] == truth[picked].sum()
    for view, (_, row) in zip(rounds, curves.iterrows(), strict=True):
        assert row["threshold"] == pytest.approx(view.threshold.value, rel=1e-5)
        live = load_model(view.path / "model").decision_function(X)
        assert row["test_auc"] == pytest.approx(roc_auc_score(truth, live), abs=1e-9)
        assert row["stop_hint"] == int(view.metrics["stop"]["stop"])
    assert rounds[1].metrics["anomalies_found"] == curves["anomalies_found"].iloc[1]


def test_a_round_changes_nothing_it_is_given(table, tmp_path):
    X = np.asarray(Project.create(tmp_path, "given", table).X)
    semi = np.zeros(len(X), dtype=np.int64)
    first = run_round(None, X, semi, CONFIG, 0)
    before = {"scores": first.model.decision_function(X), "threshold": first.model.threshold_}
    semi[first.queue[0].index], semi[first.queue[1].index] = -1, 1
    given = semi.copy()
    second = run_round(first.model, X, semi, CONFIG, 1, samples=[first.sample])
    np.testing.assert_array_equal(semi, given)
    np.testing.assert_array_equal(first.model.decision_function(X), before["scores"])  # trained a copy
    assert first.model.threshold_ == before["threshold"] and second.model is not first.model
    assert second.model.threshold_ == second.threshold.value  # the round's model flags as the round does
    assert len(second.queue) == 10 and not {p.index for p in second.queue} & set(np.flatnonzero(semi))
