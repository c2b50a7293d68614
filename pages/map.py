"""Map: the detector's latent space (UMAP, PCA until ready); select points to see or label them."""

from __future__ import annotations

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from deepsad_core.studio import Project
from pages.common import (
    heat_overlay,
    plain,
    project_page,
    remember_action,
    round_progress,
    score_drivers,
    text_sketch,
    thumbnail,
    worker_for,
)

COLOR_BY = ("score", "label", "queue", "truth")
MAX_HOVER_SKETCHES = 5_000  # each sketch is a few hundred characters sent with the figure


def map_frame(project: Project) -> pd.DataFrame:
    """One row per sample the current map shows, indexed by sample."""
    current = project.current_round()
    shown = current.map_index
    coords = current.map_coords()
    semi = project.semi_targets()[shown]
    queue = pd.Series({q["index"]: q["strategy"] for q in current.queue}, dtype=object)
    frame = pd.DataFrame(
        {
            "index": shown,
            "x": coords[:, 0],
            "y": coords[:, 1],
            "sample_id": project.sample_ids[shown],
            "score": current.scores[shown],
            "label": np.select([semi == 1, semi == -1], ["normal", "anomalous"], "unlabeled"),
            "queue": queue.reindex(shown).fillna("-").to_numpy(),
        },
        index=shown,
    )
    truth = project.truth()
    if truth is not None:
        frame["truth"] = np.where(truth[shown] == 1, "anomalous", "normal")
    return frame


def figure(frame: pd.DataFrame, color_by: str, hover: list[str]) -> go.Figure:
    fig = go.Figure()
    if color_by == "score":
        fig.add_trace(
            go.Scattergl(
                x=frame.x, y=frame.y, mode="markers", customdata=frame["index"], hovertext=hover,
                hoverinfo="text",
                marker={"color": np.log10(frame.score + 1e-9), "colorscale": "Inferno", "size": 7,
                        "colorbar": {"title": "log10 score"}},
            )
        )  # fmt: skip
    else:
        texts = pd.Series(hover, index=frame.index)
        for value, part in frame.groupby(color_by):
            fig.add_trace(
                go.Scattergl(
                    x=part.x, y=part.y, mode="markers", name=str(value), customdata=part["index"],
                    hovertext=texts[part.index].tolist(), hoverinfo="text", marker={"size": 7},
                )
            )  # fmt: skip
    fig.update_layout(
        height=600,
        dragmode="lasso",
        margin={"l": 0, "r": 0, "t": 30, "b": 0},
        hoverlabel={"font": {"family": "DejaVu Sans Mono, Menlo, Consolas, monospace"}},  # image sketches
    )
    return fig


def hover_texts(project: Project, frame: pd.DataFrame) -> list[str]:
    """One hover text per row of ``frame``."""
    if project.kind == "tabular":
        raw = project.raw
        shown = [c for c in raw.columns if c not in project.preprocessor.ignored][:4]
        values = raw[shown].iloc[frame.index].astype(str).to_numpy()
        return [
            f"{sid}<br>score {s:.3g}<br>" + "<br>".join(f"{c}: {v}" for c, v in zip(shown, row, strict=True))
            for sid, s, row in zip(frame.sample_id, frame.score, values, strict=True)
        ]
    sketches = image_sketches(str(project.path)) if len(project) <= MAX_HOVER_SKETCHES else None
    sketches = [sketches[i] for i in frame.index] if sketches is not None else [""] * len(frame)
    return [
        f"{sid}<br>score {s:.3g}<br>{sketch}"
        for sid, s, sketch in zip(frame.sample_id, frame.score, sketches, strict=True)
    ]


@st.cache_data(show_spinner=False, max_entries=4)
def image_sketches(path: str) -> list[str]:
    """Every image of a project as a hover sketch (a project's images never change)."""
    return [text_sketch(p) for p in worker_for(path).project.pixels]  # the open project, not a second load


def render_selection(project: Project, frame: pd.DataFrame, selected: list[int]) -> None:
    if len(selected) == 1 and selected[0] in frame.index:  # a point of this round's map
        i = selected[0]
        st.subheader(f"Sample {plain(frame.sample_id.loc[i])}")
        st.caption(f"score {frame.score.loc[i]:.4g} · label {frame.label.loc[i]}")
        if project.kind == "image":
            c1, c2 = st.columns(2)
            c1.image(thumbnail(project.pixels[i], 160), caption="the sample")
            c2.image(heat_overlay(project.pixels[i], project.explain(i), 160), caption="red: what raises its score")
        else:
            st.dataframe(project.raw.iloc[[i]].T, width="stretch")
            drivers = ", ".join(score_drivers(project, project.current_round().number, i))
            st.markdown(f"Drives the score: {drivers or 'nothing stands out'}")
    st.subheader(f"{len(selected)} sample(s) selected")
    with st.form("map.bulk"):
        label = st.radio("Label them", ["normal", "anomalous"], horizontal=True)
        sure = st.checkbox(f"Yes, label all {len(selected)} selected samples")
        if st.form_submit_button("Apply label"):
            if not sure:
                st.warning("Tick the confirmation first.")
            else:
                current = project.current_round()
                action, applied = project.label_unlabeled(
                    selected, label, st.session_state["annotator"], current.number
                )
                remember_action(action)
                st.session_state["map.selection"] = []
                kept = len(selected) - len(applied)
                st.success(
                    f"Labeled {len(applied)} sample(s) {label}."
                    + (f" {kept} already had a label and kept it (relabel them one by one)." if kept else "")
                )


def sample_index(point: dict) -> int:
    """The sample index a selected point carries (plotly may wrap scalar customdata in a list)."""
    value = point["customdata"]
    return int(value[0] if isinstance(value, (list, tuple)) else value)


def main() -> None:
    project, worker = project_page("Map of the latent space")
    round_progress(worker, "map")
    current = project.current_round()
    if current is None:
        st.info("The map appears after round 0.")
        return
    frame = map_frame(project)
    options = [c for c in COLOR_BY if c in frame.columns]
    color_by = st.segmented_control("Colour by", options, default="score", key="map.color") or "score"
    st.caption(
        f"Round {current.number} · {current.map_method.upper()} layout"
        + (" (UMAP follows when ready)" if current.map_method == "pca" else "")
        + (
            " · samples you labeled draw their kind together"
            if current.map_method == "umap" and current.n_labels
            else ""
        )
        + " · drag a lasso or a box to select, click a point for its details"
    )
    if len(frame) < len(project):
        st.caption(
            f"Showing {len(frame):,} of {len(project):,} samples: the same random sample every round, "
            "and every labeled or queued one."
        )
    event = st.plotly_chart(
        figure(frame, color_by, hover_texts(project, frame)),
        key="map.chart",
        on_select="rerun",
        selection_mode=("points", "box", "lasso"),
        width="stretch",
    )
    points = event.selection.points if event and event.selection else []
    if points:  # copied at once: any change of the figure resets the chart's own selection
        st.session_state["map.selection"] = sorted({sample_index(p) for p in points if "customdata" in p})
    selected = st.session_state.get("map.selection") or []
    if selected:
        render_selection(project, frame, selected)


main()
