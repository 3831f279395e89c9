"""What the PNG plots, tested as data (``rate_bars``, ``chart_plan``): the axis starts at the
first request, partial first/last seconds are rates over their real width (no false dips), the
switch is a line apart from the others, the title carries the counts, labels are never cut."""
from __future__ import annotations

import struct

import pytest

from zerodrop.records.events import Event
from zerodrop.reports.evidence import MIN_PARTIAL_S, chart_plan, rate_bars, write_evidence
from zerodrop.reports.tally import Series
from zerodrop.reports.verdict import judge

from .builders import T0, clean, cutover, good_data, good_load, timeline, with_failures

LONG = "payment-service-blue-7d9f8b6c4-x2x9z-with-a-long-tail"


def shifted_verdict(offset: float = 0.4, failures: bool = True):
    """The clean switch (100 req/s for 30 s), started ``offset`` s into a wall-clock second."""
    recs = (r.shifted(offset) for r in clean())
    if failures:
        recs = with_failures(recs, lambda i, r: 1210 <= i < 1240, outcome="reset", status=0)
    return judge(recs, events(), cutover(), good_data(), good_load(), scenario="switch")


def events():
    return timeline() + [Event(T0 + 12.2, "platform", "replica terminating",
                               {"color": "blue", "replica": LONG})]


def series(t0: float, t_last: float, counts: list[int], first_sec: int = 100) -> Series:
    secs = list(range(first_sec, first_sec + len(counts)))
    return Series(t0, secs, {"1.0.0": counts}, [0] * len(counts), [5.0] * len(counts), t_last)


# ---------------------------------------------------------------- the bars


def test_partial_first_and_last_seconds_are_rates_over_their_real_width():
    # 100 req/s from 100.4 s to 105.69 s: the first second holds 60, the last 70
    bars = rate_bars(series(100.4, 105.69, [60, 100, 100, 100, 100, 70]))
    assert bars[0].left == 0.0 and bars[0].width == pytest.approx(0.6)
    assert bars[-1].left == pytest.approx(4.6) and bars[-1].width == pytest.approx(0.69)
    assert [b.requests for b in bars] == [60, 100, 100, 100, 100, 70]
    rates = [b.ok["1.0.0"] for b in bars]
    assert rates[0] == pytest.approx(100.0) and rates[-1] == pytest.approx(101.45, abs=0.01)
    assert min(rates) > 99  # counts per second would dip to 60 and 70 here
    # the bars tile the run: each starts where the previous ended
    assert all(a.left + a.width == pytest.approx(b.left) for a, b in zip(bars, bars[1:]))


def test_a_sliver_of_a_second_joins_its_neighbour_instead_of_spiking():
    bars = rate_bars(series(100.95, 104.05, [5, 100, 100, 100, 5]))
    assert len(bars) == 3  # 0.05 s at each end joined to the whole second beside it
    assert bars[0].left == 0.0 and bars[0].width == pytest.approx(1.05)
    assert bars[-1].width == pytest.approx(1.05)
    assert [b.requests for b in bars] == [105, 100, 105]
    assert [round(b.ok["1.0.0"]) for b in bars] == [100, 100, 100]
    assert MIN_PARTIAL_S > 0.05


def test_a_run_shorter_than_a_sliver_is_one_bar_not_a_division_by_zero():
    [bar] = rate_bars(series(100.5, 100.5, [1]))
    assert bar.left == 0.0 and bar.width == pytest.approx(MIN_PARTIAL_S)
    assert bar.ok["1.0.0"] == pytest.approx(1 / MIN_PARTIAL_S)
    assert rate_bars(None) == [] and rate_bars(Series(None, [], {}, [], [])) == []


def test_failures_are_rates_too():
    bars = rate_bars(shifted_verdict().series)
    assert sum(b.failures for b in bars) == 30
    second = next(b for b in bars if b.failures)
    assert second.failed == pytest.approx(second.failures / second.width)


# ---------------------------------------------------------------- the plan of the chart


def test_the_axis_starts_at_the_first_request_and_no_line_is_left_of_it():
    plan = chart_plan(shifted_verdict(), events(), "switch")
    assert plan.xlim[0] == 0.0 and plan.bars[0].left == 0.0
    assert all(b.left >= 0 for b in plan.bars)
    assert plan.xlim[1] == pytest.approx(29.99, abs=0.01)  # the last request's start
    assert all(0 <= ln.x <= plan.xlim[1] for ln in plan.lines)
    assert "load started" not in [ln.event.name for ln in plan.lines]  # 1.4 s before t=0


def test_the_switch_is_a_line_apart_from_the_others():
    plan = chart_plan(shifted_verdict(), events(), "switch")
    switch = [ln for ln in plan.lines if ln.is_switch]
    assert [ln.event.name for ln in switch] == ["selector patched"]
    assert switch[0].x == pytest.approx(9.6)  # 10 s after T0, the first request at T0 + 0.4
    assert switch[0].key.endswith("<- the switch")
    assert plan.switches == [pytest.approx(9.6)]
    assert not any(ln.is_switch for ln in plan.lines if ln.event.name != "selector patched")


def test_a_canarys_shares_are_events_and_only_its_move_to_one_colour_is_the_switch():
    shares = [Event(T0 + 5.0, "platform", "selector patched",
                    {"selector": {"blue": 90, "green": 10}, "canary_header": "green"}),
              Event(T0 + 7.0, "platform", "selector patched",  # a Gateway's HTTPRoute
                    {"route": "pay", "weights": {"blue": 50, "green": 50}})]
    plan = chart_plan(shifted_verdict(), events() + shares, "canary")
    patched = [ln for ln in plan.lines if ln.event.name == "selector patched"]
    assert [ln.is_switch for ln in patched] == [False, False, True]
    assert [ln.key.endswith("<- a canary share") for ln in patched] == [True, True, False]


def test_the_title_carries_the_verdict_and_its_counts():
    plan = chart_plan(shifted_verdict(), events(), "switch")
    assert plan.title == "switch: FAIL  (3,000 requests, 30 failed)"


def test_event_labels_wrap_and_are_never_cut():
    plan = chart_plan(shifted_verdict(), events(), "switch")
    key = "\n".join(plan.key_columns)
    assert "~" not in key
    assert LONG in key.replace("\n", "").replace("      ", "")
    assert all(len(line) <= 176 for line in key.splitlines())


def test_the_png_is_drawn_from_the_plan(tmp_path):
    paths = write_evidence(shifted_verdict(), events(), tmp_path, "switch")
    data = paths.png.read_bytes()
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    width, height = struct.unpack(">II", data[16:24])
    assert width >= 1000 and height >= 600
