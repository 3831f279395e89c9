"""Another team's service, proved with no Python written for it: the to-do service under
examples/todo_service (standard library only, its own routes, headers and idempotency header),
described by its profile. The suites and both proofs pass against it through the real command
line; each way it is broken on purpose (its own ``--fault`` knobs, through ``--app-cmd``) FAILs
the proof for the right reason."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from tests.integration.conftest import run_pytest
from zerodrop.platforms.local.platform import LocalConfig, stand_up
from zerodrop.profiles import profile as profiles
from zerodrop.scenarios.blue_green import SwitchSettings, rollback, switch
from zerodrop.scenarios.proof import ProofSettings, prove
from zerodrop.scenarios.steps import Context

pytestmark = pytest.mark.slow
TODO = Path(__file__).resolve().parents[2] / "examples" / "todo_service"
PROFILE_FILE = TODO / "todo.profile.toml"
PROFILE = profiles.load(PROFILE_FILE)
LOAD = ProofSettings(users=10, rate=120.0, baseline_s=1.0, tail_s=1.0, show_progress=False,
                     profile=PROFILE)
QUICK = SwitchSettings(replicas=1, post_deploy=False, verify_timeout=5, profile=PROFILE)


def app_cmd(*faults: str, color: str = "green") -> str:
    broken = "".join(f" --fault {f}" for f in faults)
    return (f"{{python}} {TODO}/app.py serve --port {{port}}" +
            (f"{broken} --fault-color {color}" if faults else ""))


def todo_config(*faults: str, color: str = "green") -> LocalConfig:
    """The local platform as --profile sets it up for the example (what the provider does)."""
    return LocalConfig(replicas=1, app_cmd=app_cmd(*faults, color=color),
                       migrate_cmd=f"{{python}} {TODO}/app.py migrate",
                       readiness_path=PROFILE.readiness, service_name="todo-service")


def run_switch(tmp_path: Path, *faults: str, color: str = "green", load: ProofSettings = LOAD):
    platform = stand_up(todo_config(*faults, color=color), idle_replicas=0)
    try:
        proof = prove(platform, switch(platform, "v2.0.0", QUICK, name="todo"), Context(platform),
                      load, tmp_path / "out", tmp_path / "ledger")
    finally:
        platform.teardown()
    return proof


def test_the_example_service_passes_the_suites_and_both_proofs_from_the_command_line(tmp_path):
    """The user's path: ``--profile`` alone; the app command, probes, headers, load and checks
    all come from the profile. The checks that need what the profile does not describe (money,
    a --checks file) are deselected and named, never passed."""
    done = run_pytest("suites", "--profile", str(PROFILE_FILE), "--replicas", "1",
                      "--load-rate", "150", "--alluredir", str(tmp_path / "allure"),
                      "--evidence-dir", str(tmp_path / "evidence"), timeout=480)
    assert done.returncode == 0, done.stdout[-3000:]
    # deselected: money, the --checks file, the faulty canary (the reference's fault API), the
    # watched deploy, the migration (the reference's release migrations), the game days and the
    # nightly run (only with their own commands); the healthy canary
    # runs (judged from the ledger: the seed's metric names are the reference service's)
    assert re.search(r"\b14 passed, 7 deselected\b", done.stdout), done.stdout[-2000:]
    assert "not run for the profile todo-service: the profile has no [money] section" in done.stdout
    import json
    verdict = json.loads((tmp_path / "evidence" / "switch-under-load.json").read_text())
    assert verdict["verdict"] == "PASS" and verdict["integrity"]["acknowledged"] > 50, verdict
    assert any("acknowledged to-dos found with their titles and by their Request-Keys" in r
               for r in verdict["reasons"]), verdict["reasons"]
    assert set(verdict["served_by_version"]) == {"v1.0.0", "v1.2.0"}, verdict["served_by_version"]


def test_lost_writes_of_the_new_version_fail_the_data_check(tmp_path):
    """Green answers every 5th new to-do with 201 and never commits it."""
    proof = run_switch(tmp_path, "lose_writes")
    assert proof.verdict.verdict == "FAIL", proof.explain()
    assert proof.data.missing, proof.explain()
    assert any(r.startswith("data loss:") and "acknowledged to-dos" in r and "missing" in r
               for r in proof.verdict.reasons), proof.explain()


def test_a_stored_value_other_than_the_acknowledged_one_fails(tmp_path):
    """Green stores every 4th title edited while its 201 shows the title sent."""
    proof = run_switch(tmp_path, "wrong_title")
    assert proof.verdict.verdict == "FAIL", proof.explain()
    assert proof.data.mismatched, proof.explain()
    assert any("came back with another title" in r for r in proof.verdict.reasons), proof.explain()


def test_a_version_that_ignores_the_request_key_fails(tmp_path):
    """Green makes a new to-do for every POST, whatever its Request-Key: the retrying clients'
    duplicates and the replays find two to-dos for one key."""
    proof = run_switch(tmp_path, "ignore_key")
    assert proof.verdict.verdict == "FAIL", proof.explain()
    assert proof.data.duplicated_keys or proof.data.keys_answered_twice, proof.explain()
    assert any(r.startswith("data loss:") and "idempotency key" in r for r in proof.verdict.reasons), \
        proof.explain()


def test_an_old_version_that_exits_on_sigterm_fails(tmp_path):
    """Blue exits at once on SIGTERM, no drain, while clients hold connections to it."""
    proof = run_switch(tmp_path, "exit_on_sigterm", color="blue")
    assert proof.verdict.verdict == "FAIL", proof.explain()
    assert any(r.startswith("shutdown: replica todo-service-blue-") for r in proof.verdict.reasons), \
        proof.explain()


ONLY_IDLE_KEEPALIVE = ProofSettings(users=1, rate=60.0, baseline_s=1.0, tail_s=1.0, show_progress=False,
                                    populations={"fresh": 1}, idle_clients=16, profile=PROFILE)


def test_a_drain_that_abandons_idle_connections_fails_on_the_idle_clients(tmp_path):
    """Blue neither closes idle kept-alive connections nor says Connection: close while it
    drains, then exits: the idle clients send into the closing socket."""
    proof = run_switch(tmp_path, "abandon_idle", color="blue", load=ONLY_IDLE_KEEPALIVE)
    assert proof.verdict.verdict == "FAIL", proof.explain()
    assert proof.verdict.populations["idle"]["failed"] > 0 or any(
        "still held" in r for r in proof.verdict.reasons), proof.explain()
    assert proof.verdict.populations["fresh"]["failed"] == 0, proof.explain()


def test_the_rollback_proof_fails_when_the_version_rolled_back_to_loses_writes(tmp_path):
    """The rollback proof, broken the same way: after a switch to green, traffic goes back to
    blue, and blue is the version that acknowledges to-dos it never commits."""
    platform = stand_up(todo_config("lose_writes", color="blue"), idle_replicas=0)
    try:
        first = switch(platform, "v2.0.0", QUICK).run(Context(platform))
        assert first.ok, first.failure
        proof = prove(platform, rollback(platform, QUICK, name="todo-rollback"), Context(platform),
                      LOAD, tmp_path / "out", tmp_path / "ledger")
    finally:
        platform.teardown()
    assert proof.verdict.verdict == "FAIL", proof.explain()
    assert proof.data.missing, proof.explain()
    assert any(r.startswith("data loss:") and "acknowledged to-dos" in r for r in proof.verdict.reasons)


def test_the_same_switch_of_the_healthy_example_passes(tmp_path):
    """Positive twin of the controls above, with the same settings."""
    proof = run_switch(tmp_path)
    assert proof.verdict.verdict == "PASS", proof.explain()
    assert proof.data.acknowledged > 20 and not proof.data.keys_unchecked, proof.explain()
