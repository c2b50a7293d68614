"""One contract for every query strategy, then what each one is for."""

import numpy as np
import pytest

from deepsad_core.loop.query import (
    DEFAULT_MIX,
    STRATEGIES,
    CheckSample,
    Diverse,
    Hybrid,
    MostAnomalous,
    MostUncertain,
    QueryPool,
    check_inclusion,
    make_strategy,
)


@pytest.fixture
def pool() -> QueryPool:
    rng = np.random.default_rng(0)
    latents = np.vstack([rng.normal(0, 0.3, (150, 4)), rng.normal(3, 0.3, (40, 4)), rng.normal(-3, 0.3, (10, 4))])
    scores = (latents**2).sum(axis=1)
    labeled = np.zeros(200, dtype=bool)
    labeled[[0, 1, 2, 160, 190]] = True
    return QueryPool(scores, labeled, threshold=float(np.quantile(scores, 0.8)), latents=latents)


@pytest.fixture(params=STRATEGIES)
def strategy(request):
    return make_strategy(request.param)


def test_returns_n_unique_unlabeled_indices_with_reasons(strategy, pool):
    picks = strategy.query(pool, 12, np.random.default_rng(0))
    idx = [p.index for p in picks]
    assert len(idx) == 12 == len(set(idx))
    assert not pool.labeled[idx].any()
    assert all(p.reason for p in picks)


def test_can_take_the_whole_pool_and_refuses_one_more(strategy, pool):
    free = int((~pool.labeled).sum())
    assert sorted(p.index for p in strategy.query(pool, free, np.random.default_rng(0))) == pool.unlabeled().tolist()
    with pytest.raises(ValueError, match=f"only {free} are unlabeled"):
        strategy.query(pool, free + 1, np.random.default_rng(0))


def test_empty_pool_is_refused(strategy, pool):
    full = QueryPool(pool.scores, np.ones(200, dtype=bool), pool.threshold, pool.latents)
    with pytest.raises(ValueError, match="every sample is labeled"):
        strategy.query(full, 1, np.random.default_rng(0))


def test_same_seed_same_picks(strategy, pool):
    a = strategy.query(pool, 10, np.random.default_rng(7))
    b = strategy.query(pool, 10, np.random.default_rng(7))
    assert a == b


def test_most_anomalous_takes_the_top_unlabeled_scores(pool):
    picks = MostAnomalous().query(pool, 5, np.random.default_rng(0))
    top = [i for i in np.argsort(-pool.scores) if not pool.labeled[i]][:5]
    assert [p.index for p in picks] == top
    assert "rank" in picks[0].reason


def test_most_uncertain_hugs_the_threshold(pool):
    picks = MostUncertain().query(pool, 5, np.random.default_rng(0))
    ratios = [pool.scores[p.index] / pool.threshold for p in picks]
    assert all(0.8 < r < 1.25 for r in ratios), ratios
    assert "x the threshold" in picks[0].reason


def test_diverse_spreads_picks_over_the_clusters(pool):
    diverse = [p.index for p in Diverse().query(pool, 6, np.random.default_rng(0))]
    top = [p.index for p in MostAnomalous().query(pool, 6, np.random.default_rng(0))]

    def closest_pair(idx):
        x = pool.latents[idx]
        d = np.sqrt(((x[:, None] - x[None]) ** 2).sum(-1))
        return d[np.triu_indices(len(idx), 1)].min()

    def clusters(idx):
        return {0 if i < 150 else 1 if i < 190 else 2 for i in idx}

    assert closest_pair(diverse) > 2 * closest_pair(top)
    assert clusters(diverse) == {0, 1, 2} and len(clusters(top)) < 3


def test_hybrid_mixes_its_parts_in_proportion(pool):
    hybrid = make_strategy("hybrid", {"most_anomalous": 0.5, "most_uncertain": 0.5})
    picks = hybrid.query(pool, 10, np.random.default_rng(0))
    assert [p.strategy for p in picks].count("most_anomalous") == 5
    assert [p.strategy for p in picks].count("most_uncertain") == 5


def test_hybrid_skips_near_duplicates():
    latents = np.zeros((20, 2))
    latents[10:] = np.arange(10)[:, None] * 5.0  # ten far-apart points, ten identical ones at the origin
    scores = np.r_[np.full(10, 10.0), np.linspace(1, 2, 10)]  # the identical ones score highest
    pool = QueryPool(scores, np.zeros(20, dtype=bool), 1.5, latents)
    picks = Hybrid([(MostAnomalous(), 1.0)], min_separation=0.5).query(pool, 4, np.random.default_rng(0))
    assert sum(p.index < 10 for p in picks) == 1  # one of the duplicates, then distinct points


def test_unknown_names_are_refused():
    with pytest.raises(ValueError, match="strategy must be one of"):
        make_strategy("best")
    with pytest.raises(ValueError, match="unknown strategies"):
        make_strategy("hybrid", {"psychic": 1.0})


