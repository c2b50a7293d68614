"""`deepsad` commands end to end: arguments in; exit status, output and files out.

They run in this process (a fresh Python importing torch costs seconds a command); the first test runs
``python -m deepsad_core`` itself, and the import-time check its own process.
"""

import io
import json
import subprocess
import sys
from contextlib import redirect_stderr, redirect_stdout

import numpy as np
import pandas as pd
import pytest

from deepsad_core.cli import main
from deepsad_core.loop.settings import RoundConfig
from deepsad_core.studio import Project
from deepsad_core.studio.worker import RoundWorker

ROOT_CSV = "sample_data/breast_cancer.csv"


def deepsad(*args, ok=True) -> subprocess.CompletedProcess:
    """``deepsad ARGS`` as a user runs it: its exit status, what it printed and what it wrote to stderr."""
    out, err = io.StringIO(), io.StringIO()
    with redirect_stdout(out), redirect_stderr(err):
        try:
            code = main([str(a) for a in args])
        except SystemExit as e:  # argparse's usage errors and --help
            code = e.code if isinstance(e.code, int) else 1
    result = subprocess.CompletedProcess(args, code, out.getvalue(), err.getvalue())
    if ok:
        assert result.returncode == 0, result.stderr
    return result


def test_the_command_runs_as_a_program_and_lists_its_commands():
    result = subprocess.run([sys.executable, "-m", "deepsad_core", "--help"], capture_output=True, text=True)
    assert result.returncode == 0
    assert all(command in result.stdout for command in ("train", "score", "export", "info", "simulate"))


@pytest.fixture(scope="module")
def bundle(tmp_path_factory):
    work = tmp_path_factory.mktemp("cli")
    labels = work / "labels.csv"
    labels.write_text("id,label\npatient-003,anomalous\npatient-008,normal\n")
    out = work / "bc.zip"
    deepsad("train", ROOT_CSV, "--labels", labels, "--epochs", "3", "--ae-epochs", "2", "--out", out)
    return out


def test_train_info_and_score_csv_and_parquet(bundle, tmp_path):
    info = json.loads(deepsad("info", bundle).stdout)
    assert info["label_counts"] == {"n_labels": 2, "labeled_normal": 1, "labeled_anomalous": 1}
    assert info["parity"]["passed"]
    deepsad("score", bundle, ROOT_CSV, "--out", tmp_path / "s.csv", "--quiet", "--batch-rows", "50")
    scores = pd.read_csv(tmp_path / "s.csv")
    assert list(scores.columns) == ["id", "truth", "score", "anomaly"] and len(scores) == 376
    deepsad("score", bundle, ROOT_CSV, "--out", tmp_path / "s.parquet", "--quiet")
    np.testing.assert_allclose(pd.read_parquet(tmp_path / "s.parquet")["score"], scores["score"], rtol=1e-6)


def test_scoring_another_schema_fails_with_a_clear_line(bundle, tmp_path):
    other = tmp_path / "other.csv"
    pd.DataFrame({"x": [1.0, 2.0], "y": [3.0, 4.0]}).to_csv(other, index=False)
    result = deepsad("score", bundle, other, "--out", tmp_path / "o.csv", "--quiet", ok=False)
    assert result.returncode == 1
    assert "columns" in result.stderr and "'x'" in result.stderr, result.stderr
    assert "Traceback" not in result.stderr


def test_labels_naming_unknown_ids_are_refused(tmp_path):
    labels = tmp_path / "labels.csv"
    labels.write_text("id,label\nnobody,anomalous\n")
    result = deepsad("train", ROOT_CSV, "--labels", labels, "--out", tmp_path / "b.zip", ok=False)
    assert result.returncode == 1 and "not in the data" in result.stderr


def test_export_a_project_round(tmp_path):
    project = Project.create(tmp_path, "cli", ROOT_CSV)
    RoundWorker(project).run(RoundConfig(first_epochs=2, first_ae_epochs=1))
    out = tmp_path / "round0"
    deepsad("export", project.path, "--out", out)
    assert (out / "model.onnx").exists() and json.loads((out / "manifest.json").read_text())["round"] == 0
    assert deepsad("export", project.path, "--round", 5, "--out", out, ok=False).returncode == 1


