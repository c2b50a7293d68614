"""The Export page (AppTest): the threshold picker, and a bundle that scores like the project."""

from pathlib import Path

import numpy as np
from apptest import metrics, open_page
from scipy.stats import spearmanr

from deepsad_core.ensemble import load_model
from deepsad_core.studio import load_detector


def test_the_picker_starts_at_the_suggested_threshold_and_counts_what_it_flags(sample_project):
    at = open_page("pages/export.py", sample_project)
    current = sample_project.current_round()
    picker = at.get("select_slider")[0]
    assert picker.value == current.threshold["value"]
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
    assert detector.threshold_ == current.threshold["value"]
    live = load_model(current.path / "model").decision_function(sample_project.X)
    np.testing.assert_allclose(detector.decision_function(sample_project.raw), live, rtol=1e-4)
    # the round's own scores are from training, where a kNN reference row skips itself: the same
    # rows scored again rank alike
    assert spearmanr(live, current.scores).statistic > 0.98
