"""The Projects page (AppTest): the samples on an empty workspace, opening one, and the settings form."""

import time

from apptest import open_page

from deepsad_core.studio import Project


def test_an_empty_workspace_offers_the_samples(workspace):
    at = open_page("pages/projects.py")
    assert any("Your workspace is empty" in i.value for i in at.info)
    assert [b.label for b in at.button if b.label.startswith("Open sample")] == [
        "Open sample: Breast cancer (table)", "Open sample: Handwritten digits (images)",
    ]  # fmt: skip


def test_opening_a_sample_makes_the_project_and_trains_round_0(workspace):
    at = open_page("pages/projects.py")
    at.button(key="projects.sample.breast_cancer").click().run()
    path = Project.path_for(workspace, "Sample - Breast cancer")
    assert at.session_state["project_path"] == str(path)
    project = Project.open(path)
    deadline = time.monotonic() + 120
    while project.current_round() is None:  # round 0 trains in the background
        assert time.monotonic() < deadline, "round 0 did not finish"
        time.sleep(0.2)
    assert len(project) == 376 and len(project.current_round().queue) == 20


def test_saved_settings_reach_the_next_round_and_keep_the_rest(sample_project):
    at = open_page("pages/projects.py", sample_project)
    before = sample_project.round_config()
    [field] = [n for n in at.number_input if n.label == "Epochs per later round"]
    field.set_value(7)
    at.button[[b.label for b in at.button].index("Save settings")].click().run()
    assert any("Saved; the next round uses them." in s.value for s in at.success)
    after = Project.open(sample_project.path).round_config()
    assert after.epochs_per_round == 7
    assert {k: v for k, v in after.to_dict().items() if k != "epochs_per_round"} == {
        k: v for k, v in before.to_dict().items() if k != "epochs_per_round"
    }


def test_the_rows_a_round_trains_on_are_a_setting(sample_project):
    at = open_page("pages/projects.py", sample_project)
    [field] = [n for n in at.number_input if n.label == "Unlabeled rows trained on per round"]
    assert field.value == 50_000  # the default
    field.set_value(2_000)
    at.button[[b.label for b in at.button].index("Save settings")].click().run()
    assert Project.open(sample_project.path).round_config().max_train_samples == 2_000
