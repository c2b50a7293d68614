"""One contract suite for every detector (deepsad_core.detectors.contract): Deep SAD, the ensemble, and a
bundle read back from disk. Each answers the same questions the same way."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from deepsad_core import DeepSAD
from deepsad_core.bundle.read import BundleError, load_detector
from deepsad_core.bundle.write import export_bundle
from deepsad_core.data import load_dataset
from deepsad_core.detectors.contract import AnomalyDetector, TrainableDetector, load_model
from deepsad_core.detectors.ensemble import DeepSADEnsemble
from deepsad_core.exceptions import NotFittedError

TINY = {"epochs": 20, "ae_epochs": 5, "batch_size": 64, "lr": 1e-3, "ae_lr": 1e-3}


@pytest.fixture(scope="module")
def table():
    """300 normal rows, 30 anomalies off to one side; three of each labeled."""
    rng = np.random.default_rng(0)
    normal = rng.normal(0.0, 1.0, size=(300, 5))
    anomalous = rng.normal(0.0, 1.0, size=(30, 5)) + 6.0
    frame = pd.DataFrame(np.vstack([normal, anomalous]), columns=[f"f{j}" for j in range(5)])
    dataset = load_dataset(frame)
    truth = np.r_[np.zeros(300, int), np.ones(30, int)]
    semi = np.zeros(330, dtype=np.int64)
    semi[[0, 1, 2]], semi[[300, 301, 302]] = 1, -1
    return frame, dataset, truth, semi


@pytest.fixture(scope="module", params=["deepsad", "ensemble", "bundle"])
def fitted(request, table, tmp_path_factory):
    """(detector, its input for the table, the model input) for each kind."""
    frame, dataset, _, semi = table
    deepsad = DeepSAD(**TINY, seed=0)
    model = deepsad if request.param == "deepsad" else DeepSADEnsemble(deepsad=deepsad, seed=0)
    model.fit(dataset.X, semi)
    if request.param != "bundle":
        return model, dataset.X, dataset.X
    out = tmp_path_factory.mktemp("bundle") / "detector.zip"
    export_bundle(model, dataset.preprocessor, out, X_sample=dataset.X)
    return load_detector(out), frame, dataset.X


@pytest.fixture(scope="module", params=["deepsad", "ensemble"])
def trainable(request, table):
    """The detectors the loop trains (a bundle is read-only)."""
    deepsad = DeepSAD(**TINY, seed=0)
    model = deepsad if request.param == "deepsad" else DeepSADEnsemble(deepsad=deepsad, seed=0)
    return model.fit(table[1].X, table[3]), table[1].X


def test_it_keeps_the_contract(fitted):
    detector, _, _ = fitted
    assert isinstance(detector, AnomalyDetector)
    assert detector.detector_kind in ("deepsad", "ensemble")


def test_higher_scores_mean_more_anomalous(fitted, table):
    detector, data, _ = fitted
    scores = detector.decision_function(data)
    truth = table[2]
    assert scores.shape == (330,) and np.isfinite(scores).all()
    assert scores[truth == 1].mean() > scores[truth == 0].mean()


def test_a_sample_scores_the_same_whatever_its_neighbours_in_the_batch(fitted):
    detector, data, _ = fitted
    order = np.random.default_rng(1).permutation(330)
    shuffled = data.iloc[order] if isinstance(data, pd.DataFrame) else data[order]
    scores = detector.decision_function(data)
    np.testing.assert_allclose(detector.decision_function(shuffled), scores[order], rtol=1e-6)
    subset = data.iloc[:7] if isinstance(data, pd.DataFrame) else data[:7]
    np.testing.assert_allclose(detector.decision_function(subset), scores[:7], rtol=1e-6)


def test_predict_flags_the_scores_above_the_threshold(fitted):
    detector, data, _ = fitted
    flags = detector.predict(data)
    assert set(np.unique(flags)) <= {0, 1}
    np.testing.assert_array_equal(flags, (detector.decision_function(data) > detector.threshold_).astype(int))


def test_embed_gives_one_latent_vector_per_sample(fitted):
    detector, data, _ = fitted
    latents = detector.embed(data)
    assert latents.ndim == 2 and len(latents) == 330 and np.isfinite(latents).all()


def test_explain_shapes_attributions_like_the_model_input(fitted):
    detector, data, X = fitted
    rows = data.iloc[[300, 0]] if isinstance(data, pd.DataFrame) else data[[300, 0]]
    attributions = detector.explain(rows, baseline=X[0])
    assert attributions.shape == (2, X.shape[1]) and np.isfinite(attributions).all()
    assert np.abs(attributions[0]).sum() > 0  # an anomaly differs from a normal row somewhere that counts
    np.testing.assert_allclose(attributions[1], 0.0, atol=1e-6)  # the baseline row itself: nothing to explain


def test_label_free_scores_are_there_or_refused_clearly(fitted, table):
    detector, data, _ = fitted
    if not isinstance(detector, TrainableDetector):  # a bundle holds the fused score only
        with pytest.raises(BundleError, match="label-free scores stay with its project"):
            detector.label_free_scores(data)
        return
    truth = table[2]
    for scores in (detector.label_free_scores(), detector.label_free_scores(data)):  # the fit's data, or any
        assert scores.shape == (330,) and scores[truth == 1].mean() > scores[truth == 0].mean()


def test_a_trainable_detector_saves_loads_and_exports_what_it_scores(trainable, tmp_path):
    detector, data = trainable
    assert isinstance(detector, TrainableDetector)
    again = load_model(detector.save(tmp_path / "model"))
    assert type(again) is type(detector)
    np.testing.assert_allclose(again.decision_function(data), detector.decision_function(data), rtol=1e-6)
    import onnxruntime as ort

    session = ort.InferenceSession(detector.scoring_graph(), providers=["CPUExecutionProvider"])
    graph_scores = session.run(["score"], {"input": data.astype(np.float32)})[0]
    np.testing.assert_allclose(graph_scores, detector.decision_function(data), rtol=1e-4, atol=1e-6)


def test_deep_sads_share_is_its_own_scores_and_the_detector_without_it(trainable):
    detector, data = trainable
    alone, without = detector.deepsad_scores(data[:20])
    assert alone.shape == (20,) and np.isfinite(alone).all()
    if detector.detector_kind == "deepsad":
        np.testing.assert_array_equal(alone, detector.decision_function(data[:20]))
        assert without is None
    else:  # the member's own view, and the detector's once Deep SAD's weight is gone
        distances = detector.deepsad_.decision_function(data[:20])
        np.testing.assert_array_equal(np.argsort(alone), np.argsort(distances))
        assert without.shape == (20,) and not np.array_equal(without, detector.decision_function(data[:20]))


def test_the_next_round_continues_a_copy(trainable, table):
    detector, data = trainable
    before = detector.decision_function(data)
    later = detector.for_next_round(lr=1e-4, eta=1.0, max_train_samples=None)
    later.fit(data, table[3], warm_start=True, epochs=1)
    np.testing.assert_array_equal(detector.decision_function(data), before)  # the original is untouched


@pytest.mark.parametrize("kind", [DeepSAD, DeepSADEnsemble])
def test_an_unfitted_detector_says_so(kind, table):
    with pytest.raises(NotFittedError, match="not fitted"):
        kind().decision_function(table[1].X)
    with pytest.raises(NotFittedError):
        kind().bundle_description()
