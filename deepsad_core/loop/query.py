"""Query strategies: which unlabeled samples to show the expert next, and why.

Each strategy is a small object with one method, ``query(pool, n, rng)``: pure, no training, no
I/O. In: scores, latent vectors, the labeled mask and the threshold (a :class:`QueryPool`), a count
and an explicit random generator. Out: ``n`` distinct unlabeled sample indices, each with the reason
it was picked. Strategies combine by wrapping (:class:`Hybrid`), not by flags.
"""

from __future__ import annotations

from dataclasses import dataclass, replace
from typing import Protocol

import numpy as np
from scipy.spatial.distance import pdist
from sklearn.metrics import pairwise_distances_argmin_min

from deepsad_core.loop.exploration import follow_labels

__all__ = [
    "DEFAULT_MIX",
    "SAMPLED_PARTS",
    "STRATEGIES",
    "CheckSample",
    "Diverse",
    "Hybrid",
    "MostAnomalous",
    "MostUncertain",
    "Pick",
    "QueryPool",
    "QueryStrategy",
    "RandomQuery",
    "make_strategy",
]


@dataclass(frozen=True)
class QueryPool:
    """What a strategy may look at. ``labeled`` is a boolean mask; truth is never here."""

    scores: np.ndarray  # (n,), higher = more anomalous
    labeled: np.ndarray  # (n,) bool
    threshold: float
    latents: np.ndarray | None = None  # (n, k), for diversity
    labels: np.ndarray | None = None  # (n,) +1 labeled normal, -1 labeled anomalous, 0 not: the top picks' neighbours

    def unlabeled(self) -> np.ndarray:
        return np.flatnonzero(~self.labeled)


@dataclass(frozen=True)
class Pick:
    """One sample the queue asks the expert about.

    Parameters
    ----------
    index : int
        The sample's row in the pool.
    strategy : str
        The queue part that picked it: ``most_anomalous``, ``most_uncertain``, ``diverse``, ``check`` or
        ``random``.
    reason : str
        Why, in words the Label page shows.
    inclusion : float
        The chance that the part picked it: 1 for the parts that choose, less for those that draw at
        random (``check``, ``random``), which the estimates over the pool rest on.
    """

    index: int
    strategy: str
    reason: str
    inclusion: float = 1.0


class QueryStrategy(Protocol):
    name: str

    def query(self, pool: QueryPool, n: int, rng: np.random.Generator) -> list[Pick]: ...


def _candidates(pool: QueryPool, n: int) -> np.ndarray:
    """The unlabeled indices, after checking that ``n`` of them can be had."""
    if not isinstance(n, (int, np.integer)) or n < 0:
        raise ValueError(f"n must be an int >= 0; got {n!r}")
    free = pool.unlabeled()
    if n > len(free):
        raise ValueError(
            f"asked for {n} samples but only {len(free)} are unlabeled"
            + ("; every sample is labeled" if len(free) == 0 else "")
        )
    return free


def _log_distance_to_threshold(scores: np.ndarray, threshold: float) -> np.ndarray:
    """|log s - log t|: scores are squared distances (positive, skewed), so compare them as ratios."""
    tiny = np.finfo(np.float64).tiny
    return np.abs(np.log(np.maximum(scores, tiny)) - np.log(max(threshold, tiny)))


class MostAnomalous:
    """The highest-scoring unlabeled samples: where anomalies are found.

    With ``follow_labels`` (the queue explores), the expert's answers reorder them: next to a found
    anomaly first, next to one called normal last (:func:`~deepsad_core.loop.exploration.follow_labels`).
    """

    name = "most_anomalous"

    def __init__(self, follow_labels: bool = False) -> None:
        self.follow_labels = follow_labels

    def query(self, pool: QueryPool, n: int, rng: np.random.Generator) -> list[Pick]:
        free = _candidates(pool, n)
        ranked = free[np.argsort(-pool.scores[free], kind="stable")]
        if self.follow_labels and pool.labels is not None and pool.latents is not None and pool.labels.any():
            ranked = follow_labels(pool.latents, pool.labels, ranked, rng)
        ranked = ranked[:n]
        total = len(pool.scores)
        rank_of = np.empty(total, dtype=np.int64)
        rank_of[np.argsort(-pool.scores, kind="stable")] = np.arange(1, total + 1)
        return [Pick(int(i), self.name, f"score {pool.scores[i]:.3g}, rank {rank_of[i]} of {total}") for i in ranked]


