"""The queue explores while its top picks miss, and comes back when they hit."""

import numpy as np
import pytest

from deepsad_core.loop.exploration import (
    MAX_LEVEL,
    WINDOW,
    Exploration,
    PartAnswer,
    answered_history,
    explore,
    explored_mix,
)
from deepsad_core.loop.query import DEFAULT_MIX


def _top(*hits: bool) -> list[PartAnswer]:
    return [PartAnswer("most_anomalous", h) for h in hits]


def test_no_answers_no_exploration():
    assert explore([]) == Exploration()
    assert not explore([]).exploring
    assert explored_mix(DEFAULT_MIX, 0.0) == DEFAULT_MIX


def test_misses_at_the_top_move_the_mix_towards_random_picks_and_hits_move_it_back():
    misses = explore(_top(False, False, False))
    assert misses.exploring and (misses.top_asked, misses.top_hits) == (3, 0)
    more = explore(_top(*[False] * WINDOW))
    assert more.level >= misses.level  # the longer the misses last, the further it explores
    assert more.level <= MAX_LEVEL  # some top picks stay, so that hits can be seen again
    mix = explored_mix(DEFAULT_MIX, more.level)
    assert mix["random"] > 0 and mix["most_anomalous"] < DEFAULT_MIX["most_anomalous"]
    assert mix["diverse"] < DEFAULT_MIX["diverse"]  # its far-out picks miss with the top ones
    assert sum(mix.values()) == pytest.approx(sum(DEFAULT_MIX.values()))
    assert mix["check"] == DEFAULT_MIX["check"]  # the estimates' draw keeps its share
    # hits return: the last window of top picks decides, so the level falls back to none
    back = explore(_top(*[False] * WINDOW, *[True] * WINDOW))
    assert back.level == 0 and not back.exploring
    assert explored_mix(DEFAULT_MIX, back.level) == DEFAULT_MIX


def test_misses_weigh_by_how_often_random_picks_would_hit():
    """Three misses say little where anomalies are rare (thyroid: 2.5 %) and much where they are not."""
    rare, common = explore(_top(False, False, False), 0.025), explore(_top(False, False, False), 0.15)
    assert rare.level < 0.1 < 0.5 < common.level
    # a top part that hits several times as often as random picks would is doing its job
    assert explore(_top(True, False, False, False, False, False), 0.02).level == 0
    assert explore(_top(True, False, False, False, False, False), 0.3).exploring


def test_only_the_top_picks_answers_set_the_level():
    others = [PartAnswer("check", False)] * 10 + [PartAnswer("diverse", False)] * 10
    assert explore(others) == Exploration()
    assert explore(others + _top(True, True)).level == 0


def test_the_reason_says_how_many_top_picks_missed():
    text = explore(_top(False, False, False, False)).describe(0.2)
    assert "last 4 top picks none was anomalous" in text and "20% of the queue" in text
    assert explore(_top(True, False, False, False, False, False)).describe().count("only 1 was anomalous") == 1
    assert "only 2 were anomalous" in Exploration(0.5, 6, 2).describe()
    assert Exploration().describe() == ""
    assert Exploration.from_dict(explore(_top(False)).to_dict()) == explore(_top(False))
    assert Exploration.from_dict(None) == Exploration()


def test_answered_history_counts_each_answered_card_once_in_the_order_asked():
    queues = [
        [{"index": 1, "strategy": "most_anomalous"}, {"index": 2, "strategy": "check"}],
        [{"index": 3, "strategy": "most_anomalous"}, {"index": 1, "strategy": "diverse"}],
    ]
    labels = {1: "anomalous", 3: "normal", 9: "normal"}  # 2 unanswered, 9 labeled outside any queue
    assert answered_history(queues, labels) == [PartAnswer("most_anomalous", True), PartAnswer("most_anomalous", False)]
    assert answered_history([], labels) == []


def test_level_is_deterministic_in_the_answers():
    rng = np.random.default_rng(0)
    answers = _top(*(rng.random(20) < 0.2))
    assert explore(answers) == explore(list(answers))
