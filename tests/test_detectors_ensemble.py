"""The ensemble detector: its training terms, its fusion, persistence, export and determinism."""

import numpy as np
import pytest
from sklearn.base import clone
from sklearn.metrics import roc_auc_score

from deepsad_core import DeepSAD, load_detector
from deepsad_core.bundle.write import export_bundle
from deepsad_core.data import load_dataset
from deepsad_core.detectors.contract import load_model
from deepsad_core.detectors.ensemble import DeepSADEnsemble
from deepsad_core.detectors.fusion import label_weights, robust_scale
from deepsad_core.detectors.knn import knn_scores
from deepsad_core.detectors.supervised import pseudo_targets
from deepsad_core.loop.round import fit_round
from deepsad_core.loop.settings import RoundConfig


def small(seed=0, **kw):
    return DeepSADEnsemble(deepsad=DeepSAD(epochs=4, ae_epochs=2, lr=1e-3, ae_lr=1e-3, batch_size=64), seed=seed, **kw)


def labels_for(truth, idx):
    semi = np.zeros(len(truth), dtype=np.int64)
    semi[idx] = np.where(truth[idx] == 1, -1, 1)
    return semi


def test_round_zero_uses_the_prior_and_trains_deep_sad_on_the_priors_top_as_anomalies(blobs):
    X, truth = blobs
    model = small(pseudo_anomaly_share=0.1).fit(X)
    assert model.weights_ == dict(model.prior_weights) and "supervised" not in model.members_
    z = model.member_scores(X)
    prior = z["iforest"] + z["knn"]
    targets = pseudo_targets(prior, model.pseudo_anomaly_share)
    assert (targets == -1).sum() == pytest.approx(0.1 * len(X), abs=2)
    assert prior[targets == -1].min() >= prior[targets == 0].max()  # the top, not the bottom
    # Deep SAD pushed the pseudo-anomalies away from c
    d = model.deepsad_.decision_scores_
    assert np.median(d[targets == -1]) > 2 * np.median(d[targets == 0])
    assert roc_auc_score(truth, model.decision_scores_) > 0.9


def test_labels_bring_in_the_supervised_member_and_weights_from_the_labels(blobs):
    X, truth = blobs
    model = small().fit(X)
    rng = np.random.default_rng(0)
    idx = np.r_[rng.choice(np.flatnonzero(truth == 1), 8, replace=False), rng.choice(300, 12, replace=False)]
    model.fit(X, labels_for(truth, idx), warm_start=True, epochs=2)
    assert "supervised" in model.members_ and set(model.weights_) <= {"iforest", "knn", "deepsad", "supervised"}
    assert "supervised" in model.label_auc_
    expected = label_weights(model.label_auc_, model.weight_power)
    assert model.weights_ == {k: w for k, w in expected.items() if w > 0}
    # Deep SAD's AUC is the one before it saw the labels: its scores from the first fit
    assert np.isfinite(model.deepsad_prequential_[idx]).all()
    assert np.isnan(np.delete(model.deepsad_prequential_, idx)).all()


