"""Every rule of the verdict, on ledgers built in code (no process runs)."""
from __future__ import annotations

import json
import re
from dataclasses import replace

import pytest

from zerodrop.records.events import Event
from zerodrop.records.results import DataCheck, LoadTarget
from zerodrop.reports.allure_evidence import CUTOVER_RE
from zerodrop.reports.verdict import FAIL, INCONCLUSIVE, PASS, Policy, judge

from .builders import (DRAINED_AT, NEW, OLD, SWITCH_AT, T0, clean, cutover, good_data,
                       good_load, record, timeline, with_failures)


def run(records=None, *, cut=None, data=None, load=None, policy=Policy(), events=None):
    return judge(clean() if records is None else records,
                 timeline() if events is None else events,
                 cut or cutover(), data or good_data(), load or good_load(), policy,
                 scenario="switch")


# ---------------------------------------------------------------- PASS


def test_clean_switch_passes_with_the_rule_of_three_bound():
    v = run()
    assert v.verdict == PASS, v.summary()
    assert v.requests_total == 3000 and v.requests_failed == 0
    assert v.bound_95["failure_rate_upper"] == pytest.approx(1 - 0.05 ** (1 / 3000))
    assert v.bound_95["failure_rate_upper"] == pytest.approx(0.000998, abs=1e-6)
    assert v.figures == ["0 of 3,000 requests failed; 95% upper bound on the failure rate: 0.1%"]
    assert v.reasons[0].startswith("cutover seen: old version 1.0.0 answered until")
    assert v.reasons[1].startswith("no data lost: all 1,200 acknowledged payments found")
    assert not any("upper bound" in r or "confidence" in r for r in v.reasons)
    assert v.served_by_version == {OLD: 1250, NEW: 1750}
    assert v.requests_in_window == 501  # t in [10.00, 15.00], both ends included
    assert v.failure_classes == []


def test_pass_reason_rounds_the_bound_up_never_down():
    v = run(clean(seconds=123.45))
    assert v.requests_total == 12345
    # 1 - 0.05**(1/12345) = 0.024264%: "below 0.024%" would claim more than the data shows
    assert v.figures == ["0 of 12,345 requests failed; 95% upper bound on the failure rate: "
                         "0.025%"]


def test_switch_facts_first_new_last_old_window():
    v = run()
    s = v.switch
    assert s["t_switch"] == T0 + SWITCH_AT
    # the first request started at 10.00 s is even -> new; answered 5 ms later
    assert s["t_first_new"] == pytest.approx(T0 + SWITCH_AT + 0.005)
    # last old: i odd, t <= 15.00 -> 14.99 s, answered at 14.995 s
    assert s["t_last_old"] == pytest.approx(T0 + 14.995)
    assert s["window_s"] == pytest.approx(4.995)


# ---------------------------------------------------------------- dropped requests


def test_one_in_n_500s_are_counted_exactly_and_attributed():
    # every 37th request from 12.0 s on is a 500 from blue
    recs = with_failures(clean(), lambda i, r: i >= 1200 and i % 37 == 0,
                         outcome="http_error", status=500)
    v = run(recs)
    expected = sum(1 for i in range(1200, 3000) if i % 37 == 0)
    assert v.verdict == FAIL
    assert v.requests_failed == expected == 49
    assert v.failures_by_outcome == {"http_error": expected}
    [cls] = v.failure_classes
    assert (cls.outcome, cls.status, cls.count) == ("http_error", 500, expected)
    assert cls.first_t == pytest.approx(T0 + 12.21)   # i = 1221
    assert cls.last_t == pytest.approx(T0 + 29.97)    # i = 2997
    assert cls.after_event == "replica terminating"
    assert cls.after_s == pytest.approx(0.11)
    assert v.reasons[0] == ("49 HTTP 500 answers from 0.1 s to 17.9 s after 'replica "
                            "terminating' (color blue, replica blue-0), on GET /api/balance "
                            "(green 45, blue 4)")


