"""A simulated expert: label what a strategy queues, answering from the truth, and watch the detector.

Protocol (per seed): split every class 60/40 into pool and test (disjoint); with ``normal_class``
set, the pool keeps every normal sample plus anomalies from the other classes making ``pollution``
of it. Tables are scaled as in the paper (fitted on the pool); 8-bit images are divided by 255.
Round 0 trains without labels (Deep SVDD) once per seed and every strategy starts from that same
model; each later round answers from the truth the first ``batch_size`` cards of the last queue (of
the app's length, in the order the Label page shows them, as an expert who labels the top of the
queue would), warm-starts the model and scores the test split. Truth reaches only the oracle and the
metrics.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd
from sklearn.metrics import average_precision_score, roc_auc_score

from deepsad_core.base.threshold import flag
from deepsad_core.data import load_dataset
from deepsad_core.data.protocols import scale_like_paper, semisupervised_training_set, split_train_test
from deepsad_core.detectors.members import ForestMember
from deepsad_core.detectors.supervised import fit_logistic
from deepsad_core.exceptions import DataError
from deepsad_core.loop.audit import audit_labels
from deepsad_core.loop.estimates import RoundSample
from deepsad_core.loop.exploration import PartAnswer
from deepsad_core.loop.query import PART_ORDER, make_strategy
from deepsad_core.loop.round import PreviousRound, RoundResult, fit_round, run_round
from deepsad_core.loop.settings import RoundConfig
from deepsad_core.model.backbone import extract_features, load_backbone

__all__ = ["SimulationSetup", "load_simulation_data", "part_summary", "plot_curves", "simulate", "simulation_split"]

CURVE_COLUMNS = [
    "strategy", "seed", "round", "n_labels", "anomalies_found", "test_auc", "test_ap", "seconds",
    "iforest_auc", "supervised_auc",
    # the ensemble's Deep SAD member alone, and the ensemble fused without it (same labels and weights)
    "deepsad_auc", "without_deepsad_auc",
    # over the pool, at the round's threshold: the estimates from the labels (deepsad_core.loop.estimates)
    # beside the truth
    "threshold", "est_prevalence", "est_prevalence_low", "est_prevalence_high", "true_prevalence",
    "est_recall", "est_recall_low", "est_recall_high", "est_recall_lower", "true_recall", "est_precision",
    "est_precision_low", "est_precision_high", "true_precision", "est_f1", "est_f1_low", "est_f1_high", "true_f1",
    "est_check_labels", "threshold_method", "flagged_share", "best_f1",
    # with label noise: of the audit's five most doubted labels, the share that are wrong; the stopping hint
    "wrong_labels", "audit_precision_at_5", "rank_correlation", "predicted_answers", "stop_hint",
    # the cards answered in the round: each queue part's share of them and its hit rate; how far the
    # queue the round made explores (deepsad_core.loop.exploration)
    *(f"{kind}_{part}" for part in PART_ORDER
      for kind in ("share", "hits")),
    "explore_level",
]  # fmt: skip


@dataclass
class SimulationSetup:
    X_pool: np.ndarray
    truth_pool: np.ndarray  # 1 = anomaly; the oracle's answers
    X_test: np.ndarray
    truth_test: np.ndarray


def simulation_split(
    y: np.ndarray, seed: int, normal_class: int | None = None, pollution: float = 0.1
) -> tuple[np.ndarray, np.ndarray]:
    """Indices of the pool and the test split (see the module docstring) for truth or classes ``y``."""
    train, test = split_train_test(y, seed)
    if normal_class is None:
        return train, test
    chosen = semisupervised_training_set(y[train], [normal_class], [], 0.0, pollution, np.random.default_rng(seed))
    return train[np.sort(chosen.idx)], test


def load_simulation_data(
    path: str | Path, seed: int, normal_class: int | None = None, pollution: float = 0.1
) -> SimulationSetup:
    """Pool and test split of a data file with truth (0/1, or classes with ``normal_class``).

    The file is read by :func:`~deepsad_core.data.load_dataset`, as the app reads it: images in any
    layout (``(n, H, W)``, HWC or CHW, grey or RGB) come out as ``(n, C, H, W)`` in [0, 1]; tables keep
    their numeric columns' values, scaled as in the paper on the pool. A file without truth, or whose
    truth has a single value, raises ``DataError``.
    """
    dataset = load_dataset(Path(path), normal_value=0 if normal_class is None else normal_class)
    if dataset.truth is None or dataset.truth_classes is None:
        raise DataError(f"{Path(path).name} has no truth ('y' or a truth column): a simulated expert needs it")
    y = np.asarray(dataset.truth if normal_class is None else dataset.truth_classes)
    if normal_class is not None and not (y == normal_class).any():
        raise DataError(
            f"{Path(path).name}: no sample has the class {normal_class}; classes: {sorted(set(y.tolist()))}"
        )
    anomalous = dataset.truth.astype(bool)
    if anomalous.all() or not anomalous.any():
        kind = "anomalous" if anomalous.all() else "normal"
        raise DataError(f"{Path(path).name}: every sample is {kind} by its truth; a simulated expert needs both kinds")
    pool, test = simulation_split(y, seed, normal_class, pollution)
    if dataset.kind == "image":
        X_pool, X_test = np.asarray(dataset.X[pool]), np.asarray(dataset.X[test])
    else:  # the numeric values as read (constant columns too): the paper's scaling is fitted on the pool alone
        numbers = dataset.raw.drop(columns=dataset.preprocessor.ignored).select_dtypes("number")
        X = numbers.to_numpy(dtype=np.float32)
        X_pool, X_test = scale_like_paper(X[pool], X[test])
    return SimulationSetup(X_pool, anomalous[pool].astype(int), X_test, anomalous[test].astype(int))


def simulate(
    setup: SimulationSetup,
    strategies: list[str],
    *,
    budget: int,
    batch_size: int,
    config: RoundConfig,
    seed: int,
    log: Callable[[str], None] = lambda _: None,
    on_features: bool | None = None,
    label_noise: float = 0.0,
    on_round: Callable[[str, RoundResult, np.ndarray], dict[str, float]] | None = None,
) -> pd.DataFrame:
    """Learning curves of each strategy on one seed: one row per round.

    With ``label_noise`` the simulated expert gives the wrong answer with that probability; each row
    then says how many labels are wrong and how many of the audit's five most doubted labels are.

    Images that ``config`` sends through the pretrained backbone are turned into features first
    (``on_features=None``); ``on_features=True`` says ``setup`` already holds backbone features.

    Beside the detector, each row holds two peers on the same split: ``iforest_auc``, an
    IsolationForest (100 trees) fitted on the pool without labels, and ``supervised_auc``, a
    class-balanced logistic regression fitted on the labels so far (NaN until both kinds exist).
    ``on_round(strategy, result, semi_targets)`` may add columns of its own to each row.
    """
    config = replace(config, queue_size=max(config.queue_size, batch_size), seed=seed)
    if on_features is None:
        on_features = config.uses_backbone(setup.X_pool.shape[1:])
        if on_features:
            extractor = load_backbone(config.backbone)
            pool, test = (extract_features(extractor, X) for X in (setup.X_pool, setup.X_test))
            setup = replace(setup, X_pool=pool, X_test=test)
    iforest_auc = _iforest_auc(setup, seed)
    start = time.perf_counter()
    base = fit_round(None, setup.X_pool, np.zeros(len(setup.X_pool), dtype=np.int64), config, on_features=on_features)
    base_seconds = time.perf_counter() - start
    rows = []
    for name in strategies:
        semi = np.zeros(len(setup.X_pool), dtype=np.int64)
        # the default queue (hybrid) is made by the round, as in the app, so that it can explore
        strategy = None if name == "hybrid" else make_strategy(name, config.mix)
        found, started = 0, time.perf_counter() - base_seconds
        history: list[PartAnswer] = []  # the answered cards, oldest first
        samples: list[RoundSample] = []  # each answered queue's random design, for the estimates
        wrong = np.zeros(len(setup.X_pool), dtype=bool)  # labels the noisy expert got wrong
        noise = np.random.default_rng([seed, 7])
        result = previous = None
        for round_number in range(budget // batch_size + 1):
            if round_number:
                if not (semi == 0).any():  # a pool smaller than the budget: every sample is labeled
                    break
                samples.append(result.sample)
                cards = result.queue[:batch_size]  # the first cards, in page order
                idx = np.array([p.index for p in cards])
                answers = setup.truth_pool[idx]
                flipped = noise.random(len(idx)) < label_noise
                given = np.where(flipped, 1 - answers, answers)  # the oracle, wrong with probability label_noise
                semi = semi.copy()
                semi[idx] = np.where(given == 1, -1, 1)
                wrong[idx] = flipped
                answered = {int(i): "anomalous" if g else "normal" for i, g in zip(idx, given, strict=True)}
                previous = PreviousRound(
                    result.scores, result.threshold.value, answered, result.metrics.get("est_recall")
                )
                found += int(answers.sum())
                history += [PartAnswer(p.strategy, bool(g)) for p, g in zip(cards, given, strict=True)]
                answered_parts = _part_columns(cards, given)
            model = base if result is None else result.model
            result = run_round(
                model, setup.X_pool, semi, config, round_number,
                on_features=on_features, fitted=result is None, strategy=strategy, samples=samples,
                previous=previous, history=history,
            )  # fmt: skip
            scores = result.model.decision_function(setup.X_test)
            row = {
                "strategy": name,
                "seed": seed,
                "round": round_number,
                "n_labels": int((semi != 0).sum()),
                "anomalies_found": found,
                "test_auc": roc_auc_score(setup.truth_test, scores),
                "test_ap": average_precision_score(setup.truth_test, scores),
                "seconds": time.perf_counter() - started,
                "iforest_auc": iforest_auc,
                "supervised_auc": _supervised_auc(setup, semi),
                **_deepsad_contribution(result.model, setup),
                **_estimate_columns(result, setup.truth_pool),
                "wrong_labels": int(wrong.sum()),
                "audit_precision_at_5": _audit_precision(result, setup.X_pool, semi, wrong) if label_noise else np.nan,
                "rank_correlation": result.stop.rank_correlation,
                "predicted_answers": result.stop.predicted,
                "stop_hint": int(result.stop.stop),
                **(answered_parts if round_number else {}),
                "explore_level": result.exploration.level,
                **(on_round(name, result, semi) if on_round else {}),
            }
            rows.append(row)
            log(
                f"seed {seed} {name:15s} round {round_number:2d}: labels {row['n_labels']:3d}, "
                f"anomalies found {found:3d}, test AUC {row['test_auc']:.3f}"
            )
    extra = [key for row in rows for key in row if key not in CURVE_COLUMNS]
    return pd.DataFrame(rows, columns=CURVE_COLUMNS + list(dict.fromkeys(extra)))


def _part_columns(cards, given: np.ndarray) -> dict[str, float]:
    """Of the cards answered in a round: each queue part's share of them and the share of its cards the
    expert called anomalous (its hit rate; NaN where the part had none)."""
    parts = np.array([p.strategy for p in cards])
    out = {}
    for part in PART_ORDER:
        mine = parts == part
        out[f"share_{part}"] = float(mine.mean())
        out[f"hits_{part}"] = float(given[mine].mean()) if mine.any() else float("nan")
    return out


def _audit_precision(result: RoundResult, X: np.ndarray, semi: np.ndarray, wrong: np.ndarray) -> float:
    """Of the audit's five most doubted labels, the share that are wrong."""
    doubts = audit_labels(result.label_free, semi, k=5, X=X)
    return float(np.mean([wrong[d.index] for d in doubts])) if doubts else float("nan")


