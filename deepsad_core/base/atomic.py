"""Writing a folder or a file all at once: fill a temporary sibling, then rename it into place."""

from __future__ import annotations

import os
import shutil
import tempfile
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

__all__ = ["atomic_file", "atomic_folder"]


@contextmanager
def atomic_folder(path: str | os.PathLike, *, replace: bool = True) -> Iterator[Path]:
    """Yield an empty temporary folder beside ``path``; on success it becomes ``path``, on error it is removed.

    Readers see the old folder or the new one, never a half-written one. With ``replace`` an existing
    folder at ``path`` is swapped out by a rename and removed afterwards; without it, an existing
    ``path`` raises ``FileExistsError`` and is left alone. The temporary names are unique, so two
    writers never share one.
    """
    path = Path(path)
    if not replace and (path.exists() or path.is_symlink()):
        raise FileExistsError(f"{path.name} already exists")
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = Path(tempfile.mkdtemp(prefix=f".{path.name}.", dir=path.parent))
    try:
        yield tmp
        _fsync_tree(tmp)
        if path.exists() and replace:
            old = Path(tempfile.mkdtemp(prefix=f".{path.name}.old-", dir=path.parent))
            os.replace(path, old)  # an empty folder is replaced by a rename
            try:
                os.rename(tmp, path)
            except BaseException:
                os.replace(old, path)  # put the old folder back rather than leave nothing
                raise
            shutil.rmtree(old, ignore_errors=True)
        else:
            os.rename(tmp, path)  # fails rather than merging if something is at ``path``
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise


def _fsync_tree(folder: Path) -> None:
    """Flush every file's data to disk before the rename makes the folder visible."""
    for file in folder.rglob("*"):
        if file.is_file():
            fd = os.open(file, os.O_RDONLY)
            try:
                os.fsync(fd)
            finally:
                os.close(fd)


@contextmanager
def atomic_file(path: str | os.PathLike) -> Iterator[Path]:
    """Yield a unique temporary path beside ``path``; on success its file, flushed to disk, replaces
    ``path`` in one rename, on error it is removed. Readers see the old file or the new one, whole; two
    writers at once never share a temporary file."""
    path = Path(path)
    partial = path.with_name(f".{path.name}.{os.getpid()}.{threading.get_ident()}.partial")
    try:
        yield partial
        with open(partial, "rb+") as f:
            os.fsync(f.fileno())
        os.replace(partial, path)
    finally:
        partial.unlink(missing_ok=True)
