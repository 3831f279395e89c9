"""The local platform with the real payment-service: routing, readiness gate, restarts,
scale-down, and cleanup (no orphan process, port or directory)."""
from __future__ import annotations

import contextlib
import http.client
import shutil
import signal
import socket
import subprocess
import sys
import xml.etree.ElementTree as ET
from collections import Counter
from pathlib import Path

import pytest
import requests

from zerodrop.platforms.local.platform import LocalConfig, LocalPlatform, stand_up
from zerodrop.platforms.base import PlatformError
from zerodrop.scenarios.blue_green import set_weights
from zerodrop.scenarios.steps import Context
from tests.integration.conftest import ROOT, pids_of, port_open, run_pytest
from tests.procs import wait_until

pytestmark = pytest.mark.slow


def colour_of(url: str) -> str:
    return requests.get(f"{url}/health", timeout=5).headers["X-App-Color"]


def wait_for(predicate, what: str, timeout: float = 10.0):
    return wait_until(predicate, timeout, what)


def test_service_and_previews_reach_the_right_colour(platform):
    assert {colour_of(platform.service_url) for _ in range(5)} == {"blue"}
    assert colour_of(platform.preview_url("green")) == "green"
    assert colour_of(platform.preview_url("blue")) == "blue"
    assert platform.active_color() == "blue"
    assert platform.target().redacted()["active_color"] == "blue"
    assert "admin_token" not in platform.target().redacted()


def test_switch_moves_new_connections_and_keeps_established_ones(platform):
    kept = http.client.HTTPConnection("127.0.0.1", platform.fronts["service"].port, timeout=5)
    kept.request("GET", "/health")
    first = kept.getresponse()
    first.read()
    assert first.headers["X-App-Color"] == "blue"
    platform.route_to("green")
    wait_for(lambda: colour_of(platform.service_url) == "green", "new connections on green")
    kept.request("GET", "/health")
    again = kept.getresponse()
    again.read()
    assert again.headers["X-App-Color"] == "blue"  # conntrack: established stays
    patched = platform.events.named("selector patched")[-1]
    applied = [e for e in platform.events.named("endpoints changed")
               if e.detail["front"] == "service" and e.t >= patched.t][0]
    # the front applied the new set no sooner than the propagation delay
    assert applied.t - patched.t >= platform.config.propagation_delay - 0.01


def test_readiness_gate_takes_a_failing_replica_out_and_back(platform):
    platform.apply_fault("blue", {"readiness_fail": True})
    wait_for(lambda: not platform.front_endpoints("service"), "blue out of the endpoints")
    with pytest.raises(requests.ConnectionError):
        requests.get(f"{platform.service_url}/health", timeout=5)
    assert platform.events.named("replica unready")
    platform.apply_fault("blue", {"readiness_fail": False})
    wait_for(lambda: platform.front_endpoints("service"), "blue back in the endpoints")
    assert colour_of(platform.service_url) == "blue"


def test_a_killed_replica_is_restarted_and_readmitted(platform):
    before = platform.replicas("blue")[0]
    platform.kill_replica("blue", signal.SIGKILL)
    wait_for(lambda: platform.replicas("blue")[0].restarts == 1, "a restart")
    platform.wait_ready("blue", timeout=20)
    after = platform.replicas("blue")[0]
    assert after.pid != before.pid and after.ready
    ended = [e for e in platform.events.named("replica terminated") if not e.detail["expected"]]
    assert ended and ended[0].detail["code"] == -signal.SIGKILL


def test_scale_down_takes_replicas_out_and_stops_them(platform):
    platform.scale("green", 0)
    wait_for(lambda: not platform.replicas("green"), "green replicas gone", timeout=20)
    wait_for(lambda: not platform.front_endpoints("preview-green"), "green preview emptied")
    names = [e.name for e in platform.events if e.detail.get("color") == "green"]
    assert names.index("replica terminating") < names.index("replica terminated")


