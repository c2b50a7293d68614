"""The simulated expert and `deepsad simulate`, on small generated data."""

import numpy as np
import pandas as pd
import pytest

from deepsad_core.cli import main
from deepsad_core.loop.settings import RoundConfig
from deepsad_core.loop.simulate import CURVE_COLUMNS, load_simulation_data, simulate


@pytest.fixture
def npz(tmp_path, blobs):
    X, truth = blobs
    path = tmp_path / "blobs.npz"
    np.savez(path, X=X, y=truth)
    return path


def test_split_is_disjoint_and_stratified(npz):
    setup = load_simulation_data(npz, seed=0)
    assert len(setup.X_pool) + len(setup.X_test) == 330
    assert setup.truth_pool.sum() == 18 and setup.truth_test.sum() == 12  # 60/40 of 30 anomalies


def test_normal_class_and_pollution(tmp_path):
    rng = np.random.default_rng(0)
    X = (rng.random((500, 8, 8)) * 255).astype(np.uint8)
    y = rng.integers(0, 5, 500)
    np.savez(tmp_path / "img.npz", X=X, y=y)
    setup = load_simulation_data(tmp_path / "img.npz", seed=0, normal_class=2, pollution=0.1)
    assert setup.X_pool.shape[1:] == (1, 8, 8) and setup.X_pool.max() <= 1
    assert setup.truth_pool.mean() == pytest.approx(0.1, abs=0.01)


def test_curves_have_one_row_per_round_and_the_oracle_finds_anomalies(npz):
    setup = load_simulation_data(npz, seed=0)
    config = RoundConfig(first_ae_epochs=2, first_epochs=3, epochs_per_round=2, batch_size=64)
    curves = simulate(setup, ["random", "most_anomalous"], budget=20, batch_size=10, config=config, seed=0)
    assert list(curves.columns) == CURVE_COLUMNS
    for _, part in curves.groupby("strategy"):
        assert part["n_labels"].tolist() == [0, 10, 20]
        assert part["anomalies_found"].is_monotonic_increasing
        assert part["test_auc"].between(0, 1).all()
    # the ensemble's Deep SAD member alone and the ensemble without it, on the same test split
    assert curves["deepsad_auc"].between(0, 1).all() and curves["without_deepsad_auc"].between(0, 1).all()
    top = curves[curves.strategy == "most_anomalous"]["anomalies_found"].iloc[-1]
    expected_at_random = 20 * setup.truth_pool.mean()  # about 1.8 of 20
    assert top >= 3 * expected_at_random  # the blobs' anomalies score highest


def test_an_expert_who_errs_is_audited_and_estimates_sit_beside_the_truth(npz):
    setup = load_simulation_data(npz, seed=0)
    config = RoundConfig(first_ae_epochs=2, first_epochs=3, epochs_per_round=2, batch_size=64)
    curves = simulate(setup, ["hybrid"], budget=30, batch_size=10, config=config, seed=0, label_noise=0.3)
    assert curves["wrong_labels"].is_monotonic_increasing and curves["wrong_labels"].iloc[-1] > 0
    assert curves["audit_precision_at_5"].iloc[1:].between(0, 1).all()
    assert curves["true_prevalence"].eq(setup.truth_pool.mean()).all()
    later = curves.iloc[1:]  # from the first answered check samples on
    assert (later.est_prevalence_low <= later.est_prevalence).all() and (
        later.est_prevalence <= later.est_prevalence_high
    ).all()
    assert curves["stop_hint"].isin([0, 1]).all() and curves["rank_correlation"].iloc[1:].between(-1, 1).all()
    clean = simulate(setup, ["hybrid"], budget=10, batch_size=10, config=config, seed=0)
    assert clean["wrong_labels"].eq(0).all() and clean["audit_precision_at_5"].isna().all()


def test_the_expert_answers_the_first_cards_of_the_apps_queue_and_the_curves_judge_the_suggested_threshold(
    npz, monkeypatch
):
    import deepsad_core.loop.simulate as simulate_module

    queues = []
    real_round = simulate_module.run_round

    def recording(*args, **kwargs):
        result = real_round(*args, **kwargs)
        queues.append(result.queue)
        return result

    monkeypatch.setattr(simulate_module, "run_round", recording)
    setup = load_simulation_data(npz, seed=0)
    config = RoundConfig(first_ae_epochs=2, first_epochs=3, epochs_per_round=2, batch_size=64)
    labels_seen = lambda name, result, semi: {"labels_seen": int((semi != 0).sum())}  # noqa: E731
    curves = simulate(setup, ["hybrid"], budget=20, batch_size=10, config=config, seed=0, on_round=labels_seen)
    assert curves["labels_seen"].tolist() == [0, 10, 20]  # a column of the caller's, after the curve's own
    assert [len(q) for q in queues[:-1]] == [config.queue_size] * 2  # the app's queue of 20
    answered = {p.index for q in queues[:-1] for p in q[:10]}  # its first ten cards, in page order
    assert curves["n_labels"].tolist() == [0, 10, 20] and len(answered) == 20
    assert curves["est_check_labels"].iloc[1:].gt(0).all()  # check samples are among the first cards
    last = curves.iloc[-1]
    assert 0 < last["flagged_share"] < 1 and 0 <= last["true_f1"] <= last["best_f1"] <= 1
    assert last["threshold_method"] == "estimated_f1"


