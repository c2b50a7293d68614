"""The Export page (AppTest): the threshold picker, and a bundle that scores like the project."""

import json
from pathlib import Path

import numpy as np
from apptest import metrics, open_page
from scipy.stats import spearmanr

from deepsad_core.detectors.contract import load_model
from deepsad_core.studio import load_detector


def test_the_picker_moves_by_the_share_flagged_and_starts_at_the_suggested_threshold(sample_project):
    at = open_page("pages/export.py", sample_project)
    current = sample_project.current_round()
    picker = at.get("select_slider")[0]
    assert picker.value == current.threshold.value
    k = int((current.scores > picker.value).sum())
    assert metrics(at)["Flagged"] == f"{k} of 376"
    assert picker.options[0] == "0.0% flagged (0)" and all(o.endswith(")") for o in picker.options)
    counts = [int(o.rsplit("(", 1)[1].rstrip(")")) for o in picker.options]
    assert counts == sorted(set(counts)) and max(np.diff(counts)) <= 2  # one or two samples a step
    said = at.caption[0].value  # no check sample answered yet: the round's rough guide, and what would do better
    assert said.startswith(f"Suggested: {k / 376:.1%} flagged ({k})") and "once a check sample" in said
    guess = sample_project.label_free_prevalence()
    assert f"about {guess.value:.1%} of samples ({guess.low:.1%}–{guess.high:.1%})" in said
    assert not at.get("plotly_chart")  # nothing to chart without estimates or labels
    later = sorted(current.scores)[len(current.scores) // 2]
    picker.set_value(float(later)).run()
    assert metrics(at)["Flagged"] == f"{int((current.scores > later).sum())} of 376"


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


def test_once_check_samples_are_answered_the_page_shows_estimates_and_suggests_from_them(sample_project):
    truth = sample_project.truth()
    for q in sample_project.current_round().queue:  # the expert answers the whole first queue
        sample_project.label(q["index"], "anomalous" if truth[q["index"]] else "normal")
    from deepsad_core.studio.worker import RoundWorker

    RoundWorker(sample_project).run()
    at = open_page("pages/export.py", sample_project)
    suggested = sample_project.suggested_threshold()
    assert suggested is not None and suggested.check_labels == 6
    assert at.get("select_slider")[0].value == suggested.threshold
    said = at.caption[0].value
    assert "the best estimated F1 over all samples" in said and "from 6 answered check samples" in said
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert chart["layout"]["xaxis"]["title"]["text"] == "samples flagged (%)"
    assert "take it as a starting point" in said  # few answers: the page says how sure it is
    shown = metrics(at)
    found = sample_project.estimates(threshold=suggested.threshold)
    if found.recall_is_bounded:
        assert shown["Estimated recall"] == f"{found.recall.value:.2f} ({found.recall.low:.2f}–{found.recall.high:.2f})"
    else:  # too few check samples below the threshold: the lower bound, and why
        assert shown["Estimated recall"] == f"at least {found.recall_lower:.2f}"
        assert any("too few to say how many anomalies it misses" in c.value for c in at.caption)
    assert "Estimated anomalies in the data" in shown
    chart = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert {t.get("name") for t in chart["data"]} >= {"estimated precision", "estimated recall"}
    at.button(key="export.build").click().run()
    manifest = load_detector(Path(at.session_state["export.bundle"])).info()
    assert manifest["estimates"]["threshold"] == suggested.threshold
    assert manifest["estimates"]["check_labels"] == 6


def test_a_slider_move_does_not_estimate_the_suggestion_again_until_the_labels_change(sample_project, monkeypatch):
    from deepsad_core.studio import Project

    calls = []
    real = Project.suggested_threshold

    def counted(self, *args, **kwargs):
        calls.append(1)
        return real(self, *args, **kwargs)

    monkeypatch.setattr(Project, "suggested_threshold", counted)
    at = open_page("pages/export.py", sample_project)
    picker = at.get("select_slider")[0]
    picker.set_value(float(sorted(sample_project.current_round().scores)[300])).run()
    assert len(calls) == 1
    sample_project.label(0, "normal")  # a new label: the suggestion may change
    at.run()
    assert len(calls) == 2
