"""Any app on the local platform (--app-cmd, --migrate-cmd): the reference service started like
any other app, with the placeholders and the environment an app gets; and an app that cannot
run, exits at once or never listens is one line with its command, its exit status and its last
output, with nothing left running."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import requests

from zerodrop.platforms.base import PlatformError
from zerodrop.platforms.local.platform import LocalConfig, stand_up
from zerodrop.scenarios.blue_green import SwitchSettings, switch
from zerodrop.scenarios.proof import ProofSettings, prove
from zerodrop.scenarios.steps import Context

from .conftest import pids_of

pytestmark = pytest.mark.slow
ROOT = Path(__file__).resolve().parents[2]

# the reference service through a shell: its port from $PORT, its colour from $ZD_COLOR,
# nothing of it known to the platform but this line
VIA_ENV = ("sh -c 'APP_COLOR=$ZD_COLOR exec \"$0\" -m zerodrop.payment_service serve "
           "--host 127.0.0.1 --port $PORT' {python}")


def test_the_reference_service_as_any_app_passes_a_switch_under_load(tmp_path):
    platform = stand_up(LocalConfig(replicas=1, app_cmd=VIA_ENV), idle_replicas=0)
    try:
        answer = requests.get(platform.service_url + "/health", timeout=5)
        assert answer.headers["X-App-Version"] == "v1.0.0" and answer.headers["X-App-Color"] == "blue"
        scenario = switch(platform, "v2.0.0", SwitchSettings(replicas=1, post_deploy=False, verify_timeout=5))
        proof = prove(platform, scenario, Context(platform),
                      ProofSettings(rate=60.0, baseline_s=1.0, tail_s=1.0, show_progress=False),
                      tmp_path / "out", tmp_path / "ledger")
    finally:
        platform.teardown()
    assert proof.verdict.verdict == "PASS", proof.explain()
    assert proof.verdict.to_dict()["served_by_version"].get("v2.0.0", 0) > 0


def _refused(config: LocalConfig) -> str:
    with pytest.raises(PlatformError) as info:
        stand_up(config, idle_replicas=0)
    message = str(info.value)
    assert "\n" not in message
    return message


def _no_replica_left(before: set[int]) -> None:
    assert [p for p in pids_of("boom-app") if p not in before] == []


def test_an_app_that_exits_at_once_is_one_line_with_its_status_and_output():
    before = set(pids_of("boom-app"))
    msg = _refused(LocalConfig(replicas=1, ready_timeout=4,
                               app_cmd="sh -c 'echo boom-app starting; echo no config >&2; exit 7'"))
    assert msg.startswith("blue not ready after 4 s: ") and "--app-cmd \"sh -c 'echo boom-app" in msg, msg
    assert "exited with code 7" in msg and "no config" in msg, msg
    _no_replica_left(before)


def test_an_app_that_never_listens_is_named_with_its_port():
    before = set(pids_of("boom-app"))
    msg = _refused(LocalConfig(replicas=1, ready_timeout=3,
                               app_cmd="sh -c 'echo boom-app up; while :; do sleep 1; done' boom-app"))
    assert "is not listening on port " in msg and "boom-app up" in msg, msg
    _no_replica_left(before)


def test_an_app_that_cannot_run_says_so():
    msg = _refused(LocalConfig(replicas=1, ready_timeout=3, app_cmd="/nonexistent/boom-app --port {port}"))
    assert "cannot run: No such file or directory" in msg, msg


def test_a_failing_migration_stops_everything_before_any_replica():
    msg = _refused(LocalConfig(replicas=1, migrate_cmd="sh -c 'echo schema broken; exit 3'"))
    assert msg == "--migrate-cmd \"sh -c 'echo schema broken; exit 3'\" failed (exit 3): schema broken", msg


@pytest.mark.parametrize("changes, words", [
    (dict(app_cmd="serve --port {prot}"), "--app-cmd 'serve --port {prot}': unknown placeholder {prot}"),
    (dict(app_cmd=""), "--app-cmd is empty"),
    (dict(app_cmd="sh -c 'unterminated"), "No closing quotation"),
    (dict(migrate_cmd="migrate --to {port}"), "--migrate-cmd 'migrate --to {port}': unknown placeholder {port}"),
])
def test_bad_templates_are_refused_before_anything_starts(changes, words):
    with pytest.raises(PlatformError) as info:
        LocalConfig(**changes).validate()
    assert words in str(info.value)


def test_a_bad_app_cmd_is_a_usage_error_of_the_command(tmp_path):
    base = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    done = subprocess.run([sys.executable, "-m", "zerodrop", "verify", str(ROOT / "suites"),
                           "--app-cmd", "app --port {prot}"], cwd=tmp_path, text=True,
                          capture_output=True, timeout=120, env=base)
    assert done.returncode == 4, done.stdout + done.stderr
    assert "unknown placeholder {prot}" in done.stderr and "Traceback" not in done.stderr
