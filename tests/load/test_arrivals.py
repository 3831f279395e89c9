"""The open-model schedule and the generator's settings, as pure code."""
from __future__ import annotations

import itertools
import random

import pytest

from zerodrop.load.arrivals import (DEFAULT_MIX, Chooser, Settings, SettingsError, schedule)


def test_a_constant_schedule_is_exact_and_does_not_drift():
    times = list(itertools.islice(schedule(400.0, 100.0), 40_001))
    assert times[0] == 100.0 and times[1] == pytest.approx(100.0025)
    assert times[-1] == pytest.approx(200.0, abs=1e-9)  # computed from the start, not summed


def test_a_poisson_schedule_has_the_rate_and_random_gaps():
    times = list(itertools.islice(schedule(200.0, 0.0, "poisson", random.Random(7)), 20_000))
    gaps = [b - a for a, b in zip(times, times[1:])]
    assert len(times) / times[-1] == pytest.approx(200.0, rel=0.03)
    assert min(gaps) < 0.0005 and max(gaps) > 0.02  # exponential gaps, not a fixed spacing
    assert all(g > 0 for g in gaps)


def test_idle_clients_are_spread_over_the_period_and_over_processes():
    one = Settings(idle_clients=8, idle_period_s=2.0)
    assert one.idle_offsets() == [0.0, 0.25, 0.5, 0.75, 1.0, 1.25, 1.5, 1.75]
    split = [Settings(idle_clients=8, idle_period_s=2.0, processes=3, process_index=i).idle_offsets()
             for i in range(3)]
    assert sorted(x for part in split for x in part) == one.idle_offsets()
    assert Settings(idle_clients=0).idle_offsets() == []


@pytest.mark.parametrize("env, words", [
    ({"ZERODROP_ARRIVALS": "bursty"}, "ZERODROP_ARRIVALS='bursty': use one of constant, poisson"),
    ({"ZERODROP_RATE": "0"}, "ZERODROP_RATE must be > 0"),
    ({"ZERODROP_RATE": "fast"}, "is not a number"),
    ({"ZERODROP_POPULATIONS": '{"idle": 1}'}, "unknown ['idle']"),
    ({"ZERODROP_MIX": '{"health": 0}'}, "at least one > 0"),
    ({"ZERODROP_MAX_INFLIGHT": "0"}, "must be >= 1"),
])
def test_bad_settings_name_the_variable(env, words):
    with pytest.raises(SettingsError) as info:
        Settings.from_env(env)
    assert words in str(info.value)


def test_settings_from_the_environment():
    s = Settings.from_env({"ZERODROP_RATE": "50", "ZERODROP_ARRIVALS": "poisson",
                           "ZERODROP_POPULATIONS": '{"keepalive": 0, "fresh": 1}',
                           "ZERODROP_MONEY_ACCOUNTS": "a,b"})
    assert (s.rate, s.arrivals, s.accounts) == (50.0, "poisson", ("a", "b"))
    assert s.populations == {"keepalive": 0, "fresh": 1} and s.mix == DEFAULT_MIX


def test_the_chooser_follows_its_weights_and_skips_zero():
    c = Chooser({"a": 3, "b": 1, "c": 0}, random.Random(1))
    picks = [c.pick() for _ in range(20_000)]
    assert set(picks) == {"a", "b"}
    assert picks.count("a") / len(picks) == pytest.approx(0.75, abs=0.02)
    assert not Chooser({"a": 0}, random.Random(1))