def test_the_default_queue_has_every_part_and_keeps_the_top_scores_as_most_anomalous(pool):
    picks = make_strategy("hybrid").query(pool, 20, np.random.default_rng(0))
    by_part = {name: [p.index for p in picks if p.strategy == name] for name in DEFAULT_MIX}
    assert {name: len(idx) for name, idx in by_part.items()} == {
        "most_anomalous": 5, "diverse": 7, "most_uncertain": 2, "check": 6,
    }  # fmt: skip
    free = pool.unlabeled()
    top5 = free[np.argsort(-pool.scores[free])[:5]]
    assert sorted(by_part["most_anomalous"]) == sorted(top5.tolist())
    assert picks[0].index == top5[0]  # the first card is the highest score


def test_the_queue_interleaves_its_parts_so_the_first_cards_hold_some_of_each(pool):
    picks = make_strategy("hybrid").query(pool, 20, np.random.default_rng(0))
    first = [p.strategy for p in picks[:10]]
    assert {name: first.count(name) for name in DEFAULT_MIX} == {
        "most_anomalous": 3, "diverse": 3, "most_uncertain": 1, "check": 3,
    }  # fmt: skip
    assert "check" in first[:4]  # not a last section that an expert who labels the top never reaches


def test_a_hybrid_fills_its_parts_in_one_order_however_the_mix_is_written(pool):
    written = {"check": 0.3, "most_uncertain": 0.1, "diverse": 0.35, "most_anomalous": 0.25}
    as_default = make_strategy("hybrid").query(pool, 20, np.random.default_rng(0))
    reordered = make_strategy("hybrid", written).query(pool, 20, np.random.default_rng(0))
    assert reordered == as_default


def test_check_inclusion_probabilities_sum_to_the_draw_favour_the_top_and_leave_no_band_out():
    chance = check_inclusion(1000, 8)
    assert chance.sum() == pytest.approx(8) and (chance > 0).all() and (chance <= 1).all()
    assert chance[0] == pytest.approx(8 * 0.3 / 50) and chance[-1] == pytest.approx(8 * 0.2 / 500)
    small = check_inclusion(12, 10)  # caps at 1, the excess spread over the rest
    assert small.max() == 1 and small.sum() == pytest.approx(10)


def test_check_samples_are_drawn_as_often_as_their_recorded_chance_says(pool):
    """Over many draws, each sample is picked about as often as its inclusion probability: what the
    estimates over the pool rest on."""
    counts = np.zeros(len(pool.scores))
    chance = np.zeros(len(pool.scores))
    draws = 3000
    for seed in range(draws):
        for pick in CheckSample().query(pool, 6, np.random.default_rng(seed)):
            counts[pick.index] += 1
            chance[pick.index] = pick.inclusion
    seen = chance > 0
    expected = chance[seen] * draws
    assert np.abs(counts[seen] - expected).max() < 5 * np.sqrt(expected.max()) + 5
    free = pool.unlabeled()
    assert seen.sum() == len(free)  # every unlabeled sample can be drawn


def _after_misses() -> tuple[QueryPool, np.ndarray]:
    """Two far-out kinds: the top scores (labeled normal by the expert, three of them) and a kind a
    little lower (the anomalies, one of them found by a random pick)."""
    rng = np.random.default_rng(3)
    bulk, top, lower = rng.normal(0, 0.5, (300, 3)), rng.normal(6, 0.2, (30, 3)), rng.normal(-5, 0.2, (30, 3))
    latents = np.vstack([bulk, top, lower])
    scores = np.linalg.norm(latents, axis=1)
    labels = np.zeros(len(latents), dtype=np.int64)
    labels[[300, 301, 302]] = 1  # the last round's top picks, called normal
    labels[330] = -1  # an anomaly found at random
    return QueryPool(scores, labels != 0, float(np.quantile(scores, 0.9)), latents, labels=labels), latents


def test_after_top_picks_called_normal_the_next_top_picks_are_not_their_neighbours():
    pool, latents = _after_misses()
    normals = latents[[300, 301, 302]]
    nearest_to_normals = set(np.argsort(((latents[:, None] - normals[None]) ** 2).sum(-1).min(1))[:33]) - {
        300,
        301,
        302,
    }
    plain = MostAnomalous().query(pool, 5, np.random.default_rng(0))
    assert {p.index for p in plain} <= nearest_to_normals  # the scores alone ask about the same kind again
    followed = MostAnomalous(follow_labels=True).query(pool, 5, np.random.default_rng(0))
    assert not {p.index for p in followed} & nearest_to_normals
    # next to the anomaly the expert found, nearest first
    assert all(330 < p.index < 360 for p in followed)
    d = [np.linalg.norm(latents[p.index] - latents[330]) for p in followed]
    assert d == sorted(d)


def test_the_default_queue_follows_the_labels_while_it_explores():
    pool, _ = _after_misses()
    queue = make_strategy("hybrid", follow_labels=True).query(pool, 20, np.random.default_rng(0))
    top = [p.index for p in queue if p.strategy == "most_anomalous"]
    assert top and all(330 < i < 360 for i in top)
