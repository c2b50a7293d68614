"""atomic_folder: a folder appears whole or not at all, and nothing already there is lost."""

import pytest

from deepsad_core.base.atomic import atomic_folder


def test_a_folder_appears_only_when_written_and_replaces_the_old_one(tmp_path):
    target = tmp_path / "round"
    with atomic_folder(target) as tmp:
        (tmp / "a.txt").write_text("one")
        assert not target.exists()
    with atomic_folder(target) as tmp:
        (tmp / "b.txt").write_text("two")
    assert [p.name for p in target.iterdir()] == ["b.txt"]
    assert [p.name for p in tmp_path.iterdir()] == ["round"]  # no temporary left behind


def test_a_failed_write_leaves_the_old_folder_and_no_temporary(tmp_path):
    target = tmp_path / "round"
    target.mkdir()
    (target / "keep.txt").write_text("old")
    with pytest.raises(RuntimeError), atomic_folder(target) as tmp:
        (tmp / "half.txt").write_text("half")
        raise RuntimeError("crash while writing")
    assert [p.name for p in tmp_path.iterdir()] == ["round"] and (target / "keep.txt").read_text() == "old"


def test_without_replace_an_existing_path_is_refused_untouched(tmp_path):
    target = tmp_path / "project"
    target.mkdir()
    with pytest.raises(FileExistsError), atomic_folder(target, replace=False):
        pass
    assert list(target.iterdir()) == [] and [p.name for p in tmp_path.iterdir()] == ["project"]


def test_a_file_is_replaced_whole_or_not_at_all(tmp_path):
    from deepsad_core.base.atomic import atomic_file

    target = tmp_path / "scores.npy"
    target.write_bytes(b"old")
    with pytest.raises(RuntimeError), atomic_file(target) as partial:
        partial.write_bytes(b"half")
        raise RuntimeError("the writer died")
    assert target.read_bytes() == b"old" and sorted(p.name for p in tmp_path.iterdir()) == ["scores.npy"]
    with atomic_file(target) as partial:
        partial.write_bytes(b"new")
        assert target.read_bytes() == b"old"  # readers see the old file until the rename
    assert target.read_bytes() == b"new" and sorted(p.name for p in tmp_path.iterdir()) == ["scores.npy"]
