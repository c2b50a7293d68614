"""Export: choose the threshold by the share it flags, download the detector, score a file with it."""

from __future__ import annotations

import hashlib
from dataclasses import astuple
from pathlib import Path

import numpy as np
import pandas as pd
import plotly.graph_objects as go
import streamlit as st

from deepsad_core.studio import (
    DeepSADError,
    Project,
    ThresholdChoice,
    load_detector,
    threshold_for_counts,
    tradeoff_curve,
)
from pages.common import project_page, with_interval, without_paths

STEPS = 200  # slider positions: the flagged count moves by about half a percent of the data per step
CHART_POINTS = 30  # thresholds the estimates chart is drawn at
LEVEL_TEXT = "90 %"  # the estimates' intervals (deepsad_core.loop.estimates)


def flag_options(scores: np.ndarray, keep: list[float]) -> list[float]:
    """The slider's thresholds, by the number they flag: evenly from none to at least half the data
    (and twice the ``keep`` thresholds' counts), plus ``keep`` themselves, one threshold per count (two
    positions with the same label would be one to the slider), most flagged last."""
    n = len(scores)
    most = widest_count(scores, keep)
    counts = np.unique(np.linspace(0, min(n, most), STEPS + 1).round().astype(int))
    by_count = dict(zip(counts.tolist(), threshold_for_counts(scores, counts).tolist(), strict=True))
    by_count.update({int((scores > t).sum()): float(t) for t in keep})
    return [by_count[k] for k in sorted(by_count)]