def test_reset_burst_after_scale_down_blue():
    # 412 requests between 12.01 s and 12.09 s... spread: 30 s at 100 rps has one request per
    # 10 ms, so the burst takes every request in [12.00 s, 12.10 s) of 1,000 rps instead
    burst = [record(12.0 + k * 0.0002, NEW, outcome="reset", i=k) for k in range(412)]
    recs = list(clean()) + burst
    v = run(recs)
    assert v.verdict == FAIL
    [cls] = v.failure_classes
    assert (cls.outcome, cls.status, cls.count) == ("reset", 0, 412)
    assert cls.after_event == "scale down blue"
    assert cls.first_t == pytest.approx(T0 + 12.0)
    assert cls.last_t == pytest.approx(T0 + 12.0 + 411 * 0.0002)
    assert v.reasons[0] == ("412 connection resets from 0 ms to 82 ms after 'scale down blue' "
                            "(color blue), on GET /api/balance (colour unknown: no answer)")


def test_an_in_flight_request_cut_by_an_event_is_placed_after_that_event():
    """Started 0.2 s before 'scale down blue', reset 50 ms after it: the scale-down cut it."""
    cut = record(11.8, OLD, outcome="reset", latency_s=0.25, i=1)
    [cls] = run(list(clean()) + [cut]).failure_classes
    assert cls.after_event == "scale down blue"
    assert cls.first_t == pytest.approx(T0 + 12.05)


def test_a_timeout_is_placed_where_it_went_unanswered():
    """A timeout's end is only the client's deadline: it counts from when it was sent."""
    lost = record(11.5, OLD, outcome="timeout", latency_s=5.0, i=1)
    [cls] = run(list(clean()) + [lost]).failure_classes
    assert cls.after_event == "selector patched"
    assert cls.first_t == pytest.approx(T0 + 11.5)


def test_each_failure_class_has_its_own_reason_count_and_event():
    recs = list(clean())
    recs += [record(11.0, outcome="refused", i=1), record(11.5, outcome="refused", i=2)]
    recs += [record(13.0, outcome="timeout", i=3, latency_s=5.0)]
    recs += [record(3.0, outcome="bad_body", status=200, i=4)]
    recs += [record(20.0, outcome="http_error", status=503, i=5),
             record(21.0, outcome="http_error", status=502, i=6)]
    v = run(recs)
    assert v.verdict == FAIL
    got = {(c.outcome, c.status): (c.count, c.after_event) for c in v.failure_classes}
    assert got == {
        ("bad_body", 200): (1, "deploy green"),
        ("refused", 0): (2, "selector patched"),
        ("timeout", 0): (1, "replica terminating"),
        ("http_error", 503): (1, "replica terminated"),
        ("http_error", 502): (1, "replica terminated"),
    }
    assert v.failures_by_outcome == {"bad_body": 1, "http_error": 2, "refused": 2, "timeout": 1}
    assert v.requests_failed == 6
    text = "\n".join(v.reasons)
    assert "1 bad or incomplete body at 1.0 s after 'deploy green'" in text
    assert "2 connections refused from 1.0 s to 1.5 s after 'selector patched'" in text
    assert "1 timeout at 0.9 s after 'replica terminating'" in text
    assert "1 HTTP 503 answer at 5.0 s after 'replica terminated'" in text
    assert "1 HTTP 502 answer at 6.0 s after 'replica terminated'" in text


def test_failure_before_any_event_is_placed_after_the_first_request():
    recs = list(clean())
    recs.append(record(0.5, outcome="reset", i=1))
    v = run(recs, events=[Event(T0 + 5, "scenario", "deploy green", {})])
    [cls] = v.failure_classes
    assert cls.after_event is None and cls.after_s is None
    assert ("1 connection reset at 0.5 s after the first request, before the switch, on GET "
            "/api/balance (colour unknown: no answer)") in v.reasons


def test_event_at_the_same_instant_as_the_failure_counts_as_before_it():
    recs = list(clean())
    recs.append(record(SWITCH_AT, outcome="refused", i=1))
    v = run(recs)
    assert v.failure_classes[0].after_event == "selector patched"
    assert v.failure_classes[0].after_s == 0


def test_failure_bound_uses_clopper_pearson_with_failures():
    recs = with_failures(clean(), lambda i, r: i in (100, 2000), outcome="reset")
    v = run(recs)
    assert v.verdict == FAIL
    assert v.bound_95["failure_rate_upper"] == pytest.approx(0.002096, abs=2e-6)
    assert v.figures == ["2 of 3,000 requests failed (0.067%); 95% upper bound on the failure "
                         "rate: 0.21%"]
    assert not any("upper bound" in r or "confidence" in r for r in v.reasons)  # not an excuse
    assert v.summary().endswith("\nfigures: 2 of 3,000 requests failed (0.067%); 95% upper "
                                "bound on the failure rate: 0.21%")


