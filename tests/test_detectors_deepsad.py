import json

import numpy as np
import pytest
import torch
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

import deepsad_core.detectors.deepsad as estimator_module
from deepsad_core import DeepSAD, NotFittedError, TrainingCancelled


def _labels(truth, n_anomalies=5, n_normals=0):
    semi = np.zeros(len(truth), dtype=int)
    semi[np.flatnonzero(truth == 1)[:n_anomalies]] = -1
    semi[np.flatnonzero(truth == 0)[:n_normals]] = 1
    return semi


def test_fit_scores_and_predict_follow_pyod_conventions(blobs, tiny):
    X, truth = blobs
    model = DeepSAD(**{**tiny, "epochs": 20}, contamination=0.1).fit(X, _labels(truth))
    scores = model.decision_function(X)
    assert scores.shape == (len(X),) and np.all(scores >= 0)
    assert roc_auc_score(truth, scores) > 0.9  # higher = more anomalous
    np.testing.assert_allclose(model.decision_scores_, scores, rtol=1e-5)
    assert model.threshold_ == pytest.approx(np.quantile(model.decision_scores_, 0.9))
    assert set(np.unique(model.predict(X))) <= {0, 1}
    np.testing.assert_array_equal(model.predict(X), (scores > model.threshold_).astype(int))
    assert model.embed(X).shape == (len(X), model.network_spec_.rep_dim)
    assert model.center_.shape == (model.network_spec_.rep_dim,)
    assert model.n_features_in_ == 6


def test_scores_are_the_squared_distance_to_the_center(blobs, tiny):
    X, _ = blobs
    model = DeepSAD(**tiny).fit(X)
    expected = ((model.embed(X) - model.center_) ** 2).sum(axis=1)
    np.testing.assert_allclose(model.decision_function(X), expected, rtol=1e-5)


def test_labeled_anomalies_score_higher_than_without_labels(blobs, tiny):
    X, truth = blobs
    semi = _labels(truth, n_anomalies=10)
    labeled = semi == -1
    sad = DeepSAD(**{**tiny, "epochs": 30}).fit(X, semi).decision_function(X)
    svdd = DeepSAD(**{**tiny, "epochs": 30}).fit(X).decision_function(X)
    rank = lambda s: (s[labeled][:, None] > s[~labeled][None]).mean()  # noqa: E731
    assert rank(sad) > rank(svdd)
    assert rank(sad) > 0.95


def test_same_seed_same_scores_other_seed_other_scores_and_globals_untouched(blobs, tiny):
    X, truth = blobs
    state = torch.random.get_rng_state()
    a = DeepSAD(**tiny, seed=3).fit(X, _labels(truth)).decision_function(X)
    assert torch.equal(state, torch.random.get_rng_state())
    b = DeepSAD(**tiny, seed=3).fit(X, _labels(truth)).decision_function(X)
    c = DeepSAD(**tiny, seed=4).fit(X, _labels(truth)).decision_function(X)
    np.testing.assert_array_equal(a, b)
    assert not np.allclose(a, c)


def test_pretrained_encoder_is_what_training_starts_from(blobs, tiny, monkeypatch):
    copied = {}
    real = estimator_module.transfer_encoder_weights

    def spy(source, target):
        copied.update({k: v.clone() for k, v in source.state_dict().items()})
        return real(source, target)

    monkeypatch.setattr(estimator_module, "transfer_encoder_weights", spy)
    X, _ = blobs
    model = DeepSAD(**{**tiny, "epochs": 0}).fit(X)
    assert copied and set(copied) == set(model.net_.state_dict())
    for k, v in model.net_.state_dict().items():
        assert torch.equal(v, copied[k]), k
    assert [h["phase"] for h in model.history_] == ["pretrain"] * tiny["ae_epochs"]


def test_no_pretraining_skips_the_autoencoder(blobs, tiny):
    model = DeepSAD(**tiny, pretrain=False).fit(blobs[0])
    assert {h["phase"] for h in model.history_} == {"train"}


def test_warm_start_keeps_center_continues_weights_and_skips_pretraining(blobs, tiny):
    X, truth = blobs
    model = DeepSAD(**tiny).fit(X)
    center = model.center_.copy()
    before = {k: v.clone() for k, v in model.net_.state_dict().items()}
    n_records = len(model.history_)
    model.fit(X, _labels(truth), warm_start=True, epochs=2)
    np.testing.assert_array_equal(model.center_, center)
    assert any(not torch.equal(before[k], v) for k, v in model.net_.state_dict().items())
    new = model.history_[n_records:]
    assert [(h["phase"], h["fit"]) for h in new] == [("train", 1), ("train", 1)]


def test_warm_start_needs_a_fitted_model(blobs):
    with pytest.raises(NotFittedError, match="call fit"):
        DeepSAD().fit(blobs[0], warm_start=True)


