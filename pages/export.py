"""Export: choose the threshold with the labels, download the detector, score a file with it."""

from __future__ import annotations

from dataclasses import astuple
from pathlib import Path

import pandas as pd
import streamlit as st

from deepsad_core.studio import DeepSADError, Project, ThresholdChoice, load_detector, tradeoff_curve
from pages.common import project_page, with_interval, without_paths


def render_threshold(project: Project) -> float:
    current = project.current_round()
    chosen = current.threshold
    suggested = project.suggested_threshold()
    if suggested is not None:
        start = suggested.threshold
        st.caption(
            f"Suggested: {start:.4g} (the best estimated F1 over all samples, from {suggested.random_labels} "
            "labels of the queue's random picks)"
        )
    else:
        start = chosen.value
        st.caption(
            f"Suggested: {start:.4g} ({chosen.method}: {chosen.detail}). Estimates over all samples "
            "appear once some of the queue's random picks are labeled."
        )
    curve = tradeoff_curve(current.scores, project.semi_targets(), include=[chosen.value, start])
    value = st.select_slider(
        "Threshold (samples scoring above it are flagged)", options=curve["threshold"].tolist(),
        value=start, format_func=lambda v: f"{v:.4g}", key="export.threshold",
    )  # fmt: skip
    row = curve[curve.threshold == value].iloc[0]
    c1, c2, c3 = st.columns(3)
    c1.metric("Flagged", f"{int(row.flagged)} of {len(current.scores)}")
    c2.metric("Precision on labels", "-" if pd.isna(row.precision) else f"{row.precision:.2f}")
    c3.metric("Recall on labels", "-" if pd.isna(row.recall) else f"{row.recall:.2f}")
    found = project.estimates(threshold=float(value))
    if found is not None:
        e1, e2, e3 = st.columns(3)
        e1.metric(
            "Estimated anomalies in the data",
            with_interval(*astuple(found.prevalence), percent=True),
        )
        e2.metric("Estimated precision", with_interval(*astuple(found.precision)))
        e3.metric("Estimated recall", with_interval(*astuple(found.recall)))
    st.caption(
        "*On labels*: among the samples you labeled, which the queue chose on purpose (most anomalous, "
        "uncertain, unusual), so they flatter the detector. *Estimated*: over all samples, from the "
        "queue's random picks, with 90 % intervals."
    )
    if curve["precision"].notna().any():
        st.line_chart(curve.set_index("threshold")[["precision", "recall"]], height=220)
    return float(value)


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
