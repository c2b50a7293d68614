"""load_dataset: the formats it takes, what it reports, and a corpus of bad input it refuses clearly."""

import io
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from deepsad_core.data import DataError, LoadLimits, load_dataset


def png(array: np.ndarray, mode: str | None = None, fmt: str = "PNG") -> bytes:
    buffer = io.BytesIO()
    Image.fromarray(array, mode=mode).save(buffer, format=fmt)
    return buffer.getvalue()


def zip_bytes(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


@pytest.fixture
def table() -> pd.DataFrame:
    rng = np.random.default_rng(0)
    return pd.DataFrame(
        {
            "id": [f"r{i}" for i in range(60)],
            "temp": rng.normal(20, 2, 60),
            "pressure": rng.normal(1, 0.1, 60),
            "line": rng.choice(["A", "B", "C"], 60),
            "serial": [f"SN{i:05d}" for i in range(60)],
            "site": "plant-1",
            "truth": ["normal"] * 55 + ["fault"] * 5,
        }
    )


# --- what it takes -------------------------------------------------------------------------------


def test_csv_columns_are_chosen_and_reported(table):
    table.loc[[2, 7], "temp"] = np.nan
    ds = load_dataset(table.to_csv(index=False).encode(), filename="plant.csv")
    assert ds.kind == "tabular" and ds.X.dtype == np.float32 and ds.X.shape == (60, 5)
    assert ds.feature_names == ["temp", "pressure", "line=A", "line=B", "line=C"]
    assert ds.X.min() > -1e-6 and ds.X.max() < 1 + 1e-6  # standardised then min-max, as the paper
    assert list(ds.ids[:2]) == ["r0", "r1"]
    assert ds.truth.tolist() == [0] * 55 + [1] * 5  # 'normal' recognised; truth is not a feature
    lines = "\n".join(ds.report.lines())
    assert "column 'serial' dropped: text with 60 distinct values" in lines
    assert "column 'site' dropped: constant" in lines
    assert "column 'temp': 2 missing value(s) filled in" in lines
    assert ds.render(0)["serial"] == "SN00000"


def test_delimiter_and_encoding_are_detected(table):
    text = table.to_csv(index=False, sep=";").replace("plant-1", "Zürich–Süd")
    ds = load_dataset(text.encode("cp1252"), filename="export.csv")
    assert ds.X.shape[0] == 60 and ds.raw["site"].iloc[0] == "Zürich–Süd"
    tsv = load_dataset(table.to_csv(index=False, sep="\t").encode("utf-8-sig"), filename="export.tsv")
    np.testing.assert_allclose(tsv.X, ds.X, atol=1e-6)


def test_parquet_and_dataframe_give_the_same_features(table, tmp_path):
    path = tmp_path / "t.parquet"
    table.to_parquet(path)
    np.testing.assert_allclose(load_dataset(path).X, load_dataset(table).X, atol=1e-6)


def test_uploaded_file_objects_are_read_by_name(table):
    upload = io.BytesIO(table.to_csv(index=False).encode())
    upload.name = "upload.csv"
    assert len(load_dataset(upload)) == 60


def test_arrays_npy_and_npz(tmp_path):
    rng = np.random.default_rng(0)
    X, y = rng.random((30, 4)).astype(np.float32), np.r_[np.zeros(27), np.ones(3)].astype(int)
    np.savez(tmp_path / "t.npz", X=X, y=y)
    ds = load_dataset(tmp_path / "t.npz")
    assert ds.kind == "tabular" and ds.X.shape == (30, 4) and ds.truth.sum() == 3
    images = (rng.random((12, 28, 28)) * 255).astype(np.uint8)
    digits = np.r_[np.zeros(10), [3, 7]].astype(int)
    np.savez(tmp_path / "img.npz", X=images, y=digits)
    ds = load_dataset(tmp_path / "img.npz")
    assert ds.kind == "image" and ds.X.shape == (12, 1, 28, 28) and ds.truth.tolist() == [0] * 10 + [1, 1]
    np.testing.assert_allclose(ds.X[0, 0], images[0] / 255, atol=1e-6)
    np.save(tmp_path / "t.npy", X)
    assert load_dataset(tmp_path / "t.npy").truth is None


def test_image_folder_mixed_modes_and_sizes_with_class_folders(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(6):
        (tmp_path / "good").mkdir(exist_ok=True)
        (tmp_path / "good" / f"g{i}.png").write_bytes(png((rng.random((20, 24)) * 255).astype(np.uint8)))
    (tmp_path / "crack").mkdir()
    (tmp_path / "crack" / "c0.jpg").write_bytes(png((rng.random((30, 30, 3)) * 255).astype(np.uint8), fmt="JPEG"))
    rgba = (rng.random((16, 16, 4)) * 255).astype(np.uint8)
    (tmp_path / "crack" / "c1.webp").write_bytes(png(rgba, fmt="WEBP"))
    (tmp_path / "crack" / "broken.png").write_bytes(b"\x89PNG\r\n\x1a\n garbage")
    ds = load_dataset(tmp_path)
    assert ds.kind == "image" and ds.X.shape[1] == 3  # colour present: RGB for all
    assert ds.X.shape[0] == 8 and ds.X.shape[2] == ds.X.shape[3]
    assert ds.truth.sum() == 2 and set(ds.truth_classes) == {"good", "crack"}
    assert "crack/broken.png" in ds.report.skipped_files
    assert isinstance(ds.render(0), Image.Image)


def test_zip_of_images_with_a_requested_size():
    grey = {f"set/ok/{i}.png": png(np.full((10, 10), i * 20, np.uint8)) for i in range(5)}
    ds = load_dataset(zip_bytes(grey), filename="parts.zip", image_size=28)
    assert ds.X.shape == (5, 1, 28, 28) and ds.truth is None  # one class folder: no truth
    assert ds.ids[0] == "set/ok/0.png"


# --- what it refuses: each with a message that names the problem ----------------------------------

_rng = np.random.default_rng(1)
_big_categorical = pd.DataFrame({"code": [f"c{i}" for i in range(10_000)]}).to_csv(index=False).encode()
_parquet = io.BytesIO()
pd.DataFrame({"a": range(100), "b": range(100)}).to_parquet(_parquet)
_pickled = io.BytesIO()
np.save(_pickled, np.array([{"a": 1}, {"b": 2}], dtype=object), allow_pickle=True)
_bomb = io.BytesIO()
with zipfile.ZipFile(_bomb, "w", zipfile.ZIP_DEFLATED) as _zf:
    _zf.writestr("x.png", b"\x00" * 20_000_000)
_ok_png = png(np.zeros((8, 8), np.uint8))

BAD_INPUT = {
    "empty file": (b"", "t.csv", "is empty"),
    "blank lines only": (b"\n\n  \n", "t.csv", "is empty"),
    "header only": (b"a,b,c\n", "t.csv", "header but no rows: a, b, c"),
    "no numeric column": (b"name,colour\nx,red\ny,blue\nz,red\n", "t.csv", "no numeric column"),
    "ragged rows": (b"a,b,c\n1,2,3\n4,5\n", "t.csv", "different number of fields"),
    "nan and inf everywhere": (b"a,b\nnan,inf\nNaN,-inf\n,\n", "t.csv", "'a': no values"),
    "10,000-level categorical": (_big_categorical, "t.csv", "10000 distinct values"),
    "binary bytes": (bytes(range(256)) * 4, "t.csv", "binary data"),
    "bytes neither utf-8 nor cp1252": (b"a,b\n1,\x81\x8d\x8f\n", "t.csv", "neither UTF-8 nor Windows-1252"),
    "truncated parquet": (_parquet.getvalue()[:300], "t.parquet", "not a readable Parquet"),
    "wrong npz keys": (None, "t.npz", "expected 'X'"),
    "pickled npy": (_pickled.getvalue(), "t.npy", "pickled"),
    "1-d npy": (None, "v.npy", "expected (rows, features)"),
    "string npz": (None, "s.npz", "must be numeric"),
    "nan images": (None, "i.npz", "NaN or infinite pixel"),
    "single row": (b"a,b\n1,2\n", "t.csv", "needs at least 2"),
    "duplicate ids": (b"id,a\nx,1\ny,2\nx,3\n", "t.csv", "duplicated id(s): 'x' (2x)"),
    "duplicate column names": (b"a,a,b\n1,2,3\n4,5,6\n", "t.csv", "duplicate column names: 'a'"),
    "missing truth": (b"a,truth\n1,0\n2,\n3,1\n", "t.csv", "truth column 'truth' has 1 missing"),
    "corrupt png only": (zip_bytes({"a.png": b"\x89PNG\r\n\x1a\nbroken"}), "i.zip", "none of its 1 image files"),
    "zip with ../ members": (zip_bytes({"../evil.png": _ok_png, "ok.png": _ok_png}), "i.zip", "outside the extraction"),
    "zip with absolute member": (zip_bytes({"/etc/evil.png": _ok_png}), "i.zip", "outside the extraction"),
    "zip bomb": (_bomb.getvalue(), "i.zip", "ZIP bomb"),
    "zip without images": (zip_bytes({"notes.txt": b"hello"}), "i.zip", "holds no images"),
    "not a zip": (b"PK but not really", "i.zip", "not a readable ZIP"),
    "unsupported type": (b"whatever", "book.xlsx", "unsupported file type '.xlsx'"),
}


def _array_file(case: str) -> bytes:
    buffer = io.BytesIO()
    if case == "wrong npz keys":
        np.savez(buffer, data=np.zeros((5, 2)), labels=np.zeros(5))
    elif case == "1-d npy":
        np.save(buffer, np.zeros(10))
    elif case == "string npz":
        np.savez(buffer, X=np.array([["a", "b"], ["c", "d"]]))
    elif case == "nan images":
        X = np.random.rand(4, 8, 8)
        X[1, 2, 3] = np.nan
        np.savez(buffer, X=X)
    return buffer.getvalue()


@pytest.mark.parametrize("case", list(BAD_INPUT))
def test_bad_input_is_refused_with_a_specific_message(case):
    data, name, message = BAD_INPUT[case]
    with pytest.raises(DataError, match=message.replace("(", r"\(").replace(")", r"\)")):
        load_dataset(_array_file(case) if data is None else data, filename=name)


def test_limits_are_configurable():
    csv = b"a,b\n" + b"1,2\n" * 50
    with pytest.raises(DataError, match="the limit is 10"):
        load_dataset(csv, filename="t.csv", limits=LoadLimits(max_samples=10))
    with pytest.raises(DataError, match="larger than the limit"):
        load_dataset(csv, filename="t.csv", limits=LoadLimits(max_file_bytes=100))
    images = zip_bytes({f"{i}.png": _ok_png for i in range(5)})
    with pytest.raises(DataError, match="has 5 files; the limit is 3"):
        load_dataset(images, filename="i.zip", limits=LoadLimits(max_zip_members=3))


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [({"id_column": "nope"}, "id column 'nope' not found"), ({"truth_column": "nope"}, "truth column 'nope'")],
)
def test_named_columns_must_exist(table, kwargs, message):
    with pytest.raises(DataError, match=message):
        load_dataset(table, **kwargs)


def test_a_missing_path_is_named(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        load_dataset(tmp_path / "nothing.csv")


@pytest.mark.parametrize("damage", ["stream", "crc"])
def test_a_corrupt_zip_member_is_named_in_a_data_error(damage):
    noise = np.random.default_rng(2).integers(0, 256, (32, 32), dtype=np.uint8)
    members = {f"imgs/{i}.png": png(np.full((16, 16), i * 40, np.uint8)) for i in range(3)}
    members["imgs/noisy.png"] = png(noise)
    data = bytearray(zip_bytes(members))
    info = zipfile.ZipFile(io.BytesIO(bytes(data))).getinfo("imgs/noisy.png")
    start = info.header_offset + 30 + len(info.filename) + len(info.extra)  # the member's compressed bytes
    if damage == "stream":
        data[start : start + 8] = b"\xff" * 8  # an invalid deflate block
    else:
        data[start + info.compress_size // 2] ^= 0xFF  # one flipped bit in the middle: a CRC mismatch at least
    with pytest.raises(DataError, match=r"member 'imgs/noisy.png' is corrupt"):
        load_dataset(bytes(data), filename="photos.zip")


def _png(size: tuple[int, int], colour=(200, 30, 30)) -> bytes:
    buffer = io.BytesIO()
    Image.new("RGB", size, colour).save(buffer, "PNG")
    return buffer.getvalue()


def _zip(members: dict[str, bytes]) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return buffer.getvalue()


def test_images_declaring_too_many_pixels_are_refused_before_decoding():
    members = {f"img/{i}.png": _png((40, 30)) for i in range(4)} | {"img/huge.png": _png((120, 100))}
    ds = load_dataset(_zip(members), filename="shots.zip", limits=LoadLimits(max_image_pixels=5_000))
    assert "img/huge.png" in ds.report.skipped_files and "million" in ds.report.skipped_files["img/huge.png"]
    assert len(ds) == 4
    # together the images declare 4 x 40 x 30 x 3 bytes and more: over the budget, nothing is decoded
    with pytest.raises(DataError, match=r"declares .* GB of pixels once decoded"):
        load_dataset(_zip(members), filename="shots.zip", limits=LoadLimits(max_decoded_bytes=10_000))


def _peak_load(path: Path, limits: str = "LoadLimits()") -> tuple[str, float, float]:
    """Load ``path`` in a fresh process: what it said, its peak memory in GB, and seconds taken."""
    import subprocess
    import sys

    script = (
        "import resource, sys, time; from deepsad_core.data import LoadLimits, load_dataset\n"
        "from deepsad_core.exceptions import DataError\n"
        "start = time.perf_counter()\n"
        f"try: said = 'loaded %d' % len(load_dataset({str(path)!r}, image_size=32, limits={limits}))\n"
        "except DataError as e: said = 'refused: %s' % e\n"
        "print(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss, time.perf_counter() - start, said)"
    )
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=300, check=True)
    peak_kb, seconds, said = out.stdout.split(" ", 2)
    return said.strip(), int(peak_kb) / 1024**2, float(seconds)


def test_a_zip_of_png_bombs_is_refused_at_once_from_the_headers(tmp_path):
    # forty 8000 x 8000 single-colour PNGs: 8 MB of ZIP that decode to 7.7 GB
    bomb = _png((8000, 8000))
    (tmp_path / "bombs.zip").write_bytes(_zip({f"b/{i:02d}.png": bomb for i in range(40)}))
    said, peak_gb, seconds = _peak_load(tmp_path / "bombs.zip")
    assert said.startswith("refused: ") and "expand 948-fold once decoded" in said and "decompression bomb" in said
    assert peak_gb < 1.5 and seconds < 10, (peak_gb, seconds)


@pytest.mark.slow  # decodes 2.4 GB of pixels, to show the memory stays under 1.5 GB
def test_large_images_are_decoded_one_at_a_time(tmp_path):
    # twelve 8192 x 8192 PNGs, let past the bomb check: 200 MB each once decoded, 2.4 GB together
    bomb = _png((8192, 8192))
    (tmp_path / "big.zip").write_bytes(_zip({f"b/{i:02d}.png": bomb for i in range(12)}))
    said, peak_gb, _ = _peak_load(tmp_path / "big.zip", limits="LoadLimits(max_compression_ratio=1e9)")
    assert said == "loaded 12"
    assert peak_gb < 1.5, f"peak memory {peak_gb:.2f} GB"


def test_a_large_image_that_compresses_like_a_photo_is_kept():
    rng = np.random.default_rng(0)
    buffer = io.BytesIO()
    Image.fromarray((rng.random((1500, 1500, 3)) * 255).astype(np.uint8)).save(buffer, "PNG")
    members = {f"img/{i}.png": buffer.getvalue() for i in range(2)}
    assert len(load_dataset(_zip(members), filename="noise.zip", image_size=16)) == 2


def test_large_jpegs_decode_reduced_and_the_same_way_for_training_and_scoring(tmp_path):
    rng = np.random.default_rng(0)
    for i in range(3):
        px = (rng.random((60, 80, 3)) * 255).astype(np.uint8)
        Image.fromarray(px).resize((3200, 2400)).save(tmp_path / f"cam{i}.jpg", quality=85)
    ds = load_dataset(tmp_path, image_size=32)
    with Image.open(tmp_path / "cam0.jpg") as image:
        ds.preprocessor.draft(image)
        assert image.size == (400, 300)  # decoded at 1/8 scale: the full frame never exists in memory
    again = ds.preprocessor.transform([Image.open(tmp_path / f"cam{i}.jpg") for i in range(3)])
    np.testing.assert_array_equal(again, ds.X)  # what a bundle computes when it scores these files


def test_an_npz_declaring_more_than_the_limit_is_refused_before_inflating(tmp_path):
    # the sizes are read from the headers, not inflated
    np.savez_compressed(tmp_path / "noise.npz", X=np.random.default_rng(0).random((1000, 1000), np.float32))
    with pytest.raises(DataError, match=r"would unpack to more than 1.0 MB \('X.npy' declares 4.0 MB\)"):
        load_dataset(tmp_path / "noise.npz", limits=LoadLimits(max_uncompressed_bytes=1_000_000))
    # a million zeros compress to about a kilobyte, but only large arrays are bombs: it is read, and its
    # thousand constant columns are summed up, not listed
    np.savez_compressed(tmp_path / "zeros.npz", X=np.zeros((1000, 1000), np.float32))
    with pytest.raises(DataError, match=r"'f4': constant \(every value is 0.0\); and 995 more\)"):
        load_dataset(tmp_path / "zeros.npz")


def test_an_npz_bomb_is_refused_from_its_headers(tmp_path):
    # an array member that declares 400 MB of zeros, written in slices: 0.4 MB on disk
    with zipfile.ZipFile(tmp_path / "bomb.npz", "w", zipfile.ZIP_DEFLATED) as zf, zf.open("X.npy", "w") as f:
        np.lib.format.write_array_header_1_0(f, {"descr": "<f4", "fortran_order": False, "shape": (100_000, 1000)})
        for _ in range(100):
            f.write(bytes(4_000_000))
    said, peak_gb, seconds = _peak_load(tmp_path / "bomb.npz")
    assert said.startswith("refused: ") and "'X.npy' declares 400.0 MB from 388.9 KB (1029-fold" in said
    assert peak_gb < 1.5 and seconds < 10, (peak_gb, seconds)


def test_a_wide_file_with_a_repeated_column_name_is_refused_naming_it():
    names = [f"c{i}" for i in range(5000)] + ["c17"]
    text = ",".join(names) + "\n" + ",".join("1" for _ in names) + "\n"
    with pytest.raises(DataError, match=r"duplicate column names: 'c17'; rename them"):
        load_dataset(text.encode(), filename="wide.csv")
