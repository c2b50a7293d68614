"""Shared chrome for the pages: workspace, the open project, its worker, and small renderers.

Session-state keys (all set by ``init_state``): ``project_path``, ``annotator``, and per page
``label.*``, ``map.*``, ``export.*``.
"""

from __future__ import annotations

import functools
import os
import re
from concurrent.futures import Future
from pathlib import Path

import numpy as np
import plotly.graph_objects as go
import streamlit as st
from PIL import Image
from streamlit.runtime.pages_manager import PagesManager

from deepsad_core.studio import DeepSADError, Project, RoundWorker, start_map_process

SAMPLE_DIR = Path(__file__).parents[1] / "sample_data"
SAMPLES = {
    "Breast cancer (table)": SAMPLE_DIR / "breast_cancer.csv",
    "Handwritten digits (images)": SAMPLE_DIR / "digits.zip",
}


def workspace() -> Path:
    """``DEEPSAD_WORKSPACE``, else ``~/deepsad-workspace``."""
    return Path(os.environ.get("DEEPSAD_WORKSPACE", Path.home() / "deepsad-workspace")).expanduser()


def remember_action(action: str) -> None:
    """Keep a label action's id, so that Undo in this session takes back only its own labels."""
    st.session_state["actions"] = [*st.session_state["actions"], action][-500:]


def init_state() -> None:
    # With a pages/ folder beside app.py, Streamlit serves the very first request after start-up the
    # old way (pages/ as the page list, app.py skipped) when that request opens a page's URL directly.
    # Hand such a run over to app.py's st.navigation at once.
    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()
    st.session_state.setdefault("project_path", None)
    st.session_state.setdefault("annotator", "expert")
    # The sidebar's name field is a widget on every page; Streamlit drops a widget's value when the
    # page changes, and the field then came up empty on the next page. Re-assigning keeps it.
    st.session_state["annotator"] = st.session_state["annotator"]
    st.session_state.setdefault("actions", [])  # ids of the label actions this browser session made
    st.session_state.setdefault("label.show_all", False)
    st.session_state.setdefault("round.seen_state", None)
    start_umap_warm_up()


@st.cache_resource
def start_umap_warm_up() -> Future:
    """Compile UMAP's numba code once per server, while the user looks around.

    In the low-priority map process that later draws every map: compiling (and drawing) holds the GIL
    for long stretches, which in the app's own process would stall every page rerun.
    """
    return start_map_process()


@st.cache_resource
def worker_for(path: str) -> RoundWorker:
    """One worker per project, shared by every browser tab."""
    return RoundWorker(Project.open(path))


def remember_project(path: str) -> None:
    """Open ``path`` in this session and remember it for the next visit (or a page reload)."""
    st.session_state["project_path"] = path
    (workspace() / ".last-opened").write_text(path)


def open_project() -> Project | None:
    path = st.session_state.get("project_path")
    last = workspace() / ".last-opened"
    if not path and last.exists() and Path(last.read_text()).is_dir():
        path = st.session_state["project_path"] = last.read_text()
    if not path:
        return None
    try:
        return worker_for(path).project
    except DeepSADError as e:
        st.error(f"The project could not be opened: {without_paths(e)}")
        st.session_state["project_path"] = None
        return None


def require_project() -> Project:
    """The open project, or a pointer to the Projects page and a stop."""
    project = open_project()
    if project is None:
        st.info("No project is open yet.")
        st.page_link("pages/projects.py", label="Open or create a project", icon=":material/folder_open:")
        st.stop()
    return project


def project_page(title: str) -> tuple[Project, RoundWorker]:
    """The opening of every page that needs a project: state, project, sidebar, title, worker."""
    init_state()
    project = require_project()
    sidebar(project)
    st.title(title)
    return project, worker_for(str(project.path))


def train_button(worker: RoundWorker, key: str) -> None:
    """Start the next round in the background (a callback, so a quick next click cannot swallow it)."""
    st.button("Train next round", key=key, disabled=worker.busy, type="primary", on_click=start_round, args=(worker,))


def sidebar(project: Project | None) -> None:
    with st.sidebar:
        st.text_input("Your name (recorded with each label)", key="annotator")
        if project is not None:
            st.markdown(f"**{plain(project.name)}**  \n{len(project):,} samples · {project.kind}")