def _estimate_columns(result: RoundResult, truth: np.ndarray) -> dict[str, float]:
    """The round's threshold (the one the app suggests), the estimates there (NaN where there are none
    yet), and the truth over the pool: its rates there, and the best F1 any threshold reaches."""
    flagged = flag(result.scores, result.threshold.value).astype(bool)
    caught = int((flagged & (truth == 1)).sum())
    out = {
        "threshold": result.threshold.value,
        "threshold_method": result.threshold.method,
        "flagged_share": float(flagged.mean()),
        "true_prevalence": float(truth.mean()),
        "true_recall": caught / max(int(truth.sum()), 1),
        "true_precision": caught / flagged.sum() if flagged.any() else float("nan"),
        "true_f1": 2 * caught / (flagged.sum() + truth.sum()),
        "best_f1": _best_f1(result.scores, truth),
    }
    for name in ("prevalence", "recall", "precision", "f1"):
        for part in ("", "_low", "_high"):
            out[f"est_{name}{part}"] = result.metrics.get(f"est_{name}{part}", float("nan"))
    out["est_recall_lower"] = result.metrics.get("est_recall_lower", float("nan"))
    out["est_check_labels"] = result.metrics.get("est_check_labels", 0)
    return out


def _best_f1(scores: np.ndarray, truth: np.ndarray) -> float:
    """The best F1 over the pool that any threshold on ``scores`` reaches."""
    from sklearn.metrics import precision_recall_curve

    precision, recall, _ = precision_recall_curve(truth, scores)
    return float(np.max(2 * precision * recall / np.maximum(precision + recall, 1e-12)))