class MostUncertain:
    """The unlabeled samples whose score is closest to the threshold (as a ratio): where the boundary is."""

    name = "most_uncertain"

    def query(self, pool: QueryPool, n: int, rng: np.random.Generator) -> list[Pick]:
        free = _candidates(pool, n)
        gap = _log_distance_to_threshold(pool.scores[free], pool.threshold)
        chosen = free[np.argsort(gap, kind="stable")[:n]]
        return [
            Pick(
                int(i), self.name, f"score {pool.scores[i]:.3g} is {pool.scores[i] / pool.threshold:.2f}x the threshold"
            )
            for i in chosen
        ]


class Diverse:
    """Greedy k-centre in latent space: each pick is the candidate farthest from everything labeled or picked.

    Candidates are a random subset of at most ``max_candidates`` unlabeled samples (for speed).
    """

    name = "diverse"

    def __init__(self, max_candidates: int = 5000) -> None:
        self.max_candidates = max_candidates

    def query(self, pool: QueryPool, n: int, rng: np.random.Generator) -> list[Pick]:
        free = _candidates(pool, n)
        if pool.latents is None:
            raise ValueError("the diverse strategy needs latent vectors (pool.latents)")
        if n == 0:
            return []
        cand = free if len(free) <= self.max_candidates else rng.choice(free, self.max_candidates, replace=False)
        points = pool.latents[cand].astype(np.float64)
        centres = pool.latents[pool.labeled].astype(np.float64)
        # nothing labeled yet: all distances infinite, and the first pick is the most anomalous candidate
        nearest = pairwise_distances_argmin_min(points, centres)[1] ** 2 if len(centres) else np.full(len(cand), np.inf)
        picks = []
        for _ in range(min(n, len(cand))):
            j = int(np.argmax(nearest)) if np.isfinite(nearest).any() else int(np.argmax(pool.scores[cand]))
            reason = (
                f"latent distance {np.sqrt(nearest[j]):.3g} to the nearest labeled or picked sample"
                if np.isfinite(nearest[j])
                else "starting point: most anomalous candidate"
            )
            picks.append(Pick(int(cand[j]), self.name, reason))
            nearest = np.minimum(nearest, ((points - points[j]) ** 2).sum(axis=1))
            nearest[j] = -1.0  # never again
        if len(picks) < n:  # only when n exceeds the candidate subset
            rest = np.setdiff1d(free, [p.index for p in picks])
            extra = rng.choice(rest, n - len(picks), replace=False)
            picks += [Pick(int(i), self.name, "random fill beyond the candidate subset") for i in extra]
        return picks


class RandomQuery:
    """Uniformly random unlabeled samples: the bar every other strategy must beat."""

    name = "random"

    def query(self, pool: QueryPool, n: int, rng: np.random.Generator) -> list[Pick]:
        free = _candidates(pool, n)
        chance = n / max(len(free), 1)
        reason = "drawn uniformly at random: explores where the scores do not point"
        return [Pick(int(i), self.name, reason, chance) for i in rng.choice(free, n, replace=False)]


class CheckSample:
    """Check samples: a random draw whose every chance is known, so that estimates over the whole pool
    (:mod:`deepsad_core.loop.estimates`) can rest on the expert's answers.

    The unlabeled samples are ranked by score and split into bands (:data:`CHECK_BANDS`); each band gets
    a fixed share of the draw, so the top of the ranking, where anomalies and the threshold lie, is
    drawn more often than the bulk, and no band is left out. Within the bands, a systematic draw along
    the ranking (one random start) spreads the picks over the scores; each pick records its inclusion
    probability. The picks come back in random order, so that which of them an expert answers first
    does not depend on the sample.
    """

    name = "check"

    def query(self, pool: QueryPool, n: int, rng: np.random.Generator) -> list[Pick]:
        free = _candidates(pool, n)
        if n == 0:
            return []
        ranked = free[np.argsort(-pool.scores[free], kind="stable")]
        chance = check_inclusion(len(ranked), n)
        edges = np.concatenate([[0.0], np.cumsum(chance)])
        # one point per pick, one unit apart (a systematic draw), scaled to the chances' float sum
        points = (rng.random() + np.arange(n)) * (edges[-1] / n)
        chosen = np.unique(np.minimum(np.searchsorted(edges, points, side="right") - 1, len(ranked) - 1))
        if len(chosen) < n:  # only where chances of 1 meet float round-off: the next unchosen fill in
            chosen = np.r_[chosen, np.setdiff1d(np.arange(len(ranked)), chosen)[: n - len(chosen)]]
        order = rng.permutation(n)
        return [
            Pick(
                int(ranked[j]),
                self.name,
                f"check sample: drawn at random, 1 in {1 / chance[j]:.0f} of the samples scoring like it, so the "
                "estimates over all samples stay fair",
                float(chance[j]),
            )
            for j in chosen[order]
        ]