# ---------------------------------------------------------------- versions and the cutover


def test_old_version_answering_after_the_drain_fails():
    recs = with_failures(clean(), lambda i, r: i in (1600, 1700, 2500), version=OLD,
                         replica="blue-1")
    v = run(recs)
    assert v.verdict == FAIL
    assert v.reasons[0] == ("cutover: 3 requests that started after the old colour drained were "
                            "answered by old version 1.0.0 (e.g. replica blue-1, started 1.0 s "
                            "after the drain)")
    assert v.switch["t_last_old"] == pytest.approx(T0 + 25.005)


def test_new_version_answering_before_the_switch_fails():
    recs = with_failures(clean(), lambda i, r: i == 950, version=NEW, replica="green-1")
    v = run(recs)
    assert v.verdict == FAIL
    assert v.reasons[0] == ("cutover: 1 request that started before the switch was answered by "
                            "new version 1.1.0 (e.g. replica green-1, started 0.5 s before the "
                            "switch)")


def test_unknown_version_fails():
    recs = with_failures(clean(), lambda i, r: i % 500 == 7, version="0.9.9", replica="rogue-0")
    v = run(recs)
    assert v.verdict == FAIL
    assert v.served_by_version["0.9.9"] == 6
    assert v.reasons[0] == ("unknown version: 6 answers came from version '0.9.9' (e.g. replica "
                            "rogue-0), neither old 1.0.0 nor new 1.1.0")


def test_ok_answer_without_a_version_header_is_an_unknown_version():
    recs = with_failures(clean(), lambda i, r: i == 42, version="")
    v = run(recs)
    assert v.verdict == FAIL
    assert v.served_by_version["(none)"] == 1
    assert v.reasons[0].startswith("unknown version: 1 answer came without a version header")


def test_new_version_never_answering_after_the_switch_fails():
    recs = (record(i / 100, OLD, i=i) for i in range(3000))
    v = run(recs, cut=cutover(drained=None))
    assert v.verdict == FAIL
    assert ("cutover: new version 1.1.0 answered none of the 2,000 requests answered after the "
            "switch") in v.reasons


# ---------------------------------------------------------------- data


def test_missing_payments_are_data_loss_with_capped_examples():
    missing = [f"pay_{k}" for k in range(7)]
    v = run(data=DataCheck(acknowledged=1200, missing=missing))
    assert v.verdict == FAIL
    assert v.reasons[0] == ("data loss: 7 of 1,200 acknowledged payments are missing: pay_0, "
                            "pay_1, pay_2, pay_3, pay_4, ... (2 more)")
    assert v.integrity == {"acknowledged": 1200, "missing": 7, "mismatched": 0, "duplicated": 0,
                           "not_found_by_key": 0, "key_leads_elsewhere": 0,
                           "keys_unchecked": 0, "keys_answered_twice": 0}


def test_mismatched_amounts_are_data_loss():
    v = run(data=DataCheck(acknowledged=1200, mismatched=["pay_x"]))
    assert v.verdict == FAIL
    assert v.reasons[0] == ("data loss: 1 of 1,200 acknowledged payments came back with another "
                            "amount: pay_x")


def test_duplicated_keys_are_data_loss():
    v = run(data=DataCheck(acknowledged=1200, duplicated_keys=["key-a", "key-b"]))
    assert v.verdict == FAIL
    assert v.reasons[0] == ("data loss: 2 idempotency keys produced more than one payment: "
                            "key-a, key-b")
    assert v.integrity["duplicated"] == 2


def test_an_acknowledged_payment_its_key_cannot_find_is_data_loss():
    """An empty lookup by key for an acknowledged key is a payment the key cannot find (a
    service that ignores Idempotency-Key), never "no key paid twice"."""
    v = run(data=DataCheck(acknowledged=1200, not_found_by_key=["pay_a", "pay_b"]))
    assert v.verdict == FAIL
    assert v.reasons[0] == ("data loss: 2 of 1,200 acknowledged payments cannot be found by the "
                            "Idempotency-Key they were created with (the lookup by key returned "
                            "nothing): pay_a, pay_b")
    assert v.integrity["not_found_by_key"] == 2


