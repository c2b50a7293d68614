"""Shared fixtures: small generated data that trains in a second."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pytest
import torch

# UMAP's numba code compiled once and kept, as the app keeps it (deepsad_core.studio.maps): a re-run of
# the suite does not compile it again
os.environ.setdefault("NUMBA_CACHE_DIR", str(Path.home() / ".cache" / "deepsad-studio" / "numba"))

# two test workers would fight over the 2 cores; one torch thread per process keeps timings sane
torch.set_num_threads(1 if os.environ.get("PYTEST_XDIST_WORKER") else max(1, min(2, torch.get_num_threads())))


@pytest.fixture(scope="session")
def chromium() -> str:
    """Path of a Chromium for Playwright; skips (fails where DEEPSAD_REQUIRE_BROWSER is set) without one."""
    from browser import browser_required, find_chromium

    path, why = find_chromium()
    if path is None:
        if browser_required():
            pytest.fail(why, pytrace=False)
        pytest.skip(why)
    return path


@pytest.fixture
def blobs() -> tuple[np.ndarray, np.ndarray]:
    """300 normal rows around one point, 30 anomalies elsewhere, 6 features in [0, 1]; truth 1 = anomaly."""
    rng = np.random.default_rng(0)
    normal = rng.normal(0.5, 0.05, size=(300, 6))
    anomalous = rng.normal(0.5, 0.05, size=(30, 6)) + rng.choice([-0.3, 0.3], size=(30, 6))
    X = np.clip(np.vstack([normal, anomalous]), 0, 1).astype(np.float32)
    truth = np.r_[np.zeros(300, int), np.ones(30, int)]
    return X, truth


@pytest.fixture
def tiny() -> dict:
    """Keyword arguments for a DeepSAD that trains in well under a second."""
    return {"epochs": 3, "ae_epochs": 2, "batch_size": 64, "lr": 1e-3, "ae_lr": 1e-3}


def make_photos(n: int, seed: int = 0, size: int = 32) -> np.ndarray:
    """``(n, size, size, 3)`` uint8 photos of smooth colour waves (HWC, as cameras and CIFAR-10 store
    them); the last tenth are noise, unlike the rest."""
    rng = np.random.default_rng(seed)
    yy, xx = np.mgrid[0:size, 0:size] / (size - 1)
    out = np.empty((n, size, size, 3), dtype=np.float64)
    for i in range(n):
        for c in range(3):
            a, b, k = rng.uniform(-1, 1, 3)
            out[i, ..., c] = 0.5 + 0.5 * np.sin(3 * (a * xx + b * yy) + k)
    n_odd = max(1, n // 10)
    out[-n_odd:] = rng.random((n_odd, size, size, 3))
    return np.round(out * 255).astype(np.uint8)


@pytest.fixture
def photo_npz(tmp_path):
    """An ``.npz`` of 40 HWC photos with truth (the last 4 are anomalies)."""
    X = make_photos(40)
    y = np.zeros(40, int)
    y[-4:] = 1
    path = tmp_path / "photos.npz"
    np.savez(path, X=X, y=y)
    return path


@pytest.hookimpl(wrapper=True)
def pytest_runtest_makereport(item, call):
    """Mark a test whose call failed, for fixtures that keep evidence of failures (screenshots)."""
    report = yield
    if report.when == "call" and report.failed:
        item.failed = True
    return report


@pytest.fixture(scope="session")
def sample_template(tmp_path_factory) -> Path:
    """The breast-cancer sample trained once (round 0) for the page tests; copy it before changing it."""
    from apptest import trained_sample

    return trained_sample(tmp_path_factory.mktemp("template"))


@pytest.fixture
def workspace(tmp_path, monkeypatch) -> Path:
    """An empty workspace the app's pages use (``DEEPSAD_WORKSPACE``)."""
    folder = tmp_path / "workspace"
    folder.mkdir()
    monkeypatch.setenv("DEEPSAD_WORKSPACE", str(folder))
    return folder


@pytest.fixture
def sample_project(sample_template, workspace):
    """A project with round 0 done, in the app's workspace, this test's own."""
    from apptest import copy_project

    return copy_project(sample_template, workspace)