# (upper end of the band as a share of the ranking, share of the check draw): the top 5 % get 30 %.
CHECK_BANDS = ((0.05, 0.3), (0.2, 0.3), (0.5, 0.2), (1.0, 0.2))


def check_inclusion(size: int, n: int) -> np.ndarray:
    """The inclusion probability of each of ``size`` samples ranked by score (highest first) in a check
    draw of ``n``: each band's share spread evenly over it, capped at 1 (the excess goes to the rest)."""
    band = _band_of(size)
    counts = np.bincount(band, minlength=len(CHECK_BANDS))
    shares = np.array([s for _, s in CHECK_BANDS])[band]
    shares /= np.array([s for _, s in CHECK_BANDS])[counts > 0].sum()  # bands an empty pool lacks give way
    return _capped(n * shares / counts[band], n)


def _band_of(size: int) -> np.ndarray:
    """The check band of each of ``size`` samples ranked by score, highest first."""
    rank = (np.arange(size) + 0.5) / size
    upper = np.array([b for b, _ in CHECK_BANDS])
    return np.minimum(np.searchsorted(upper, rank), len(CHECK_BANDS) - 1)


def _capped(chance: np.ndarray, n: int) -> np.ndarray:
    """Chances capped at 1, the excess given to the uncapped samples in proportion (the sum stays ``n``)."""
    chance = chance * (n / chance.sum())
    for _ in range(len(chance)):
        over = chance > 1
        if not over.any():
            break
        excess = (chance[over] - 1).sum()
        chance[over] = 1.0
        free = chance < 1
        chance[free] += excess * chance[free] / chance[free].sum()
    return np.minimum(chance, 1.0)


class Hybrid:
    """A mix of strategies, e.g. a fifth most anomalous, a third diverse, the rest check samples.

    The parts that choose fill their share in order; a candidate is skipped when it is already chosen
    or, with ``min_separation`` > 0, lies closer to a chosen one than that fraction of the median
    pairwise latent distance (near-duplicates teach little). Shares left unfilled go to the first part.
    The parts that draw at random (:data:`SAMPLED_PARTS`) draw last, from every unlabeled sample not yet
    chosen and without the filter, so that their inclusion probabilities stay exact.

    The queue comes back in the order the expert sees it (:func:`page_order`): the parts interleaved,
    so that an expert who labels only its first cards answers some of each.
    """

    name = "hybrid"

    def __init__(self, parts: list[tuple[QueryStrategy, float]], min_separation: float = 0.02) -> None:
        if not parts or any(w < 0 for _, w in parts) or sum(w for _, w in parts) <= 0:
            raise ValueError("hybrid needs at least one (strategy, weight) part with positive total weight")
        self.parts = parts
        self.min_separation = min_separation

    def _shares(self, n: int) -> list[int]:
        weights = np.array([w for _, w in self.parts], dtype=np.float64)
        raw = weights / weights.sum() * n
        shares = np.floor(raw).astype(int)
        for k in np.argsort(-(raw - shares))[: n - shares.sum()]:
            shares[k] += 1
        return shares.tolist()

    def query(self, pool: QueryPool, n: int, rng: np.random.Generator) -> list[Pick]:
        free = _candidates(pool, n)
        radius = self._radius(pool, free, rng)
        chosen: list[Pick] = []
        taken = np.zeros(len(pool.scores), dtype=bool)
        parts = list(zip(self.parts, self._shares(n), strict=True))
        sampled = [(s, share) for (s, _), share in parts if s.name in SAMPLED_PARTS and share]
        for (strategy, _), share in parts:
            if share == 0 or strategy.name in SAMPLED_PARTS:
                continue
            # ask the part for more than its share, so filtered picks can be replaced
            sub = replace(pool, labeled=pool.labeled | taken)
            want = min(len(free) - int(taken[free].sum()), share * 4)
            got = 0
            for pick in strategy.query(sub, want, rng):
                if got == share:
                    break
                if radius > 0 and self._too_close(pool, pick.index, chosen, radius):
                    continue
                chosen.append(pick)
                taken[pick.index] = True
                got += 1
        owed = n - len(chosen) - sum(share for _, share in sampled)
        if owed > 0:  # filtering left a gap: fill from the first choosing part without the filter
            first = next((s for s, _ in self.parts if s.name not in SAMPLED_PARTS), None)
            if first is None:
                sampled = [(sampled[0][0], sampled[0][1] + owed), *sampled[1:]]
            else:
                sub = replace(pool, labeled=pool.labeled | taken)
                for pick in first.query(sub, owed, rng):
                    chosen.append(pick)
                    taken[pick.index] = True
        for strategy, share in sampled:
            sub = replace(pool, labeled=pool.labeled | taken)
            for pick in strategy.query(sub, share, rng):
                chosen.append(pick)
                taken[pick.index] = True
        return page_order(chosen, [s.name for s, _ in self.parts])

    def _radius(self, pool: QueryPool, free: np.ndarray, rng: np.random.Generator) -> float:
        """``min_separation`` times the median pairwise latent distance (over a sample of the pool)."""
        if pool.latents is None or self.min_separation <= 0 or len(free) < 3:
            return 0.0
        x = pool.latents[rng.choice(free, min(300, len(free)), replace=False)].astype(np.float64)
        return float(self.min_separation * np.median(pdist(x)))

    @staticmethod
    def _too_close(pool: QueryPool, index: int, chosen: list[Pick], radius: float) -> bool:
        if not chosen:
            return False
        others = pool.latents[[p.index for p in chosen]].astype(np.float64)
        return bool(np.sqrt(((others - pool.latents[index]) ** 2).sum(axis=1)).min() < radius)


