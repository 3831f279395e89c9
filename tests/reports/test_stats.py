"""The bound on the failure rate and the bounded quantiles."""
from __future__ import annotations

import math
import random

import pytest

from zerodrop.reports.stats import LogHistogram, Quantiles, binom_cdf, clopper_pearson_upper


@pytest.mark.parametrize("k, n, one_sided, two_sided", [
    # two-sided: R binom.test(k, n)$conf.int; one-sided: binom.test(k, n, alternative="less")
    (0, 100, 0.0295, 0.0362),
    (1, 100, 0.0466, 0.0545),
    (5, 1000, 0.0105, 0.0116),
    (10, 100, 0.1637, 0.1762),
])
def test_clopper_pearson_known_values(k, n, one_sided, two_sided):
    assert clopper_pearson_upper(k, n) == pytest.approx(one_sided, abs=1e-4)
    assert clopper_pearson_upper(k, n, two_sided=True) == pytest.approx(two_sided, abs=1e-4)


@pytest.mark.parametrize("n", [1, 30, 3000, 1_000_000])
def test_zero_failures_is_the_rule_of_three(n):
    assert clopper_pearson_upper(0, n) == pytest.approx(1 - 0.05 ** (1 / n), rel=1e-12)
    if n >= 3000:
        assert clopper_pearson_upper(0, n) == pytest.approx(3 / n, rel=0.01)


def test_bound_edges():
    assert clopper_pearson_upper(0, 0) is None
    assert clopper_pearson_upper(7, 7) == 1.0
    with pytest.raises(ValueError, match="k must be between 0 and n"):
        clopper_pearson_upper(8, 7)


def test_the_bound_is_where_the_binomial_cdf_equals_the_tail():
    for k, n in [(1, 100), (37, 5000), (2500, 100_000)]:
        p = clopper_pearson_upper(k, n)
        assert binom_cdf(k, n, p) == pytest.approx(0.05, rel=1e-6)


def test_bound_grows_with_failures():
    bounds = [clopper_pearson_upper(k, 1000) for k in range(0, 20)]
    assert bounds == sorted(bounds) and len(set(bounds)) == 20


def test_the_cdf_is_the_binomial_sum():
    k, n, p = 3, 50, 0.1
    direct = sum(math.comb(n, i) * p**i * (1 - p) ** (n - i) for i in range(k + 1))
    assert binom_cdf(k, n, p) == pytest.approx(direct, rel=1e-12)

def test_large_failure_counts_are_fast_enough_to_compute():
    # 100,000 failures would be 100,000 terms per bisection step summed; the beta path is O(1)
    assert clopper_pearson_upper(100_000, 1_000_000) == pytest.approx(0.1005, abs=1e-3)


def test_quantiles_exact_nearest_rank():
    q = Quantiles()
    q.extend(range(1, 101))
    assert q.exact and q.quantile(0.5) == 50 and q.quantile(0.99) == 99 and q.quantile(1) == 100
    assert Quantiles().quantile(0.5) is None


def test_quantiles_past_the_cap_stay_within_one_percent():
    rng = random.Random(7)
    values = [rng.lognormvariate(2.0, 1.0) for _ in range(20_000)]
    q = Quantiles(exact_cap=1000)
    q.extend(values)
    assert not q.exact and q.count == 20_000
    values.sort()
    for p in (0.5, 0.9, 0.99, 0.999):
        exact = values[math.ceil(p * len(values)) - 1]
        assert q.quantile(p) == pytest.approx(exact, rel=0.01)


def test_log_histogram_handles_zero_and_negative_latency():
    h = LogHistogram()
    for v in (-1.0, 0.0, 5.0, 5.0):
        h.add(v)
    assert h.quantile(0.5) == 0.0
    assert h.quantile(0.99) == pytest.approx(5.0, rel=0.01)
    assert LogHistogram().quantile(0.5) is None