def test_with_labels_deep_sad_learns_them_and_the_other_members_top_unlabeled_as_anomalies(blobs, monkeypatch):
    X, truth = blobs
    model = small(pseudo_anomaly_share=0.1).fit(X)
    # the round's threshold flags a fifth of the samples: the share Deep SAD takes as anomalies next
    model.threshold_ = float(np.quantile(model.decision_scores_, 0.8))
    rng = np.random.default_rng(0)
    idx = np.r_[rng.choice(np.flatnonzero(truth == 1), 4, replace=False), rng.choice(300, 12, replace=False)]
    semi = labels_for(truth, idx)
    given = {}
    fit = DeepSAD.fit

    def spy(self, X, semi_targets=None, **kw):
        given["targets"] = np.asarray(semi_targets).copy()
        return fit(self, X, semi_targets, **kw)

    monkeypatch.setattr(DeepSAD, "fit", spy)
    model.fit(X, semi, warm_start=True, epochs=1)
    targets = given["targets"]
    np.testing.assert_array_equal(targets[idx], semi[idx])  # the expert's labels, as given
    # the top fifth of the other members' label-weighted mean are anomalies (-1) where the expert said nothing
    z, weights = model.member_scores_, label_weights(model.label_auc_, model.weight_power)
    others = {name: w for name, w in weights.items() if name != "deepsad"}
    teacher = sum(w * z[name] for name, w in others.items()) / sum(others.values())
    top = teacher >= np.quantile(teacher, 0.8)
    pseudo = (targets == -1) & (semi == 0)
    np.testing.assert_array_equal(pseudo, top & (semi == 0))
    assert set(np.unique(targets[semi == 0])) == {-1, 0} and pseudo.sum() >= 0.2 * len(X) - len(idx)
    assert roc_auc_score(truth[semi == 0], pseudo[semi == 0]) > 0.8  # the blobs' anomalies, mostly


def test_labels_that_no_member_ranks_above_chance_leave_the_prior(blobs):
    X, _ = blobs
    model = small().fit(X)
    z = model.member_scores(X)
    # label as anomalous the samples the IsolationForest finds most normal, and vice versa
    order = np.argsort(z["iforest"])
    semi = np.zeros(len(X), dtype=np.int64)
    semi[order[:6]], semi[order[-6:]] = -1, 1
    model.fit(X, semi, warm_start=True, epochs=1)
    assert model.label_auc_["iforest"] == 0.0
    assert max(label_weights(model.label_auc_, model.weight_power).values()) == 0
    assert model.weights_ == dict(model.prior_weights)


def test_same_seed_same_scores_other_seed_other_scores(blobs):
    X, _ = blobs
    a, b, c = small(seed=3).fit(X), small(seed=3).fit(X), small(seed=4).fit(X)
    np.testing.assert_array_equal(a.decision_scores_, b.decision_scores_)
    assert not np.allclose(a.decision_scores_, c.decision_scores_)


def test_save_and_load_give_the_same_detector(blobs, tmp_path):
    X, truth = blobs
    model = small().fit(X)
    model.fit(X, labels_for(truth, np.r_[300:305, 0:10]), warm_start=True, epochs=1)
    loaded = load_model(model.save(tmp_path / "model"))
    assert isinstance(loaded, DeepSADEnsemble) and loaded.weights_ == model.weights_
    np.testing.assert_allclose(loaded.decision_function(X), model.decision_function(X), rtol=1e-6)
    np.testing.assert_array_equal(loaded.deepsad_prequential_, model.deepsad_prequential_)
    assert isinstance(load_model(model.deepsad_.save(tmp_path / "plain")), DeepSAD)
    assert clone(loaded).get_params()["n_neighbors"] == model.n_neighbors


def test_a_model_saved_on_the_exp_scale_keeps_it_until_it_fits_again(tmp_path):
    import json

    ds = load_dataset("sample_data/breast_cancer.csv")
    X = ds.X
    model = small().fit(X)
    folder = model.save(tmp_path / "model")
    # a format-1 folder: its stored scores and threshold are exp of the weighted mean
    config = json.loads((folder / "ensemble.json").read_text())
    mean = 10 * np.arctanh(np.log(model.decision_scores_) / 10)
    config.update(format_version=1, threshold=float(np.exp(np.quantile(mean, 0.9))))
    (folder / "ensemble.json").write_text(json.dumps(config))
    np.save(folder / "decision_scores.npy", np.exp(mean))
    old = load_model(folder)
    assert old.fusion_ == "exp"
    live_mean = 10 * np.arctanh(np.log(model.decision_function(X)) / 10)
    np.testing.assert_allclose(old.decision_function(X), np.exp(live_mean), rtol=1e-5)  # scores as it always did
    assert old.predict(X).sum() == model.predict(X).sum()  # the same rows flagged on either scale
    assert json.loads((old.save(tmp_path / "again") / "ensemble.json").read_text())["format_version"] == 1
    # its bundle scores on its own scale, with parity, and says so
    export_bundle(old, ds.preprocessor, tmp_path / "old-bundle", X_sample=X)
    detector = load_detector(tmp_path / "old-bundle")
    assert detector.info()["detector"]["score"]["formula"].startswith("exp(clip(m")
    np.testing.assert_allclose(detector.score_model_input(X), np.exp(live_mean), rtol=1e-4)
    old.fit(X, warm_start=True, epochs=1)
    assert old.fusion_ == "bounded" and old.decision_scores_.max() <= np.exp(10)


