"""The game day's verdict (reports/gameday.py) and report (reports/gameday_report.py), pure:
ledger records in, verdict out. Each expectation has a case that holds and one that breaks
it, so that no check can pass without looking."""
from __future__ import annotations

import json

import pytest

from zerodrop.records.ledger import LedgerRecord
from zerodrop.reports.gameday import (ABORTED, FAIL, INCONCLUSIVE, PASS, Expected, Hypothesis,
                                      judge_experiment, steady_state, window_stats)
from zerodrop.reports.gameday_report import impact_by_population, report_data, write_gameday

HYP = Hypothesis()
WINDOWS = [("before", 0.0, 10.0), ("during", 10.0, 20.0), ("after", 20.0, 30.0)]
DATA_OK = {"acknowledged": 10, "lost": 0, "error": ""}


def rec(t: float, outcome: str = "ok", version: str = "v1.0.0", ms: float = 10.0,
        population: str = "keepalive") -> LedgerRecord:
    return LedgerRecord(t_start=t, t_end=t + ms / 1000.0, method="GET", route="/api/balance",
                        status=200 if outcome == "ok" else 0, outcome=outcome,
                        version=version if outcome == "ok" else "", population=population)


def steady(t0: float, t1: float, n: int = 200, **kw) -> list[LedgerRecord]:
    return [rec(t0 + (t1 - t0) * i / n, **kw) for i in range(n)]


def judged(records, expected=Expected(), **kw):
    stats = window_stats(records, WINDOWS, HYP.slow_ms)
    kw.setdefault("switch", "completed")
    kw.setdefault("data", DATA_OK)
    return judge_experiment("x", expected, HYP, stats, new_version="v1.2.0", **kw)


def healthy_run(new_during: bool = True) -> list[LedgerRecord]:
    rs = steady(0, 10) + steady(10, 15) + steady(20, 30, version="v1.2.0")
    if new_during:
        rs += steady(15, 20, version="v1.2.0")
    return rs


def test_a_healthy_run_passes_with_every_check_held():
    v = judged(healthy_run())
    assert v.verdict == PASS, v.reasons
    assert all(c.held for c in v.checks)
    assert {c.name for c in v.checks} >= {"steady state before the method", "the switch",
                                           "failures while the method ran",
                                           "steady state after the rollbacks",
                                           "no acknowledged write lost", "every fault removed"}


def test_failures_over_the_budget_fail_and_are_named_with_examples():
    rs = healthy_run() + [rec(12.0 + i / 100, outcome="reset") for i in range(3)]
    v = judged(rs, Expected(max_failed=2))
    assert v.verdict == FAIL
    assert any("failures while the method ran" in r and "3 of" in r and "reset" in r
               for r in v.reasons), v.reasons
    assert judged(rs, Expected(max_failed=3)).verdict == PASS


def test_failures_within_budget_but_far_from_any_fault_fail():
    rs = healthy_run() + [rec(12.0, outcome="reset"), rec(18.5, outcome="reset")]
    exp = Expected(max_failed=10, failures_within_s=1.0)
    v = judged(rs, exp, fault_starts=[11.8])
    assert v.verdict == FAIL
    assert any("1 of them not within 1 s of a fault" in r for r in v.reasons), v.reasons
    assert judged(rs, exp, fault_starts=[11.8, 18.0]).verdict == PASS


def test_the_switch_must_end_as_expected():
    v = judged(healthy_run(), Expected(switch="aborted", new_served=True),
               method_failure="step 'wait for green ready' failed")
    assert v.verdict == FAIL and any("the switch: expected aborted; observed completed" in r
                                     for r in v.reasons), v.reasons
    ok = judged(healthy_run(), Expected(switch="aborted"), switch="aborted")
    assert ok.verdict == PASS, ok.reasons


def test_a_new_version_that_must_not_serve_is_caught_by_one_request():
    rs = steady(0, 10) + steady(10, 20) + steady(20, 30) + [rec(15.0, version="v1.2.0")]
    v = judged(rs, Expected(switch="aborted", new_served=False), switch="aborted")
    assert v.verdict == FAIL
    assert any("1 requests answered by v1.2.0" in r for r in v.reasons), v.reasons
    clean = steady(0, 10) + steady(10, 20) + steady(20, 30)
    assert judged(clean, Expected(switch="aborted", new_served=False),
                  switch="aborted").verdict == PASS


def test_the_steady_state_after_must_hold_again():
    rs = steady(0, 20) + steady(20, 30, outcome="http_error")
    v = judged(rs)
    assert v.verdict == FAIL
    assert any(r.startswith("steady state after the rollbacks") for r in v.reasons), v.reasons


def test_latency_during_counts_unless_the_experiment_allows_it():
    rs = steady(0, 10) + steady(10, 20, ms=1500.0) + steady(20, 30)
    assert judged(rs).verdict == FAIL
    assert judged(rs, Expected(latency_held=False)).verdict == PASS