def test_cancel_leaves_the_previous_model_intact(blobs, tiny):
    X, truth = blobs
    model = DeepSAD(**tiny).fit(X)
    scores, center, history = model.decision_function(X), model.center_.copy(), list(model.history_)
    with pytest.raises(TrainingCancelled):
        model.fit(X, _labels(truth), warm_start=True, epochs=5, callback=lambda p: p.epoch == 2)
    np.testing.assert_array_equal(model.decision_function(X), scores)
    np.testing.assert_array_equal(model.center_, center)
    assert model.history_ == history
    fresh = DeepSAD(**tiny)
    with pytest.raises(TrainingCancelled):
        fresh.fit(X, callback=lambda p: True)
    with pytest.raises(NotFittedError):
        fresh.decision_function(X)


def test_save_load_scores_identically_without_pickle(blobs, tiny, tmp_path):
    X, truth = blobs
    model = DeepSAD(**tiny).fit(X, _labels(truth))
    path = model.save(tmp_path / "model")
    assert sorted(p.name for p in path.iterdir()) == ["config.json", "weights.safetensors"]
    assert json.loads((path / "config.json").read_text())["params"]["eta"] == 1.0
    loaded = DeepSAD.load(path)
    np.testing.assert_array_equal(loaded.decision_function(X), model.decision_function(X))
    np.testing.assert_array_equal(loaded.center_, model.center_)
    assert loaded.threshold_ == model.threshold_ and loaded.get_params() == {**model.get_params(), "device": "auto"}
    loaded.fit(X, warm_start=True, epochs=1)  # a loaded model can go on training


def test_image_input(tiny):
    rng = np.random.default_rng(0)
    X = rng.random((40, 1, 8, 8), dtype=np.float32)
    model = DeepSAD(**{**tiny, "batch_size": 16}).fit(X[:, 0])  # (n, H, W) is read as grey images
    assert model.network_spec_.name == "conv" and model.input_shape_ == (1, 8, 8)
    assert model.decision_function(X).shape == (40,)


def test_sklearn_clone_and_params():
    model = DeepSAD(eta=3.0, epochs=7)
    twin = clone(model)
    assert twin.get_params()["eta"] == 3.0 and twin is not model


@pytest.mark.parametrize(
    ("X", "semi", "message"),
    [
        (np.zeros((10,)), None, "shape \\(n, d\\)"),
        (np.zeros((2, 3, 4, 5, 6)), None, "shape \\(n, d\\)"),
        (np.array([[0.1, np.nan], [0.2, 0.3], [0.3, 0.3]]), None, "NaN or infinite values in 1 sample.*row 0"),
        (np.array([[0.1, np.inf], [0.2, 0.3]]), None, "NaN or infinite"),
        (np.random.rand(10, 3), np.array([0, 1, 2, 0, 0, 0, 0, 0, 0, 0]), "got \\[2\\]"),
        (np.random.rand(10, 3), np.zeros(9), "shape \\(10,\\)"),
        (np.random.rand(10, 3), -np.ones(10), "every sample is labeled anomalous"),
        (np.random.rand(1, 3), None, "at least 2 samples"),
        (np.random.rand(4, 1, 8, 8) * 255, None, "divide 8-bit pixels by 255"),
        ([["a", "b"], ["c", "d"]], None, "real numeric array"),
    ],
)
def test_bad_input_to_fit_raises_a_clear_value_error(X, semi, message):
    with pytest.raises(ValueError, match=message):
        DeepSAD(epochs=1, ae_epochs=1).fit(X, semi)


@pytest.mark.parametrize(
    ("params", "message"),
    [({"eta": -1}, "eta must be a number > 0"), ({"net": "vgg"}, "net must be"), ({"batch_size": 1}, "batch_size")],
)
def test_bad_parameters_are_named(params, message):
    with pytest.raises(ValueError, match=message):
        DeepSAD(**params).fit(np.random.rand(10, 3))


def test_scoring_checks_the_fitted_shape(blobs, tiny):
    model = DeepSAD(**tiny).fit(blobs[0])
    with pytest.raises(ValueError, match="X has 7 features, but DeepSAD is expecting 6 features"):
        model.decision_function(np.random.rand(5, 7))
    with pytest.raises(NotFittedError):
        DeepSAD().predict(blobs[0])


def test_the_docstring_example_runs_as_written():
    import doctest

    result = doctest.testmod(estimator_module)
    assert result.attempted > 0 and result.failed == 0


def test_a_capped_fit_trains_on_a_sample_and_scores_every_sample(tiny):
    rng = np.random.default_rng(0)
    X = rng.random((2_000, 5), dtype=np.float32)
    semi = np.zeros(2_000, dtype=np.int64)
    semi[:10] = -1
    model = DeepSAD(max_train_samples=300, **tiny).fit(X, semi)
    assert model.decision_scores_.shape == (2_000,)
    np.testing.assert_allclose(model.decision_scores_, model.decision_function(X), rtol=1e-5)
    batches = -(-310 // tiny["batch_size"])  # the labels and 300 others, in batches
    assert model.history_[-1]["epoch"] == tiny["epochs"] and batches == 5
    with pytest.raises(ValueError, match="max_train_samples must be None or an int > 0"):
        DeepSAD(max_train_samples=0).fit(X)
