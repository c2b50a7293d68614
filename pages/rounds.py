"""Rounds: start or cancel training, watch progress, compare rounds, see the scores."""

from __future__ import annotations

import pandas as pd
import plotly.express as px
import streamlit as st

from deepsad_core.studio import Project
from pages.common import (
    project_page,
    round_progress,
    score_histogram,
    train_button,
    with_interval,
)


def _recorded(metrics: dict, name: str) -> str | None:
    """An estimate the round recorded, with its interval (none before a random pick was labeled)."""
    return with_interval(metrics[name], metrics[f"{name}_low"], metrics[f"{name}_high"]) if name in metrics else None


def history(project: Project) -> pd.DataFrame:
    rows = []
    for r in project.rounds():
        metrics = r.metrics
        threshold = r.threshold.to_dict() if r.status == "done" else {}
        rows.append(
            {
                "round": r.number,
                "status": r.status,
                "labels": r.n_labels,
                "threshold": threshold.get("value"),
                "threshold from": threshold.get("method"),
                "AUC": metrics.get("auc"),
                "AP": metrics.get("ap"),
                "anomalies found": metrics.get("anomalies_found"),
                "est. anomaly share": _recorded(metrics, "est_prevalence"),
                "est. recall": _recorded(metrics, "est_recall"),
                "seconds": r.seconds,
                "finished": r.finished_at,
                "problem": r.error,
            }
        )
    return pd.DataFrame(rows)


def render_annotators(project: Project) -> None:
    counts = project.annotator_counts()
    if len(counts) < 2:
        return
    st.subheader("Annotators")
    st.dataframe(pd.DataFrame(counts).T.rename_axis("annotator").reset_index(), hide_index=True)
    conflicts = project.conflicts()
    if conflicts:
        st.markdown(
            f"**{len(conflicts)} sample(s) labeled differently.** The latest label trains the model, whoever "
            "gave it (the *used* column); relabel a sample on the Label or Map page to settle it."
        )
        rows = [{"sample": c["sample_id"], **c["labels"], "used": c["used"]} for c in conflicts]
        st.dataframe(pd.DataFrame(rows), hide_index=True)


def main() -> None:
    project, worker = project_page("Rounds")
    train_button(worker, "rounds.train")
    round_progress(worker, "rounds")
    table = history(project)
    if table.empty:
        st.info("No round has finished yet.")
        return
    st.dataframe(table, width="stretch", hide_index=True)
    render_annotators(project)
    current = project.current_round()
    if current is not None:
        st.subheader("Scores of the current round")
        st.plotly_chart(score_histogram(current.scores, current.threshold.value), width="stretch")
    done = table[(table.status == "done") & table["AUC"].notna()]
    if len(done) > 1:
        st.subheader("Learning curve (needs truth)")
        fig = px.line(done, x="labels", y=["AUC", "AP"], markers=True)
        fig.update_layout(height=320, yaxis_title="on all samples", margin={"t": 30})
        st.plotly_chart(fig, width="stretch")


main()
