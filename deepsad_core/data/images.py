"""Reading images: a folder (recursively) or a ZIP of PNG/JPEG/BMP/TIFF/WebP files."""

from __future__ import annotations

import io
from collections import Counter
from pathlib import Path, PurePosixPath

import numpy as np
from PIL import Image, UnidentifiedImageError

from deepsad_core.data.archive import zip_members
from deepsad_core.data.dataset import Dataset, LoadLimits, LoadReport
from deepsad_core.data.preprocess import ImagePreprocessor
from deepsad_core.exceptions import DataError, ImageOverLimitError

__all__ = ["IMAGE_SUFFIXES", "NORMAL_FOLDER_NAMES", "load_images", "open_within_limits"]

IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tif", ".tiff", ".webp")
NORMAL_FOLDER_NAMES = ("normal", "good", "ok", "inlier", "inliers", "nominal")
MAX_WORKING_SIDE = 64  # default working size cap: small enough to train on a CPU


def _folder_files(root: Path, limits: LoadLimits) -> list[tuple[str, bytes]]:
    files = []
    total = 0
    for path in sorted(root.rglob("*")):
        if path.is_file() and path.suffix.lower() in IMAGE_SUFFIXES and not path.name.startswith("._"):
            if len(files) >= limits.max_samples:
                raise DataError(
                    f"{root} holds more than {limits.max_samples} images; the limit is {limits.max_samples}"
                )
            data = path.read_bytes()
            total += len(data)
            if total > limits.max_uncompressed_bytes:
                raise DataError(f"{root} holds more than {limits.max_uncompressed_bytes / 1e9:.1f} GB of images")
            files.append((path.relative_to(root).as_posix(), data))
    return files


def open_within_limits(data: bytes, limits: LoadLimits) -> Image.Image:
    """The image opened lazily (size and mode only, nothing decoded), within the per-image limits."""
    image = Image.open(io.BytesIO(data))
    width, height = image.size
    if max(width, height) > limits.max_image_side:
        raise ImageOverLimitError(f"{width}x{height} pixels, more than {limits.max_image_side} a side")
    if width * height > limits.max_image_pixels:
        raise ImageOverLimitError(f"{width}x{height} pixels, more than {limits.max_image_pixels / 1e6:.0f} million")
    # a photograph compresses a few-fold; a large image that expands hundreds-fold is one colour, a bomb
    if ratio := limits.expansion(_decoded_bytes(image), len(data), limits.ratio_free_image_bytes):
        raise ImageOverLimitError(
            f"{width}x{height} pixels from {len(data) / 1e3:.0f} KB expand {ratio:.0f}-fold "
            f"once decoded, more than {limits.max_compression_ratio:.0f}-fold (a decompression bomb)"
        )
    return image


def _decoded_bytes(image: Image.Image) -> int:
    return image.size[0] * image.size[1] * len(image.getbands())


def _pixels(image: Image.Image, pre: ImagePreprocessor) -> np.ndarray:
    """Decode one image straight to the working size; only this one image is ever held decoded."""
    pre.draft(image)
    image.load()  # a truncated file fails here
    try:
        return pre.pixels(image)
    finally:
        image.close()


def _working_size(sizes: list[tuple[int, int]], requested: int | tuple[int, int] | None) -> tuple[int, int]:
    """(height, width): as requested; else the common size if all agree and fit the cap; else a square."""
    if requested is not None:
        return (requested, requested) if isinstance(requested, int) else tuple(requested)
    (w, h), _ = Counter(sizes).most_common(1)[0]
    if len(set(sizes)) == 1 and max(w, h) <= MAX_WORKING_SIDE:
        return h, w
    side = int(min(MAX_WORKING_SIDE, np.median([min(s) for s in sizes])))
    return max(side, 8), max(side, 8)


