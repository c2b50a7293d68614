"""The Export page (AppTest): the threshold picker, and a bundle that scores like the project."""

from pathlib import Path

import numpy as np
from apptest import metrics, open_page
from scipy.stats import spearmanr

from deepsad_core.detectors.contract import load_model
from deepsad_core.studio import load_detector


def test_the_picker_starts_at_the_suggested_threshold_and_counts_what_it_flags(sample_project):
    at = open_page("pages/export.py", sample_project)
    current = sample_project.current_round()
    picker = at.get("select_slider")[0]
    assert picker.value == current.threshold.value
    assert metrics(at)["Flagged"] == f"{int((current.scores > picker.value).sum())} of 376"
    lower = sorted(picker.options, key=float)[len(picker.options) // 2]
    picker.set_value(float(lower)).run()
    assert metrics(at)["Flagged"] == f"{int((current.scores > float(lower)).sum())} of 376"


def test_the_bundle_is_built_with_the_chosen_threshold_and_scores_as_the_rounds_model(sample_project):
    at = open_page("pages/export.py", sample_project)
    at.button(key="export.build").click().run()
    assert any(s.value.startswith("Bundle ready: ONNX scores within") for s in at.success)
    bundle = Path(at.session_state["export.bundle"])
    detector = load_detector(bundle)
    current = sample_project.current_round()
    assert detector.threshold_ == current.threshold.value
    live = load_model(current.path / "model").decision_function(sample_project.X)
    np.testing.assert_allclose(detector.decision_function(sample_project.raw), live, rtol=1e-4)
    # the round's own scores are from training, where a kNN reference row skips itself: the same
    # rows scored again rank alike
    assert spearmanr(live, current.scores).statistic > 0.98


def test_once_random_picks_are_labeled_the_page_shows_estimates_and_suggests_from_them(sample_project):
    truth = sample_project.truth()
    for q in sample_project.current_round().queue:  # the expert answers the whole first queue
        sample_project.label(q["index"], "anomalous" if truth[q["index"]] else "normal")
    from deepsad_core.studio.worker import RoundWorker

    RoundWorker(sample_project).run()
    at = open_page("pages/export.py", sample_project)
    suggested = sample_project.suggested_threshold()
    assert suggested is not None and suggested.random_labels == 4
    assert at.get("select_slider")[0].value == suggested.threshold
    assert "the best estimated F1 over all samples, from 4 labels of the queue's random picks" in at.caption[0].value
    shown = metrics(at)
    found = sample_project.estimates(threshold=suggested.threshold)
    assert shown["Estimated recall"] == (f"{found.recall.value:.2f} ({found.recall.low:.2f}–{found.recall.high:.2f})")
    assert "Estimated anomalies in the data" in shown and "Recall on labels" in shown
    at.button(key="export.build").click().run()
    manifest = load_detector(Path(at.session_state["export.bundle"])).info()
    assert manifest["estimates"]["threshold"] == suggested.threshold
    assert manifest["estimates"]["random_labels"] == 4