def test_a_key_that_leads_to_another_payment_is_data_loss():
    v = run(data=DataCheck(acknowledged=1200, key_leads_elsewhere=["key-a"]))
    assert v.verdict == FAIL
    assert v.reasons[0] == ("data loss: 1 idempotency key leads to another payment than the one "
                            "acknowledged for it: key-a")


def test_a_replay_answered_with_another_payment_is_data_loss():
    v = run(data=DataCheck(acknowledged=1200, keys_answered_twice=["key-a"]))
    assert v.verdict == FAIL
    assert v.reasons[0] == ("data loss: 1 idempotency key was answered with more than one "
                            "payment id (a replay with the same key got another payment): key-a")


def test_keys_the_check_did_not_look_up_are_inconclusive_never_a_pass():
    v = run(data=DataCheck(acknowledged=1200, keys_unchecked=3))
    assert v.verdict == INCONCLUSIVE
    assert ("inconclusive: 3 idempotency keys sent in this run were not looked up (the data "
            "check's bound), so no claim is made about them") in v.reasons


# ---------------------------------------------------------------- INCONCLUSIVE


@pytest.mark.parametrize("load, expected", [
    (LoadTarget(100.0, 80.0),
     "inconclusive: the load reached 80.0 req/s of the 100.0 targeted (80%; the policy needs "
     "90%)"),
    (LoadTarget(100.0, 99.0, saturated=True, detail="locust at 100% CPU"),
     "inconclusive: the load generator could not keep its schedule (its own CPU), so its "
     "timings and rate are suspect: locust at 100% CPU"),
    (LoadTarget(100.0, 99.0, saturated=True, detail="50 of 1,000 never sent", shortfall="cap"),
     "inconclusive: the load generator could not keep its schedule (its concurrency cap), so "
     "its timings and rate are suspect: 50 of 1,000 never sent"),
])
def test_short_or_saturated_load_is_inconclusive(load, expected):
    v = run(load=load)
    assert v.verdict == INCONCLUSIVE
    assert v.reasons[0] == expected
    assert v.figures[0].startswith("0 of 3,000 requests failed")


def test_load_at_exactly_the_policy_fraction_passes():
    assert run(load=LoadTarget(100.0, 90.0)).verdict == PASS


def test_too_few_requests_in_the_switch_window_is_inconclusive():
    # 10 rps: 51 requests in [10 s, 15 s] -> passes at 50, inconclusive at 60
    assert run(clean(rps=10)).verdict == PASS
    v = run(clean(rps=10), policy=Policy(min_requests_in_window=60))
    assert v.verdict == INCONCLUSIVE
    assert v.reasons[0] == ("inconclusive: only 51 requests started within the switch window "
                            "(5.0 s); the policy needs 60")


def test_no_switch_is_inconclusive():
    v = run((record(i / 100, OLD, i=i) for i in range(3000)),
            cut=cutover(switch=None, drained=None))
    assert v.verdict == INCONCLUSIVE
    assert v.reasons[0] == ("inconclusive: the switch never happened (the scenario reported no "
                            "t_switch)")
    assert v.switch["window_s"] is None
    assert v.latency_ms["during"] == {"p50": None, "p99": None}


def test_data_check_error_is_inconclusive():
    v = run(data=DataCheck(acknowledged=0, error="database unreachable: connection refused"))
    assert v.verdict == INCONCLUSIVE
    assert v.reasons[0] == ("inconclusive: the data check could not run: database unreachable: "
                            "connection refused")


def test_no_records_is_inconclusive_not_pass():
    v = run(iter(()))
    assert v.verdict == INCONCLUSIVE
    assert "inconclusive: the ledger holds no request" in v.reasons
    assert v.bound_95["failure_rate_upper"] is None
    assert v.latency_ms == {p: {"p50": None, "p99": None} for p in ("before", "during", "after")}
    assert v.series.seconds == [] and v.series.t0 is None