def test_deploy_replaces_replicas_with_the_new_version(platform):
    platform.deploy("green", "v2.0.0")
    platform.wait_ready("green", timeout=30)
    assert [x.version for x in platform.replicas("green")] == ["v2.0.0"]
    new = [x.name for x in platform.replicas("green")]
    wait_for(lambda: platform.front_endpoints("preview-green") == new, "the new replica routed")
    r = requests.get(f"{platform.preview_url('green')}/health", timeout=5)
    assert r.status_code == 200 and r.headers["X-App-Version"] == "v2.0.0"


def test_a_replica_that_crashes_on_start_fails_wait_ready_with_its_reason(bare_platform):
    bare_platform.deploy("blue", "v1", faults={"crash_on_start": True})
    bare_platform.scale("blue", 1)
    with pytest.raises(PlatformError) as err:
        bare_platform.wait_ready("blue", timeout=4)
    msg = str(err.value)
    assert "blue not ready after 4 s" in msg and "exited with code 3" in msg, msg
    assert "\n" not in msg


def test_teardown_leaves_no_process_port_or_directory():
    p = stand_up(LocalConfig(replicas=1))
    pids = [r.pid for c in ("blue", "green") for r in p.replicas(c)]
    ports = [p.fronts[n].port for n in p.fronts] + [
        int(r.url.rsplit(":", 1)[1]) for c in ("blue", "green") for r in p.replicas(c)]
    workdir = p.workdir
    p.teardown()
    p.teardown()  # twice is harmless
    assert not pids_of(str(workdir)), "replica processes outlived teardown"
    assert not [port for port in ports if port_open(port)], "ports still open"
    assert not workdir.exists()
    assert all(pid for pid in pids)


def test_port_in_use_is_one_line_and_leaves_nothing(platform):
    busy = platform.fronts["service"].port
    with pytest.raises(PlatformError) as err:
        LocalPlatform(LocalConfig(service_port=busy))
    assert str(err.value).startswith(f"port {busy} on 127.0.0.1 is already in use")


