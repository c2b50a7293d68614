"""The project's SQLite database: samples, append-only label events, rounds, settings.

WAL mode with ``synchronous=FULL``: a label call returns only after its event is on disk, so an
acknowledged label survives a killed process, and several processes or browser tabs can write at
once (each write is one short ``BEGIN IMMEDIATE`` transaction; others wait, up to a timeout).
Label events are never updated or deleted (triggers refuse it); the current label of a sample is its
latest event, undo and relabel are new events.
"""

from __future__ import annotations

import json
import sqlite3
import uuid
from collections.abc import Callable, Iterable, Iterator, Sequence
from contextlib import contextmanager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np

from deepsad_core.base.labels import LABELS

__all__ = ["LABELS", "ProjectStore"]

SCHEMA_VERSION = 1

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS samples (
    idx INTEGER PRIMARY KEY,
    sample_id TEXT NOT NULL UNIQUE,
    truth INTEGER CHECK (truth IN (0, 1))
);
CREATE TABLE IF NOT EXISTS label_events (
    id INTEGER PRIMARY KEY AUTOINCREMENT,
    sample_idx INTEGER NOT NULL REFERENCES samples(idx),
    label TEXT CHECK (label IN ('normal', 'anomalous')),  -- NULL: the label was taken away
    annotator TEXT NOT NULL,
    created_at TEXT NOT NULL,
    round INTEGER,  -- the round whose queue was on screen; NULL before round 0
    action TEXT NOT NULL,  -- events given by one click share it (a batch), and are undone together
    undoes INTEGER REFERENCES label_events(id)
);
CREATE INDEX IF NOT EXISTS label_events_by_sample ON label_events (sample_idx, id);
CREATE INDEX IF NOT EXISTS label_events_by_action ON label_events (action);
CREATE TRIGGER IF NOT EXISTS label_events_no_update BEFORE UPDATE ON label_events
    BEGIN SELECT RAISE(ABORT, 'label events are append-only'); END;
CREATE TRIGGER IF NOT EXISTS label_events_no_delete BEFORE DELETE ON label_events
    BEGIN SELECT RAISE(ABORT, 'label events are append-only'); END;
