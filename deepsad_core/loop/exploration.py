"""How the queue follows its hits: when its top picks come back normal, it explores.

The queue's most anomalous part asks about what the detector ranks highest. When the expert keeps
calling those picks normal, the ranking is wrong where it matters (anomalies denser than the normals,
a label-free ranking upside down) and more of the same teaches nothing. From the last :data:`WINDOW`
answered top picks, the posterior chance that their hit rate is below a target (half, or a few times
the estimated anomaly share where anomalies are rarer) sets an **exploration level** (:func:`explore`):
that share of the most anomalous and diverse parts goes to uniformly random picks, which find
anomalies at the pool's own rate wherever they lie and teach the detector without the top's bias,
and the top picks follow the answers (:func:`follow_labels`): next to a found anomaly first, next to
a sample called normal last. Once top picks hit again, the level falls back. Pure functions of the
answers; no truth, no I/O. Why these values: docs/design.md.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass

import numpy as np
from scipy.spatial.distance import pdist
from scipy.stats import beta
from sklearn.metrics import pairwise_distances_argmin_min

__all__ = [
    "EXPLORE_PART",
    "LIFT",
    "MAX_LEVEL",
    "NEAR_LABEL",
    "TARGET_HIT_RATE",
    "WINDOW",
    "Exploration",
    "PartAnswer",
    "answered_history",
    "explore",
    "explored_mix",
    "follow_labels",
]

WINDOW = 6  # the last answered top picks that count: two rounds of them, so the level follows fast
TARGET_HIT_RATE = 0.5  # a top-pick hit rate at or above it needs no exploration
LIFT = 3.0  # ... nor one at least this many times the estimated anomaly share
MAX_LEVEL = 0.8  # a fifth of the top picks stay, so that hits can return and the level fall back
TOP_PART = "most_anomalous"
EXPLORE_PART = "random"
# the parts that follow the detector to far-out samples: where the top picks miss, so do they (the
# diverse part's picks lie far out in the latent space)
EXPLORED_PARTS = (TOP_PART, "diverse")
NEAR_LABEL = 0.05  # "next to a labeled sample": closer than this quantile of the pool's pairwise distances


@dataclass(frozen=True)
class PartAnswer:
    """One answered queue card: the part that picked it and whether the expert called it anomalous."""

    part: str
    anomalous: bool


@dataclass(frozen=True)
class Exploration:
    """How far the next queue explores, and the answers that set it.

    ``level`` (0 to :data:`MAX_LEVEL`) is the share of the most anomalous and diverse parts given to
    random picks; ``top_asked`` and ``top_hits`` count the last answered top picks and the anomalies
    among them.
    """

    level: float = 0.0
    top_asked: int = 0
    top_hits: int = 0

    @property
    def exploring(self) -> bool:
        return self.level > 0

    def describe(self, moved_share: float | None = None) -> str:
        """In words, for the Label page: why the queue explores, and what it does about it."""
        if not self.exploring:
            return ""
        hits = "none was" if not self.top_hits else f"only {self.top_hits} {'was' if self.top_hits == 1 else 'were'}"
        moved = f"{moved_share:.0%} of the queue" if moved_share is not None else "part of the top picks"
        return (
            f"Exploring: of your last {self.top_asked} top picks {hits} anomalous, so {moved} is drawn at random "
            "instead, and the top picks look next to the anomalies you found, not next to the samples "
            "you called normal. The queue returns to the top scores once they hit again."
        )

    def to_dict(self) -> dict[str, float | int]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: Mapping[str, float | int] | None) -> Exploration:
        return cls(**dict(data)) if data else cls()


def explore(history: Sequence[PartAnswer], prevalence: float | None = None) -> Exploration:
    """The exploration level after ``history`` (answered cards, oldest first).

    The target hit rate of the top picks is :data:`TARGET_HIT_RATE`, or :data:`LIFT` times the
    estimated ``prevalence`` where that is lower: top picks that find anomalies several times as often
    as random picks would are doing their job. From the last :data:`WINDOW` top picks, the level is
    ``2 P - 1`` (capped at :data:`MAX_LEVEL`, none below 0), where ``P`` is the posterior chance
    (Jeffreys prior) that their hit rate is below the target: it grows with the evidence, so three
    misses say little where anomalies are rare and much where they are not.
    """
    top = [a.anomalous for a in history if a.part == TOP_PART][-WINDOW:]
    if not top:
        return Exploration()
    hits = int(sum(top))
    # no estimate yet, or one of no anomalies at all: only the fixed target says what a hit rate is worth
    target = min(TARGET_HIT_RATE, LIFT * prevalence) if prevalence else TARGET_HIT_RATE
    below = float(beta.cdf(target, hits + 0.5, len(top) - hits + 0.5))
    level = min(max(2.0 * below - 1.0, 0.0), MAX_LEVEL)
    return Exploration(round(level, 4), len(top), hits)


def explored_mix(mix: Mapping[str, float], level: float) -> dict[str, float]:
    """``mix`` with ``level`` of the shares of the parts that seek out the far scores
    (:data:`EXPLORED_PARTS`) moved to random picks."""
    out = dict(mix)
    for part in EXPLORED_PARTS:
        moved = out.get(part, 0.0) * level
        if moved > 0:
            out[part] -= moved
            out[EXPLORE_PART] = out.get(EXPLORE_PART, 0.0) + moved
    return out


def answered_history(queues: Iterable[Sequence[Mapping]], labels: Mapping[int, str]) -> list[PartAnswer]:
    """The answered cards of earlier queues (each a list of ``{"index", "strategy"}`` in page order,
    oldest queue first), each sample once, where it was first asked, by the labels as they stand."""
    seen: set[int] = set()
    out = []
    for queue in queues:
        for card in queue:
            index = int(card["index"])
            if index in labels and index not in seen:
                seen.add(index)
                out.append(PartAnswer(str(card["strategy"]), labels[index] == "anomalous"))
    return out


def follow_labels(latents: np.ndarray, labels: np.ndarray, ranked: np.ndarray, rng: np.random.Generator) -> np.ndarray:
    """``ranked`` (candidate indices, best first) reordered by the expert's answers: a candidate whose
    nearest labeled sample in latent space (``labels``: -1 anomalous, +1 normal, 0 not) lies within the
    :data:`NEAR_LABEL` quantile of pairwise distances (over a sample of the pool) takes its side. Next
    to a found anomaly come first, nearest first (a tight kind of anomaly is found from one member);
    then the rest in their order; next to a sample called normal last."""
    pairs = pdist(latents[rng.choice(len(latents), min(300, len(latents)), replace=False)])
    radius = float(np.quantile(pairs, NEAR_LABEL)) if len(pairs) else 0.0
    labeled = np.flatnonzero(labels != 0)
    # in float64, the subsets only: the whole pool's latents are not copied
    nearest, distance = pairwise_distances_argmin_min(
        latents[ranked].astype(np.float64), latents[labeled].astype(np.float64)
    )
    side = np.where(distance < radius, labels[labeled[nearest]], 0)
    return ranked[np.lexsort((np.where(side < 0, distance, 0.0), side))]