@contextlib.contextmanager
def platform_cli():
    """``python -m zerodrop.platforms.local up`` as a user starts it; yields (process, workdir)."""
    proc = subprocess.Popen([sys.executable, "-m", "zerodrop.platforms.local", "up", "--replicas", "1"],
                            cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    workdir = "/nonexistent"
    try:
        lines: list[str] = []
        while not any(line.startswith("Token:") for line in lines):
            line = proc.stdout.readline()
            assert line, f"platform CLI ended early: {lines}"
            lines.append(line)
        workdir = next(line.split(": ", 1)[1].strip() for line in lines
                       if line.startswith("Workdir:"))
        yield proc, workdir
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(10)
        shutil.rmtree(workdir, ignore_errors=True)  # only a SIGKILLed CLI leaves it behind


def test_ctrl_c_on_the_cli_stops_everything():
    with platform_cli() as (proc, workdir):
        assert len(pids_of(workdir)) == 2  # one replica per colour
        proc.send_signal(signal.SIGINT)
        assert proc.wait(30) == 0
        assert not Path(workdir).exists()
    assert not pids_of(workdir)


def test_replicas_die_with_a_harness_killed_by_sigkill():
    """No orphans even when the harness gets no chance to clean up (PR_SET_PDEATHSIG)."""
    with platform_cli() as (proc, workdir):
        assert pids_of(workdir)
        proc.kill()
        proc.wait(10)
        wait_for(lambda: not pids_of(workdir), "replicas to die with their harness")


def test_wait_routed_follows_the_selector_and_names_an_empty_colour(platform):
    platform.wait_routed()           # the Service: blue's ready replicas
    platform.wait_routed("green")    # green's preview
    platform.route_to("green")
    platform.wait_routed()
    assert platform.front_endpoints("service") == [r.name for r in platform.replicas("green")]
    platform.scale("green", 0)
    wait_for(lambda: not platform.replicas("green"), "green scaled to 0", timeout=20)
    with pytest.raises(PlatformError, match="service selects green, which has no ready replica"):
        platform.wait_routed(timeout=2)


def new_connection_colours(url: str, n: int) -> Counter:
    return Counter(requests.get(f"{url}/health", headers={"Connection": "close"},
                                timeout=5).headers["X-App-Color"] for _ in range(n))


def test_the_set_weights_step_splits_new_connections_between_both_colours(platform):
    """The canary step on a real local platform: 70/30, and both colours answer new
    connections through the one Service address."""
    set_weights(platform, {"blue": 70, "green": 30}).run(Context(platform))
    platform.wait_routed()  # both colours' ready replicas behind the Service
    assert sorted(platform.front_endpoints("service")) == sorted(
        r.name for c in ("blue", "green") for r in platform.replicas(c))
    seen = new_connection_colours(platform.service_url, 60)
    assert seen["blue"] and seen["green"], seen  # 0.7**60 and 0.3**60: never by chance
    assert platform.active_color() is None  # weights: no single colour is selected
    assert platform.events.named("selector patched")[-1].detail["selector"] == {
        "blue": 70, "green": 30}
    with pytest.raises(PlatformError, match="weights must sum to 100, got 90"):
        set_weights(platform, {"blue": 60, "green": 30}).run(Context(platform))


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_a_proof_serves_on_the_fixed_service_port_and_the_suites_get_theirs_back(tmp_path):
    """--service-port reaches the proof's platform: the suites' shared platform holds the port
    until the proof needs it, and a suite test after the proof gets a new one on it. The
    JUnit properties say where each test's requests went."""
    port, junit = free_port(), tmp_path / "junit.xml"
    smoke = "suites/smoke/test_smoke.py"
    done = run_pytest(f"{smoke}::test_health",
                      "suites/zero_downtime/test_zero_downtime.py::test_switch_under_load",
                      f"{smoke}::test_readiness", "--service-port", str(port), "--replicas", "1",
                      "--baseline", "0.5", "--tail", "0.5", "--load-rate", "50",
                      f"--junitxml={junit}", "-o", "junit_family=legacy",
                      "--alluredir", str(tmp_path / "allure"),
                      "--evidence-dir", str(tmp_path / "evidence"), timeout=300)
    assert done.returncode == 0, (done.stdout + done.stderr)[-3000:]
    where = [(case.get("name"), prop.get("name"), prop.get("value"))
             for case in ET.parse(junit).getroot().iter("testcase")
             for prop in case.iter("property")]
    url = f"http://127.0.0.1:{port}"
    assert where == [("test_health", "zerodrop_target", url),
                     ("test_switch_under_load", "zerodrop_service_url", url),
                     ("test_readiness", "zerodrop_target", url)], where
    assert not port_open(port), "the shared platform outlived the run"


def _open_sockets() -> int:
    import os
    fds = Path("/proc/self/fd")
    count = 0
    for fd in fds.iterdir():
        with contextlib.suppress(OSError):
            count += os.readlink(fd).startswith("socket:")
    return count


def test_the_front_closes_both_sockets_of_every_finished_connection(platform):
    """A connection closed from both ends (the replica answers with Connection: close, the
    client then closes) must leave no socket open in the front. Each half-close kept the
    other half open, so both sockets of every such connection leaked: a canary's 6,000
    fresh connections then ran the harness out of file descriptors ("Too many open files")."""
    before = _open_sockets()
    for i in range(300):
        h = {"Connection": "close"}
        if i % 3 == 0:
            h["canary"] = "true"  # also through the header rule's own path
        if i == 150:
            platform.set_weights({"blue": 100, "green": 0}, canary="green")
            platform.wait_routed(None)
        assert requests.get(platform.service_url + "/health/live", headers=h, timeout=5).ok
    # clients that end before their first request's head is complete, while the front waits
    # for it to choose by the canary header: routed with what came, then closed at both ends
    host, port = platform.service_url.removeprefix("http://").split(":")
    for _ in range(20):
        with socket.create_connection((host, int(port)), timeout=5) as raw:
            raw.sendall(b"GET /health/live HTTP/1.1\r\nHost: x\r\n")  # no blank line
            raw.shutdown(socket.SHUT_WR)
            while raw.recv(4096):
                pass
    wait_for(lambda: _open_sockets() <= before + 10,
             f"the front's sockets back near {before} (300 connections would leak 600)")
