"""The canary's analysis of one stage (scenarios/canary.py), pure: records in, checks out; its
settings refused in one line; and the ledger read while it grows (load.ledger.LedgerTail)."""
from __future__ import annotations

import random

import pytest

from zerodrop.load.ledger import LedgerTail
from zerodrop.records.ledger import LedgerRecord
from zerodrop.scenarios.canary import (FAIL, MARGINAL, NO_DATA, PASS, CanarySettings, analyze,
                                      critical_checks)


def rec(version: str, ms: float = 10.0, outcome: str = "ok", t: float = 100.0) -> LedgerRecord:
    return LedgerRecord(t_start=t, t_end=t + ms / 1000.0, method="GET", route="/health",
                        status=200 if outcome == "ok" else (500 if outcome == "http_error" else 0),
                        outcome=outcome, version=version)


def sample(version: str, n: int, ms: float, errors: int = 0, seed: int = 1) -> list[LedgerRecord]:
    rng = random.Random(seed)
    out = [rec(version, ms * rng.uniform(0.8, 1.2)) for _ in range(n - errors)]
    return out + [rec(version, ms, "http_error") for _ in range(errors)]


S = CanarySettings(min_requests=50)


@pytest.mark.parametrize("stages, message", [
    ((5, 10, 25, 50), "canary stages must end at 100 (the promotion), got [5, 10, 25, 50]"),
    ((10, 5, 100), "canary stages must grow, got [10, 5, 100]"),
    ((0, 100), "canary stages must be whole percents in 1..100, got [0, 100]"),
    ((50, 101), "canary stages must be whole percents in 1..100, got [50, 101]"),
    ((), "canary stages must be whole percents in 1..100, got []"),
])
def test_stages_that_cannot_run_are_one_line(stages, message):
    with pytest.raises(ValueError) as err:
        CanarySettings(stages=stages).validate()
    assert str(err.value) == message


def test_a_healthy_stage_passes_every_check():
    a = analyze(sample("v1", 500, 10) + sample("v2", 100, 10, seed=2), "v1", "v2", S)
    assert (a.canary, a.stable) == (100, 500)
    assert [c.outcome for c in a.checks] == [PASS, PASS, PASS, PASS] and a.outcome == PASS


def test_the_thresholds_are_no_data_below_the_minimum_never_a_pass():
    """Three canary requests, one failed: the seed would have read 33 % (or, from an empty
    Prometheus answer, 0.0 and a pass); here it is not judged yet."""
    checks = critical_checks(sample("v2", 3, 10, errors=1), S)
    assert [c.outcome for c in checks] == [NO_DATA, NO_DATA]
    assert checks[0].detail == "error rate: no data (3 canary requests, at least 50 are needed)"


def test_an_error_rate_above_the_limit_fails_with_its_numbers():
    checks = critical_checks(sample("v2", 100, 10, errors=8), S)
    assert checks[0].outcome == FAIL and checks[0].value == pytest.approx(0.08)
    assert checks[0].detail == ("canary error rate 8.00% (8 of 100), limit 1.00%: above it with "
                                "confidence (p=8.2e-06)")


@pytest.mark.parametrize("errors, outcome", [(1, PASS), (3, PASS), (4, MARGINAL), (5, FAIL)])
def test_a_few_unlucky_errors_in_a_small_stage_are_not_a_failure(errors, outcome):
    """1 of 100 is at the 1 % limit and 3 of 100 (p = 0.08) could come from a version at it;
    the seed's bare threshold failed both. 5 of 100 (p = 0.003) could not."""
    assert critical_checks(sample("v2", 100, 10, errors=errors), S)[0].outcome == outcome


def test_two_slow_answers_do_not_make_a_p99_but_many_do():
    two = sample("v2", 98, 10) + sample("v2", 2, 900)
    assert critical_checks(two, S)[1].outcome == PASS  # p = 0.26 at a true 1 %
    assert critical_checks(two, S)[1].value == pytest.approx(900, rel=0.25)  # yet p99 is 900 ms
    many = sample("v2", 90, 10) + sample("v2", 10, 900)
    assert critical_checks(many, S)[1].outcome == FAIL


