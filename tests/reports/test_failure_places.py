"""Reasons that read right: a failure class names its route(s) and colour(s), the event of the
scenario before its FIRST failure (or "before the switch"), and the bound on the failure rate
is a figure of the verdict, never a reason."""
from __future__ import annotations

import re
from dataclasses import replace

import pytest

from zerodrop.records.events import Event
from zerodrop.reports.allure_evidence import DROPPED_RE
from zerodrop.reports.verdict import FAIL, PASS, judge

from .builders import T0, clean, cutover, good_data, good_load, record, timeline, with_failures


def run(records, events=None):
    return judge(records, timeline() if events is None else events, cutover(), good_data(),
                 good_load(), scenario="switch")


def payments_500(recs, lo: float, hi: float, every: int = 7):
    """Every ``every``-th request started in [lo, hi] s becomes a 500 from green on POST
    /api/payments, sent by a keep-alive or a retrying client."""
    for i, r in enumerate(recs):
        t = r.t_start - T0
        if lo <= t <= hi and i % every == 0:
            yield replace(r, method="POST", route="/api/payments", status=500,
                          outcome="http_error", version="1.1.0", color="green",
                          t_end=r.t_start, population="keepalive" if i % 2 else "retry")
        else:
            yield r


def no_answer(r, outcome="reset"):
    return replace(r, outcome=outcome, status=0, version="", color="", replica="",
                   t_end=r.t_start)


# ---------------------------------------------------------------- route and colour


def test_a_failure_class_names_its_route_and_the_colour_that_answered():
    v = run(payments_500(clean(), 10.2, 19.7))
    assert v.verdict == FAIL
    [c] = v.failure_classes
    assert c.routes == {"POST /api/payments": c.count} and c.colours == {"green": c.count}
    assert re.fullmatch(
        r"\d+ HTTP 500 answers from 0\.2 s to 9\.7 s after 'selector patched' \(selector "
        r"green\), on POST /api/payments \(green\) \[keepalive \d+, retry \d+\]", v.reasons[0]), \
        v.reasons[0]
    assert re.search(DROPPED_RE, v.summary())  # Allure still files it under "Dropped requests"


def test_a_request_with_no_answer_names_its_route_and_says_its_colour_is_unknown():
    recs = [no_answer(r) if i in (1300, 1301, 1302) else r for i, r in enumerate(clean())]
    recs[1303] = replace(no_answer(recs[1303]), method="POST", route="/api/payments")
    v = run(recs)
    [c] = v.failure_classes
    assert c.colours == {"(no answer)": 4}
    assert c.routes == {"GET /api/balance": 3, "POST /api/payments": 1}
    assert v.reasons[0].endswith(", on GET /api/balance 3, POST /api/payments 1 (colour "
                                 "unknown: no answer)"), v.reasons[0]


def test_one_route_from_two_colours_and_a_mix_of_answers_read_per_route():
    recs = list(clean())
    recs[1300] = replace(recs[1300], outcome="bad_body", color="green")
    recs[1301] = replace(recs[1301], outcome="bad_body", color="blue")
    recs[1302] = replace(recs[1302], outcome="bad_body", color="green")
    recs[1303] = replace(recs[1303], outcome="bad_body", color="", version="", method="POST",
                         route="/api/payments")  # answered, but without the colour headers
    v = run(recs)
    assert v.reasons[0] == ("4 bad or incomplete bodies at 0.9 s after 'replica "
                            "terminating' (color blue, replica blue-0), on GET /api/balance "
                            "(green 2, blue 1), POST /api/payments (no colour header 1)")
    d = v.to_dict()["failure_classes"][0]
    assert d["by_route_colour"][0] == {  # placed when seen: 5 ms after they were sent
        "route": "GET /api/balance", "colour": "green", "count": 2,
        "first_t": pytest.approx(T0 + 13.005), "last_t": pytest.approx(T0 + 13.025)}
    assert d["routes"] == {"GET /api/balance": 3, "POST /api/payments": 1}
    assert d["colours"] == {"green": 2, "(no colour header)": 1, "blue": 1}


# ---------------------------------------------------------------- the event before the first failure


SETUP = [Event(T0 - 1.3, "platform", "endpoints changed", {"front": "f", "endpoints": 2}),
         Event(T0 - 0.4, "load", "load started", {"users": 20})]