def test_failures_under_short_load_are_a_fail_and_keep_the_load_reason():
    recs = with_failures(clean(), lambda i, r: i == 1300, outcome="reset")
    v = run(recs, load=LoadTarget(100.0, 50.0))
    assert v.verdict == FAIL
    assert v.reasons[0].startswith("1 connection reset at ")
    assert any(r.startswith("inconclusive: the load reached 50.0 req/s") for r in v.reasons)


# ---------------------------------------------------------------- latency


def test_latency_phases_by_start_time_over_ok_requests():
    def recs():
        for i in range(3000):
            t = i / 100
            lat = 0.010 if t < SWITCH_AT else (0.100 if t <= DRAINED_AT else 0.020)
            yield record(t, latency_s=lat, i=i)
        yield record(20.0, outcome="timeout", latency_s=30.0, i=1)  # not an ok request
    v = run(recs())
    lat = v.latency_ms
    assert lat["before"] == {"p50": pytest.approx(10.0), "p99": pytest.approx(10.0)}
    assert lat["during"] == {"p50": pytest.approx(100.0), "p99": pytest.approx(100.0)}
    assert lat["after"] == {"p50": pytest.approx(20.0), "p99": pytest.approx(20.0)}


def test_empty_latency_phase_is_none_never_zero():
    recs = (record(i / 100, i=i) for i in range(1400))  # stops before the drain
    v = run(recs)
    assert v.latency_ms["after"] == {"p50": None, "p99": None}
    assert v.latency_ms["during"]["p50"] is not None


def test_percentiles_are_nearest_rank():
    # 100 ok requests before the switch with latencies 1..100 ms: p50 = 50, p99 = 99
    recs = [record(k * 0.01, OLD, latency_s=(k + 1) / 1000, i=k) for k in range(100)]
    v = run(recs, cut=cutover(switch=None, drained=None))
    assert v.latency_ms["before"] == {"p50": pytest.approx(50.0), "p99": pytest.approx(99.0)}


NO_RATIOS = Policy(latency_p50_ratio=None, latency_p99_ratio=None)


def slow_during(during_s: float, before_s: float = 0.01):
    for i in range(3000):
        t = i / 100
        yield record(t, latency_s=during_s if SWITCH_AT <= t <= DRAINED_AT else before_s, i=i)


def test_a_switch_many_times_slower_than_its_baseline_fails_by_default():
    v = run(slow_during(0.9))
    assert v.verdict == FAIL
    assert v.reasons[:2] == [
        "latency regression: p50 during the switch was 90.0x the p50 before the switch "
        "(900 ms vs 10 ms), above the 5x limit",
        "latency regression: p99 during the switch was 90.0x the p99 before the switch "
        "(900 ms vs 10 ms), above the 10x limit"]
    assert run(slow_during(0.9), policy=NO_RATIOS).verdict == PASS


def test_slower_but_below_the_floors_is_noise_and_shown_on_a_pass():
    v = run(slow_during(0.045))  # 4.5x at p50, and below both floors anyway
    assert v.verdict == PASS, v.summary()
    assert v.reasons[-1] == ("latency within the relative rule: p50 10 / 45 / 10 ms; p99 10 / "
                             "45 / 10 ms (before / during / after the switch; the limits: p50 5x "
                             "above 50 ms, p99 10x above 250 ms)")


def test_latency_limits_can_be_absolute_too():
    v = run(slow_during(0.9), policy=Policy(latency_p99_limit_ms=500, latency_p50_ratio=None,
                                             latency_p99_ratio=None))
    assert v.verdict == FAIL
    assert v.reasons == [
        "latency regression: p99 during the switch was 900 ms, above the 500 ms limit"]
    v = run(slow_during(0.9), policy=Policy(latency_p50_ratio=None, latency_p99_ratio=3))
    assert v.reasons[0] == ("latency regression: p99 during the switch was 90.0x the p99 before "
                            "the switch (900 ms vs 10 ms), above the 3x limit")


# ---------------------------------------------------------------- shape