def round_progress(worker: RoundWorker, key: str) -> None:
    """Live progress of the worker, polled every second while a round trains; reruns the page when it ends.

    Nothing polls while the worker is idle: a poll rerun in flight delays the reruns of label clicks.
    """

    def poll() -> None:
        s = worker.status()
        if s.state == "running":
            st.progress(min(s.fraction, 1.0), text=s.describe())
            st.button("Cancel round", key=f"{key}.cancel", on_click=worker.cancel)
        elif s.state in ("failed", "cancelled"):
            st.warning(f"Round {s.round_number} {s.state}: {without_paths(s.message)}")
        elif s.message:
            st.caption(s.message)
        previous = st.session_state.get("round.seen_state")
        st.session_state["round.seen_state"] = (s.state, s.round_number)
        if previous is not None and previous[0] == "running" and s.state != "running":
            st.rerun(scope="app")

    running = worker.busy or (st.session_state.get("round.seen_state") or ("",))[0] == "running"
    st.fragment(poll, run_every=1.0 if running else None)()


def start_round(worker: RoundWorker) -> None:
    if worker.start():
        st.session_state["round.seen_state"] = ("running", None)
        st.toast("Training started; keep labeling meanwhile.")
    else:
        st.toast("A round is already running.")


def thumbnail(pixels: np.ndarray, size: int = 96) -> Image.Image:
    """A sample's pixels, enlarged without blurring, for display."""
    image = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels)
    scale = max(1, size // max(image.size))
    return image.resize((image.size[0] * scale, image.size[1] * scale), Image.Resampling.NEAREST)


def heat_overlay(pixels: np.ndarray, heat: np.ndarray, size: int = 96) -> Image.Image:
    """A sample's thumbnail with the parts that raise its score tinted red (the stronger, the redder)."""
    base = thumbnail(pixels, size).convert("RGB")
    raised = np.clip(heat, 0, None)
    level = raised / raised.max() if raised.max() > 0 else raised
    mask = Image.fromarray((level * 255).astype(np.uint8)).resize(base.size, Image.Resampling.NEAREST)
    red = Image.new("RGB", base.size, (255, 40, 40))
    return Image.composite(red, base, mask.point(lambda v: int(v * 0.6)))


def with_interval(value: float, low: float, high: float, percent: bool = False) -> str:
    """An estimate and its interval, e.g. ``0.62 (0.41–0.83)``; a dash when there is none (NaN)."""
    if value != value:
        return "–"
    if percent:
        return f"{value * 100:.1f} % ({low * 100:.1f}–{high * 100:.1f})"
    return f"{value:.2f} ({low:.2f}–{high:.2f})"


def score_drivers(project: Project, round_number: int, index: int) -> tuple[str, ...]:
    """A table row's columns that drive its score up in a round, for a card (cached: a card asks on
    every click)."""
    return _score_drivers(str(project.path), round_number, index)


@functools.lru_cache(maxsize=2_000)
def _score_drivers(path: str, round_number: int, index: int) -> tuple[str, ...]:
    return drivers_text(worker_for(path).project.explain(index))


def drivers_text(drivers: list) -> tuple[str, ...]:
    """``(column, value, score drop)`` triples as card text: the columns that raise the score."""
    return tuple(f"**{plain(column)}** = {plain(value)}" for column, value, drop in drivers if drop > 0)


SHADES = "\u00a0░▒▓█"  # lightest to darkest; a no-break space, since plain runs of spaces collapse in hover labels


def score_histogram(scores: np.ndarray, threshold: float, bins: int = 60) -> go.Figure:
    """The scores binned on a log scale, with the threshold; at most :data:`MAX_TICKS` ticks, read as
    scores, however many decades the scores span.

    Scores are skewed: on a linear axis a few far samples squeeze all the others into the first bar.
    """
    floor = scores[scores > 0].min() if (scores > 0).any() else 1.0  # log10(0) would stretch the axis
    log_scores = np.log10(np.maximum(scores, floor))
    fig = go.Figure(go.Histogram(x=log_scores, nbinsx=bins, hovertemplate="%{y} samples<extra></extra>"))
    share = float((scores > threshold).mean())
    fig.add_vline(
        x=float(np.log10(max(threshold, floor))), line_dash="dash", line_color="red",
        annotation_text=f"threshold: {share:.1%} flagged",
    )  # fmt: skip
    ticks = log_ticks(float(log_scores.min()), float(log_scores.max()))
    fig.update_xaxes(title="anomaly score (log scale)", tickvals=ticks, ticktext=[score_text(10**t) for t in ticks])
    fig.update_layout(height=320, margin={"t": 30}, showlegend=False)
    fig.update_yaxes(title="samples", type="log", dtick=1)  # ticks at 1, 10, 100, ...: the minor ones crowd
    return fig


MAX_TICKS = 8


def log_ticks(low: float, high: float) -> np.ndarray:
    """Tick positions (log10) between ``low`` and ``high``: 1-2-5 steps within a few decades, else
    every k-th power of ten, never more than :data:`MAX_TICKS`."""
    decades = np.arange(np.floor(low), np.ceil(high) + 1, dtype=np.float64)
    for marks in ((1, 2, 5), (1, 3), (1,)):
        ticks = np.log10([m * 10.0**k for k in decades for m in marks])
        ticks = ticks[(ticks >= low - 0.05) & (ticks <= high + 0.05)]
        if len(ticks) <= MAX_TICKS:
            return ticks if len(ticks) else np.array([low])
    step = int(np.ceil(len(decades) / MAX_TICKS))
    return decades[(decades >= np.floor(low)) & (decades % step == 0)][:MAX_TICKS]


def score_text(value: float) -> str:
    """A score as a person reads it: 0.42, 3.5, 1,200, or 1e+34 beyond six digits."""
    if value != value:
        return "-"
    if 1e-3 <= abs(value) < 1e6:
        return f"{value:,.3g}" if abs(value) < 1000 else f"{value:,.0f}"
    return f"{value:.0e}"


def text_sketch(pixels: np.ndarray, width: int = 14) -> str:
    """A small grey picture of an image in block characters, for plotly hover labels (which show
    text, not images): two characters per pixel so it keeps its proportions in a monospace font.
    The background is blank: an image on a light background is shaded by its darkness instead."""
    grey = Image.fromarray(pixels[..., 0] if pixels.shape[-1] == 1 else pixels).convert("L")
    height = max(1, round(width * grey.size[1] / grey.size[0]))
    g = np.asarray(grey.resize((width, height), Image.Resampling.BOX), dtype=np.float64) / 255.0
    ink = 1.0 - g if g.mean() > 0.5 else g
    levels = np.clip((ink * len(SHADES)).astype(int), 0, len(SHADES) - 1)
    return "<br>".join("".join(SHADES[v] * 2 for v in row) for row in levels)


_MARKDOWN_SPECIAL = re.compile(r"([\\`*_{}\[\]()#+\-.!|<>~$:&])")


_ABSOLUTE_PATH = re.compile(r"(?<![\w.~:/])/(?:[^\s'\"/,;()]+/)*[^\s'\"/,;()]*")


def without_paths(text: object) -> str:
    """A message for the browser: absolute paths shortened to their last part, so a page never shows
    the server's folders (a workspace, a home directory, a temporary folder)."""
    return _ABSOLUTE_PATH.sub(lambda m: Path(m.group(0)).name or "/", str(text))


def plain(value: object) -> str:
    """Text from an uploaded file, safe inside ``st.markdown``: every markdown character is escaped,
    so a cell or a column name cannot become a link, a remote image or a coloured directive."""
    return _MARKDOWN_SPECIAL.sub(r"\\\1", str(value)).replace("\n", " ")


def standout_values(project: Project, index: int, k: int = 4) -> tuple[str, ...]:
    """The ``k`` raw column values of a row that lie farthest from the typical row."""
    return _standout_values(str(project.path), index, k)


@functools.lru_cache(maxsize=20_000)  # a project's rows never change; the label page asks on every click
def _standout_values(path: str, index: int, k: int) -> tuple[str, ...]:
    return tuple(
        f"{'▲' if z > 0 else '▼'} **{plain(column)}** = {plain(value)}"
        for column, value, z in worker_for(path).project.standout(index, k)
    )
