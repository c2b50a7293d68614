"""Work saved by an earlier release opens and scores as it did: a project folder and a bundle made by
the code of release 0.1 (``tests/fixtures/made_by_v0_1/make.py``), with the scores it gave then."""

from __future__ import annotations

import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from deepsad_core.bundle.read import load_detector
from deepsad_core.detectors.contract import load_model
from deepsad_core.studio import Project
from deepsad_core.studio.worker import RoundWorker

MADE = Path(__file__).parent / "fixtures" / "made_by_v0_1"


@pytest.fixture
def old_project(tmp_path) -> Project:
    with zipfile.ZipFile(MADE / "project.zip") as archive:
        archive.extractall(tmp_path)
    return Project.open(tmp_path / "legacy")


def test_an_old_project_opens_with_its_labels_rounds_and_scores(old_project):
    assert len(old_project.rounds()) == 2
    assert sorted(old_project.labels().values()).count("anomalous") == 4
    current = old_project.current_round()
    model = load_model(current.path / "model")
    np.testing.assert_allclose(model.decision_function(np.asarray(old_project.X)), np.load(MADE / "model_scores.npy"),
                               rtol=1e-5, atol=1e-6)  # fmt: skip
    assert current.queue and current.threshold.value > 0


def test_an_old_project_trains_on_from_its_last_round(old_project):
    old_project.label(5, "normal")
    status = RoundWorker(old_project).run()
    assert status.state == "done", status.message
    assert old_project.current_round().number == 2
    assert old_project.current_round().n_labels == 9


def test_an_old_bundle_scores_as_it_did():
    rows = pd.read_csv(MADE / "legacy.csv")
    detector = load_detector(MADE / "bundle.zip")
    np.testing.assert_allclose(detector.decision_function(rows), np.load(MADE / "bundle_scores.npy"), rtol=1e-5)
