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
    score_text,
    train_button,
    with_interval,
)

DASH = "–"
# what each column holds, and why a cell may show a dash (the table's tooltips)
COLUMN_HELP = {
    "flagged": "Share of samples above the round's threshold. – : the round did not finish.",
    "threshold": "The round's threshold on the anomaly score. – : the round did not finish.",
    "threshold from": "estimated_f1: the best F1 estimated over all samples; score_distribution: no check sample "
    "answered yet, a rough guess from the scores alone.",
    "AUC": "Against the data's own truth column. – : the data has none.",
    "AP": "Average precision against the data's own truth column. – : the data has none.",
    "anomalies found": "Labeled anomalous that are anomalous by the truth column. – : the data has none.",
    "est. anomaly share": "Estimated over all samples, with its 90 % interval. – : no check sample answered yet.",
    "est. recall": "Share of all anomalies the threshold flags, estimated, with its 90 % interval. – : no check "
    "sample answered yet.",
    "problem": "Why a round failed or was cancelled.",
}


def _recorded(metrics: dict, name: str) -> str:
    """An estimate the round recorded, with its interval (a dash before a check sample was answered)."""
    return with_interval(metrics[name], metrics[f"{name}_low"], metrics[f"{name}_high"]) if name in metrics else DASH


def _number(value, digits: int = 3) -> str:
    return DASH if value is None or value != value else f"{value:.{digits}f}"


def history(project: Project) -> pd.DataFrame:
    rows = []
    for r in project.rounds():
        metrics = r.metrics
        done = r.status == "done"
        found = metrics.get("anomalies_found")
        rows.append(
            {
                "round": r.number,
                "status": r.status,
                "labels": r.n_labels,
                "flagged": f"{(r.scores > r.threshold.value).mean():.1%}" if done else DASH,
                "threshold": score_text(r.threshold.value) if done else DASH,
                "threshold from": r.threshold.method if done else DASH,
                "AUC": _number(metrics.get("auc")),
                "AP": _number(metrics.get("ap")),
                "anomalies found": DASH if found is None else str(found),
                "est. anomaly share": _recorded(metrics, "est_prevalence"),
                "est. recall": _recorded(metrics, "est_recall"),
                "seconds": r.seconds,
                "finished": r.finished_at,
                "problem": r.error or "",
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
    st.dataframe(
        table, width="stretch", hide_index=True,
        column_config={name: st.column_config.Column(help=text) for name, text in COLUMN_HELP.items()},
    )  # fmt: skip
    render_annotators(project)
    current = project.current_round()
    if current is not None:
        st.subheader("Scores of the current round")
        st.plotly_chart(score_histogram(current.scores, current.threshold.value), width="stretch")
    done = table[(table.status == "done") & (table["AUC"] != DASH)].copy()
    if len(done) > 1:
        st.subheader("Learning curve (needs truth)")
        done[["AUC", "AP"]] = done[["AUC", "AP"]].astype(float)
        fig = px.line(done, x="labels", y=["AUC", "AP"], markers=True)
        fig.update_layout(height=320, yaxis_title="on all samples", margin={"t": 30})
        st.plotly_chart(fig, width="stretch")


main()