def test_to_dict_has_exactly_the_design_shape_and_is_json():
    v = run()
    d = json.loads(json.dumps(v.to_dict()))
    assert set(d) == {"verdict", "reasons", "figures", "requests_total", "requests_failed",
                      "failures_by_outcome", "served_by_version", "switch", "latency_ms",
                      "integrity", "load", "bound_95", "failure_classes", "faults", "scenario"}
    assert set(d["switch"]) == {"t_switch", "t_first_new", "t_last_old", "window_s"}
    assert set(d["latency_ms"]) == {"before", "during", "after"}
    assert all(set(p) == {"p50", "p99"} for p in d["latency_ms"].values())
    assert set(d["integrity"]) == {"acknowledged", "missing", "mismatched", "duplicated",
                                   "not_found_by_key", "key_leads_elsewhere", "keys_unchecked",
                                   "keys_answered_twice"}
    assert set(d["load"]) == {"target_rps", "achieved_rps", "saturated", "shortfall", "scheduled",
                              "late", "missed_cap", "max_inflight"}
    assert d["bound_95"] == {"failure_rate_upper": pytest.approx(0.000998, abs=1e-6),
                             "failed": 0, "requests": 3000, "confidence": 0.95}
    assert d["scenario"] == "switch"
    no_scenario = judge(clean(), timeline(), cutover(), good_data(), good_load())
    assert "scenario" not in no_scenario.to_dict()


def test_failure_class_dict_fields():
    recs = with_failures(clean(), lambda i, r: i == 1300, outcome="reset")
    [c] = run(recs).to_dict()["failure_classes"]
    assert set(c) == {"outcome", "status", "count", "first_t", "last_t", "after_event",
                      "after_s", "before_switch", "populations", "routes", "colours",
                      "by_route_colour"}
    assert c["after_event"] == "replica terminating"


def test_series_counts_per_second_by_version_with_failures_and_p99():
    recs = with_failures(clean(), lambda i, r: i in (1205, 1210), outcome="reset")
    s = run(recs).series
    assert s.t0 == T0 and len(s.seconds) == 30
    assert s.seconds[0] == int(T0)
    assert s.ok_by_version[OLD][0] == 100 and s.ok_by_version[NEW][0] == 0
    assert s.ok_by_version[NEW][29] == 100
    assert s.failed[12] == 2 and sum(s.failed) == 2
    assert s.ok_by_version[OLD][12] + s.ok_by_version[NEW][12] == 98
    assert s.p99_ms[0] == pytest.approx(5.0, rel=0.01)


def test_judge_is_pure_same_inputs_same_verdict():
    a = run(list(clean())).to_dict()
    b = run(list(clean())).to_dict()
    assert a == b


def test_unnamed_versions_are_inconclusive_not_unknown():
    from zerodrop.records.results import Cutover
    c = cutover()
    v = run(cut=Cutover("", NEW, c.t_switch, c.t_drained))
    assert v.verdict == INCONCLUSIVE
    assert v.reasons[0] == ("inconclusive: the scenario did not name both versions (old ?, new "
                            "1.1.0), so no answer can be attributed to a side of the switch")
    assert not any(r.startswith("unknown version") for r in v.reasons)


def test_repr_is_short_for_assertion_messages():
    assert repr(run()) == "Verdict(PASS, 3,000 requests, 0 failed, 4 reasons)"


# ---------------------------------------------------------------- several switches in one slice

THIRD = "1.2.0"
SWITCH2_AT, DRAINED2_AT = 20.0, 25.0


def two_cutovers():
    from zerodrop.records.results import Cutover
    return [cutover(), Cutover(NEW, THIRD, T0 + SWITCH2_AT, T0 + DRAINED2_AT)]


def double_switch(seconds: float = 35.0, rps: int = 100):
    """OLD, then OLD or NEW in the first window, NEW, NEW or THIRD in the second, THIRD."""
    for i in range(int(seconds * rps)):
        t = i / rps
        if t < SWITCH2_AT:
            yield record(t, i=i)
        elif t <= DRAINED2_AT:
            yield record(t, NEW if i % 2 else THIRD, i=i)
        else:
            yield record(t, THIRD, i=i)


