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
    assert table["status"].tolist() == ["done", "done"] and table["AUC"].astype(float).between(0.5, 1).all()
    assert any(s.value == "Learning curve (needs truth)" for s in at.subheader)
    # no check sample answered: a dash, which the column's tooltip explains, never "None"
    assert table["est. recall"].tolist() == ["–", "–"] and not table.isna().any().any()
    assert table["flagged"].str.endswith("%").all()


def test_the_score_histogram_marks_the_threshold(sample_project):
    at = open_page("pages/rounds.py", sample_project)
    histogram = json.loads(at.get("plotly_chart")[0].proto.spec)
    share = (sample_project.current_round().scores > sample_project.current_round().threshold.value).mean()
    assert [a["text"] for a in histogram["layout"]["annotations"]] == [f"threshold: {share:.1%} flagged"]
    ticks = histogram["layout"]["xaxis"]["ticktext"]
    assert 2 <= len(ticks) <= 8 and all(len(t) <= 7 for t in ticks)


def test_two_annotators_counts_and_conflicts_are_listed_with_the_rule(sample_project):
    sample_project.label([0, 1], "normal", "ana")
    sample_project.label([1], "anomalous", "ben")
    at = open_page("pages/rounds.py", sample_project)
    counts, conflicts = at.dataframe[1].value, at.dataframe[2].value
    assert counts["annotator"].tolist() == ["ana", "ben"] and counts["normal"].tolist() == [2, 0]
    sample = str(sample_project.sample_ids[1])
    expected = {"sample": sample, "ana": "normal", "ben": "anomalous", "used": "anomalous"}
    assert conflicts.to_dict("records") == [expected]
    assert any("The latest label trains the model" in m.value for m in at.markdown)