def test_cli_writes_curves_and_plot_and_says_what_each_queue_part_found(npz, tmp_path, capsys):
    out = tmp_path / "sim"
    code = main(["simulate", str(npz), "--strategy", "random", "--strategy", "hybrid", "--budget", "10",
                 "--batch-size", "5", "--seeds", "0", "--epochs", "2", "--ae-epochs", "0", "--epochs-per-round", "1",
                 "--out", str(out)])  # fmt: skip
    assert code == 0
    curves = pd.read_csv(out / "curves.csv")
    assert set(curves.strategy) == {"random", "hybrid"} and len(curves) == 6
    assert (out / "curves.png").stat().st_size > 10_000
    hybrid = curves[(curves.strategy == "hybrid") & (curves["round"] > 0)]
    shares = hybrid[[c for c in curves.columns if c.startswith("share_")]]
    assert np.allclose(shares.sum(axis=1), 1.0)  # every answered card belongs to one part
    for part in ("most_anomalous", "check"):
        answered = hybrid[f"share_{part}"] > 0
        assert hybrid.loc[answered, f"hits_{part}"].between(0, 1).all()
    printed = capsys.readouterr().out
    assert "queue parts of the answered cards" in printed and "hybrid" in printed and "most_anomalous" in printed


def test_photos_in_hwc_layout_are_read_like_the_app_and_simulated_on_backbone_features(photo_npz, monkeypatch):
    import deepsad_core.loop.simulate as simulate_module

    extracted = []
    real = simulate_module.extract_features
    monkeypatch.setattr(simulate_module, "extract_features", lambda e, X, **kw: extracted.append(X.shape) or real(e, X))
    setup = load_simulation_data(photo_npz, seed=0)
    assert setup.X_pool.shape[1:] == (3, 32, 32) and setup.X_pool.min() >= 0 and setup.X_pool.max() <= 1
    config = RoundConfig(first_ae_epochs=1, first_epochs=2, epochs_per_round=1, batch_size=16)
    curves = simulate(setup, ["hybrid"], budget=5, batch_size=5, config=config, seed=0)
    assert list(curves["n_labels"]) == [0, 5]
    assert extracted == [setup.X_pool.shape, setup.X_test.shape]  # pool and test, once each
    assert curves["test_auc"].between(0, 1).all()


def test_a_file_without_truth_is_refused_with_a_data_error(tmp_path):
    from deepsad_core.exceptions import DataError

    np.savez(tmp_path / "no_truth.npz", X=np.zeros((10, 8, 8, 3), np.uint8))
    with pytest.raises(DataError, match="no truth"):
        load_simulation_data(tmp_path / "no_truth.npz", seed=0)
    np.savez(tmp_path / "normal.npz", X=np.random.default_rng(0).random((10, 3)), y=np.zeros(10, int))
    with pytest.raises(DataError, match="every sample is normal"):
        load_simulation_data(tmp_path / "normal.npz", seed=0)
    np.savez(tmp_path / "odd.npz", X=np.zeros((10, 8, 8, 5), np.uint8), y=np.zeros(10, int))
    with pytest.raises(DataError, match="1 or 3 channels"):
        load_simulation_data(tmp_path / "odd.npz", seed=0)


def test_where_the_anomalies_are_denser_than_the_normals_the_queue_explores_and_finds_more_than_without(
    tmp_path, monkeypatch
):
    """A table whose anomalies sit in a tight cluster inside the normals' spread: every label-free
    member ranks them lowest, so the top picks miss. The queue explores (random picks, top picks next
    to what was found) and finds anomalies that the queue without exploration never asks about."""
    import deepsad_core.loop.exploration as exploration

    rng = np.random.default_rng(0)
    X = np.vstack([rng.normal(0, 1, (600, 6)), rng.normal(0, 0.08, (40, 6))]).astype(np.float32)
    np.savez(tmp_path / "dense.npz", X=X, y=np.r_[np.zeros(600, int), np.ones(40, int)])
    config = RoundConfig(first_ae_epochs=2, first_epochs=3, epochs_per_round=2)

    def found(max_level: float) -> tuple[int, pd.DataFrame]:
        monkeypatch.setattr(exploration, "MAX_LEVEL", max_level)
        total, curves = 0, []
        for seed in (0, 1, 2):
            setup = load_simulation_data(tmp_path / "dense.npz", seed=seed)
            part = simulate(setup, ["hybrid"], budget=50, batch_size=10, config=config, seed=seed)
            total += part["anomalies_found"].iloc[-1]
            curves.append(part)
        return total, pd.concat(curves)

    exploring, curves = found(exploration.MAX_LEVEL)
    fixed, _ = found(0.0)
    assert curves["explore_level"].max() > 0 and curves["share_random"].max() > 0
    assert exploring > fixed