def test_bundle_scores_like_the_live_ensemble(tmp_path):
    ds = load_dataset("sample_data/breast_cancer.csv")
    truth = ds.truth
    model = small().fit(ds.X)
    idx = np.r_[np.flatnonzero(truth == 1)[:6], np.flatnonzero(truth == 0)[:10]]
    model.fit(ds.X, labels_for(truth, idx), warm_start=True, epochs=2)
    assert "supervised" in model.weights_
    out = tmp_path / "ensemble.zip"
    export_bundle(model, ds.preprocessor, out, X_sample=ds.X)
    detector = load_detector(out)
    live = model.decision_function(ds.X)
    assert np.max(np.abs(detector.score_model_input(ds.X) - live) / live) <= 1e-4
    np.testing.assert_allclose(detector.embed(ds.raw), model.embed(ds.X), atol=1e-5)
    assert detector.info()["detector"]["kind"] == "deepsad_ensemble"
    low, high = detector.info()["detector"]["score"]["range"]  # the manifest says what a score can be
    assert low <= detector.score_model_input(ds.X).min() and detector.score_model_input(ds.X).max() <= high
    with pytest.raises(ValueError, match="no TorchScript"):
        load_detector(out, backend="torchscript")


def test_the_loop_switches_detector_kind_by_retraining(blobs):
    X, truth = blobs
    config = RoundConfig(first_epochs=2, first_ae_epochs=1, epochs_per_round=1)
    first = fit_round(None, X, np.zeros(len(X), dtype=np.int64), config)
    assert isinstance(first, DeepSADEnsemble)
    semi = labels_for(truth, np.r_[300:304, 0:6])
    assert isinstance(fit_round(first, X, semi, RoundConfig(detector="deepsad", first_epochs=1)), DeepSAD)
    before = first.decision_function(X)
    warm = fit_round(first, X, semi, config)
    assert isinstance(warm, DeepSADEnsemble) and warm.weights_ != first.weights_  # it learned from the labels
    np.testing.assert_array_equal(warm.deepsad_.center_, first.deepsad_.center_)  # warm: the same c
    np.testing.assert_array_equal(first.decision_function(X), before)  # the model given is left as it was


def test_a_cancelled_round_leaves_the_ensemble_as_it_was(blobs):
    from deepsad_core.exceptions import TrainingCancelled

    X, truth = blobs
    model = small().fit(X)
    before = (model.deepsad_, len(model.history_), model.decision_scores_.copy())
    with pytest.raises(TrainingCancelled):
        model.fit(X, labels_for(truth, np.r_[300:305, 0:10]), warm_start=True, epochs=3, callback=lambda p: True)
    assert model.deepsad_ is before[0] and len(model.history_) == before[1]
    np.testing.assert_array_equal(model.decision_scores_, before[2])


def many_blobs(n=3_000, seed=0):
    """``n`` rows like ``blobs``: a tenth of them anomalous."""
    rng = np.random.default_rng(seed)
    truth = (rng.random(n) < 0.1).astype(int)
    X = rng.normal(0.5, 0.05, size=(n, 6)) + truth[:, None] * rng.choice([-0.3, 0.3], size=(n, 6))
    return np.clip(X, 0, 1).astype(np.float32), truth


