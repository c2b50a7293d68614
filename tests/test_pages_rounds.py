"""The Rounds page (AppTest): every round in the history, and the current scores."""

import json

from apptest import open_page

from deepsad_core.studio.worker import RoundWorker


def test_the_history_lists_each_round_with_its_labels_and_metrics(sample_project):
    sample_project.label([0, 1, 2], "normal")
    RoundWorker(sample_project).run()
    at = open_page("pages/rounds.py", sample_project)
    table = at.dataframe[0].value
    assert table["round"].tolist() == [0, 1] and table["labels"].tolist() == [0, 3]
    assert table["status"].tolist() == ["done", "done"] and table["AUC"].between(0.5, 1).all()
    assert any(s.value == "Learning curve (needs truth)" for s in at.subheader)


def test_the_score_histogram_marks_the_threshold(sample_project):
    at = open_page("pages/rounds.py", sample_project)
    histogram = json.loads(at.get("plotly_chart")[0].proto.spec)
    assert [a["text"] for a in histogram["layout"]["annotations"]] == ["threshold"]
