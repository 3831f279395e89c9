"""Statistics for the verdict: the binomial upper bound on the failure rate (scipy, imported
only when a bound is computed) and quantiles in bounded memory.

The comparisons of a canary with its stable version are in reports/judge.py.
"""
from __future__ import annotations

import math
from typing import Iterable

# --------------------------------------------------------------------------------------------
# Binomial upper bound (Clopper-Pearson), from scipy
# --------------------------------------------------------------------------------------------

def binom_cdf(k: int, n: int, p: float) -> float:
    """P(X <= k) for X ~ Binomial(n, p) (scipy.stats.binom)."""
    from scipy.stats import binom
    return float(binom.cdf(k, n, p))


def clopper_pearson_upper(k: int, n: int, confidence: float = 0.95,
                          two_sided: bool = False) -> float | None:
    """The exact (Clopper-Pearson) upper confidence bound on a rate after k events in n trials.

    One-sided by default: "the rate is below this with ``confidence``". For k = 0 that is
    1 - (1 - confidence) ** (1 / n), the rule of three (~3/n). ``two_sided=True`` gives the
    upper end of the usual two-sided interval (tail (1 - confidence) / 2). None when n == 0.
    The bound is the beta quantile Beta(1 - tail; k + 1, n - k) (scipy.stats.beta), the p
    where P(X <= k; n, p) = tail.
    """
    if n <= 0:
        return None
    if not 0 <= k <= n:
        raise ValueError(f"k must be between 0 and n, got k={k}, n={n}")
    if k == n:
        return 1.0
    tail = (1.0 - confidence) / (2.0 if two_sided else 1.0)
    if k == 0:  # closed form, exact to the last bit (the beta quantile agrees to ~1e-15)
        return -math.expm1(math.log(tail) / n)
    from scipy.stats import beta
    return float(beta.ppf(1.0 - tail, k + 1, n - k))


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