def test_one_slow_or_failed_request_is_not_a_broken_hypothesis_but_a_stream_is():
    one = steady(0, 10) + [rec(5.0, ms=3000.0), rec(5.1, outcome="reset")]
    w = window_stats(one, [("before", 0, 10)], HYP.slow_ms)["before"]
    assert steady_state(w, HYP, "s").held is True
    many = steady(0, 10) + [rec(5.0 + i / 100, outcome="reset") for i in range(20)]
    w = window_stats(many, [("before", 0, 10)], HYP.slow_ms)["before"]
    assert steady_state(w, HYP, "s").held is False


def test_too_few_requests_cannot_be_judged_never_a_pass():
    rs = steady(0, 10, n=5) + steady(10, 20) + steady(20, 30)
    v = judged(rs)
    assert v.verdict == INCONCLUSIVE
    assert any("fewer than the 30" in r for r in v.reasons), v.reasons


def test_a_lost_write_or_an_unremoved_fault_fails_and_an_unrun_data_check_is_inconclusive():
    assert judged(healthy_run(), data={"acknowledged": 5, "lost": 1}).verdict == FAIL
    assert judged(healthy_run(), removal_errors=["latency on green: refused"]).verdict == FAIL
    assert judged(healthy_run(), data={"error": "service down"}).verdict == INCONCLUSIVE
    assert judged(healthy_run(), data=None).verdict == INCONCLUSIVE


def test_aborted_before_the_method_says_why_and_that_nothing_was_touched():
    v = judged(steady(0, 10, outcome="http_error"), aborted_before="200 of 200 failed")
    assert v.verdict == ABORTED and v.switch == "not run"
    assert "nothing was touched" in v.reasons[0]


def test_the_report_renders_json_and_html_with_faults_and_populations(tmp_path):
    rs = healthy_run() + [rec(12.0, outcome="reset", population="fresh")]
    stats = window_stats(rs, WINDOWS, HYP.slow_ms)
    v = judge_experiment("demo", Expected(max_failed=5), HYP, stats, switch="completed",
                         new_version="v1.2.0", data=DATA_OK)
    impact = impact_by_population(rs, 0.0)
    assert impact["fresh"]["failed"][12] == 1 and sum(impact["keepalive"]["ok"]) == 800
    data = report_data(v, {"title": "t", "expected": Expected().describe()}, stats, impact,
                       [{"name": "sigkill on blue", "target": "blue", "t_start": 11.9,
                         "t_end": 11.9}], [{"t": 10.0, "name": "switch traffic to green"}], 0.0)
    paths = write_gameday(data, tmp_path)
    doc = json.loads(paths["json"].read_text())
    assert doc["verdict"] == PASS and doc["windows"]["during"]["failed"] == 1
    page = paths["html"].read_text()
    assert "sigkill on blue" in page and "<svg" in page and "fresh" in page
    assert "1 failed at 12 s" in page


def test_expected_refuses_an_unknown_switch_outcome():
    with pytest.raises(ValueError, match="completed, aborted, rolled back"):
        Expected(switch="maybe")


def test_a_keepalive_race_is_a_note_as_in_the_switch_verdict_not_a_failure():
    rs = healthy_run() + [rec(12.0, outcome="keepalive_race", population="idle")]
    v = judged(rs)
    assert v.verdict == PASS, v.reasons
    during = next(c for c in v.checks if c.name == "failures while the method ran")
    assert "1 keep-alive race" in during.observed
    stats = window_stats(rs, WINDOWS, HYP.slow_ms, races_fail=True)
    strict = judge_experiment("x", Expected(), HYP, stats, switch="completed",
                              new_version="v1.2.0", data=DATA_OK)
    assert strict.verdict == FAIL


def test_a_kill_that_met_no_request_proves_nothing():
    """A kill aimed at a replica that served nothing in the second before it cannot show that
    a kill is survived: not measured, never a pass."""
    idle = judged(healthy_run(), hits=[{"replica": "blue-0", "requests": 0}])
    assert idle.verdict == INCONCLUSIVE
    assert any("the fault met traffic" in r and "blue-0: 0 requests" in r for r in idle.reasons)
    busy = judged(healthy_run(), hits=[{"replica": "blue-1", "requests": 40}])
    assert busy.verdict == PASS


def test_a_readiness_flap_the_platform_never_acted_on_proves_nothing():
    idle = judged(healthy_run(), flaps=[{"replica": "blue-0", "unready": 0}])
    assert idle.verdict == INCONCLUSIVE
    assert any("the readiness flapped" in r and "taken out 0 times" in r for r in idle.reasons)
    assert judged(healthy_run(), flaps=[{"replica": "blue-0", "unready": 3}]).verdict == PASS