def test_a_slow_canary_fails_its_p99():
    checks = critical_checks(sample("v2", 100, 700), S)
    assert checks[1].outcome == FAIL and checks[1].detail.startswith("canary p99 ")


def test_errors_against_a_stable_version_without_any_are_compared_meaningfully():
    """1 % canary errors (at the seed's threshold, so the thresholds pass) against a stable
    version at 0 %: the seed's relative rule (canary > 2 x stable = 0) fails on any error;
    Fisher's test fails 10 of 1,000 against 0 of 4,000, and passes 1 of 1,000."""
    many = analyze(sample("v1", 4000, 10) + sample("v2", 1000, 10, errors=10), "v1", "v2", S)
    assert many.checks[0].outcome == PASS and many.checks[2].outcome == FAIL
    one = analyze(sample("v1", 4000, 10) + sample("v2", 1000, 10, errors=1), "v1", "v2", S)
    assert one.checks[2].outcome == PASS


def test_failures_without_an_answer_are_counted_apart():
    records = sample("v1", 100, 10) + sample("v2", 100, 10) + [rec("", outcome="reset")] * 4
    assert analyze(records, "v1", "v2", S).unattributed_failures == 4


def test_the_tail_reads_whole_lines_only_and_resumes(tmp_path):
    path = tmp_path / "ledger-standalone-1.jsonl"
    first, second = rec("v1", t=1.0), rec("v2", t=2.0)
    path.write_text(first.to_json() + "\n" + second.to_json()[:20])  # a line being appended
    tail = LedgerTail(tmp_path)
    assert tail.read() == [first]
    with open(path, "a") as f:
        f.write(second.to_json()[20:] + "\n")
    (tmp_path / "ledger-worker-2.jsonl").write_text(rec("v2", t=3.0).to_json() + "\n")
    assert [r.t_start for r in tail.read()] == [2.0, 3.0]
    assert [r.t_start for r in tail.since(2.0)] == [2.0, 3.0] and tail.read() == []


# ---- the Prometheus checks: Prometheus' own answer bodies, classified as the platform does ----

def vector(value: str | None) -> dict:
    """A /api/v1/query body: one sample of ``value`` ("NaN" allowed), or an empty result."""
    result = [] if value is None else [{"metric": {}, "value": [1.0, value]}]
    return {"status": "success", "data": {"resultType": "vector", "result": result}}


def kind_of(promql: str) -> str:
    """Which of queries.py's builders made this PromQL."""
    if "histogram_quantile" in promql:
        return "p99"
    if "_count" in promql:
        return "slow"
    if "* 100" in promql:
        return "rate"
    return "errors" if "5.." in promql else "requests"


def asker(canary_err, stable_err, canary_p99, stable_p99, n="200", slow="0", stable_slow="0"):
    """A query function answering the fixed PromQL of queries.py by what it asks for (the
    version matcher and the builder), from real Prometheus answer bodies: canary_err and
    stable_err are error rates in %, ``n`` the canary's requests, ``slow`` how many of them
    were slower than the p99 limit's bucket (the error count follows from n and the rate)."""
    from zerodrop.platforms.local.prometheus import classify
    asked = []

    def query(promql: str):
        asked.append(promql)
        canary, kind = 'version="green"' in promql, kind_of(promql)
        if kind == "p99":
            body = canary_p99 if canary else stable_p99
        elif kind == "rate":
            body = canary_err if canary else stable_err
        elif kind == "requests":
            body = n
        elif kind == "errors":
            body = None if canary_err is None else str(float(canary_err) / 100 * float(n))
        else:
            body = slow if canary else stable_slow
        return classify(promql, body if isinstance(body, dict) else vector(body))
    return query, asked


