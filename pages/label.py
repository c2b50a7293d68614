"""Label: the current queue in the order it asks, one click per decision, undo, and the next round."""

from __future__ import annotations

import time
from pathlib import Path

import streamlit as st

from deepsad_core.studio import Project, RoundWorker
from pages.common import (
    drivers_text,
    heat_overlay,
    plain,
    project_page,
    remember_action,
    round_progress,
    score_drivers,
    standout_values,
    thumbnail,
    train_button,
)

CARD_WIDTH = {"image": 270, "tabular": 290}  # pixels: the decision control needs about 240
# Cards on screen (all with "Show every item"): each card is three elements the server sends and the
# browser redraws on every click, so fewer cards keep the next item quick.
SHOWN = 12

# what each part of the queue is called on its cards, its badge colour, and what it is for
PARTS = {
    "most_anomalous": ("Most anomalous", "red", "The highest scores: where anomalies are found."),
    "diverse": ("Diverse", "blue", "Far from everything labeled: parts of the data nobody has looked at."),
    "most_uncertain": ("Uncertain", "orange", "Scores closest to the threshold: where the boundary is decided."),
    "check": (
        "Check sample", "violet",
        "Drawn at random with a known chance: the estimates over all samples on the Export page rest on "
        "your answers to these.",
    ),
    "random": (
        "Random", "gray",
        "Drawn uniformly at random: while your answers say the top scores are not anomalies, the queue "
        "explores the rest of the data.",
    ),
}  # fmt: skip


def pending_queue(project: Project, current, labels: dict[int, str]) -> list[dict]:
    """The current round's queue without what was labeled or skipped since."""
    if current is None:
        return []
    skipped = project.skipped(current.number)
    return [q for q in current.queue if q["index"] not in labels and q["index"] not in skipped]


def give_label(project: Project, indices: list[int], label: str) -> None:
    start = time.perf_counter()
    current = project.current_round()
    action = project.label(indices, label, st.session_state["annotator"], current.number if current else None)
    remember_action(action)
    st.session_state["label.last_ms"] = (time.perf_counter() - start) * 1000


def mark_rest_normal(project: Project, indices: list[int]) -> None:
    """Label a queue part's samples normal, those still unlabeled when it commits; say how many were not."""
    current = project.current_round()
    round_number = current.number if current else None
    action, applied = project.label_unlabeled(indices, "normal", st.session_state["annotator"], round_number)
    remember_action(action)
    if len(applied) < len(indices):
        st.session_state["label.undo_message"] = (
            f"Marked {len(applied)} normal; {len(indices) - len(applied)} had been labeled meanwhile and were kept."
        )


def undo(project: Project) -> None:
    # this browser session's own actions only: another tab under the same name keeps its labels
    undone = project.undo(st.session_state["annotator"], st.session_state.get("actions", []))
    if undone:  # the cards come back where the queue has them, not behind those that took their places
        st.session_state.pop("label.slots", None)
    st.session_state["label.undo_message"] = (
        f"Undid the label of {len(undone)} sample(s)." if undone else "Nothing to undo."
    )


DECISIONS = {"normal": "Normal", "anomalous": "Anomalous", "skip": "Skip"}
# Keys for the card in focus: one listener on the page, kept across reruns, clicks the same controls a
# mouse would (pages/label_keys.html), so a key press is a click: same callbacks, same durable label.
KEYS_SCRIPT = Path(__file__).with_name("label_keys.html")


def decide(project: Project, key: str, round_number: int, index: int) -> None:
    choice = st.session_state[key]
    if choice == "skip":
        project.skip(index, round_number, st.session_state["annotator"])
    elif choice is not None:
        give_label(project, [index], choice)


def render_item(project: Project, item: dict) -> None:
    """One card: content, why it was picked, the decision. Few elements on purpose: every element is
    a message the server sends and the browser redraws on each click, and the click-to-next-item time
    grows with their number (one segmented control, not three buttons in a row)."""
    i = item["index"]
    with st.container(border=True, width=CARD_WIDTH[project.kind]):
        if project.kind == "image":
            picture = (
                heat_overlay(project.pixels[i], project.explain(i))
                if st.session_state.get("label.explain")
                else thumbnail(project.pixels[i])
            )
            st.image(picture, caption=item["sample_id"], width="stretch")
            st.markdown(f"{part_badge(item['strategy'])} :gray[{item['reason']}]")
        else:
            values = "  \n".join(standout_values(project, i))
            # the round worked out its queue's drivers; rounds saved before that are explained now
            found = drivers_text(item["drivers"]) if "drivers" in item else score_drivers(project, item["round"], i)
            drivers = ", ".join(found) or "-"
            st.markdown(
                f"{part_badge(item['strategy'])} **{plain(item['sample_id'])}**  \n{values}  \n"
                f":gray[drives the score:] {drivers}  \n:gray[{item['reason']}]"
            )
        key = f"label.{item['strategy']}.{i}"  # the section is in the key, so tests can find each queue's items
        st.segmented_control(
            "Decision",
            list(DECISIONS),
            format_func=DECISIONS.get,
            key=key,
            on_change=decide,
            args=(project, key, item["round"], i),
            label_visibility="collapsed",
        )


def part_badge(strategy: str) -> str:
    """The coloured badge that names a card's queue part."""
    title, colour, _ = PARTS.get(strategy, (strategy, "gray", ""))
    return f":{colour}-badge[{title}]"