CREATE TABLE IF NOT EXISTS rounds (
    number INTEGER PRIMARY KEY,
    status TEXT NOT NULL CHECK (status IN ('done', 'failed', 'cancelled')),
    started_at TEXT NOT NULL,
    finished_at TEXT NOT NULL,
    seconds REAL,
    n_labels INTEGER,
    config TEXT,  -- JSON
    metrics TEXT,  -- JSON
    error TEXT
);
CREATE TABLE IF NOT EXISTS settings (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS skips (  -- "not now": the sample leaves that round's queue, unlabeled
    round INTEGER NOT NULL,
    sample_idx INTEGER NOT NULL REFERENCES samples(idx),
    annotator TEXT NOT NULL,
    created_at TEXT NOT NULL,
    PRIMARY KEY (round, sample_idx)
);
"""


def _labeled_now(db: sqlite3.Connection) -> dict[int, str]:
    rows = db.execute(
        "SELECT e.sample_idx, e.label FROM label_events e "
        "JOIN (SELECT MAX(id) AS id FROM label_events GROUP BY sample_idx) last ON e.id = last.id "
        "WHERE e.label IS NOT NULL"
    )
    return dict(rows.fetchall())


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="milliseconds")


class ProjectStore:
    """One project's database; safe to use from several threads and processes."""

    def __init__(self, path: str | Path, timeout: float = 30.0) -> None:
        self.path = Path(path)
        self.timeout = timeout
        with self.connect() as db:
            db.executescript(_SCHEMA)
            db.execute("INSERT OR IGNORE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))

    @contextmanager
    def connect(self) -> Iterator[sqlite3.Connection]:
        """A fresh connection per unit of work: threads and processes never share one."""
        db = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
        try:
            db.execute("PRAGMA journal_mode=WAL")
            db.execute("PRAGMA synchronous=FULL")
            db.execute("PRAGMA foreign_keys=ON")
            yield db
        finally:
            db.close()

    @contextmanager
    def transaction(self) -> Iterator[sqlite3.Connection]:
        """``BEGIN IMMEDIATE`` ... ``COMMIT``: returns only once the writes are durable."""
        with self.connect() as db:
            db.execute("BEGIN IMMEDIATE")
            try:
                yield db
            except BaseException:
                db.execute("ROLLBACK")
                raise
            db.execute("COMMIT")

    # --- meta and settings ------------------------------------------------------------------------

    def set_meta(self, values: dict[str, Any]) -> None:
        with self.transaction() as db:
            db.executemany("INSERT OR REPLACE INTO meta VALUES (?, ?)", [(k, json.dumps(v)) for k, v in values.items()])

    def meta(self) -> dict[str, Any]:
        with self.connect() as db:
            return {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM meta")}

    def settings(self) -> dict[str, Any]:
        with self.connect() as db:
            return {k: json.loads(v) for k, v in db.execute("SELECT key, value FROM settings")}

    def update_settings(self, values: dict[str, Any]) -> None:
        with self.transaction() as db:
            db.executemany(
                "INSERT OR REPLACE INTO settings VALUES (?, ?)", [(k, json.dumps(v)) for k, v in values.items()]
            )

    def merge_setting(self, key: str, changes: dict[str, Any], check: Callable[[dict], dict] = dict) -> dict:
        """Apply ``changes`` to the dict stored under ``key`` in one transaction, so that two writers
        changing different fields keep both; ``check`` validates the merged dict (and may raise)."""
        with self.transaction() as db:
            row = db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
            merged = check({**(json.loads(row[0]) if row else {}), **changes})
            db.execute("INSERT OR REPLACE INTO settings VALUES (?, ?)", (key, json.dumps(merged)))
        return merged

    # --- samples ----------------------------------------------------------------------------------

    def add_samples(self, ids: Sequence[str], truth: np.ndarray | None) -> None:
        truth_values: Iterable = (None for _ in ids) if truth is None else (int(t) for t in truth)
        with self.transaction() as db:
            db.executemany(
                "INSERT INTO samples (idx, sample_id, truth) VALUES (?, ?, ?)",
                zip(range(len(ids)), (str(i) for i in ids), truth_values, strict=False),
            )

    def sample_ids(self) -> np.ndarray:
        with self.connect() as db:
            return np.asarray([r[0] for r in db.execute("SELECT sample_id FROM samples ORDER BY idx")], dtype=object)

    def truth(self) -> np.ndarray | None:
        """Ground truth (1 = anomaly) for evaluation only, or None when the data came without it."""
        with self.connect() as db:
            values = [r[0] for r in db.execute("SELECT truth FROM samples ORDER BY idx")]
        return None if not values or values[0] is None else np.asarray(values, dtype=np.int64)

    def n_samples(self) -> int:
        with self.connect() as db:
            return db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]

    # --- labels -----------------------------------------------------------------------------------

    def add_labels(
        self,
        sample_idx: Sequence[int],
        label: str | None,
        annotator: str,
        round_number: int | None = None,
        *,
        only_unlabeled: bool = False,
    ) -> tuple[str, list[int]]:
        """Record one action labelling ``sample_idx`` (``label=None`` takes labels away).

        With ``only_unlabeled`` the samples that hold a label when the transaction commits are left as
        they are (another tab may have labeled them since the page was drawn). Returns the action's id
        and the samples it labeled, only after the events are committed to disk.
        """
        if label not in (*LABELS, None):
            raise ValueError(f"label must be one of {LABELS} or None; got {label!r}")
        idx = [int(i) for i in sample_idx]
        if not idx:
            raise ValueError("add_labels needs at least one sample")
        action, stamp = uuid.uuid4().hex, now()
        with self.transaction() as db:
            n = db.execute("SELECT COUNT(*) FROM samples").fetchone()[0]
            bad = [i for i in idx if not 0 <= i < n]
            if bad:
                raise ValueError(f"sample index {bad[0]} does not exist (the project has {n} samples)")
            if only_unlabeled:
                taken = set(_labeled_now(db))
                idx = [i for i in idx if i not in taken]
            db.executemany(
                "INSERT INTO label_events (sample_idx, label, annotator, created_at, round, action) "
                "VALUES (?, ?, ?, ?, ?, ?)",
                [(i, label, annotator, stamp, round_number, action) for i in idx],
            )
        return action, idx

    def undo_last(self, annotator: str, actions: Sequence[str] | None = None) -> list[int]:
        """Undo ``annotator``'s latest action that is not undone yet; returns the samples it touched.

        With ``actions`` (the ids one browser session recorded) only those are candidates, so a tab
        never undoes another tab's labels under the same name. The undo is itself an action of new
        events, each restoring the sample's label from just before the undone event.
        """
        only = "" if actions is None else f"AND action IN ({','.join('?' * len(actions))}) "
        with self.transaction() as db:
            row = db.execute(
                "SELECT action FROM label_events WHERE annotator = ? AND undoes IS NULL "
                "AND id NOT IN (SELECT undoes FROM label_events WHERE undoes IS NOT NULL) "
                f"{only}ORDER BY id DESC LIMIT 1",
                (annotator, *(actions or ())),
            ).fetchone()
            if row is None:
                return []
            events = db.execute(
                "SELECT id, sample_idx FROM label_events WHERE action = ? ORDER BY id", (row[0],)
            ).fetchall()
            action, stamp = uuid.uuid4().hex, now()
            for event_id, sample in events:
                before = db.execute(
                    "SELECT label FROM label_events WHERE sample_idx = ? AND id < ? ORDER BY id DESC LIMIT 1",
                    (sample, event_id),
                ).fetchone()
                db.execute(
                    "INSERT INTO label_events (sample_idx, label, annotator, created_at, round, action, undoes) "
                    "SELECT sample_idx, ?, ?, ?, round, ?, id FROM label_events WHERE id = ?",
                    (before[0] if before else None, annotator, stamp, action, event_id),
                )
            return [s for _, s in events]

    def current_labels(self) -> dict[int, str]:
        """``{sample index: 'normal' | 'anomalous'}`` from each sample's latest event."""
        with self.connect() as db:
            return _labeled_now(db)

    def label_events(self) -> list[dict[str, Any]]:
        with self.connect() as db:
            db.row_factory = sqlite3.Row
            return [dict(r) for r in db.execute("SELECT * FROM label_events ORDER BY id")]

    def labels_by_annotator(self) -> dict[str, dict[int, str]]:
        """Each annotator's own standing labels: their latest event per sample (one they took back is gone)."""
        rows = self._rows(
            "SELECT e.annotator, e.sample_idx, e.label FROM label_events e JOIN (SELECT MAX(id) AS id "
            "FROM label_events GROUP BY sample_idx, annotator) last ON e.id = last.id WHERE e.label IS NOT NULL"
        )
        out: dict[str, dict[int, str]] = {}
        for annotator, idx, label in rows:
            out.setdefault(annotator, {})[idx] = label
        return out

    def _rows(self, query: str) -> list[tuple]:
        with self.connect() as db:
            return db.execute(query).fetchall()

    def n_events(self) -> int:
        with self.connect() as db:
            return db.execute("SELECT COUNT(*) FROM label_events").fetchone()[0]

    def add_skip(self, round_number: int, sample_idx: int, annotator: str) -> None:
        with self.transaction() as db:
            db.execute(
                "INSERT OR IGNORE INTO skips VALUES (?, ?, ?, ?)", (round_number, int(sample_idx), annotator, now())
            )

    def skipped(self, round_number: int) -> set[int]:
        with self.connect() as db:
            return {i for (i,) in db.execute("SELECT sample_idx FROM skips WHERE round = ?", (round_number,))}

    # --- rounds -----------------------------------------------------------------------------------

    def add_round(self, row: dict[str, Any]) -> None:
        record = {**row, "config": json.dumps(row.get("config")), "metrics": json.dumps(row.get("metrics"))}
        columns = ("number", "status", "started_at", "finished_at", "seconds", "n_labels", "config", "metrics", "error")
        with self.transaction() as db:
            db.execute(
                f"INSERT INTO rounds ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                [record.get(c) for c in columns],
            )

    def rounds(self) -> list[dict[str, Any]]:
        with self.connect() as db:
            db.row_factory = sqlite3.Row
            rows = [dict(r) for r in db.execute("SELECT * FROM rounds ORDER BY number")]
        for r in rows:
            r["config"], r["metrics"] = json.loads(r["config"] or "null"), json.loads(r["metrics"] or "null")
        return rows