def prom(*answers, n="200", slow="0", stable_slow="0", **settings):
    from zerodrop.scenarios.canary import prometheus_checks
    query, asked = asker(*answers, n=n, slow=slow, stable_slow=stable_slow)
    checks = prometheus_checks(query, "blue", "green", 4.2, CanarySettings(**settings))
    return {c.name: c for c in checks}, asked


def test_prometheus_checks_pass_a_healthy_canary_and_ask_the_fixed_queries_over_the_stage():
    checks, asked = prom("0", "0", "12", "10")
    assert [c.outcome for c in checks.values()] == [PASS] * 4
    assert all("[4s]" in q and 'route!~' in q for q in asked), asked  # 4.2 s -> 4 s, no probes
    assert checks["prometheus errors vs stable"].value == 0.0
    assert any('le="0.5"' in q for q in asked), asked  # the 500 ms limit's bucket


def test_no_data_nan_and_query_errors_are_no_data_never_a_pass():
    error = {"status": "error", "errorType": "bad_data", "error": "parse error at char 3"}
    checks, _ = prom(None, "0", "NaN", error)
    assert checks["prometheus error rate"].outcome == NO_DATA
    assert "no data" in checks["prometheus error rate"].detail
    assert checks["prometheus errors vs stable"].outcome == NO_DATA
    assert checks["prometheus p99"].outcome == NO_DATA
    assert checks["prometheus p99 vs stable"].outcome == NO_DATA
    assert "query error: parse error at char 3" in checks["prometheus p99 vs stable"].detail


def test_errors_against_a_stable_version_without_any_are_judged_by_points_not_by_a_ratio():
    # the seed's "twice the stable rate" fails any error when stable has none; points do not
    checks, _ = prom("0.5", "0", "12", "10")
    assert checks["prometheus errors vs stable"].outcome == PASS
    checks, _ = prom("4", "0", "12", "10")  # 8 of 200: above 1 % with confidence
    assert checks["prometheus error rate"].outcome == FAIL
    assert checks["prometheus errors vs stable"].outcome == FAIL
    assert checks["prometheus errors vs stable"].detail == (
        "Prometheus canary error rate 4.00% vs stable 0.00% (+4.00 points, limit +1.00)")
    checks, _ = prom("1.5", "0", "12", "10")  # 3 of 200 could come from a version at 1 %
    assert checks["prometheus error rate"].outcome == PASS


def test_p99_absolute_and_relative_limits():
    checks, _ = prom("0", "0", "90", "10")   # 9x, but under the 100 ms floor: a busy machine
    assert checks["prometheus p99 vs stable"].outcome == PASS
    checks, _ = prom("0", "0", "450", "100")  # 4.5x and +350 ms; under the 500 ms limit
    assert checks["prometheus p99"].outcome == PASS
    assert checks["prometheus p99 vs stable"].outcome == FAIL
    checks, _ = prom("0", "0", "2500", "2400", slow="150")
    assert checks["prometheus p99"].outcome == FAIL
    assert checks["prometheus p99 vs stable"].outcome == PASS
    checks, _ = prom("0", "0", "2500", "2400", slow="150", stable_slow="140")  # both slow
    assert checks["prometheus p99"].outcome == MARGINAL
    checks, _ = prom("0", "0", "700", "20", slow="2")  # two slow answers make a p99 ...
    assert checks["prometheus p99"].outcome == PASS    # ... but not a slow version
    assert checks["prometheus p99 vs stable"].outcome == FAIL


def test_a_p99_over_the_limit_in_both_versions_is_the_environments_not_the_canarys():
    """A shared database or a busy node slows both versions alike: the canary is no worse, and
    rolling back would not help. The limit is then marginal; the comparison decides."""
    slow_canary = sample("v2", 90, 10) + sample("v2", 10, 900)
    alone = critical_checks(slow_canary, S, sample("v1", 200, 10))
    assert alone[1].outcome == FAIL
    both = critical_checks(slow_canary, S, sample("v1", 180, 10) + sample("v1", 20, 900, seed=2))
    assert both[1].outcome == MARGINAL and "the stable version is as far over it" in both[1].detail