def card_slots(queue: list[dict], count: int, round_number: int) -> list[dict]:
    """The cards on screen: the queue's first ``count`` in its order, and when one is decided the next
    card in the queue takes its place rather than every later card moving up one. The page then sends
    the browser one changed card per click, not all of them (the click-to-next-card time)."""
    pending = {q["index"]: q for q in queue}
    kept = st.session_state.get("label.slots")
    slots = [i if i in pending else None for i in kept[1]] if kept and kept[0] == round_number else []
    waiting = iter(q["index"] for q in queue if q["index"] not in set(slots))
    slots = [next(waiting, None) if i is None else i for i in slots[:count]]
    slots += [i for _, i in zip(range(count - len(slots)), waiting, strict=False)]
    slots = [i for i in slots if i is not None]
    st.session_state["label.slots"] = (round_number, slots)
    return [pending[i] for i in slots]


def render_queue(project: Project, queue: list[dict], round_number: int) -> None:
    """The queue's cards in the order it asks (its parts interleaved), then one button per part."""
    shown = card_slots(queue, len(queue) if st.session_state["label.show_all"] else SHOWN, round_number)
    partly = f" :gray[· {len(shown)} shown]" if len(queue) > len(shown) else ""  # the rest move up as you label
    parts = [name for name in PARTS if any(q["strategy"] == name for q in queue)]
    help_text = "  \n".join(f"**{PARTS[name][0]}**: {PARTS[name][2]}" for name in parts)
    st.subheader(f"Queue ({len(queue)}){partly}", help=help_text)
    if "check" in parts:
        st.caption(
            f"{part_badge('check')} cards are drawn at random: the estimates over all samples rest on your "
            "answers to them, so answer them as carefully as the rest."
        )
    with st.container(horizontal=True, wrap=True, gap="small"):  # cards flow into rows by the window's width
        for item in shown:
            render_item(project, item)
    with st.container(horizontal=True):
        for name in parts:
            indices = [q["index"] for q in queue if q["strategy"] == name]
            st.button(
                f"Mark the rest of '{PARTS[name][0]}' normal ({len(indices)})",
                key=f"label.rest.{name}",
                on_click=mark_rest_normal,
                args=(project, indices),
            )


def render_header(project: Project, worker: RoundWorker, labels: dict[int, str], queue: list[dict], current) -> None:
    with st.container(horizontal=True):  # one block, not four columns: fewer elements per click
        st.metric("Round", "-" if current is None else current.number)
        st.metric("Labeled normal", sum(v == "normal" for v in labels.values()))
        st.metric("Labeled anomalous", sum(v == "anomalous" for v in labels.values()))
        st.metric("Left in this queue", len(queue))
    with st.container(horizontal=True, vertical_alignment="center"):
        st.button("Undo last action", key="label.undo", on_click=undo, args=(project,))
        train_button(worker, "label.train")
        st.toggle("Show every item", key="label.show_all")
        if project.kind == "image":
            st.toggle("Show what drives the score", key="label.explain", help="Red: the parts that raise the score")
    st.caption(
        "Keys: **J** / **K** move to the next / previous card, **N** normal, **A** anomalous, **S** skip, **U** undo."
    )
    st.iframe(KEYS_SCRIPT, height=1)
    if message := st.session_state.pop("label.undo_message", None):
        st.toast(message)


def render_stop_hint(project: Project, current) -> None:
    hint = project.stop_hint(current)
    if hint is not None and hint.rank_correlation is not None:
        (st.success if hint.stop else st.caption)(hint.describe())


def render_audit(project: Project) -> None:
    """The labels the detector most doubts, each with a one-click relabel (computed only when shown)."""
    if not st.toggle("Double-check my labels", key="label.audit", help="The labels the detector disagrees with most"):
        return
    doubts = project.audit(k=5)
    if not doubts:
        st.caption("No labels yet.")
        return
    for doubt in doubts:
        other = "anomalous" if doubt.label == "normal" else "normal"
        with st.container(horizontal=True, vertical_alignment="center"):
            st.markdown(f"**{plain(project.sample_ids[doubt.index])}** · {doubt.reason}")
            st.button(
                f"Relabel {other}", key=f"label.audit.{doubt.index}", on_click=give_label,
                args=(project, [doubt.index], other),
            )  # fmt: skip


def label_body(project: Project, worker: RoundWorker) -> None:
    """The counts and the queue. (Not an st.fragment: a fragment rerun that changes the number of
    cards left stale buttons on the page in Streamlit 1.67, so each click reruns the page.)"""
    current = project.current_round()
    labels = project.labels()  # one read per click, for the queue and the counts
    queue = pending_queue(project, current, labels)
    render_header(project, worker, labels, queue, current)
    if current is not None:
        if exploring := project.exploration(current):  # the queue says when and why it left the top scores
            st.info(exploring, icon=":material/explore:")
        render_stop_hint(project, current)
        render_audit(project)
    if current is None:
        st.info("Round 0 is training: the first queue appears here when it is done.")
        return
    if not queue:
        st.success("This queue is done. Train the next round to get new suggestions.")
        return
    for item in queue:
        item["round"] = current.number
    render_queue(project, queue, current.number)


def main() -> None:
    project, worker = project_page("Label")
    round_progress(worker, "label")
    label_body(project, worker)


main()
