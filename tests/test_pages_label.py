"""The Label page (AppTest): each decision is recorded in the project and the queue moves on."""

from apptest import metrics, open_page

from deepsad_core.studio import Project


def _cards(at, part: str = "") -> list:
    return [b for b in at.button_group if b.key.startswith(f"label.{part}")]


def test_the_page_shows_the_counts_and_the_queue_in_its_order_with_check_samples_among_the_first(sample_project):
    at = open_page("pages/label.py", sample_project)
    assert metrics(at) == {"Round": "0", "Labeled normal": "0", "Labeled anomalous": "0", "Left in this queue": "20"}
    assert "Queue (20)" in " ".join(h.value for h in at.subheader)
    cards = [m.value for m in at.markdown if "drives the score:] **" in m.value]
    assert len(cards) == 12  # every card shown says why
    queue = sample_project.current_round().queue
    shown = [int(b.key.rsplit(".", 1)[1]) for b in _cards(at) if b.key.count(".") == 2]
    assert shown == [q["index"] for q in queue[:12]]  # the queue's own order
    assert sample_project.current_round().scores[shown[0]] == max(sample_project.current_round().scores)
    checks = [c for c in cards if ":violet-badge[Check sample]" in c]
    assert len(checks) >= 3 and all("check sample: drawn at random" in c for c in checks)


def test_a_decision_is_stored_in_the_project_and_the_card_leaves_the_queue(sample_project):
    at = open_page("pages/label.py", sample_project)
    card = _cards(at, "most_anomalous.")[0]
    index = int(card.key.rsplit(".", 1)[1])
    card.set_value("anomalous").run()
    assert Project.open(sample_project.path).labels() == {index: "anomalous"}  # durable, not page state
    assert metrics(at)["Labeled anomalous"] == "1" and metrics(at)["Left in this queue"] == "19"
    assert all(b.key != card.key for b in at.button_group)


def test_skip_takes_a_card_out_of_the_queue_without_a_label_and_is_kept(sample_project):
    at = open_page("pages/label.py", sample_project)
    card = _cards(at, "diverse.")[0]
    card.set_value("skip").run()
    assert sample_project.labels() == {} and metrics(at)["Left in this queue"] == "19"
    again = open_page("pages/label.py", sample_project)  # another tab, or after a restart
    assert metrics(again)["Left in this queue"] == "19" and all(b.key != card.key for b in again.button_group)


def test_mark_the_rest_normal_labels_the_part_and_undo_takes_it_back(sample_project):
    at = open_page("pages/label.py", sample_project)
    section = [q["index"] for q in sample_project.current_round().queue if q["strategy"] == "diverse"]
    assert len(_cards(at, "diverse.")) < len(section) == 7  # some shown, all seven labeled
    at.button(key="label.rest.diverse").click().run()
    assert sample_project.labels() == dict.fromkeys(section, "normal")
    assert metrics(at)["Labeled normal"] == str(len(section))
    at.button(key="label.undo").click().run()
    assert sample_project.labels() == {}
    assert [t.value for t in at.toast] == [f"Undid the label of {len(section)} sample(s)."]


def test_undo_leaves_another_sessions_labels_alone(sample_project):
    other = open_page("pages/label.py", sample_project)
    _cards(other, "most_anomalous.")[0].set_value("anomalous").run()
    mine = open_page("pages/label.py", sample_project)  # the same default name, "expert"
    mine.button(key="label.undo").click().run()
    assert len(sample_project.labels()) == 1
    assert [t.value for t in mine.toast] == ["Nothing to undo."]


def test_the_audit_shows_the_most_doubted_label_and_relabels_it_in_one_click(sample_project):
    scores = sample_project.current_round().scores
    top = int(scores.argmax())
    sample_project.label(top, "normal")  # the highest score, labeled normal: a likely slip
    sample_project.label([int(i) for i in scores.argsort()[:5]], "normal")
    at = open_page("pages/label.py", sample_project)
    assert not any(b.key.startswith("label.audit.") for b in at.button)  # hidden until asked for
    at.toggle(key="label.audit").set_value(True).run()
    doubted = [b for b in at.button if b.key.startswith("label.audit.")]
    assert doubted[0].key == f"label.audit.{top}" and doubted[0].label == "Relabel anomalous"
    doubted[0].click().run()
    assert Project.open(sample_project.path).labels()[top] == "anomalous"


def test_cards_show_what_drives_the_score_as_the_round_worked_it_out(sample_project, monkeypatch):
    def refused(*args, **kwargs):
        raise AssertionError("a card asked the model on a click")

    monkeypatch.setattr(Project, "explain", refused)  # each round explains its queue once, when it ends
    assert all(q["drivers"] for q in sample_project.current_round().queue)
    at = open_page("pages/label.py", sample_project)
    assert len([m for m in at.markdown if "drives the score:] **" in m.value]) == 12


def test_a_decided_card_gives_its_place_to_the_next_in_the_queue_and_the_others_stay_put(sample_project):
    at = open_page("pages/label.py", sample_project)
    queue = [q["index"] for q in sample_project.current_round().queue]

    def shown():
        return [int(b.key.rsplit(".", 1)[1]) for b in _cards(at) if b.key.count(".") == 2]

    assert shown() == queue[:12]
    second = next(b for b in _cards(at) if b.key.endswith(f".{queue[1]}"))
    second.set_value("normal").run()
    assert shown() == [queue[0], queue[12], *queue[2:12]]  # one card changed on screen, not eleven
    at.button(key="label.undo").click().run()
    assert shown() == queue[:12]  # undone: the card is back in its place


def test_when_the_top_picks_come_back_normal_the_page_says_the_queue_explores_and_shows_random_cards(sample_project):
    from deepsad_core.studio.worker import RoundWorker

    top = [q["index"] for q in sample_project.current_round().queue if q["strategy"] == "most_anomalous"]
    sample_project.label(top, "normal")
    RoundWorker(sample_project).run()
    at = open_page("pages/label.py", sample_project)
    said = [i.value for i in at.info]
    assert len(said) == 1 and f"of your last {len(top)} top picks none was anomalous" in said[0]
    assert "drawn at random" in said[0] and "not next to the samples you called normal" in said[0]
    assert any(":gray-badge[Random]" in m.value for m in at.markdown)
