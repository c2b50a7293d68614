"""The sample data sets: real, small, rebuilt identically, loaded like any user file."""

import hashlib
import importlib.util
from pathlib import Path

from deepsad_core.data import load_dataset

SAMPLES = Path(__file__).parents[1] / "sample_data"


def test_breast_cancer_table_loads_through_the_entry_point():
    ds = load_dataset(SAMPLES / "breast_cancer.csv")
    assert ds.kind == "tabular" and ds.X.shape == (376, 30)
    assert ds.truth.sum() == 19  # malignant, about 5 %
    assert ds.ids[0].startswith("patient-")


def test_digits_zip_loads_through_the_entry_point():
    ds = load_dataset(SAMPLES / "digits.zip")
    assert ds.kind == "image" and ds.X.shape == (187, 1, 8, 8)
    assert ds.truth.sum() == 9 and set(ds.truth_classes[ds.truth == 0]) == {"0"}


def test_build_script_reproduces_the_committed_files(tmp_path, monkeypatch):
    spec = importlib.util.spec_from_file_location("build_samples", SAMPLES / "build_samples.py")
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    monkeypatch.setattr(module, "HERE", tmp_path)
    module.main()
    for name in ("breast_cancer.csv", "digits.zip"):
        digest = [hashlib.sha256(p.read_bytes()).hexdigest() for p in (tmp_path / name, SAMPLES / name)]
        assert digest[0] == digest[1], name
