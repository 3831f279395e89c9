"""The event log and the brief-load counter."""
from __future__ import annotations

import requests

from zerodrop.records.events import EventLog
from zerodrop.checks.burst import burst


def test_events_share_the_injected_clock_and_listeners_fail_soft():
    ticks = iter([10.0, 10.5])
    log = EventLog(clock=lambda: next(ticks))
    seen = []
    log.subscribe(seen.append)
    log.subscribe(lambda e: 1 / 0)  # a broken listener must not break the platform
    log.emit("platform", "selector patched", selector={"green": 100})
    log.emit("scenario", "switch")
    assert [e.t for e in log] == [10.0, 10.5]
    assert [e.name for e in seen] == ["selector patched", "switch"]
    assert log.listener_errors == 2
    assert log.named("switch")[0].as_dict()["source"] == "scenario"


def test_burst_counts_every_outcome_and_exceptions_are_failures():
    def send(i: int) -> requests.Response:
        if i % 10 == 0:
            raise requests.ConnectionError("refused")
        resp = requests.Response()
        resp.status_code = 503 if i % 10 == 1 else 200
        return resp

    result = burst(send, 100, 10)
    assert (result.total, result.ok) == (100, 80)
    assert result.outcomes == {"200": 80, "503": 10, "ConnectionError": 10}
    assert result.success_rate == 80.0
    assert "80/100 succeeded (80.0%)" in result.describe()
