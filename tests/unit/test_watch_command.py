"""The watched deploy command itself, run for real (``scenarios/watch.py``): its lines go on
the timeline as they are printed, its exit status decides the step, a command that hangs is
stopped with its whole process group, and one that cannot start is one line. The platform is
a stand-in holding only a real event log (``_run_command`` uses nothing else of it)."""
from __future__ import annotations

import os
import time

import pytest

from zerodrop.records.events import EventLog, EventName
from zerodrop.scenarios.steps import StepFailed
from zerodrop.scenarios.watch import WatchSettings, _run_command, first_routed


class EventsOnlyStandIn:
    """Stand-in platform: the real EventLog, nothing else."""

    def __init__(self) -> None:
        self.events = EventLog()


def lines(p) -> list[str]:
    return [e.detail["line"] for e in p.events.named(EventName.DEPLOY_OUTPUT)]


def test_every_line_is_on_the_timeline_and_status_0_passes():
    p = EventsOnlyStandIn()
    _run_command(p, WatchSettings(("bash", "-c", "echo one; echo two >&2; echo three")), dict(os.environ))
    assert lines(p) == ["one", "two", "three"]
    (exited,) = p.events.named(EventName.DEPLOY_EXITED)
    assert exited.detail["code"] == 0 and "echo one" in exited.detail["command"]


def test_a_failing_command_is_a_failed_step_with_its_status_and_last_lines():
    p = EventsOnlyStandIn()
    script = "for i in 1 2 3 4 5 6 7; do echo line $i; done; exit 3"
    with pytest.raises(StepFailed) as err:
        _run_command(p, WatchSettings(("bash", "-c", script)), dict(os.environ))
    msg = str(err.value)
    assert "exited with status 3" in msg and msg.endswith("line 3 | line 4 | line 5 | line 6 | line 7")
    assert p.events.named(EventName.DEPLOY_EXITED)[0].detail["code"] == 3


def test_a_command_that_cannot_start_is_one_line():
    p = EventsOnlyStandIn()
    with pytest.raises(StepFailed, match=r"could not start: No such file or directory$"):
        _run_command(p, WatchSettings(("./no-such-deploy.sh",)), dict(os.environ))
    assert p.events.named(EventName.DEPLOY_EXITED)[0].detail["code"] == 127


def test_a_command_past_its_timeout_is_stopped_with_its_children(tmp_path):
    p = EventsOnlyStandIn()
    pidfile = tmp_path / "child"
    script = f"sleep 60 & echo $! > {pidfile}; echo started; wait"
    t0 = time.monotonic()
    with pytest.raises(StepFailed, match=r"did not end within 1 s and was stopped; its last lines: started"):
        _run_command(p, WatchSettings(("bash", "-c", script), timeout=1), dict(os.environ))
    assert time.monotonic() - t0 < 30
    child = int(pidfile.read_text())
    deadline = time.monotonic() + 5
    while time.monotonic() < deadline:
        try:
            os.kill(child, 0)
        except ProcessLookupError:
            break
        time.sleep(0.05)
    else:
        pytest.fail(f"the deploy command's child {child} is still running")


def test_the_switch_is_read_from_the_service_front_only():
    """A preview or the canary listing green is not a switch; the Service's front is."""
    p = EventsOnlyStandIn()
    t0 = time.time()
    p.events.emit("platform", EventName.ENDPOINTS_CHANGED, front="payment-service-green",
                  endpoints=["payment-service-green-abc"])
    p.events.emit("platform", EventName.ENDPOINTS_CHANGED, front="payment-service",
                  endpoints=["payment-service-blue-x"])
    assert first_routed(p, "green", t0) is None
    e = p.events.emit("platform", EventName.ENDPOINTS_CHANGED, front="payment-service",
                      endpoints=["payment-service-green-abc"])
    assert first_routed(p, "green", t0) == e.t
    assert first_routed(p, "green", e.t + 1) is None