def test_a_capped_fit_trains_on_a_sample_and_scores_every_sample():
    X, truth = many_blobs()
    semi = labels_for(truth, np.arange(20))
    model = small(max_train_samples=500).fit(X, semi)
    assert len(model.deepsad_.decision_scores_) == 500 + 20  # Deep SAD saw the labels and 500 others
    assert model.decision_scores_.shape == (3_000,) and model.member_scores_["knn"].shape == (3_000,)
    assert roc_auc_score(truth, model.decision_scores_) > 0.95
    # the fit's scores are the detector's scores (the kNN reference rows do not count themselves there)
    others = np.setdiff1d(np.arange(3_000), model.members_["knn"].reference_index)
    np.testing.assert_allclose(model.decision_scores_[others], model.decision_function(X)[others], rtol=1e-5)


def test_a_warm_start_on_the_same_data_keeps_the_label_free_scores_and_what_deep_sad_thought(monkeypatch):
    X, truth = many_blobs()
    model = small(max_train_samples=500).fit(X, labels_for(truth, np.arange(20)))
    before = model.member_scores_["deepsad"].copy()
    label_free = {name: model.member_scores_[name].copy() for name in ("iforest", "knn")}

    def refused(*args):
        raise AssertionError("the forest scored the same data again")

    monkeypatch.setattr(model.members_["iforest"].forest, "decision_function", refused)
    model.fit(X, labels_for(truth, np.arange(40)), warm_start=True, epochs=2)
    assert model.n_fits_ == 2
    for name, z in label_free.items():
        np.testing.assert_array_equal(model.member_scores_[name], z)
    # the 20 new labels keep Deep SAD's scores from before it saw them
    np.testing.assert_array_equal(model.deepsad_prequential_[20:40], before[20:40])
    monkeypatch.undo()
    other = X + np.float32(0.01)  # other data of the same shape is scored again
    model.fit(other, labels_for(truth, np.arange(40)), warm_start=True, epochs=1)
    assert not np.array_equal(model.member_scores_["iforest"], label_free["iforest"])
    assert np.isnan(model.deepsad_prequential_).all()


def test_a_loaded_capped_ensemble_continues_like_the_live_one(tmp_path, monkeypatch):
    X, truth = many_blobs()
    model = small(max_train_samples=500).fit(X, labels_for(truth, np.arange(20)))
    loaded = load_model(model.save(tmp_path / "m"))
    assert loaded.n_fits_ == 1 and loaded.max_train_samples == 500
    np.testing.assert_allclose(loaded.member_scores_["knn"], model.member_scores_["knn"], rtol=1e-6)

    def refused(*args):
        raise AssertionError("the forest scored the same data again")

    monkeypatch.setattr(loaded.members_["iforest"].forest, "decision_function", refused)
    loaded.fit(X, labels_for(truth, np.arange(30)), warm_start=True, epochs=1)
    assert np.isfinite(loaded.deepsad_prequential_[20:30]).all()


def test_a_table_of_repeated_rows_keeps_a_usable_scale():
    # over half the rows repeat exactly: the kNN member's IQR is 0, and its spread falls back on the
    # mean absolute deviation instead of a floor that turns round-off into whole units of z
    rng = np.random.default_rng(0)
    X = np.repeat(rng.random((20, 5), dtype=np.float32), 30, axis=0)
    X[:60] += rng.random((60, 5), dtype=np.float32) * 0.1
    distances = knn_scores(X, X[::2], 10, None)
    median, spread = robust_scale(distances)
    assert median == 0.0 and np.quantile(distances, 0.75) == 0.0  # the IQR is 0 here
    assert spread == pytest.approx(0.1 * distances.mean()) and spread > 1e-5  # not the 1e-6 floor
