"""The nightly history (reports/history.py) without any process: the ledger summary, the
directory layout, what a run's context may hold, the comparison with earlier runs (two runs of
one distribution are not flagged, a 30 % slower one and a failing one are, with their size and
confidence; the first run has no history), and the verdict of a steady probe (no switch on
purpose: judged on its answers, not INCONCLUSIVE for a switch that never happened)."""
from __future__ import annotations

import json
import math
import random
from datetime import datetime, timezone

import pytest

from tests.reports.builders import OLD, record
from zerodrop.records.ledger import LedgerRecord
from zerodrop.records.results import DataCheck, LoadTarget, ScenarioFacts
from zerodrop.reports import history as h
from zerodrop.reports.judge import FAIL, MARGINAL, NO_DATA, PASS
from zerodrop.reports.verdict import judge

T0 = 1_700_000_000.0


def ledger(median_ms: float, n: int = 3000, failed_every: int = 0, seed: int = 1,
           route: str = "/api/balance") -> list[LedgerRecord]:
    """``n`` requests whose latencies are log-normal around ``median_ms`` (spread 0.3), every
    ``failed_every``-th one a reset."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        ms = rng.lognormvariate(math.log(median_ms), 0.3)
        bad = failed_every and i % failed_every == 0
        out.append(LedgerRecord(T0 + i / 100, T0 + i / 100 + ms / 1000, "GET", route,
                                0 if bad else 200, "reset" if bad else "ok",
                                "" if bad else OLD, request_id=f"r{i}"))
    return out


def summary(median_ms: float, **kw) -> dict:
    return h.summarize_ledger(ledger(median_ms, **kw))


# -- the ledger summary ------------------------------------------------------------------------
def test_the_summary_counts_failures_and_percentiles_per_route_and_overall():
    records = ledger(100, n=1000, failed_every=50) + ledger(10, n=500, route="/api/payments", seed=2)
    s = h.summarize_ledger(records)
    o = s["overall"]
    assert o["count"] == 1500 and o["failed"] == 20
    assert o["failures_by_outcome"] == {"reset": 20}
    assert set(s["routes"]) == {"GET /api/balance", "GET /api/payments"}
    slow, fast = s["routes"]["GET /api/balance"], s["routes"]["GET /api/payments"]
    assert slow["count"] == 1000 and slow["failed"] == 20 and fast["failed"] == 0
    assert 85 < slow["p50"] < 115 and 8 < fast["p50"] < 12
    assert slow["p50"] <= slow["p95"] <= slow["p99"]
    assert len(o["sample_ms"]) == 1480  # every answered request, below the cap


def test_the_sample_is_bounded_and_the_same_for_the_same_ledger():
    records = ledger(50, n=12_000)
    a = h.summarize_ledger(records, sample_cap=5000)
    b = h.summarize_ledger(records, sample_cap=5000)
    assert len(a["overall"]["sample_ms"]) == 5000
    assert a["overall"]["sample_ms"] == b["overall"]["sample_ms"]
    # a uniform sample: its median is the ledger's, within a few percent
    assert abs(sorted(a["overall"]["sample_ms"])[2500] - a["overall"]["p50"]) < 0.05 * a["overall"]["p50"]


# -- the comparison ----------------------------------------------------------------------------
def test_the_first_run_has_no_history_and_is_no_pass():
    c = h.compare(summary(100), [])
    assert c.outcome == h.NO_HISTORY and c.outcome != PASS
    assert not c.regressed and c.lines[0].startswith("no history yet")


def test_two_runs_of_one_distribution_are_not_flagged():
    """Negative control of the regression below: the same latency and no failures."""
    c = h.compare(summary(100, seed=2), [summary(100, seed=1), summary(100, seed=3)],
                  ["n1", "n3"])
    assert c.outcome in (PASS, MARGINAL) and not c.regressed, c.lines
    assert c.baseline_runs == ("n1", "n3")
    assert c.lines[0].startswith("latency: no regression") or c.lines[0].startswith("latency: marginal")


def test_a_run_30_percent_slower_is_a_regression_with_its_size_and_confidence():
    c = h.compare(summary(130, seed=2), [summary(100, seed=1), summary(100, seed=3)])
    assert c.outcome == FAIL and len(c.regressions) == 1, c.lines
    line = c.regressions[0]
    assert line.startswith("latency regression: median ")
    assert "ms tonight vs" in line and "over the last 2 good runs" in line
    assert "+" in line and "1.3" in line  # the size: ms and the ratio
    assert "Mann-Whitney p=" in line and "confidence >99.99%" in line


def test_a_failing_run_is_an_error_rate_regression_in_percentage_points():
    c = h.compare(summary(100, failed_every=50, seed=2), [summary(100, seed=1)])
    assert c.outcome == FAIL and len(c.regressions) == 1, c.lines
    line = c.regressions[0]
    assert line.startswith("error-rate regression: 2.00% of 3,000 requests failed tonight vs 0.00%")
    assert "+2.00 percentage points" in line and "Fisher p=" in line


def tail_summary(slow_every: int, slow_ms: float, seed: int = 2) -> dict:
    """Latencies around 20 ms, every ``slow_every``-th one taking ``slow_ms`` instead."""
    records = ledger(20, seed=seed)
    if slow_every:
        records = [r if i % slow_every else LedgerRecord(r.t_start, r.t_start + slow_ms / 1000,
                                                         r.method, r.route, 200, "ok", OLD)
                   for i, r in enumerate(records)]
    return h.summarize_ledger(records)


def test_a_slower_tail_is_noted_never_a_regression_by_itself():
    c = h.compare(tail_summary(20, 400), [tail_summary(0, 0, seed=1)])
    assert not c.regressed and c.outcome == MARGINAL, c.lines
    tail = [x for x in c.marginal if x.startswith("latency tail")]
    assert tail and "of 3,000 requests (" in tail[0], c.lines
    assert "slower than the p99 of the last 1 good run" in tail[0]  # its size ...
    assert "p99 400.0 ms tonight; binomial p=" in tail[0]  # ... and its confidence


def test_a_tail_like_the_baseline_is_not_noted():
    """Negative control: the same slow share before and tonight, nothing to note."""
    c = h.compare(tail_summary(20, 400), [tail_summary(20, 400, seed=1)])
    assert not any(x.startswith("latency tail") for x in c.lines), c.lines


def test_too_few_requests_are_no_data_never_a_pass():
    c = h.compare(summary(100, n=20), [summary(100)])
    assert c.outcome == NO_DATA and c.no_data and not c.regressed
    assert all("not a pass" in x for x in c.no_data)


def test_the_baseline_is_the_last_good_runs():
    def run(name, verdict="PASS", regressions=()):
        return h.Run(h.Path(name), {}, {"p": {"verdict": verdict}}, {},
                     {"regressions": list(regressions)})
    runs = [run("a"), run("b", "FAIL"), run("c", regressions=["slow"]), run("d"), run("e")]
    assert [r.name for r in h.baseline(runs, 5)] == ["a", "d", "e"]
    assert [r.name for r in h.baseline(runs, 2)] == ["d", "e"]


# -- the directories -----------------------------------------------------------------------------
def test_each_run_is_a_directory_named_by_time_and_run_id(tmp_path):
    now = datetime(2026, 12, 2, 5, 0, 0, tzinfo=timezone.utc)
    s = summary(100, n=200)
    first = h.store_run(tmp_path, "1202050000ab", {"steady": {"verdict": "PASS"}}, s,
                        {"target": "url (http://x)"}, now=now)
    assert first.path.name == "20261202T050000Z-1202050000ab"
    assert sorted(p.name for p in first.path.iterdir()) == [
        "context.json", "ledger-summary.json", "verdict-steady.json"]
    (first.path / "allure-history.jsonl").write_text('{"uuid": "night-1"}\n')
    h.save_comparison(first, h.compare(s, []))
    second = h.store_run(tmp_path, "1202060000cd", {"steady": {"verdict": "PASS"}}, s, {},
                         now=now.replace(hour=6))
    # Allure's history is carried from the run before into the next one
    assert (second.path / "allure-history.jsonl").read_text() == '{"uuid": "night-1"}\n'
    again = h.store_run(tmp_path, "1202060000cd", {}, s, {}, now=now.replace(hour=6))
    assert again.path.name == "20261202T060000Z-1202060000cd-2"
    assert (again.path / "allure-history.jsonl").read_text() == '{"uuid": "night-1"}\n'
    alone = h.store_run(tmp_path / "other", "x", {}, s, {}, now=now)
    assert not (alone.path / "allure-history.jsonl").exists()  # nothing before: nothing carried
    (tmp_path / "notes").mkdir()  # not a run: ignored
    (tmp_path / "20261202T070000Z-broken").mkdir()  # interrupted: no files, no baseline
    runs = h.load_runs(tmp_path)
    assert [r.name for r in runs] == [first.path.name, second.path.name, again.path.name]
    assert runs[0].comparison["outcome"] == h.NO_HISTORY
    assert runs[0].verdicts == {"steady": {"verdict": "PASS"}}
    assert runs[0].summary["overall"]["count"] == 200


def test_no_secret_reaches_the_history(tmp_path):
    context = {"target": "kubeconfig (/k context staging)", "token": "s3cret-token",
               "admin_token": "adm1n", "kubeconfig": "apiVersion: v1\nusers: [{token: x}]",
               "run_id": "r1", "commit": "abc", "password": "pw", "nested": {"token": "t"}}
    run = h.store_run(tmp_path, "r1", {"p": {"verdict": "PASS"}}, summary(10, n=100), context)
    text = "".join(p.read_text() for p in run.path.iterdir())
    for secret in ("s3cret-token", "adm1n", "apiVersion", "pw\"", "users:"):
        assert secret not in text, secret
    stored = json.loads((run.path / "context.json").read_text())
    assert {"target", "run_id", "commit", "stored"} == set(stored)


# -- the verdict of a steady probe ----------------------------------------------------------------
def steady_records(n: int = 3000, failed_every: int = 0):
    return [record(i / 100, OLD, i=i, outcome="reset" if failed_every and i % failed_every == 0
                   else "ok") for i in range(n)]


def test_a_steady_probe_with_every_request_answered_passes_without_a_switch():
    v = judge(steady_records(), [], ScenarioFacts(steady=True), DataCheck(0), LoadTarget(100, 100))
    assert v.verdict == "PASS", v.reasons
    assert v.reasons[0] == ("steady load, no switch: every one of the 3,000 requests got a "
                            "complete, expected answer")
    d = v.to_dict()
    assert d["steady"] is True and d["switches"] == []
    assert set(d["switch"]) == {"t_switch", "t_first_new", "t_last_old", "window_s"}
    assert all(x is None for x in d["switch"].values())


def test_zero_cutovers_without_steady_stay_inconclusive():
    """Negative control: a switch scenario that never switched is not a steady probe."""
    v = judge(steady_records(), [], ScenarioFacts(), DataCheck(0), LoadTarget(100, 100))
    assert v.verdict == "INCONCLUSIVE"
    assert any("the switch never happened" in r for r in v.reasons), v.reasons
    assert "steady" not in v.to_dict()


def test_a_steady_probe_with_dropped_requests_fails():
    v = judge(steady_records(failed_every=100), [], ScenarioFacts(steady=True), DataCheck(0),
              LoadTarget(100, 100))
    assert v.verdict == "FAIL"
    assert v.reasons[0].startswith("30 connection resets from 0 ms to 29.0 s after the first "
                                   "request (steady load, no switch)"), v.reasons


def test_a_steady_probe_under_short_load_is_inconclusive():
    v = judge(steady_records(), [], ScenarioFacts(steady=True), DataCheck(0), LoadTarget(100, 50))
    assert v.verdict == "INCONCLUSIVE" and "the load reached" in v.reasons[0]


@pytest.mark.parametrize("hold", [0, 0.5, -1])
def test_the_steady_scenario_refuses_a_hold_too_short_to_measure(hold):
    from zerodrop.scenarios.steady import steady
    with pytest.raises(ValueError, match="at least 1 s"):
        steady(hold)