def test_a_correct_double_switch_passes_and_reports_each_switch():
    v = run(double_switch(), cut=two_cutovers())
    assert v.verdict == PASS, v.summary()
    assert v.reasons[0].startswith("cutover seen (switch 1 of 2 (1.0.0 -> 1.1.0)): old version "
                                   "1.0.0 answered until")
    assert v.reasons[1].startswith("cutover seen (switch 2 of 2 (1.1.0 -> 1.2.0)): old version "
                                   "1.1.0 answered until")
    assert v.requests_in_window == 501 + 501
    assert v.switch["t_switch"] == T0 + SWITCH2_AT  # the last switch, as for a single one
    d = v.to_dict()
    assert [s["t_switch"] for s in d["switches"]] == [T0 + SWITCH_AT, T0 + SWITCH2_AT]
    assert d["switches"][0]["t_last_old"] == pytest.approx(T0 + 14.995)
    assert v.served_by_version == {OLD: 1250, NEW: 1000, THIRD: 1250}


def test_the_first_switchs_old_version_after_its_drain_fails_in_a_double_switch():
    recs = with_failures(double_switch(), lambda i, r: i == 1700, version=OLD, replica="blue-1")
    v = run(recs, cut=two_cutovers())
    assert v.verdict == FAIL
    assert v.reasons[0] == ("cutover: switch 1 of 2 (1.0.0 -> 1.1.0): 1 request that started "
                            "after the old colour drained was answered by old version 1.0.0 "
                            "(e.g. replica blue-1, started 2.0 s after the drain)")
    assert re.fullmatch(CUTOVER_RE, "\n".join(v.reasons))  # Allure files it as a cutover


def test_an_old_version_back_after_a_later_switch_is_unknown_there():
    """After the second switch only its versions may answer: the first switch's old one is
    neither (a stale replica of two switches ago)."""
    recs = with_failures(double_switch(), lambda i, r: i == 3000, version=OLD, replica="blue-0")
    v = run(recs, cut=two_cutovers())
    assert v.verdict == FAIL
    assert v.reasons[0] == ("unknown version: 1 answer came from version '1.0.0' (e.g. replica "
                            "blue-0), neither old 1.1.0 nor new 1.2.0 (switch 2 of 2)")


def test_the_second_switchs_new_version_before_its_switch_fails():
    recs = with_failures(double_switch(), lambda i, r: i == 1800, version=THIRD, replica="g-9")
    v = run(recs, cut=two_cutovers())
    assert v.verdict == FAIL
    assert v.reasons[0].startswith("cutover: switch 2 of 2 (1.1.0 -> 1.2.0): 1 request that "
                                   "started before the switch was answered by new version 1.2.0")


def test_a_switch_back_to_the_first_version_passes():
    """Back and forth: 1.0.0 -> 1.1.0 -> 1.0.0; the first version is old, then new again."""
    from zerodrop.records.results import Cutover
    back = [cutover(), Cutover(NEW, OLD, T0 + SWITCH2_AT, T0 + DRAINED2_AT)]
    recs = (replace(r, version=OLD) if r.version == THIRD else r for r in double_switch())
    v = run(recs, cut=back)
    assert v.verdict == PASS, v.summary()
    stale = with_failures((replace(r, version=OLD) if r.version == THIRD else r
                           for r in double_switch()), lambda i, r: i == 3200, version=NEW)
    assert run(stale, cut=back).reasons[0].startswith(
        "cutover: switch 2 of 2 (1.1.0 -> 1.0.0): 1 request that started after the old colour "
        "drained was answered by old version 1.1.0")


def test_judge_takes_a_cutover_a_list_of_them_or_the_scenario_facts():
    from zerodrop.records.results import FaultWindow, ScenarioFacts
    one = run().to_dict()
    assert run(cut=[cutover()]).to_dict() == one
    fault = FaultWindow("latency_ms=300", T0 + 11.0, T0 + 13.0, "blue")
    v = run(cut=ScenarioFacts(cutovers=(cutover(),), faults=(fault,)))
    assert v.to_dict() == {**one, "faults": [{"name": "latency_ms=300", "t_start": T0 + 11.0,
                                              "t_end": T0 + 13.0, "target": "blue"}]}
    assert one["faults"] == [] and "switches" not in one


def test_no_cutover_at_all_reads_as_before():
    from zerodrop.records.results import ScenarioFacts
    v = run(cut=ScenarioFacts())
    assert v.verdict == INCONCLUSIVE
    assert v.reasons[:2] == [
        "inconclusive: the switch never happened (the scenario reported no t_switch)",
        "inconclusive: the scenario did not name both versions (old ?, new ?), so no answer "
        "can be attributed to a side of the switch"]


