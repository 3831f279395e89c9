"""A canary judged against its stable version, in the manner of Kayenta: each metric compared
with a statistical test, classified pass, marginal, fail or no data, and the comparisons
combined into one outcome.

- Latency: the canary's request latencies against the stable version's, with the Mann-Whitney
  U test (scipy.stats.mannwhitneyu, one-sided: is the canary slower?). A significant shift
  fails only when it is also large: the canary's median above ``latency_tolerance`` times the
  stable one's AND more than ``latency_floor_ms`` above it (with thousands of requests a 2 %
  shift is "significant" and harmless; a freshly started canary answering in 9 ms where the
  stable version takes 6 ms is 1.5x and harmless too).
- Errors: the canary's failed/total against the stable version's, with Fisher's exact test
  (scipy.stats.fisher_exact, one-sided: does the canary fail more often?). It works when the
  stable version has no error at all, where the seed's "twice the stable rate" means nothing
  (twice 0 is 0: one unlucky request fails the canary, while a canary that fails 1 % of its
  requests beside a stable one at 0.6 % passes).
- No data is an outcome, never a pass: fewer than ``min_requests`` per version, or samples that
  are not numbers.

Pure (lists of numbers in, outcomes out); the samples come from the ledger, which knows the
version of every request. Nothing here reads Prometheus: its aggregates are the thresholds'
business (scenarios/canary).
"""
from __future__ import annotations

import math
import statistics
from dataclasses import dataclass
from typing import Iterable, Sequence

PASS, MARGINAL, FAIL, NO_DATA = "pass", "marginal", "fail", "no data"
_RANK = {PASS: 0, MARGINAL: 1, NO_DATA: 2, FAIL: 3}


@dataclass(frozen=True)
class JudgeSettings:
    min_requests: int = 50          # per version, before any judgement
    alpha_fail: float = 0.01        # p below this, with a large enough effect: fail
    alpha_marginal: float = 0.05    # p below this, with a large enough effect: marginal
    latency_tolerance: float = 1.2  # the canary's median may be this many times the stable one's
    latency_floor_ms: float = 25.0  # ... or this many ms above it (6 vs 9 ms is noise, not a regression)
    error_tolerance: float = 0.005  # the canary's error rate may exceed the stable one's by this


@dataclass(frozen=True)
class Comparison:
    metric: str                 # "latency" or "errors"
    outcome: str                # PASS, MARGINAL, FAIL or NO_DATA
    canary: float | None        # latency: median ms; errors: the rate
    stable: float | None
    effect: float | None        # latency: canary median / stable median; errors: rate difference
    p_value: float | None
    n_canary: int
    n_stable: int
    detail: str                 # one line a person reads

    def as_dict(self) -> dict:
        return {"metric": self.metric, "outcome": self.outcome, "canary": self.canary,
                "stable": self.stable, "effect": self.effect, "p_value": self.p_value,
                "n_canary": self.n_canary, "n_stable": self.n_stable, "detail": self.detail}


def _classify(p: float, large: bool, s: JudgeSettings) -> str:
    if large and p < s.alpha_fail:
        return FAIL
    if large and p < s.alpha_marginal:
        return MARGINAL
    return PASS


def above_limit(exceeding: int, n: int, share: float, s: JudgeSettings) -> tuple[str, float]:
    """Is more than ``share`` of a version's requests above a limit (an error; slower than the
    p99 limit, for ``share`` 0.01)? Judged from the count observed, ``exceeding`` of ``n``:
    p = P(X >= exceeding) for X ~ Binomial(n, share), the chance of seeing that many if the
    version were exactly at the limit. FAIL below ``alpha_fail``, MARGINAL below
    ``alpha_marginal`` (when the observed share is above), else PASS; (outcome, p). One error
    in 60 requests is 1.7 % but says nothing against a 1 % limit (p = 0.45); 18 in 60 does.
    A limit of 0 fails on any."""
    from scipy.stats import binom
    if n <= 0:
        raise ValueError("above_limit needs at least one request")
    p = float(binom.sf(exceeding - 1, n, share)) if exceeding > 0 else 1.0
    over = exceeding / n > share
    if over and p < s.alpha_fail:
        return FAIL, p
    if over and p < s.alpha_marginal:
        return MARGINAL, p
    return PASS, p


def _numbers(values: Iterable[float]) -> list[float] | None:
    out = [float(v) for v in values]
    return None if any(math.isnan(v) or math.isinf(v) for v in out) else out


def compare_latency(canary_ms: Sequence[float], stable_ms: Sequence[float],
                    settings: JudgeSettings = JudgeSettings()) -> Comparison:
    canary, stable = _numbers(canary_ms), _numbers(stable_ms)
    nc, ns = len(canary_ms), len(stable_ms)
    if canary is None or stable is None:
        return Comparison("latency", NO_DATA, None, None, None, None, nc, ns,
                          "latency: no data (a sample that is not a number)")
    if nc < settings.min_requests or ns < settings.min_requests:
        return Comparison("latency", NO_DATA, None, None, None, None, nc, ns,
                          f"latency: no data ({nc} canary and {ns} stable requests; at least "
                          f"{settings.min_requests} of each are needed)")
    from scipy.stats import mannwhitneyu
    p = float(mannwhitneyu(canary, stable, alternative="greater").pvalue)
    mc, ms = statistics.median(canary), statistics.median(stable)
    ratio = mc / ms if ms > 0 else (math.inf if mc > 0 else 1.0)
    large = ratio > settings.latency_tolerance and mc - ms > settings.latency_floor_ms
    outcome = _classify(p, large, settings)
    return Comparison("latency", outcome, mc, ms, ratio, p, nc, ns,
                      f"latency: canary median {mc:.1f} ms vs stable {ms:.1f} ms ({ratio:.2f}x; "
                      f"Mann-Whitney p={p:.2g}, {nc:,} vs {ns:,} requests): {outcome}")


def compare_errors(canary_failed: int, canary_total: int, stable_failed: int, stable_total: int,
                   settings: JudgeSettings = JudgeSettings()) -> Comparison:
    if not (0 <= canary_failed <= canary_total and 0 <= stable_failed <= stable_total):
        raise ValueError(f"failed must be between 0 and total, got {canary_failed}/{canary_total} "
                         f"and {stable_failed}/{stable_total}")
    if canary_total < settings.min_requests or stable_total < settings.min_requests:
        return Comparison("errors", NO_DATA, None, None, None, None, canary_total, stable_total,
                          f"errors: no data ({canary_total} canary and {stable_total} stable "
                          f"requests; at least {settings.min_requests} of each are needed)")
    from scipy.stats import fisher_exact
    table = [[canary_failed, canary_total - canary_failed],
             [stable_failed, stable_total - stable_failed]]
    p = float(fisher_exact(table, alternative="greater").pvalue)
    rc, rs = canary_failed / canary_total, stable_failed / stable_total
    diff = rc - rs
    outcome = _classify(p, diff > settings.error_tolerance, settings)
    return Comparison("errors", outcome, rc, rs, diff, p, canary_total, stable_total,
                      f"errors: canary {canary_failed:,}/{canary_total:,} ({rc:.2%}) vs stable "
                      f"{stable_failed:,}/{stable_total:,} ({rs:.2%}) (Fisher p={p:.2g}): {outcome}")


def overall(comparisons: Sequence[Comparison]) -> str:
    """FAIL if any comparison fails; else NO_DATA if any has no data (never a pass); else
    MARGINAL if any is marginal; else PASS. No comparison at all is NO_DATA."""
    if not comparisons:
        return NO_DATA
    return max((c.outcome for c in comparisons), key=_RANK.__getitem__)