def _flat(X: np.ndarray) -> np.ndarray:
    return X.reshape(len(X), -1)


def _iforest_auc(setup: SimulationSetup, seed: int) -> float:
    """The zero-label peer: scikit-learn's IsolationForest, 100 trees, on the pool."""
    forest = ForestMember.fit(_flat(setup.X_pool), n_estimators=100, seed=seed)
    return float(roc_auc_score(setup.truth_test, forest.raw(setup.X_test)))


def _deepsad_contribution(model, setup: SimulationSetup) -> dict[str, float]:
    """Test AUC of Deep SAD alone (the ensemble's member) and of the detector without it (NaN where
    Deep SAD is all there is)."""
    alone, without = model.deepsad_scores(setup.X_test)
    return {
        "deepsad_auc": roc_auc_score(setup.truth_test, alone),
        "without_deepsad_auc": roc_auc_score(setup.truth_test, without) if without is not None else float("nan"),
    }


def _supervised_auc(setup: SimulationSetup, semi: np.ndarray) -> float:
    """The supervised peer: a class-balanced logistic regression on the labels given so far."""
    labeled = semi != 0
    anomalous = semi[labeled] == -1
    if anomalous.all() or not anomalous.any():
        return float("nan")
    model = fit_logistic(_flat(setup.X_pool)[labeled], anomalous)
    return float(roc_auc_score(setup.truth_test, model.decision_function(_flat(setup.X_test))))


