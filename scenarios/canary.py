"""The seed's canary-controller.py as a scenario, with its faults fixed.

The new version is deployed to the idle colour (the canary) and gets a growing share of new
connections, stage by stage (the seed's 5, 10, 25, 50 then 100 %), while the load runs. Each
stage is judged from the run's own ledger as it grows (``ctx.live``: every request knows the
version that answered it), never from an aggregate that could be empty:

- the seed's thresholds on the canary (error rate above 1 %, p99 above 500 ms) are the
  *critical* checks: checked every ``check_every_s`` once the canary has ``min_requests`` in the
  stage, and the first that fails aborts at once, without waiting for the end of the stage;
- at the end of each stage the canary is compared with the stable version (reports/judge.py:
  Mann-Whitney U on latency, Fisher's exact test on errors), which works when the stable
  version has no error at all; a fail rolls back, a marginal result is noted and goes on;
- too few canary or stable requests in a stage is "no data": the stage fails, never passes
  (the seed returned 0.0 for an empty Prometheus answer, and 0.0 passed every threshold).

Success at the last stage promotes (the Service moves to the canary, the stable colour drains
and is scaled down). For the zero-downtime verdict the switch begins at the canary's first
share (from then on the new version may answer) and is drained when the stable colour is gone. Failure rolls back: all
traffic to the stable colour, the canary scaled to 0. What the analysis saw goes to
``ctx.canary`` (each stage's weight, requests per version, each check's value and outcome;
``t_fault_on``, ``t_detected``, ``t_rolled_back`` in seconds from the first canary request
share) and from there into the verdict's JSON.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass, replace
from typing import Any, Callable, Sequence

from zerodrop.platforms.base import Platform
from zerodrop.profiles.profile import Profile
from zerodrop.records.events import EventName, Source
from zerodrop.records.ledger import LedgerRecord
from zerodrop.reports.judge import (FAIL, MARGINAL, NO_DATA, PASS, JudgeSettings, above_limit,
                                    compare_errors, compare_latency, overall)
from zerodrop.scenarios.blue_green import (_active, deploy, drain, find_active, other, scale,
                                           smoke_test, verify_serves, wait_gone, wait_ready)
from zerodrop.scenarios.steps import Context, Scenario, Step, StepFailed

DEFAULT_STAGES = (5, 10, 25, 50, 100)


@dataclass(frozen=True)
class CanarySettings:
    stages: tuple[int, ...] = DEFAULT_STAGES  # percent of new connections to the canary
    stage_s: float = 300.0           # the seed's 5 minutes; seconds in tests
    check_every_s: float = 1.0       # how often the critical checks look during a stage
    min_requests: int = 50           # per version and stage before any judgement
    max_error_rate: float = 0.01     # the seed's 1 %: the canary's failed share
    max_p99_ms: float = 500.0        # the seed's 500 ms: the canary's p99
    judge: JudgeSettings = JudgeSettings()
    replicas: int = 2
    ready_timeout: float = 60.0
    verify_timeout: float = 10.0
    verify_answers: int = 10
    drain_seconds: float | None = None  # None: 2 x the platform's propagation hint + 1 s
    token: str = "test-token"
    profile: Profile | None = None
    new_faults: dict | None = None   # the canary starts with these fault knobs
    fault: dict | None = None        # ... or gets these ``fault_after_s`` into its first stage
    fault_after_s: float = 0.0
    prometheus: bool = True          # also judge each stage's end from the platform's Prometheus
    metrics_service: str = "payment-service"  # the ``service`` label of the seed's metrics
    max_p99_ratio: float = 2.0       # Prometheus: canary p99 against the stable version's ...
    p99_floor_ms: float = 100.0      # ... where a shift of less than this never fails

    def validate(self) -> None:
        """One line for what cannot run (a usage error before any traffic moves)."""
        st = self.stages
        if not st or any(not isinstance(w, int) or not 0 < w <= 100 for w in st):
            raise ValueError(f"canary stages must be whole percents in 1..100, got {list(st)}")
        if list(st) != sorted(set(st)):
            raise ValueError(f"canary stages must grow, got {list(st)}")
        if st[-1] != 100:
            raise ValueError(f"canary stages must end at 100 (the promotion), got {list(st)}")
        if not self.stage_s > 0 or not self.check_every_s > 0:
            raise ValueError("canary stage_s and check_every_s must be > 0 seconds")
        if self.min_requests < 1:
            raise ValueError(f"canary min_requests must be >= 1, got {self.min_requests}")
        if not self.max_p99_ratio > 1:
            raise ValueError(f"canary max_p99_ratio must be > 1, got {self.max_p99_ratio:g}")
        if self.fault is not None and not 0 <= self.fault_after_s < self.stage_s:
            raise ValueError(f"fault_after_s must fall within the first stage "
                             f"(0..{self.stage_s:g} s), got {self.fault_after_s:g}")

    def drain_for(self, platform: Platform) -> float:
        if self.drain_seconds is not None:
            return self.drain_seconds
        return 2 * platform.propagation_hint + 1.0


# ---- the analysis of one stage: pure ------------------------------------------------------------

@dataclass(frozen=True)
class Check:
    name: str
    outcome: str                 # PASS, MARGINAL, FAIL or NO_DATA
    value: float | None
    limit: float | None
    detail: str

    def as_dict(self) -> dict[str, Any]:
        return {"name": self.name, "outcome": self.outcome, "value": self.value,
                "limit": self.limit, "detail": self.detail}


@dataclass(frozen=True)
class StageAnalysis:
    canary: int                  # requests the canary answered in the stage
    stable: int
    unattributed_failures: int   # failed with no answer, so with no version
    checks: tuple[Check, ...]

    @property
    def outcome(self) -> str:
        return overall(self.checks)  # type: ignore[arg-type]

    @property
    def failed(self) -> list[Check]:
        return [c for c in self.checks if c.outcome == FAIL]


def _p99(values: Sequence[float]) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[max(1, math.ceil(0.99 * len(ordered))) - 1]


def critical_checks(canary: Sequence[LedgerRecord], s: CanarySettings,
                    stable: Sequence[LedgerRecord] = ()) -> tuple[Check, ...]:
    """The seed's limits on the canary, fixed: below ``min_requests`` they are no data, and a
    limit is failed only when the canary is above it with confidence (reports/judge.py's
    ``above_limit``: the count of errors, or of answers slower than the p99 limit, against what
    a version exactly at the limit would show), never by one unlucky request in a small stage."""
    n = len(canary)
    if n < s.min_requests:
        why = f"{n} canary requests, at least {s.min_requests} are needed"
        return (Check("error rate", NO_DATA, None, s.max_error_rate, f"error rate: no data ({why})"),
                Check("p99", NO_DATA, None, s.max_p99_ms, f"p99: no data ({why})"))
    settings = replace(s.judge, min_requests=s.min_requests)
    failed = sum(r.failed for r in canary)
    rate = failed / n
    outcome, p = above_limit(failed, n, s.max_error_rate, settings)
    checks = [Check("error rate", outcome, rate, s.max_error_rate,
                    f"canary error rate {rate:.2%} ({failed:,} of {n:,}), limit "
                    f"{s.max_error_rate:.2%}{_confidence(outcome, p)}")]
    ok = [r.latency_ms for r in canary if not r.failed]
    p99 = _p99(ok)
    if p99 is None:
        checks.append(Check("p99", NO_DATA, None, s.max_p99_ms, "canary p99: no answered request"))
    else:
        slow = sum(1 for ms in ok if ms > s.max_p99_ms)
        outcome, p = above_limit(slow, len(ok), 0.01, settings)
        detail = (f"canary p99 {p99:.0f} ms ({slow:,} of {len(ok):,} answers above "
                  f"{s.max_p99_ms:.0f} ms), limit {s.max_p99_ms:.0f} ms{_confidence(outcome, p)}")
        also = _stable_as_slow(outcome, [r.latency_ms for r in stable if not r.failed], s, settings)
        if also:
            outcome, detail = MARGINAL, detail + also
        checks.append(Check("p99", outcome, p99, s.max_p99_ms, detail))
    return tuple(checks)


def _stable_as_slow(outcome: str, stable_ms: Sequence[float], s: CanarySettings,
                    settings: JudgeSettings) -> str:
    """When the canary fails the p99 limit and the stable version, under the same load at the
    same time, is over it with confidence too, the slowness is the environment's (a shared
    database, a busy node), not the canary's: rolling back would not help. The limit is then
    marginal and the comparison with the stable version decides. The text saying so, or ""."""
    if outcome != FAIL or len(stable_ms) < s.min_requests:
        return ""
    slow = sum(1 for ms in stable_ms if ms > s.max_p99_ms)
    if above_limit(slow, len(stable_ms), 0.01, settings)[0] != FAIL:
        return ""
    return (f"; but the stable version is as far over it ({slow:,} of {len(stable_ms):,} above "
            f"{s.max_p99_ms:.0f} ms): the environment's slowness, judged against stable instead")


def _confidence(outcome: str, p: float) -> str:
    if outcome == FAIL:
        return f": above it with confidence (p={p:.2g})"
    if outcome == MARGINAL:
        return f": perhaps above it (p={p:.2g})"
    return ""


def analyze(records: Sequence[LedgerRecord], stable_version: str, canary_version: str,
            s: CanarySettings, compare: bool = True) -> StageAnalysis:
    """One stage's records judged: the critical checks, then (``compare``) the canary against
    the stable version."""
    canary = [r for r in records if r.version == canary_version]
    stable = [r for r in records if r.version == stable_version]
    unattributed = sum(1 for r in records if r.failed and not r.version)
    checks = list(critical_checks(canary, s, stable))
    if compare:
        settings = replace(s.judge, min_requests=s.min_requests)
        for c in (compare_errors(sum(r.failed for r in canary), len(canary),
                                 sum(r.failed for r in stable), len(stable), settings),
                  compare_latency([r.latency_ms for r in canary if not r.failed],
                                  [r.latency_ms for r in stable if not r.failed], settings)):
            checks.append(Check(f"{c.metric} vs stable", c.outcome, c.effect, None, c.detail))
    return StageAnalysis(len(canary), len(stable), unattributed, tuple(checks))


def _number(result: Any) -> tuple[float | None, str]:
    """(the one value, "") of an answer with data, else (None, why not): an empty answer, NaN
    or an error is no data, never 0 (the seed's ``return 0.0`` passed every threshold)."""
    if result.outcome == "data" and len(result.samples) == 1:
        return result.samples[0].value, ""
    if result.outcome == "error":
        return None, f"query error: {result.error}"
    if result.outcome == "data":
        return None, f"{len(result.samples)} series where one was expected"
    return None, "no data (an empty answer or NaN)"


def _whys(canary: str, stable: str) -> str:
    return "; ".join(f"{who} {why}" for who, why in (("canary", canary), ("stable", stable)) if why)


def prometheus_checks(query: Callable[[str], Any], stable: str, canary: str, window_s: float,
                      s: CanarySettings) -> tuple[Check, ...]:
    """The seed's PromQL (error rate and p99 by version), fixed (payment_service/monitoring/
    queries.py), asked through ``query`` (the platform's Prometheus) over the last
    ``window_s`` (whole seconds, rounded down: what came before the stage, such as the
    canary's own smoke test, stays out): the limits on the canary judged from counts, as the
    ledger's are (``above_limit``: errors, and answers slower than the histogram bound at or
    above the p99 limit), and relative limits against the stable version that mean something
    when it has no error at all. ``stable``/``canary`` are the ``version`` label values (the
    colours). No data or a query error is NO_DATA."""
    from zerodrop.payment_service.monitoring import queries as q
    w, svc = max(2, math.floor(window_s)), s.metrics_service  # never reaching before the stage
    settings = replace(s.judge, min_requests=s.min_requests)
    c_n, c_n_why = _number(query(q.requests(canary, w, svc)))
    c_k, c_k_why = _number(query(q.errors(canary, w, svc)))
    c_err, c_err_why = _number(query(q.error_rate(canary, w, svc)))
    s_err, s_err_why = _number(query(q.error_rate(stable, w, svc)))
    c_p99, c_p99_why = _number(query(q.p99_ms(canary, w, svc)))
    s_p99, s_p99_why = _number(query(q.p99_ms(stable, w, svc)))
    limit_pct = s.max_error_rate * 100
    checks = []
    n = round(c_n) if c_n is not None else 0
    if c_n is None or c_k is None or c_err is None or n < s.min_requests:
        why = _whys(c_n_why or c_k_why or c_err_why, "") or \
            f"{n} canary requests, at least {s.min_requests} are needed"
        checks.append(Check("prometheus error rate", NO_DATA, None, limit_pct,
                            f"Prometheus canary error rate: {why}"))
    else:
        k = min(round(c_k), n)
        outcome, p = above_limit(k, n, s.max_error_rate, settings)
        checks.append(Check("prometheus error rate", outcome, c_err, limit_pct,
                            f"Prometheus canary error rate {c_err:.2f}% (~{k:,} of ~{n:,} over "
                            f"{w} s), limit {limit_pct:.2f}%{_confidence(outcome, p)}"))
    if c_err is None or s_err is None:
        checks.append(Check("prometheus errors vs stable", NO_DATA, None, limit_pct,
                            f"Prometheus errors vs stable: {_whys(c_err_why, s_err_why)}"))
    else:
        excess = c_err - s_err  # percentage points: works when the stable version has none
        checks.append(Check("prometheus errors vs stable", FAIL if excess > limit_pct else PASS,
                            excess, limit_pct, f"Prometheus canary error rate {c_err:.2f}% vs stable "
                                               f"{s_err:.2f}% (+{max(excess, 0):.2f} points, "
                                               f"limit +{limit_pct:.2f})"))
    slow_q = q.slower_than(canary, s.max_p99_ms / 1000, w, svc) \
        if q.bucket_at_or_above(s.max_p99_ms / 1000) is not None else None
    slow, slow_why = _number(query(slow_q)) if slow_q else (None, "the p99 limit is above "
                                                            "every histogram bucket")
    if c_p99 is None or slow is None or n < s.min_requests:
        checks.append(Check("prometheus p99", NO_DATA, None, s.max_p99_ms,
                            f"Prometheus canary p99: {c_p99_why or slow_why or f'{n} canary requests'}"))
    else:
        k = min(max(round(slow), 0), n)
        outcome, p = above_limit(k, n, 0.01, settings)
        detail = (f"Prometheus canary p99 {c_p99:.0f} ms (~{k:,} of ~{n:,} answers slower than "
                  f"the limit's bucket, over {w} s), limit {s.max_p99_ms:.0f} ms"
                  f"{_confidence(outcome, p)}")
        if outcome == FAIL:  # is the stable version as slow? (the environment, not the canary)
            s_n, _ = _number(query(q.requests(stable, w, svc)))
            s_slow, _ = _number(query(q.slower_than(stable, s.max_p99_ms / 1000, w, svc)))
            if s_n is not None and s_slow is not None and round(s_n) >= s.min_requests:
                sn = round(s_n)
                sk = min(max(round(s_slow), 0), sn)
                if above_limit(sk, sn, 0.01, settings)[0] == FAIL:
                    outcome = MARGINAL
                    detail += (f"; but the stable version is as far over it (~{sk:,} of ~{sn:,}):"
                               f" the environment's slowness, judged against stable instead")
        checks.append(Check("prometheus p99", outcome, c_p99, s.max_p99_ms, detail))
    if c_p99 is None or s_p99 is None:
        checks.append(Check("prometheus p99 vs stable", NO_DATA, None, None,
                            f"Prometheus p99 vs stable: {_whys(c_p99_why, s_p99_why)}"))
    else:
        limit = max(s_p99 * s.max_p99_ratio, s_p99 + s.p99_floor_ms)
        checks.append(Check("prometheus p99 vs stable", FAIL if c_p99 > limit else PASS, c_p99,
                            limit, f"Prometheus canary p99 {c_p99:.0f} ms vs stable {s_p99:.0f} ms "
                                   f"(limit {limit:.0f} ms: {s.max_p99_ratio:g}x, or +"
                                   f"{s.p99_floor_ms:.0f} ms)"))
    return tuple(checks)


# ---- the scenario -------------------------------------------------------------------------------

def canary(platform: Platform, new_version: str, settings: CanarySettings = CanarySettings(),
           name: str = "canary") -> Scenario:
    """The canary of ``new_version`` on the idle colour, stage by stage, promoted or rolled
    back. ValueError (one line) for settings that cannot run, before any traffic moves."""
    settings.validate()
    old = _active(platform)
    new = other(old)
    state = _Canary(platform, old, new, new_version, settings)
    steps: list[Step] = [find_active(platform, old, new, new_version),
                         deploy(platform, new, new_version, settings.new_faults),
                         scale(platform, new, settings.replicas),
                         wait_ready(platform, new, settings.ready_timeout),
                         smoke_test(platform, new, settings.token, settings.verify_timeout,
                                    settings.profile)]
    if state.prometheus:
        steps.append(Step("Prometheus scrapes both versions", state.scraped))
    steps += [Step(f"canary {w}%", state.stage_runner(w)) for w in settings.stages[:-1]]
    steps += [Step(f"promote: switch traffic to {new}", state.promote),
              verify_serves(platform, new, settings.verify_timeout, settings.verify_answers,
                            settings.profile)]
    drain_s = settings.drain_for(platform)
    if drain_s > 0:
        steps.append(drain(old, drain_s))
    steps += [scale(platform, old, 0, verb="scale down"),
              wait_gone(platform, old, settings.ready_timeout),
              Step("canary promoted", state.promoted)]
    return Scenario(name, tuple(steps), on_failure=Step(f"roll back the canary to {old}",
                                                        state.roll_back))


class _Canary:
    """What the stages of one canary share: the facts they record into ``ctx.canary``."""

    def __init__(self, platform: Platform, old: str, new: str, new_version: str,
                 s: CanarySettings) -> None:
        self.platform, self.old, self.new, self.s = platform, old, new, s
        self.new_version = new_version
        self.t0: float | None = None      # the first canary share set: time 0
        self.fault_pending = s.fault is not None
        # judged from Prometheus too when asked and the platform has one
        self.prometheus = s.prometheus and platform.metrics_url is not None

    def scraped(self, ctx: Context) -> None:
        """Before any traffic moves: Prometheus answers, and has scraped every ready replica of
        both versions (a replica it has not scraped yet has no series: its stage would read
        "no data")."""
        answer = self.platform.query_metrics("up")
        if answer.outcome == "error":
            raise StepFailed(f"Prometheus at {self.platform.metrics_url} cannot be asked: "
                             f"{answer.error}")
        for color in (self.old, self.new):
            self.platform.wait_scraped(color, self.s.ready_timeout)
    def _facts(self, ctx: Context) -> dict[str, Any]:
        if ctx.canary is None:
            ctx.canary = {"stable_version": self.platform.deployed_version(self.old) or "",
                          "canary_version": self.new_version, "stages": [],
                          "prometheus": self.platform.metrics_url if self.prometheus else None,
                          "outcome": "running", "t_fault_on": None, "t_detected": None,
                          "t_rolled_back": None}
        return ctx.canary

    def _rel(self, t: float) -> float:
        return round(t - (self.t0 or t), 3)

    def stage_runner(self, weight: int):
        def run(ctx: Context) -> None:
            self.stage(ctx, weight)
        return run

    def stage(self, ctx: Context, weight: int) -> None:
        facts = self._facts(ctx)
        if ctx.live is None:
            raise StepFailed("the canary is judged from the load's ledger as it grows, and this "
                             "load keeps its ledger elsewhere until it stops (--load-from here)")
        # requests with ``canary: true`` reach the canary whatever the weight (the seed's match)
        self.platform.set_weights({self.old: 100 - weight, self.new: weight}, canary=self.new)
        start = time.time()
        if self.t0 is None:  # traffic starts to move: the cutover window opens here
            self.t0 = start
            ctx.switched(start)
        stable_version = facts["stable_version"]
        end = start + self.s.stage_s
        record = {"weight": weight, "t_start": self._rel(start), "t_end": None,
                  "requests": {}, "checks": [], "outcome": "running"}
        facts["stages"].append(record)
        while True:
            now = time.time()
            if self.fault_pending and now >= self.t0 + self.s.fault_after_s:
                self.platform.apply_fault(self.new, dict(self.s.fault or {}))
                ctx.fault_on("canary fault", time.time(), self.new)
                facts["t_fault_on"] = self._rel(time.time())
                self.fault_pending = False
            done = now >= end
            result = analyze(ctx.live.since(start), stable_version, self.new_version, self.s,
                             compare=done)
            critical_failed = [c for c in result.checks[:2] if c.outcome == FAIL]
            if critical_failed or done:
                break
            wake = [end, time.time() + self.s.check_every_s]
            if self.fault_pending:
                wake.append(self.t0 + self.s.fault_after_s)
            time.sleep(max(0.0, min(wake) - time.time()))
        if done and self.prometheus:  # the seed's PromQL over the stage, fixed, beside the ledger
            result = replace(result, checks=result.checks + prometheus_checks(
                self.platform.query_metrics, self.old, self.new, time.time() - start, self.s))
        record.update(t_end=self._rel(time.time()), outcome=result.outcome,
                      requests={"canary": result.canary, "stable": result.stable,
                                "unattributed_failures": result.unattributed_failures},
                      checks=[c.as_dict() for c in result.checks])
        if result.outcome == FAIL:
            facts["t_detected"] = self._rel(time.time())
            raise StepFailed(f"canary failed at {weight}%: "
                             f"{'; '.join(c.detail for c in result.failed)}")
        if result.outcome == NO_DATA:
            facts["t_detected"] = self._rel(time.time())
            missing = [c.detail for c in result.checks if c.outcome == NO_DATA]
            raise StepFailed(f"canary stage {weight}% has no data to judge: {missing[0]}")
        if result.outcome == MARGINAL:
            self.platform.events.emit(Source.SCENARIO, EventName.CANARY_MARGINAL, weight=weight,
                                      checks="; ".join(c.detail for c in result.checks
                                                       if c.outcome == MARGINAL))

    def promote(self, ctx: Context) -> None:
        """Every new connection to the canary (the cutover began at its first share)."""
        if not ctx.has_switched:
            ctx.switched(time.time())
        self.platform.route_to(self.new)

    def promoted(self, ctx: Context) -> None:
        self._facts(ctx)["outcome"] = "promoted"

    def roll_back(self, ctx: Context) -> None:
        """All traffic back to the stable colour, the canary scaled to 0."""
        facts = self._facts(ctx)
        self.platform.route_to(self.old)  # new connections: the stable colour only
        facts["t_rolled_back"] = self._rel(time.time())
        facts["outcome"] = "rolled back"
        if facts["t_fault_on"] is not None:
            ctx.fault_off("canary fault", time.time())
        self.platform.scale(self.new, 0)


__all__ = ["CanarySettings", "canary", "analyze", "critical_checks", "prometheus_checks",
           "DEFAULT_STAGES",
           "PASS", "MARGINAL", "FAIL", "NO_DATA"]
