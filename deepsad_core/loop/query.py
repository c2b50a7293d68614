"""Query strategies: which unlabeled samples to show the expert next, and why.

Each strategy is a small object with one method, ``query(pool, n, rng)``: pure, no training, no
I/O. In: scores, latent vectors, the labeled mask and the threshold (a :class:`QueryPool`), a count
and an explicit random generator. Out: ``n`` distinct unlabeled sample indices, each with the reason
it was picked. Strategies combine by wrapping (:class:`Hybrid`), not by flags.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Protocol

import numpy as np

__all__ = [
    "STRATEGIES",
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
        The queue part that picked it: ``most_anomalous``, ``most_uncertain``, ``diverse`` or ``random``.
    reason : str
        Why, in words the Label page shows.
    """

    index: int
    strategy: str
    reason: str


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
    """The highest-scoring unlabeled samples: where anomalies are found."""

    name = "most_anomalous"

    def query(self, pool: QueryPool, n: int, rng: np.random.Generator) -> list[Pick]:
        free = _candidates(pool, n)
        ranked = free[np.argsort(-pool.scores[free], kind="stable")[:n]]
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
        nearest = _min_sq_dist(points, centres) if len(centres) else np.full(len(cand), np.inf)
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


def _min_sq_dist(points: np.ndarray, centres: np.ndarray, chunk: int = 2048) -> np.ndarray:
    """Squared distance from each point to its nearest centre, in chunks to bound memory."""
    out = np.empty(len(points))
    c2 = (centres**2).sum(axis=1)
    for s in range(0, len(points), chunk):
        p = points[s : s + chunk]
        d = (p**2).sum(axis=1)[:, None] - 2 * p @ centres.T + c2[None]
        out[s : s + chunk] = np.maximum(d.min(axis=1), 0)
    return out


class RandomQuery:
    """Uniformly random unlabeled samples: the bar every other strategy must beat."""

    name = "random"

    def query(self, pool: QueryPool, n: int, rng: np.random.Generator) -> list[Pick]:
        free = _candidates(pool, n)
        return [Pick(int(i), self.name, "random draw") for i in rng.choice(free, n, replace=False)]


class Hybrid:
    """A mix of strategies, e.g. half most anomalous, a third most uncertain, the rest diverse.

    Parts fill their share in order; a candidate is skipped when it is already chosen or, with
    ``min_separation`` > 0, lies closer to a chosen one than that fraction of the median pairwise
    latent distance (near-duplicates teach little). Shares left unfilled go to the first part.
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
        for (strategy, _), share in zip(self.parts, self._shares(n), strict=True):
            if share == 0:
                continue
            # ask the part for more than its share, so filtered picks can be replaced
            labeled_now = pool.labeled | taken
            sub = QueryPool(pool.scores, labeled_now, pool.threshold, pool.latents)
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
        if len(chosen) < n:  # filtering left a gap: fill from the first part without the filter
            first = self.parts[0][0]
            sub = QueryPool(pool.scores, pool.labeled | taken, pool.threshold, pool.latents)
            chosen += first.query(sub, n - len(chosen), rng)
        return chosen

    def _radius(self, pool: QueryPool, free: np.ndarray, rng: np.random.Generator) -> float:
        """``min_separation`` times the median pairwise latent distance (over a sample of the pool)."""
        if pool.latents is None or self.min_separation <= 0 or len(free) < 3:
            return 0.0
        x = pool.latents[rng.choice(free, min(300, len(free)), replace=False)].astype(np.float64)
        d = np.sqrt(np.maximum(((x[:, None] - x[None]) ** 2).sum(-1), 0))[np.triu_indices(len(x), 1)]
        return float(self.min_separation * np.median(d))

    @staticmethod
    def _too_close(pool: QueryPool, index: int, chosen: list[Pick], radius: float) -> bool:
        if not chosen:
            return False
        others = pool.latents[[p.index for p in chosen]].astype(np.float64)
        return bool(np.sqrt(((others - pool.latents[index]) ** 2).sum(axis=1)).min() < radius)


STRATEGIES = ("most_anomalous", "most_uncertain", "diverse", "random", "hybrid")
# Diversity-led, filled in this order whatever the order of a mix's keys (so the most anomalous part
# keeps the top scores): why these shares, see docs/design.md.
DEFAULT_MIX = {"most_anomalous": 0.2, "diverse": 0.5, "most_uncertain": 0.1, "random": 0.2}


def make_strategy(name: str, mix: dict[str, float] | None = None) -> QueryStrategy:
    """A strategy by name; ``hybrid`` takes a mix of the others (default: :data:`DEFAULT_MIX`)."""
    simple = {
        "most_anomalous": MostAnomalous,
        "most_uncertain": MostUncertain,
        "diverse": Diverse,
        "random": RandomQuery,
    }
    if name in simple:
        return simple[name]()
    if name == "hybrid":
        mix = mix or DEFAULT_MIX
        unknown = set(mix) - set(simple)
        if unknown:
            raise ValueError(f"hybrid mix names unknown strategies {sorted(unknown)}; use {sorted(simple)}")
        return Hybrid([(simple[k](), float(mix[k])) for k in DEFAULT_MIX if mix.get(k, 0) > 0])
    raise ValueError(f"strategy must be one of {', '.join(STRATEGIES)}; got {name!r}")