def part_summary(curves: pd.DataFrame) -> str:
    """Per strategy and round (mean over seeds): each queue part's share of the answered cards, its hit
    rate, and how far the next queue explores."""
    parts = [c[len("share_") :] for c in curves.columns if c.startswith("share_")]
    answered = curves[curves["round"] > 0]
    lines = ["queue parts of the answered cards, share / hit rate (mean over seeds):"]
    for (strategy, n_labels), rows in answered.groupby(["strategy", "n_labels"]):
        cells = [
            f"{part} {rows[f'share_{part}'].mean():.0%}/{rows[f'hits_{part}'].mean():.0%}"
            for part in parts
            if rows[f"share_{part}"].mean() > 0
        ]
        lines.append(
            f"  {strategy:15s} {n_labels:4d} labels: "
            + ", ".join(cells)
            + f"; explores {rows['explore_level'].mean():.2f}"
        )
    return "\n".join(lines)


def plot_curves(curves: pd.DataFrame, path: str | Path, title: str = "") -> Path:
    """Mean test AUC and anomalies found against labels used, one line per strategy."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    mean = curves.groupby(["strategy", "n_labels"], sort=False)[["test_auc", "anomalies_found"]].mean().reset_index()
    fig, axes = plt.subplots(1, 2, figsize=(10, 4))
    for name, part in mean.groupby("strategy", sort=False):
        axes[0].plot(part["n_labels"], part["test_auc"], marker="o", label=name)
        axes[1].plot(part["n_labels"], part["anomalies_found"], marker="o", label=name)
    axes[0].set(xlabel="labels used", ylabel="test ROC-AUC (mean over seeds)")
    axes[1].set(xlabel="labels used", ylabel="true anomalies among queried (mean)")
    for ax in axes:
        ax.grid(alpha=0.3)
        ax.legend()
    fig.suptitle(title)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    return Path(path)