def page_order(picks: list[Pick], parts: list[str]) -> list[Pick]:
    """The queue as the expert sees it: each part's picks spread evenly over the queue (its k-th of m
    picks at k / m of the way), ties in the order of ``parts``; so the first cards hold some of each."""
    count = {name: sum(p.strategy == name for p in picks) for name in parts}
    seen: dict[str, int] = {}
    keys = []
    for j, pick in enumerate(picks):
        k = seen.get(pick.strategy, 0)
        seen[pick.strategy] = k + 1
        priority = parts.index(pick.strategy) if pick.strategy in parts else len(parts)
        keys.append((k / max(count.get(pick.strategy, 1), 1), priority, j))
    return [picks[j] for *_, j in sorted(keys)]


STRATEGIES = ("most_anomalous", "most_uncertain", "diverse", "check", "random", "hybrid")
SAMPLED_PARTS = ("check", "random")  # the parts that draw at random, each pick's chance known
# Filled in this order whatever the order of a mix's keys (so the most anomalous part keeps the top
# scores), then shown interleaved: why these shares, see docs/design.md.
DEFAULT_MIX = {"most_anomalous": 0.25, "diverse": 0.35, "most_uncertain": 0.1, "check": 0.3}
PART_ORDER = ("most_anomalous", "diverse", "most_uncertain", "check", "random")


def make_strategy(name: str, mix: dict[str, float] | None = None, *, follow_labels: bool = False) -> QueryStrategy:
    """A strategy by name; ``hybrid`` takes a mix of the others (default: :data:`DEFAULT_MIX`).
    ``follow_labels``: the top picks follow the expert's answers (:class:`MostAnomalous`; the queue
    explores, :mod:`deepsad_core.loop.exploration`)."""
    simple = {
        "most_anomalous": lambda: MostAnomalous(follow_labels),
        "most_uncertain": MostUncertain,
        "diverse": Diverse,
        "check": CheckSample,
        "random": RandomQuery,
    }
    if name in simple:
        return simple[name]()
    if name == "hybrid":
        mix = mix or DEFAULT_MIX
        unknown = set(mix) - set(simple)
        if unknown:
            raise ValueError(f"hybrid mix names unknown strategies {sorted(unknown)}; use {sorted(simple)}")
        return Hybrid([(simple[k](), float(mix[k])) for k in PART_ORDER if mix.get(k, 0) > 0])
    raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}; got {name!r}")
