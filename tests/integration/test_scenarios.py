"""The switch and rollback scenarios against a real local platform (no load here: the
zero-downtime proof under load is tests/integration/test_zero_downtime.py)."""
from __future__ import annotations

import pytest
import requests

from zerodrop.scenarios.blue_green import SwitchSettings, rollback, switch
from zerodrop.scenarios.steps import Context, StepFailed

pytestmark = pytest.mark.slow
FAST = SwitchSettings(replicas=1, drain_seconds=0.5, payment_timeout=10)


def served_by(url: str) -> str:
    return requests.get(f"{url}/health", headers={"Connection": "close"},
                        timeout=5).headers["X-App-Color"]


def test_switch_then_rollback(platform):
    ctx = Context(platform)
    result = switch(platform, "v2.0.0", FAST).run(ctx)
    assert result.ok, result.failure
    assert platform.active_color() == "green" and served_by(platform.service_url) == "green"
    assert platform.replicas("blue") == []
    assert platform.deployed_version("green") == "v2.0.0"
    cutover = ctx.facts().cutover
    assert (cutover.old_version, cutover.new_version) == ("v1.0.0", "v2.0.0")
    assert cutover.t_switch < cutover.t_drained
    names = [e.name for e in platform.events if e.source == "scenario"]
    assert names[:2] == ["find active colour (blue)", "find active colour (blue) done"]
    for step in ("deploy v2.0.0 to green", "smoke test green preview", "switch traffic to green",
                 "verify green serves the Service", "post-deploy checks", "scale down blue",
                 "wait for blue to stop"):
        assert step in names and f"{step} done" in names, step

    back = rollback(platform, FAST).run(Context(platform))
    assert back.ok, back.failure
    assert platform.active_color() == "blue" and served_by(platform.service_url) == "blue"
    assert platform.replicas("blue")[0].version == "v1.0.0"
    assert platform.replicas("green") == []


def test_a_new_version_failing_its_smoke_test_never_gets_traffic(platform):
    settings = SwitchSettings(replicas=1, new_faults={"db_unreachable": True,
                                                     "readiness_lies": True})
    result = switch(platform, "v2.0.0-bad", settings).run(Context(platform))
    assert not result.ok
    assert result.failure.startswith("step 'smoke test green preview' failed: smoke test failed: "
                                     "basic_write"), result.failure
    assert [s.status for s in result.steps][-1] == "not run"
    assert platform.active_color() == "blue" and served_by(platform.service_url) == "blue"
    assert any(e.name == "roll back to blue" for e in platform.events)
    assert platform.events.named("scaled")[-1].detail == {"color": "green", "replicas": 0}


def test_a_new_version_that_never_gets_ready_fails_with_the_reason(platform):
    settings = SwitchSettings(replicas=1, ready_timeout=3, new_faults={"crash_on_start": True})
    result = switch(platform, "v2.0.0-crash", settings).run(Context(platform))
    assert "step 'wait for green ready' failed: green not ready after 3 s" in result.failure
    assert "exited with code 3" in result.failure
    assert platform.active_color() == "blue"


def test_rollback_needs_something_to_roll_back_to(bare_platform):
    bare_platform.deploy("blue", "v1")
    bare_platform.scale("blue", 1)
    bare_platform.wait_ready("blue")
    bare_platform.route_to("blue")
    with pytest.raises(StepFailed, match="nothing to roll back to: green was never deployed"):
        rollback(bare_platform, FAST)


def test_bad_settings_are_refused():
    with pytest.raises(ValueError, match="broken must be one of"):
        SwitchSettings(broken="sometimes").validate()