# ---------------------------------------------------------------- shutdown evidence


def test_a_replica_that_exits_before_its_drain_window_with_connections_fails():
    from .builders import early_exit_timeline
    v = run(events=early_exit_timeline(seconds=0.21, held=7, window=1.0))
    assert v.verdict == FAIL
    assert v.reasons[0] == ("shutdown: replica blue-0 exited 0.2 s after SIGTERM, before its "
                            "1 s drain window ended, while it held 7 client connections: it "
                            "closed them instead of draining")


@pytest.mark.parametrize("seconds, held", [(1.05, 7), (0.21, 0)], ids=["drained", "idle"])
def test_a_replica_that_drained_or_held_nothing_is_no_reason(seconds, held):
    from .builders import early_exit_timeline
    v = run(events=early_exit_timeline(seconds=seconds, held=held, window=1.0))
    assert v.verdict == PASS
    assert not any(r.startswith("shutdown:") for r in v.reasons)


def test_an_early_exit_outside_the_slices_switch_is_not_this_slices():
    from .builders import early_exit_timeline
    v = run(events=early_exit_timeline(at=16.0))  # told to stop after this switch drained
    assert v.verdict == PASS


def test_the_policy_can_make_an_early_exit_a_note():
    from .builders import early_exit_timeline
    v = run(events=early_exit_timeline(), policy=Policy(early_exit_fails=False))
    assert v.verdict == PASS
    assert any(r.startswith("shutdown: replica blue-0 exited") for r in v.reasons)


# ---------------------------------------------------------------- the rules


def test_the_rules_are_listed_in_reading_order():
    from zerodrop.reports.rules import RULES
    assert [r.__name__ for r in RULES] == [
        "deploy_command", "dropped_requests", "unknown_versions", "old_after_drain", "new_before_switch",
        "new_never_answered", "data_loss", "key_loss", "money_adds_up", "stale_reads", "latency",
        "early_exit", "open_at_drain_end", "ledger_empty", "load_short", "generator_saturated", "switch_missing", "window_thin",
        "idle_unexercised", "data_check_error", "keys_unchecked", "money_unchecked", "versions_unnamed",
        "readiness_findings", "populations_seen"]


def test_fail_reasons_come_before_inconclusive_ones_whatever_the_rule_order():
    from zerodrop.reports.rules import RULES
    from zerodrop.reports.verdict import Judge
    events = timeline() + [Event(T0 + 1, "platform", "readiness finding",
                                 {"rule": "prestop", "finding": "no preStop hook"})]
    j = Judge(cutover(), rules=list(reversed(RULES)))
    for r in with_failures(clean(), lambda i, r: i == 1300, outcome="reset"):
        j.add(r)
    v = j.finish(events, DataCheck(1200, missing=["pay_1"]), LoadTarget(100.0, 50.0))
    assert v.verdict == FAIL
    kinds = ["fail" if not r.startswith(("inconclusive:", "readiness lint:"))
             else r.split(":")[0] for r in v.reasons]
    assert kinds == ["fail", "fail", "inconclusive", "readiness lint"]
    # the rules' own order within a kind is kept: reversed, data loss now reads first
    assert v.reasons[0].startswith("data loss:") and v.reasons[1].startswith("1 connection reset")


def test_the_judge_built_record_by_record_is_judge():
    from zerodrop.reports.verdict import Judge
    recs = list(with_failures(clean(), lambda i, r: i in (5, 1300), outcome="reset"))
    j = Judge(cutover())
    for r in recs:
        j.add(r)
    built = j.finish(timeline(), good_data(), good_load(), scenario="switch").to_dict()
    assert built == run(recs).to_dict()


def test_a_dropped_request_names_its_event_as_the_timeline_describes_it():
    from zerodrop.records.events import describe
    recs = with_failures(clean(), lambda i, r: i == 1300, outcome="reset")
    terminating = next(e for e in timeline() if e.name == "replica terminating")
    assert f"after {describe(terminating)}, on " in run(recs).reasons[0]


def test_every_rule_is_small():
    import inspect

    from zerodrop.reports import rules
    sizes = {r.__name__: len(inspect.getsource(r).splitlines()) for r in rules.RULES}
    assert max(sizes.values()) < 30, sizes
