"""The canary judge (reports/judge.py) on samples with a known truth: equal versions pass, a
slower or failing canary fails, too little data is "no data" and never a pass, and a stable
version without errors still gives a meaningful comparison (where the seed's "twice the stable
error rate" cannot)."""
from __future__ import annotations

import math
import random

import pytest

from zerodrop.reports.judge import (FAIL, MARGINAL, NO_DATA, PASS, JudgeSettings, compare_errors,
                                    compare_latency, overall)


def latencies(n: int, median_ms: float, seed: int) -> list[float]:
    rng = random.Random(seed)
    return [median_ms * math.exp(rng.gauss(0.0, 0.5)) for _ in range(n)]


def test_the_same_latency_distribution_passes():
    c = compare_latency(latencies(800, 20.0, 1), latencies(800, 20.0, 2))
    assert c.outcome == PASS, c.detail
    assert 0.85 < c.effect < 1.15 and c.p_value > 0.05


def test_a_canary_half_again_as_slow_fails_with_a_tiny_p_value():
    c = compare_latency(latencies(800, 150.0, 3), latencies(800, 100.0, 4))
    assert c.outcome == FAIL, c.detail
    assert c.p_value < 1e-9 and c.effect == pytest.approx(1.5, rel=0.1)
    assert c.detail.startswith("latency: canary median ") and "Mann-Whitney p=" in c.detail


def test_a_significant_but_small_shift_is_within_the_tolerance():
    """With many requests a 5 % shift is significant; it is not a regression worth a rollback."""
    c = compare_latency(latencies(20_000, 21.0, 5), latencies(20_000, 20.0, 6))
    assert c.p_value < 0.01 and c.effect < 1.2
    assert c.outcome == PASS, c.detail


def test_a_few_milliseconds_are_not_a_regression_however_significant():
    """A cold canary at 9 ms beside a stable version at 6 ms: 1.5x, significant, harmless."""
    c = compare_latency(latencies(2000, 9.0, 13), latencies(2000, 6.0, 14))
    assert c.p_value < 1e-6 and c.effect > 1.4
    assert c.outcome == PASS, c.detail


def test_a_faster_canary_is_never_a_regression():
    assert compare_latency(latencies(500, 10.0, 7), latencies(500, 20.0, 8)).outcome == PASS


def test_a_borderline_shift_is_marginal():
    """20 requests each, the canary 1.26x slower: p between the fail and the marginal level."""
    c = compare_latency(latencies(20, 300.0, 3), latencies(20, 200.0, 4), JudgeSettings(min_requests=10))
    assert 0.01 < c.p_value < 0.05 and c.effect > 1.2, c.detail
    assert c.outcome == MARGINAL, c.detail


@pytest.mark.parametrize("canary, stable", [
    (latencies(49, 20.0, 9), latencies(500, 20.0, 10)),
    (latencies(500, 20.0, 9), []),
    (latencies(500, 20.0, 11) + [float("nan")], latencies(500, 20.0, 12)),
])
def test_too_little_data_or_nan_is_no_data_never_a_pass(canary, stable):
    c = compare_latency(canary, stable)
    assert c.outcome == NO_DATA and c.p_value is None, c.detail
    assert c.detail.startswith("latency: no data")


def test_errors_against_a_stable_version_without_any():
    """Stable 0 of 2,000: the seed's rule (canary > 2 x stable) fails the canary at its first
    error; Fisher's test fails 12 of 400 (3 %) and passes 1 of 400 (a chance error)."""
    assert compare_errors(12, 400, 0, 2000).outcome == FAIL
    one = compare_errors(1, 400, 0, 2000)
    assert one.outcome == PASS and one.p_value > 0.05, one.detail


def test_errors_at_the_same_rate_pass_and_a_higher_rate_fails():
    assert compare_errors(5, 1000, 10, 2000).outcome == PASS
    worse = compare_errors(40, 1000, 10, 2000)
    assert worse.outcome == FAIL and worse.effect == pytest.approx(0.035), worse.detail
    assert worse.detail == ("errors: canary 40/1,000 (4.00%) vs stable 10/2,000 (0.50%) "
                            f"(Fisher p={worse.p_value:.2g}): fail")


def test_a_canary_with_fewer_errors_passes():
    assert compare_errors(0, 1000, 50, 1000).outcome == PASS


def test_error_counts_below_the_minimum_are_no_data_and_bad_counts_an_error():
    assert compare_errors(5, 20, 0, 2000).outcome == NO_DATA
    with pytest.raises(ValueError, match="failed must be between 0 and total"):
        compare_errors(5, 4, 0, 100)


def test_the_overall_outcome_never_passes_past_no_data_or_a_failure():
    p = compare_errors(5, 1000, 10, 2000)
    f = compare_errors(40, 1000, 10, 2000)
    n = compare_errors(5, 20, 0, 2000)
    assert overall([p, p]) == PASS
    assert overall([p, n]) == NO_DATA
    assert overall([p, n, f]) == FAIL
    assert overall([]) == NO_DATA
