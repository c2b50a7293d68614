"""Streamlit's own test harness (AppTest) on the app's pages: the real scripts, no server, no browser."""

from __future__ import annotations

import shutil
from pathlib import Path

import streamlit.testing.v1.app_test as app_test_module
from streamlit.runtime.pages_manager import PagesManager
from streamlit.testing.v1 import AppTest

from deepsad_core.studio import Project
from deepsad_core.studio.worker import RoundWorker

ROOT = Path(__file__).parents[1]


def trained_sample(folder: Path) -> Path:
    """The breast-cancer sample as a project with round 0 done, in ``folder`` (a workspace)."""
    project = Project.create(folder, "breast cancer", ROOT / "sample_data" / "breast_cancer.csv")
    RoundWorker(project).run()
    return project.path


def copy_project(template: Path, workspace: Path) -> Project:
    """A fresh copy of a template project, so that each test labels its own."""
    return Project.open(shutil.copytree(template, workspace / template.name))


class _ServedPagesManager(PagesManager):
    """AppTest forgets before every run that ``st.navigation`` has run, and then runs the open page
    without ``app.py``, the way a server does only for its very first request; the app answers that
    with a rerun (``pages.common.init_state``), which drops a clicked button's value. This keeps what
    a running server knows: the app navigates with ``st.navigation``."""

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        PagesManager.uses_pages_directory = False


app_test_module.PagesManager = _ServedPagesManager


def open_page(page: str, project: Project | None = None) -> AppTest:
    """The app run as a browser session would, with ``project`` open, then switched to ``page``."""
    at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=60)
    if project is not None:
        at.session_state["project_path"] = str(project.path)
    at.run()
    if page != "pages/projects.py":
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}
