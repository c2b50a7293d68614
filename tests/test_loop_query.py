"""One contract for every query strategy, then what each one is for."""

import numpy as np
import pytest

from deepsad_core.loop.query import STRATEGIES, Diverse, Hybrid, MostAnomalous, MostUncertain, QueryPool, make_strategy


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


def test_the_default_queue_leads_with_diversity_and_keeps_the_top_scores_as_most_anomalous(pool):
    picks = make_strategy("hybrid").query(pool, 20, np.random.default_rng(0))
    by_part = {name: [p.index for p in picks if p.strategy == name] for name in STRATEGIES[:4]}
    assert {name: len(idx) for name, idx in by_part.items()} == {
        "most_anomalous": 4, "most_uncertain": 2, "diverse": 10, "random": 4,
    }  # fmt: skip
    free = pool.unlabeled()
    top4 = free[np.argsort(-pool.scores[free])[:4]]
    assert sorted(by_part["most_anomalous"]) == sorted(top4.tolist())  # the section the expert reads first


def test_a_hybrid_fills_its_parts_in_one_order_however_the_mix_is_written(pool):
    written = {"random": 0.2, "most_uncertain": 0.1, "diverse": 0.5, "most_anomalous": 0.2}
    as_default = make_strategy("hybrid").query(pool, 20, np.random.default_rng(0))
    reordered = make_strategy("hybrid", written).query(pool, 20, np.random.default_rng(0))
    assert reordered == as_default
