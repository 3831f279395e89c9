"""Small, exact-enough statistics for the verdict: a binomial upper bound and bounded quantiles.

No scipy, no numpy: the verdict must import in any process and stay a pure function.
"""
from __future__ import annotations

import math
from typing import Iterable

# --------------------------------------------------------------------------------------------
# Binomial upper bound (Clopper-Pearson)
# --------------------------------------------------------------------------------------------

# Above this many failures the log-space sum costs O(k) per bisection step; the regularised
# incomplete beta (a continued fraction) gives the same CDF in O(1)-ish time.
_SUM_LIMIT = 2000


def _log_binom_pmf(i: int, n: int, log_p: float, log_q: float) -> float:
    return (math.lgamma(n + 1) - math.lgamma(i + 1) - math.lgamma(n - i + 1)
            + i * log_p + (n - i) * log_q)


def _binom_cdf_sum(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p), summed in log space (log-sum-exp)."""
    log_p, log_q = math.log(p), math.log1p(-p)
    terms = [_log_binom_pmf(i, n, log_p, log_q) for i in range(k + 1)]
    top = max(terms)
    return min(1.0, math.exp(top) * math.fsum(math.exp(t - top) for t in terms))


def _betacf(a: float, b: float, x: float) -> float:
    """Continued fraction for the incomplete beta (modified Lentz)."""
    tiny = 1e-300
    qab, qap, qam = a + b, a + 1.0, a - 1.0
    c, d = 1.0, 1.0 - qab * x / qap
    d = 1.0 / (d if abs(d) > tiny else tiny)
    h = d
    for m in range(1, 10_000):
        m2 = 2 * m
        aa = m * (b - m) * x / ((qam + m2) * (a + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        h *= d * c
        aa = -(a + m) * (qab + m) * x / ((a + m2) * (qap + m2))
        d = 1.0 + aa * d
        d = 1.0 / (d if abs(d) > tiny else tiny)
        c = 1.0 + aa / c
        c = c if abs(c) > tiny else tiny
        delta = d * c
        h *= delta
        if abs(delta - 1.0) < 1e-15:
            break
    return h


def _betainc(a: float, b: float, x: float) -> float:
    """Regularised incomplete beta I_x(a, b), front factor in log space."""
    if x <= 0.0:
        return 0.0
    if x >= 1.0:
        return 1.0
    log_front = (math.lgamma(a + b) - math.lgamma(a) - math.lgamma(b)
                 + a * math.log(x) + b * math.log1p(-x))
    if x < (a + 1.0) / (a + b + 2.0):
        return math.exp(log_front) * _betacf(a, b, x) / a
    return 1.0 - math.exp(log_front) * _betacf(b, a, 1.0 - x) / b


def binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p)."""
    if k < 0:
        return 0.0
    if k >= n or p <= 0.0:
        return 1.0
    if p >= 1.0:
        return 0.0
    if k <= _SUM_LIMIT:
        return _binom_cdf_sum(k, n, p)
    # P(X <= k) = I_{1-p}(n - k, k + 1)
    return _betainc(n - k, k + 1, 1.0 - p)


def clopper_pearson_upper(k: int, n: int, confidence: float = 0.95,
                          two_sided: bool = False) -> float | None:
    """The exact (Clopper-Pearson) upper confidence bound on a rate after k events in n trials.

    One-sided by default: "the rate is below this with ``confidence``". For k = 0 that is
    1 - (1 - confidence) ** (1 / n), the rule of three (~3/n). ``two_sided=True`` gives the
    upper end of the usual two-sided interval (tail (1 - confidence) / 2). None when n == 0.
    Solved by bisection on the binomial CDF: the bound is the p where P(X <= k; n, p) = tail.
    """
    if n <= 0:
        return None
    if not 0 <= k <= n:
        raise ValueError(f"k must be between 0 and n, got k={k}, n={n}")
    tail = (1.0 - confidence) / (2.0 if two_sided else 1.0)
    if k == n:
        return 1.0
    if k == 0:
        return -math.expm1(math.log(tail) / n)
    lo, hi = k / n, 1.0  # the CDF falls as p rises; at p = k/n it is above any tail < 0.5
    for _ in range(200):
        mid = (lo + hi) / 2.0
        if binom_cdf(k, n, mid) > tail:
            lo = mid
        else:
            hi = mid
        if hi - lo < 1e-13:
            break
    return (lo + hi) / 2.0


# --------------------------------------------------------------------------------------------
# Quantiles in bounded memory
# --------------------------------------------------------------------------------------------

class LogHistogram:
    """A log-bucket histogram (DDSketch-like): every value > 0 lands in the bucket
    (gamma^(i-1), gamma^i]; the bucket's estimate 2*gamma^i/(gamma+1) is within ``rel_error``
    of every value in it. Memory: one counter per occupied bucket (~1,000 buckets cover
    1 microsecond to 1,000 seconds at 1%).
    """

    __slots__ = ("_gamma", "_log_gamma", "_buckets", "_zeros", "count")

    def __init__(self, rel_error: float = 0.01) -> None:
        self._gamma = (1.0 + rel_error) / (1.0 - rel_error)
        self._log_gamma = math.log(self._gamma)
        self._buckets: dict[int, int] = {}
        self._zeros = 0  # values <= 0 (a clock step between t_start and t_end)
        self.count = 0

    def add(self, value: float) -> None:
        self.count += 1
        if value <= 0.0:
            self._zeros += 1
            return
        i = math.ceil(math.log(value) / self._log_gamma)
        self._buckets[i] = self._buckets.get(i, 0) + 1

    def quantile(self, q: float) -> float | None:
        """Nearest-rank quantile estimate, or None when empty."""
        if self.count == 0:
            return None
        rank = max(1, math.ceil(q * self.count))
        if rank <= self._zeros:
            return 0.0
        seen = self._zeros
        for i in sorted(self._buckets):
            seen += self._buckets[i]
            if seen >= rank:
                return 2.0 * self._gamma ** i / (self._gamma + 1.0)
        return None  # unreachable: the counts add up to self.count


class Quantiles:
    """Exact nearest-rank quantiles for the first ``exact_cap`` values; past that, every value
    (the kept ones included) moves into a LogHistogram with <= 1% relative error. Memory is
    bounded either way: at most ``exact_cap`` floats, then a bucket map.
    """

    __slots__ = ("_values", "_hist", "_cap", "_rel")

    def __init__(self, exact_cap: int = 50_000, rel_error: float = 0.01) -> None:
        self._values: list[float] | None = []
        self._hist: LogHistogram | None = None
        self._cap = exact_cap
        self._rel = rel_error

    @property
    def count(self) -> int:
        return len(self._values) if self._values is not None else self._hist.count  # type: ignore[union-attr]

    @property
    def exact(self) -> bool:
        return self._values is not None

    def add(self, value: float) -> None:
        if self._values is not None:
            self._values.append(value)
            if len(self._values) > self._cap:
                self._hist = LogHistogram(self._rel)
                for v in self._values:
                    self._hist.add(v)
                self._values = None
        else:
            self._hist.add(value)  # type: ignore[union-attr]

    def extend(self, values: Iterable[float]) -> None:
        for v in values:
            self.add(v)

    def quantile(self, q: float) -> float | None:
        if self._values is not None:
            if not self._values:
                return None
            self._values.sort()
            rank = max(1, math.ceil(q * len(self._values)))
            return self._values[rank - 1]
        return self._hist.quantile(q)  # type: ignore[union-attr]