def load_images(
    source: Path | bytes,
    name: str,
    limits: LoadLimits,
    image_size: int | tuple[int, int] | None = None,
    channels: int | None = None,
    truth_from_folders: bool = True,
    normal_class: str | None = None,
) -> Dataset:
    """A ``Dataset`` of images from a folder path or the bytes of a ZIP; unreadable files are skipped."""
    if isinstance(source, bytes):
        files = list(zip_members(source, name, limits, IMAGE_SUFFIXES))
    else:
        files = _folder_files(source, limits)
    if not files:
        raise DataError(f"{name} holds no images (looked for {', '.join(IMAGE_SUFFIXES)})")
    report = LoadReport()
    headers = []
    for member, data in files:
        try:
            headers.append((member, open_within_limits(data, limits)))
        except ImageOverLimitError as e:
            report.skipped_files[member] = f"refused: {e}"
        except (UnidentifiedImageError, OSError, ValueError, Image.DecompressionBombError) as e:
            report.skipped_files[member] = f"not a readable image ({str(e).strip() or type(e).__name__})"
    if not headers:
        raise DataError(
            f"{name}: none of its {len(files)} image files could be used, e.g. "
            + "'{}': {}".format(*next(iter(report.skipped_files.items())))
        )
    declared = sum(_decoded_bytes(image) for _, image in headers)
    if declared > limits.max_decoded_bytes:
        raise DataError(
            f"{name} declares {declared / 1e9:.1f} GB of pixels once decoded; the limit is "
            f"{limits.max_decoded_bytes / 1e9:.1f} GB (a decompression bomb, or far more images than needed)"
        )
    if channels is None:
        grey = all(image.mode in ("1", "L", "LA", "I", "I;16", "F") for _, image in headers)
        channels = 1 if grey else 3
    pre = ImagePreprocessor(_working_size([image.size for _, image in headers], image_size), channels)
    ids, pixels = [], []
    for member, image in headers:  # one decoded image at a time, resized at once
        try:
            pixels.append(_pixels(image, pre))
            ids.append(member)
        except (OSError, ValueError, Image.DecompressionBombError) as e:
            report.skipped_files[member] = f"not a readable image ({str(e).strip() or type(e).__name__})"
    if len(ids) < 2:
        raise DataError(f"{name} holds only {len(ids)} readable image(s); a data set needs at least 2")
    pixels = np.stack(pixels)
    if report.skipped_files:
        report.notes.append(f"{len(report.skipped_files)} of {len(files)} files skipped")
    truth, classes = _folder_truth(ids, truth_from_folders, normal_class, report)
    return Dataset.from_pixels(ids, pixels, pre, name, truth, classes, report)


def _folder_truth(
    ids: list[str], enabled: bool, normal_class: str | None, report: LoadReport
) -> tuple[np.ndarray | None, np.ndarray | None]:
    """Class = the first folder under the root that differs between images (e.g. ``good/``, ``crack/``)."""
    parts = [PurePosixPath(i).parts[:-1] for i in ids]
    depth = 0  # skip leading folders that every image shares (a ZIP's top folder)
    while all(len(p) > depth for p in parts) and len({p[depth] for p in parts}) == 1:
        depth += 1
    if not enabled or not all(len(p) > depth for p in parts):
        return None, None
    classes = np.asarray([p[depth] for p in parts], dtype=object)
    names = set(classes)
    if len(names) < 2:
        return None, None
    if normal_class is None:
        named = [c for c in names if c.lower() in NORMAL_FOLDER_NAMES]
        normal_class = named[0] if named else Counter(classes).most_common(1)[0][0]
    elif normal_class not in names:
        raise DataError(f"normal class '{normal_class}' is not one of the folders: {', '.join(sorted(names))}")
    report.notes.append(
        f"truth from folders: '{normal_class}' is normal, {', '.join(sorted(names - {normal_class}))} anomalous "
        "(for evaluation only)"
    )
    return (classes != normal_class).astype(np.int64), classes
