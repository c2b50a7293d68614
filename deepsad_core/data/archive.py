"""Reading ZIP archives from untrusted sources, in memory, within limits.

Members are never written to disk, so none can land outside a folder; members whose names would
escape one (absolute paths, ``..``) are refused all the same, since such an archive is hostile.
"""

from __future__ import annotations

import io
import posixpath
import zipfile
import zlib
from collections.abc import Iterator

from deepsad_core.data.dataset import LoadLimits
from deepsad_core.exceptions import DataError

__all__ = ["zip_members"]


def _check_name(member: str, name: str) -> None:
    normal = posixpath.normpath(member.replace("\\", "/"))
    if member.startswith(("/", "\\")) or normal.startswith("../") or normal == ".." or ":" in member.split("/")[0]:
        raise DataError(f"{name} is refused: member '{member}' would be written outside the extraction folder")


def zip_members(data: bytes, name: str, limits: LoadLimits, suffixes: tuple[str, ...]) -> Iterator[tuple[str, bytes]]:
    """``(member name, bytes)`` for each file member ending with one of ``suffixes``."""
    try:
        archive = zipfile.ZipFile(io.BytesIO(data))
    except (zipfile.BadZipFile, OSError) as e:
        raise DataError(f"{name} is not a readable ZIP archive: {e}") from None
    with archive:
        infos = [i for i in archive.infolist() if not i.is_dir()]
        for info in infos:
            _check_name(info.filename, name)
        if len(infos) > limits.max_zip_members:
            raise DataError(f"{name} has {len(infos)} files; the limit is {limits.max_zip_members}")
        declared = sum(i.file_size for i in infos)
        if declared > limits.max_uncompressed_bytes:
            raise DataError(
                f"{name} would unpack to {declared / 1e9:.1f} GB; "
                f"the limit is {limits.max_uncompressed_bytes / 1e9:.1f} GB"
            )
        total = 0
        for info in infos:
            if not info.filename.lower().endswith(suffixes) or posixpath.basename(info.filename).startswith("._"):
                continue
            if info.compress_size and (ratio := limits.expansion(info.file_size, info.compress_size)):
                raise DataError(f"{name} is refused as a ZIP bomb: member '{info.filename}' expands {ratio:.0f}-fold")
            # read at most what the header declares (plus one byte to catch a lying header)
            try:
                with archive.open(info) as f:
                    content = f.read(info.file_size + 1)
            except (zipfile.BadZipFile, zlib.error, EOFError, NotImplementedError, RuntimeError) as e:
                raise DataError(f"{name}: member '{info.filename}' is corrupt and cannot be unpacked ({e})") from None
            except MemoryError:
                raise DataError(f"{name}: member '{info.filename}' does not fit in memory to unpack") from None
            total += len(content)
            if len(content) > info.file_size or total > limits.max_uncompressed_bytes:
                raise DataError(f"{name} is refused: member '{info.filename}' unpacks to more than its header says")
            yield info.filename, content
