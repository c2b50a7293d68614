"""The project folder's layout, versioned, and the one-time migration of folders from earlier releases.

Layout 2: every finished round's folder holds ``map_index.npy`` (the samples its map shows) and
``label_free.npy`` (the scores the label audit compares labels with). Rounds written before either
existed mapped every sample and had no label-free scores (the audit read the round's scores): the
migration writes exactly that, once, when the project is opened, and records the layout version in
the project's settings. Readers then find one layout.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from deepsad_core.base.atomic import atomic_file
from deepsad_core.studio.store import ProjectStore

__all__ = ["DATA_DIR", "DB_FILE", "EXPORTS_DIR", "LAYOUT_VERSION", "ROUNDS_DIR", "ROUND_LOCK", "migrate"]

LAYOUT_VERSION = 2
# a project folder's parts (the folder tree is in docs/architecture.md)
DB_FILE, DATA_DIR, ROUNDS_DIR, EXPORTS_DIR, ROUND_LOCK = "project.db", "data", "rounds", "exports", "round.lock"
_KEY = "layout_version"


def migrate(rounds_dir: Path, store: ProjectStore) -> int:
    """Bring a project's round folders to :data:`LAYOUT_VERSION`; returns the number of rounds changed.
    Idempotent, and safe beside another process doing the same (each file is written whole, then renamed)."""
    if store.settings().get(_KEY, 1) >= LAYOUT_VERSION:
        return 0
    changed = 0
    for row in store.rounds():
        folder = rounds_dir / f"{row['number']:04d}"
        if row["status"] != "done" or not (folder / "scores.npy").is_file():
            continue
        scores = np.load(folder / "scores.npy")
        earlier = {
            "map_index.npy": np.arange(len(scores)),  # that round mapped every sample
            "label_free.npy": scores,  # that round's audit read its scores
        }
        missing = [name for name in earlier if not (folder / name).exists()]
        for name in missing:
            _save(folder / name, earlier[name])
        changed += bool(missing)
    store.update_settings({_KEY: LAYOUT_VERSION})
    return changed


def _save(path: Path, values: np.ndarray) -> None:
    with atomic_file(path) as partial, open(partial, "wb") as f:
        np.save(f, values)