def test_a_failure_before_the_scenario_began_is_before_the_switch_not_after_a_setup_event():
    """The issue's case: 500s from 0.2 s into the load read "1.5 s after 'endpoints changed'",
    an event of the platform's set-up before the load began. They came before the switch."""
    events = SETUP + timeline()[1:]
    v = run(payments_500(clean(), 0.2, 1.9), events)
    [c] = v.failure_classes
    assert c.after_event is None and c.before_switch
    assert v.reasons[0].startswith(f"{c.count} HTTP 500 answers from 0.2 s to 1.9 s after the "
                                   f"first request, before the switch, on POST /api/payments"), \
        v.reasons[0]
    # they go on past the scenario's first step ('deploy green' at 2 s): "starting before"
    v = run(payments_500(clean(), 0.2, 9.7), events)
    assert v.reasons[0].startswith(f"{v.failure_classes[0].count} HTTP 500 answers from 0.2 s "
                                   f"to 9.7 s after the first request, starting before the "
                                   f"switch, on POST /api/payments (green)"), v.reasons[0]


def test_the_failure_after_the_scenario_began_is_placed_after_the_latest_event_before_it():
    """Negative control of the test above: the same set-up events, a failure after the
    scenario's first step, placed after the latest event before it (a platform event too)."""
    v = run(payments_500(clean(), 12.05, 13.0), SETUP + timeline()[1:])
    [c] = v.failure_classes
    assert c.after_event == "replica terminating" and not c.before_switch
    assert c.event.t <= c.first_t


def test_an_earlier_slices_events_are_not_what_a_later_slices_failure_followed():
    """A later slice of a sequence: the timeline holds the earlier slice's steps; a failure
    before this slice's first step is before its switch, not after the other slice's step."""
    events = [Event(T0 - 3.0, "scenario", "verify green serves the Service", {"step": "start"}),
              Event(T0 - 2.0, "platform", "replica terminating", {"replica": "blue-0"}),
              Event(T0 + 1.0, "scenario", "roll back", {"step": "start"})]
    recs = [no_answer(r) if i == 30 else r for i, r in enumerate(clean())]
    assert run(recs, events).failure_classes[0].after_event is None
    # a step emitted a moment before the slice's first request still opens the scenario
    events[2] = replace(events[2], t=T0 - 0.2)
    [c] = run(recs, events).failure_classes
    assert c.after_event == "roll back" and c.after_s == 0.5


def test_every_class_is_placed_at_or_after_its_event_never_before_it():
    recs = list(clean())
    for k, t in enumerate((0.3, 2.5, 9.99, 10.0, 12.05, 14.0, 29.0)):
        recs.append(record(t, outcome="refused", status=0, i=10_000 + k))
        recs.append(record(t + 0.01, outcome="timeout", status=0, latency_s=5.0, i=20_000 + k))
    v = run(recs, SETUP + timeline()[1:])
    for c in v.failure_classes:
        assert c.event is None or c.event.t <= c.first_t, c
        assert c.event is None or c.event.t >= T0 + 2.0  # the scenario's first step or later


# ---------------------------------------------------------------- the bound is a figure


def test_on_a_fail_the_bound_is_a_figure_after_the_causes_never_a_reason():
    recs = with_failures(clean(), lambda i, r: 1200 <= i < 1241, outcome="http_error",
                         status=500)
    v = run(recs)
    assert v.verdict == FAIL
    assert v.reasons[0].startswith("41 HTTP 500 answers from ")
    assert not any("confidence" in r or "upper bound" in r or "failures in" in r
                   for r in v.reasons)
    assert v.figures == ["41 of 3,000 requests failed (1.4%); 95% upper bound on the failure "
                         "rate: 1.8%"]
    d = v.to_dict()
    assert d["figures"] == v.figures
    assert d["bound_95"]["failed"] == 41 and d["bound_95"]["requests"] == 3000
    lines = v.summary().splitlines()
    assert lines[1].startswith("- 41 HTTP 500 answers") and lines[-1].startswith("figures: 41 of")


def test_on_a_pass_the_number_still_shows_as_a_figure():
    v = run(clean())
    assert v.verdict == PASS
    assert v.figures == ["0 of 3,000 requests failed; 95% upper bound on the failure rate: 0.1%"]
    assert v.summary().splitlines()[-1] == ("figures: 0 of 3,000 requests failed; 95% upper "
                                            "bound on the failure rate: 0.1%")


def test_no_request_no_figure():
    v = run(iter(()))
    assert v.figures == [] and "figures" not in v.summary()
