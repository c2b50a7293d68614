"""The Map page (AppTest): every sample drawn, coloured as asked, and a selection labeled in bulk."""

import json

from apptest import open_page


def _traces(at) -> list[dict]:
    return json.loads(at.get("plotly_chart")[0].proto.spec)["data"]


def test_every_sample_is_drawn_with_its_score_on_hover(sample_project):
    at = open_page("pages/map.py", sample_project)
    [trace] = _traces(at)
    assert len(trace["hovertext"]) == len(sample_project) == 376
    assert all("score " in text for text in trace["hovertext"])
    method = sample_project.current_round().map_method  # PCA until the UMAP map is drawn
    assert f"{method.upper()} layout" in at.caption[0].value
    assert "draw their kind together" not in at.caption[0].value  # round 0 had no labels to tell the map


def test_colour_by_truth_draws_one_trace_per_kind_in_the_labels_words(sample_project):
    at = open_page("pages/map.py", sample_project)
    at.button_group(key="map.color").set_value("truth").run()
    assert sorted(t["name"] for t in _traces(at)) == ["anomalous", "normal"]
    assert sum(len(t["hovertext"]) for t in _traces(at)) == 376


def test_a_selection_is_labeled_only_once_confirmed_and_keeps_earlier_labels(sample_project):
    sample_project.label([2], "anomalous")  # given before, in another tab
    at = open_page("pages/map.py", sample_project)
    at.session_state["map.selection"] = [1, 2, 3]  # what a lasso over three points leaves
    at.run()
    assert any(s.value == "3 sample(s) selected" for s in at.subheader)
    at.button[[b.label for b in at.button].index("Apply label")].click().run()
    assert any("Tick the confirmation first." in w.value for w in at.warning)
    assert sample_project.labels() == {2: "anomalous"}
    at.checkbox[0].check()
    at.button[[b.label for b in at.button].index("Apply label")].click().run()
    assert sample_project.labels() == {1: "normal", 2: "anomalous", 3: "normal"}
    assert any("Labeled 2 sample(s) normal. 1 already had a label and kept it" in s.value for s in at.success)


def test_one_selected_row_shows_its_values_and_what_drives_its_score(sample_project):
    at = open_page("pages/map.py", sample_project)
    at.session_state["map.selection"] = [int(sample_project.current_round().scores.argmax())]
    at.run()
    assert any(m.value.startswith("Drives the score: **") for m in at.markdown)


def test_a_large_project_shows_its_map_sample_and_says_so(sample_project):
    import base64

    import numpy as np

    current = sample_project.current_round()
    shown = np.arange(0, 376, 4)  # what a round of a large project keeps: its map's own points
    coords = current.map_coords()[shown]
    (current.path / "map_umap.npy").unlink(missing_ok=True)
    np.save(current.path / "map_index.npy", shown)
    np.save(current.path / "map_pca.npy", coords)
    at = open_page("pages/map.py", sample_project)
    [trace] = _traces(at)
    data = trace["customdata"]  # plotly sends arrays as typed binary
    np.testing.assert_array_equal(np.frombuffer(base64.b64decode(data["bdata"]), dtype=data["dtype"]), shown)
    scores = current.scores[shown]
    assert all(f"score {s:.3g}" in text for s, text in zip(scores, trace["hovertext"], strict=True))
    assert any(c.value.startswith("Showing 94 of 376 samples") for c in at.caption)