def test_train_refuses_a_folder_of_the_users_and_replaces_a_bundle_only_with_force(bundle, tmp_path):
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "thesis.txt").write_text("years of work")
    result = deepsad("train", ROOT_CSV, "--epochs", "1", "--ae-epochs", "0", "--out", docs, ok=False)
    assert result.returncode == 2 and "not a DeepSAD bundle" in result.stderr and "Traceback" not in result.stderr
    assert [p.name for p in docs.iterdir()] == ["thesis.txt"] and (docs / "thesis.txt").read_text() == "years of work"
    out = tmp_path / "again.zip"
    out.write_bytes(bundle.read_bytes())
    result = deepsad("train", ROOT_CSV, "--epochs", "1", "--ae-epochs", "0", "--out", out, ok=False)
    assert result.returncode == 2 and "--force" in result.stderr
    assert out.read_bytes() == bundle.read_bytes()
    deepsad("train", ROOT_CSV, "--epochs", "1", "--ae-epochs", "0", "--out", out, "--force")
    assert out.read_bytes() != bundle.read_bytes()


def test_sign_at_train_and_verify_at_score_and_info(tmp_path):
    key = tmp_path / "key"
    key.write_text("5f2b8c0e1d7a4b3c9e6f0a1b2c3d4e5f\n")
    out = tmp_path / "signed.zip"
    deepsad("train", ROOT_CSV, "--epochs", "1", "--ae-epochs", "0", "--out", out, "--sign-key", key)
    deepsad("info", out, "--verify-key", key)
    deepsad("score", out, ROOT_CSV, "--out", tmp_path / "s.csv", "--quiet", "--verify-key", key)
    other = tmp_path / "other-key"
    other.write_text("another key of enough length here")
    result = deepsad("score", out, ROOT_CSV, "--out", tmp_path / "t.csv", "--quiet", "--verify-key", other, ok=False)
    assert result.returncode == 1 and "signature does not match" in result.stderr and "Traceback" not in result.stderr
    short = tmp_path / "short"
    short.write_text("abc")
    result = deepsad("info", out, "--verify-key", short, ok=False)
    assert result.returncode == 1 and "at least 16" in result.stderr


@pytest.mark.parametrize("command", ["train", "export", "score", "info", "simulate"])
def test_every_command_has_help(command):
    assert "usage: deepsad " + command in deepsad(command, "--help").stdout


def test_train_on_a_zip_of_photos_and_score_a_zip_and_a_folder(tmp_path):
    import zipfile

    from conftest import make_photos
    from PIL import Image

    folder = tmp_path / "shots"
    folder.mkdir()
    archive = tmp_path / "shots.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        for i, px in enumerate(make_photos(30)):
            Image.fromarray(px).save(folder / f"p{i:02d}.png")
            zf.write(folder / f"p{i:02d}.png", f"line/p{i:02d}.png")
    out = tmp_path / "photos.zip"
    result = deepsad("train", archive, "--epochs", "2", "--ae-epochs", "1", "--out", out)
    assert "features" in result.stderr  # the backbone's progress bar
    info = json.loads(deepsad("info", out).stdout)
    assert info["backbone"]["name"] == "efficientnet-lite0" and info["detector"]["kind"] == "deepsad_ensemble"
    deepsad("score", out, archive, "--out", tmp_path / "zip.csv")
    deepsad("score", out, folder, "--out", tmp_path / "folder.csv")
    from_zip, from_folder = pd.read_csv(tmp_path / "zip.csv"), pd.read_csv(tmp_path / "folder.csv")
    assert list(from_zip["file"]) == [f"line/p{i:02d}.png" for i in range(30)]
    assert list(from_folder["file"]) == [f"p{i:02d}.png" for i in range(30)]
    np.testing.assert_allclose(from_zip["score"], from_folder["score"], rtol=1e-5)


def test_train_offers_the_detectors_a_round_knows():
    from deepsad_core import cli
    from deepsad_core.loop.settings import DETECTORS

    assert (DETECTORS, RoundConfig.detector) == (cli.DETECTORS, cli.DEFAULT_DETECTOR)


def test_scoring_with_a_bundle_loads_neither_torch_nor_scikit_learn():
    # `deepsad score` starts two seconds sooner without them; a bundle needs only onnxruntime
    code = (
        "import sys; from deepsad_core.cli import build_parser; build_parser('score'); "
        "import deepsad_core.bundle.read, deepsad_core.bundle.scoring; "
        "print(sorted(m for m in ('torch', 'sklearn', 'onnx') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"
