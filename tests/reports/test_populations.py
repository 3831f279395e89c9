"""The verdict per client population: the keep-alive race as its own class named with the
population that lost it, failures a retry recovered (counted, never hidden), the idle clients'
coverage of every switch window, and what was in flight at each SIGTERM."""
from __future__ import annotations

from dataclasses import replace

from zerodrop.reports.verdict import FAIL, INCONCLUSIVE, PASS, Policy, judge
from zerodrop.reports.allure_evidence import DROPPED_RE

import re

from .builders import DRAINED_AT, SWITCH_AT, T0, clean, cutover, good_data, good_load, timeline

POPS = ("keepalive", "keepalive", "fresh", "retry")


def populated(records, idle_every: int = 25):
    """Every record gets a population; every ``idle_every``-th is an idle client's."""
    for i, r in enumerate(records):
        yield replace(r, population="idle" if i % idle_every == 0 else POPS[i % 4])


def run(records):
    return judge(records, timeline(), cutover(), good_data(), good_load(), scenario="switch")


def test_a_clean_run_passes_and_says_what_each_population_sent():
    v = run(populated(clean()))
    assert v.verdict == PASS, v.summary()
    line = next(r for r in v.reasons if r.startswith("by client population: "))
    assert "keepalive " in line and "idle " in line and "fresh " in line and "retry " in line
    assert "none failed" in line and "0 failures of retrying clients then recovered" in line
    assert any(r.startswith("requests in flight at each SIGTERM (1 replicas): blue-0 ") for r in v.reasons)


def _raced(rs):
    for r in rs:
        if r.population == "idle" and T0 + 12.1 <= r.t_start < T0 + 12.6:
            yield replace(r, outcome="keepalive_race", status=0, version="", color="",
                          replica="", t_end=r.t_start + 0.001, conn="reused")
        else:
            yield r


def test_a_keepalive_race_is_its_own_class_named_with_its_population():
    """By default a note (HTTP/1.1 asks clients to retry it; no server can rule it out), never
    hidden: counted, placed on the timeline, named with the population that lost it."""
    v = run(_raced(populated(clean())))
    assert v.verdict == PASS, v.summary()
    race = next(r for r in v.reasons if r.startswith("note: ") and "keep-alive race" in r)
    assert race.startswith("note: 2 keep-alive races ") and "after 'replica terminating'" in race
    assert "the server closed a kept-alive connection as a request was sent on it" in race
    assert "[idle 2]" in race and race.endswith("not a FAIL unless --keepalive-races-fail")
    assert v.requests_failed == 2 and v.figures[0].startswith("2 of 3,000 requests failed")
    note = next(r for r in v.reasons if r.startswith("by client population: "))
    assert "idle" in note and "2 failed (2 keep-alive races)" in note


def test_a_keepalive_race_fails_when_the_policy_says_so():
    v = judge(_raced(populated(clean())), timeline(), cutover(), good_data(), good_load(),
              Policy(keepalive_races_fail=True), scenario="switch")
    assert v.verdict == FAIL
    race = next(r for r in v.reasons if r.startswith("2 keep-alive race"))
    assert race.startswith("2 keep-alive races ") and race.endswith("[idle 2]"), race
    assert re.search(DROPPED_RE, v.summary())  # Allure files it under "Dropped requests"


def test_a_failure_a_retry_recovered_is_still_a_failure_and_is_counted():
    recs = list(populated(clean()))
    k = next(i for i, r in enumerate(recs) if r.population == "retry" and r.t_start > T0 + 12.2)
    first = replace(recs[k], outcome="reset", status=0, version="", color="", replica="",
                    t_end=recs[k].t_start + 0.001, request_id="first", attempt=1)
    retry = replace(recs[k], t_start=recs[k].t_start + 0.05, t_end=recs[k].t_start + 0.056,
                    request_id="second", attempt=2, first_request_id="first",
                    route=recs[k].route + " (retry)")
    recs[k:k + 1] = [first, retry]
    v = run(sorted(recs, key=lambda r: r.t_start))
    assert v.verdict == FAIL
    assert any(r.startswith("1 connection reset") and r.endswith("[retry 1]") for r in v.reasons)
    note = next(r for r in v.reasons if r.startswith("by client population: "))
    assert "1 failure of retrying clients then recovered by a retry" in note


def test_idle_clients_that_missed_the_switch_window_make_it_inconclusive():
    """Negative control for the idle population: present, but none of its requests inside the
    window, so an idle connection across the shutdown was never exercised."""
    def outside(rs):
        for r in rs:
            if r.population == "idle" and T0 + SWITCH_AT <= r.t_start <= T0 + DRAINED_AT:
                yield replace(r, population="keepalive")
            else:
                yield r
    v = run(outside(populated(clean())))
    assert v.verdict == INCONCLUSIVE
    assert any(r.startswith("inconclusive: no request of the idle keep-alive clients started within "
                            "the switch window") for r in v.reasons)
    assert run(populated(clean())).verdict == PASS  # with them inside, the same run passes


def test_nothing_in_flight_at_a_sigterm_is_said():
    """The SIGTERM falls in a gap with no request in flight: the pass line says so."""
    recs = [r for r in populated(clean()) if not (T0 + 12.0 <= r.t_start <= T0 + 12.2)]
    v = run(recs)
    line = next(r for r in v.reasons if r.startswith("requests in flight at each SIGTERM"))
    assert "blue-0 0" in line and "shows nothing about in-flight requests" in line


def _drain_end_timeline(held: int) -> list:
    from zerodrop.records.events import Event
    events = [e for e in timeline() if e.name not in ("replica terminating", "replica terminated")]
    return events + [Event(T0 + 12.1, "platform", "replica terminating",
                           {"color": "blue", "replica": "blue-0", "connections": 9, "drain_window_s": 1.0}),
                     Event(T0 + DRAINED_AT, "platform", "replica terminated",
                           {"color": "blue", "replica": "blue-0", "code": 0, "expected": True,
                            "seconds_after_sigterm": 2.9, "connections_at_drain_end": held})]


def test_connections_still_open_when_the_drain_window_ends_fail():
    """The platform counted 3 client connections still open to blue-0 at the end of its drain:
    its exit closes them under their clients. FAIL, though no request failed this time."""
    v = judge(populated(clean()), _drain_end_timeline(3), cutover(), good_data(), good_load(),
              scenario="switch")
    assert v.verdict == FAIL and v.requests_failed == 0
    assert ("shutdown: replica blue-0 still held 3 client connections when its 1 s drain window "
            "ended") in v.summary() or "still held 3 client connections" in v.summary()
    ok = judge(populated(clean()), _drain_end_timeline(0), cutover(), good_data(), good_load(),
               scenario="switch")
    assert ok.verdict == PASS, ok.summary()
    noted = judge(populated(clean()), _drain_end_timeline(3), cutover(), good_data(), good_load(),
                  Policy(open_at_drain_end_fails=False), scenario="switch")
    assert noted.verdict == PASS and any("still held 3 client connections" in r for r in noted.reasons)
