"""The label store: append-only events, undo and relabel, and labels that survive killed processes."""

import multiprocessing
import os
import random
import signal
import sqlite3
import time

import pytest

from deepsad_core.studio.store import ProjectStore


@pytest.fixture
def store(tmp_path) -> ProjectStore:
    s = ProjectStore(tmp_path / "project.db")
    s.add_samples([f"s{i}" for i in range(20)], None)
    return s


def test_current_label_is_the_latest_event_and_relabel_appends(store):
    store.add_labels([1, 2], "normal", "ann")
    store.add_labels([2], "anomalous", "ann")
    assert store.current_labels() == {1: "normal", 2: "anomalous"}
    assert store.n_events() == 3


def test_undo_restores_the_previous_label_as_a_new_event(store):
    store.add_labels([5], "normal", "ann")
    store.add_labels([5, 6, 7], "anomalous", "ann")  # one batch action
    assert store.undo_last("ann") == [5, 6, 7]
    assert store.current_labels() == {5: "normal"}
    assert store.undo_last("ann") == [5]
    assert store.current_labels() == {}
    assert store.undo_last("ann") == []  # nothing left; undo events are not undone
    events = store.label_events()
    assert len(events) == 4 + 4 and sum(e["undoes"] is not None for e in events) == 4


def test_undo_is_per_annotator(store):
    store.add_labels([1], "normal", "alice")
    store.add_labels([2], "anomalous", "bob")
    store.undo_last("alice")
    assert store.current_labels() == {2: "anomalous"}


def test_label_events_cannot_be_changed_or_deleted(store):
    store.add_labels([1], "normal", "ann")
    for sql in ("UPDATE label_events SET label = 'anomalous'", "DELETE FROM label_events"):
        with pytest.raises(sqlite3.IntegrityError, match="append-only"), store.transaction() as db:
            db.execute(sql)
    assert store.current_labels() == {1: "normal"}


@pytest.mark.parametrize(("idx", "label", "message"), [([99], "normal", "does not exist"), ([1], "weird", "one of")])
def test_bad_labels_are_refused(store, idx, label, message):
    with pytest.raises(ValueError, match=message):
        store.add_labels(idx, label, "ann")


def test_database_is_in_wal_mode_with_full_sync(store):
    with store.connect() as db:
        assert db.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert db.execute("PRAGMA synchronous").fetchone()[0] == 2  # FULL


# --- real processes ---------------------------------------------------------------------------------

_fork = multiprocessing.get_context("fork")  # the child starts at once, with modules already imported


def _write_forever(db_path: str, ack_fd: int) -> None:
    store = ProjectStore(db_path)
    i = 0
    while True:
        action, _ = store.add_labels([i % 20], "anomalous" if i % 3 else "normal", f"writer-{os.getpid()}")
        os.write(ack_fd, f"{action}\n".encode())  # acknowledged only after the commit returned
        i += 1


def _write_n(db_path: str, n: int, name: str) -> None:
    store = ProjectStore(db_path)
    for i in range(n):
        store.add_labels([i % 20], "normal", name)


def test_acknowledged_labels_survive_sigkill_at_random_moments(store):
    rng = random.Random(0)
    acked: list[str] = []
    for _ in range(20):
        read_fd, write_fd = os.pipe()
        writer = _fork.Process(target=_write_forever, args=(str(store.path), write_fd))
        writer.start()
        os.close(write_fd)
        time.sleep(rng.uniform(0.02, 0.3))
        os.kill(writer.pid, signal.SIGKILL)
        writer.join()
        with os.fdopen(read_fd) as pipe:
            acked += [line for line in pipe.read().splitlines() if len(line) == 32]  # a torn last line is no ack
    stored = {e["action"] for e in store.label_events()}
    assert len(acked) > 20, "the writers were killed before writing anything: the test proves nothing"
    assert set(acked) <= stored
    with store.connect() as db:
        assert db.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_two_processes_writing_at_once_lose_nothing(store):
    writers = [_fork.Process(target=_write_n, args=(str(store.path), 500, name)) for name in ("a", "b")]
    for w in writers:
        w.start()
    for w in writers:
        w.join(timeout=120)
        assert w.exitcode == 0
    events = store.label_events()
    assert len(events) == 1000
    assert sum(e["annotator"] == "a" for e in events) == 500


def test_bulk_labels_skip_samples_labeled_since_the_page_was_drawn(store):
    store.add_labels([3], "anomalous", "other tab")  # given after this tab drew its list
    _, applied = store.add_labels([1, 2, 3, 4], "normal", "ann", only_unlabeled=True)
    assert applied == [1, 2, 4]
    assert store.current_labels() == {1: "normal", 2: "normal", 3: "anomalous", 4: "normal"}
    assert store.add_labels([1, 2], "normal", "ann", only_unlabeled=True)[1] == []


def test_undo_takes_back_only_the_sessions_own_actions(store):
    mine, _ = store.add_labels([1], "normal", "expert")
    store.add_labels([2], "anomalous", "expert")  # another tab, same default name
    assert store.undo_last("expert", actions=[mine]) == [1]
    assert store.current_labels() == {2: "anomalous"}
    assert store.undo_last("expert", actions=[mine]) == []  # nothing of this session's is left to undo


def test_skips_are_kept_per_round_and_are_not_labels(store):
    store.add_skip(0, 5, "expert")
    store.add_skip(0, 5, "another tab")  # skipping twice is one skip
    store.add_skip(1, 6, "expert")
    reopened = ProjectStore(store.path)  # a reload, or a restarted server
    assert reopened.skipped(0) == {5} and reopened.skipped(1) == {6} and reopened.skipped(2) == set()
    assert reopened.current_labels() == {}


def test_each_annotators_standing_labels(store):
    store.add_labels([1, 2], "normal", "ana")
    store.add_labels([2], "anomalous", "ben")  # ben disagrees on sample 2, and his label is the latest
    store.add_labels([3], "anomalous", "ben")
    store.undo_last("ben")  # ben takes back sample 3
    assert store.labels_by_annotator() == {"ana": {1: "normal", 2: "normal"}, "ben": {2: "anomalous"}}