def widest_count(scores: np.ndarray, thresholds: list[float]) -> int:
    """How many flagged the slider and the chart reach: half the data, or twice what any of
    ``thresholds`` flags, whichever is more."""
    return max([len(scores) // 2] + [2 * int((scores > t).sum()) for t in thresholds])


def flagged_text(scores: np.ndarray, threshold: float) -> str:
    """``"4.2% flagged (158)"``: a threshold as the share of samples above it."""
    k = int((scores > threshold).sum())
    return f"{k / len(scores):.1%} flagged ({k:,})"


def remembered(name: str, key: tuple, compute):
    """``compute()``, kept in this session for as long as ``key`` (the round, the labels, the inputs)
    stays the same: the suggestion and the chart need a few hundred thousand posterior draws, and a
    slider move must not wait for them again."""
    kept = st.session_state.get(f"export.memo.{name}")
    if kept is None or kept[0] != key:
        kept = (key, compute())
        st.session_state[f"export.memo.{name}"] = kept
    return kept[1]


def labels_key(project: Project, current) -> tuple:
    """What the estimates of a round depend on besides their threshold: the round and the labels."""
    return current.number, hashlib.blake2b(project.semi_targets().tobytes(), digest_size=16).hexdigest()


def suggestion(project: Project, current) -> tuple[float, str]:
    """The threshold the page starts at, and what it says about it (how sure, from what)."""
    suggested = remembered("suggested", labels_key(project, current), project.suggested_threshold)
    if suggested is None:
        value = current.threshold.value
        guess = project.label_free_prevalence()
        return value, (
            f"Suggested: {flagged_text(current.scores, value)}, the round's threshold ({current.threshold.method}). "
            f"From the scores alone, about {guess.value:.1%} of samples ({guess.low:.1%}–{guess.high:.1%}) score "
            "far above the rest: a rough guess. Estimates over all samples appear once a check sample on the "
            "Label page is answered."
        )
    f1 = suggested.f1
    few = suggested.check_labels < 20
    sure = "few answers yet: take it as a starting point" if few else "its interval says how sure"
    return suggested.threshold, (
        f"Suggested: {flagged_text(current.scores, suggested.threshold)}, the best estimated F1 over all samples "
        f"among the shares inside the estimated anomaly share: {f1.value:.2f} ({f1.low:.2f}–{f1.high:.2f}), from "
        f"{suggested.check_labels} answered check samples; {sure}."
    )


def render_threshold(project: Project) -> float:
    current = project.current_round()
    scores = current.scores
    start, said = suggestion(project, current)
    st.caption(said)
    value = st.select_slider(
        "Threshold, by the share of samples it flags", options=flag_options(scores, [start, current.threshold.value]),
        value=start, format_func=lambda t: flagged_text(scores, t), key="export.threshold",
    )  # fmt: skip
    k = int((scores > value).sum())
    c1, c2 = st.columns(2)  # two a row: a figure with its interval needs the width
    c3, c4 = st.columns(2)
    c1.metric("Flagged", f"{k:,} of {len(scores):,}")
    found = project.estimates(threshold=float(value))
    if found is not None:
        c2.metric("Estimated anomalies in the data", with_interval(*astuple(found.prevalence), percent=True))
        c3.metric("Estimated precision", with_interval(*astuple(found.precision)))
        if found.recall_is_bounded:
            c4.metric("Estimated recall", with_interval(*astuple(found.recall)))
        else:
            c4.metric("Estimated recall", f"at least {found.recall_lower:.2f}")
            st.caption(
                f"Only {found.check_below} answered check samples score below this threshold: too few to say how "
                f"many anomalies it misses, so the recall shows its {found.level:.0%} lower bound only."
            )
    curve = tradeoff_curve(scores, project.semi_targets(), include=[float(value)])
    row = curve[curve.threshold == value].iloc[0]
    if pd.notna(row.precision):
        st.caption(
            f"On your labels alone: precision {row.precision:.2f}, recall {row.recall:.2f}. The queue chose those "
            "samples on purpose (most anomalous, uncertain, unusual), so they flatter the detector; the estimates "
            f"over all samples rest on the check samples, with {LEVEL_TEXT} intervals."
        )
    if found is not None or curve["precision"].notna().any():
        st.plotly_chart(tradeoff_chart(project, current, float(value), curve), width="stretch", key="export.chart")
    return float(value)


def tradeoff_chart(project: Project, current, chosen: float, curve: pd.DataFrame) -> go.Figure:
    """Precision and recall against the share flagged: estimated over all samples where check samples
    are answered (with their intervals), else on the labels; the chosen threshold marked."""
    scores = current.scores
    n = len(scores)
    most = widest_count(scores, [chosen])
    counts = np.unique(np.linspace(1, min(n, most), CHART_POINTS).round().astype(int))
    thresholds = threshold_for_counts(scores, counts)
    key = (*labels_key(project, current), tuple(counts.tolist()))
    found = remembered("curve", key, lambda: project.estimate_curve(thresholds))
    fig = go.Figure()
    if found is not None:
        share = np.array([e.flagged for e in found]) / n * 100
        for name, colour in (("precision", "#1f77b4"), ("recall", "#d62728")):
            low = [getattr(e, name).low for e in found]
            high = [getattr(e, name).high for e in found]
            mid = [getattr(e, name).value for e in found]
            fig.add_trace(go.Scatter(x=np.r_[share, share[::-1]], y=np.r_[high, low[::-1]], fill="toself",
                                     fillcolor=colour, opacity=0.15, line={"width": 0}, hoverinfo="skip",
                                     showlegend=False))  # fmt: skip
            fig.add_trace(go.Scatter(x=share, y=mid, name=f"estimated {name}", line={"color": colour}))
    elif curve["precision"].notna().any():
        labeled = curve.sort_values("flagged")
        share = labeled["flagged"] / n * 100
        fig.add_trace(go.Scatter(x=share, y=labeled["precision"], name="precision on labels"))
        fig.add_trace(go.Scatter(x=share, y=labeled["recall"], name="recall on labels"))
    fig.add_vline(x=float((scores > chosen).mean() * 100), line_dash="dash", line_color="gray",
                  annotation_text="chosen")  # fmt: skip
    fig.update_xaxes(title="samples flagged (%)", range=[0, min(100, most / n * 100)])
    fig.update_yaxes(range=[0, 1.02])
    fig.update_layout(height=300, margin={"t": 30}, legend={"orientation": "h", "y": 1.12})
    return fig


def render_download(project: Project, threshold: float) -> None:
    current = project.current_round()
    if st.button("Build the detector bundle", key="export.build"):
        with st.spinner("Exporting the detector and checking its scores against the live model..."):
            try:
                chosen = ThresholdChoice(threshold, "chosen in the app", "picked on the Export page")
                path = project.export(current.number, threshold=chosen)
            except DeepSADError as e:
                st.error(f"Export failed: {without_paths(e)}")
                return
        st.session_state["export.bundle"] = str(path)
    bundle = st.session_state.get("export.bundle")
    if bundle and Path(bundle).exists():
        parity = load_detector(bundle).info()["parity"]
        names = {"onnx_max_rel_diff": "ONNX", "torchscript_max_rel_diff": "TorchScript"}
        within = ", ".join(f"{names[k]} scores within {v:.1e}" for k, v in parity.items() if k in names)
        st.success(f"Bundle ready: {within} of the live model (relative).")
        st.download_button(
            "Download the detector (.zip)", Path(bundle).read_bytes(), file_name=Path(bundle).name,
            mime="application/zip", key="export.download",
        )  # fmt: skip


def render_scoring(project: Project) -> None:
    st.subheader("Score new data with the bundle")
    bundle = st.session_state.get("export.bundle")
    if not bundle:
        st.caption("Build the bundle first.")
        return
    kinds = ["csv", "tsv", "parquet", "npy", "npz"] if project.kind == "tabular" else ["zip"]
    upload = st.file_uploader("A file with the same columns as the project's data", type=kinds, key="export.upload")
    if upload is None:
        return
    try:
        scored = project.score_upload(bundle, upload)
    except DeepSADError as e:
        st.error(f"This file cannot be scored: {without_paths(e)}")
        return
    st.dataframe(scored.head(200), width="stretch", hide_index=True)
    st.download_button(
        "Download the scores (.csv)", scored.to_csv(index=False).encode(),
        file_name=f"{Path(upload.name).stem}-scores.csv", mime="text/csv", key="export.scores",
    )  # fmt: skip


def main() -> None:
    project, _ = project_page("Export the detector")
    if project.current_round() is None:
        st.info("Export is possible once a round has finished.")
        return
    threshold = render_threshold(project)
    render_download(project, threshold)
    render_scoring(project)


main()
