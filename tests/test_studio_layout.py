"""Project folders of earlier releases are brought to today's layout once, on open."""

from __future__ import annotations

import sqlite3
import zipfile
from pathlib import Path

import numpy as np

from deepsad_core.studio import Project
from deepsad_core.studio.layout import LAYOUT_VERSION

MADE = Path(__file__).parent / "fixtures" / "made_by_v0_1"


def _older_layout(tmp_path: Path) -> Path:
    """The release-0.1 project with round 0 as the releases before map samples and the audit wrote it."""
    with zipfile.ZipFile(MADE / "project.zip") as archive:
        archive.extractall(tmp_path)
    folder = tmp_path / "legacy"
    for name in ("map_index.npy", "label_free.npy", "map_pca.npy", "map_umap.npy"):
        (folder / "rounds" / "0000" / name).unlink(missing_ok=True)
    scores = np.load(folder / "rounds" / "0000" / "scores.npy")
    np.save(folder / "rounds" / "0000" / "map_pca.npy", np.zeros((len(scores), 2), np.float32))  # every sample
    with sqlite3.connect(folder / "project.db") as db:
        db.execute("DELETE FROM settings WHERE key = 'layout_version'")
    return folder


def test_an_older_round_folder_is_migrated_once_on_open(tmp_path):
    folder = _older_layout(tmp_path)
    newer = folder / "rounds" / "0001" / "label_free.npy"
    before = newer.read_bytes()
    project = Project.open(folder)
    first = project.rounds()[0]
    np.testing.assert_array_equal(np.load(first.path / "map_index.npy"), np.arange(len(first.scores)))
    np.testing.assert_array_equal(np.load(first.path / "label_free.npy"), first.scores)
    assert project.store.settings()["layout_version"] == LAYOUT_VERSION
    assert first.map_coords_for(np.array([0, 5])).shape == (2, 2)  # its map reads as any other
    assert newer.read_bytes() == before  # the newer round was complete: left as it was


def test_a_migrated_project_is_not_touched_again(tmp_path):
    folder = _older_layout(tmp_path)
    Project.open(folder)
    label_free = folder / "rounds" / "0000" / "label_free.npy"
    label_free.unlink()  # were the migration to run again, it would write this back
    Project.open(folder)
    assert not label_free.exists()
