"""Migration safety (scenarios/migration.py), end to end on the local platform: real replicas
sharing one SQLite file, real Locust load through the Service, the real migrate command, the
real verdict.

- the additive release migration (add_payment_note): blue keeps working on the migrated
  schema, then the switch to green PASSes (positive control);
- each breaking one (rename_balance_column, drop_payment_description) is caught BEFORE
  "switch traffic to green" runs: the scenario fails at blue's checks or at "blue holds on the
  migrated schema", the reasons name blue's failing requests, traffic stays on blue and green
  never answers a request (negative controls);
- the hold judge itself (pure), and its refusal to pass where it cannot look (no live ledger),
  with a stand-in platform named as such.
"""
from __future__ import annotations

import time

import pytest

from zerodrop.platforms.base import PlatformError
from zerodrop.platforms.local.platform import LocalConfig, stand_up
from zerodrop.records.events import EventName
from zerodrop.records.ledger import LedgerRecord, read_records
from zerodrop.scenarios.blue_green import SwitchSettings
from zerodrop.scenarios.migration import (MigrationSettings, _Migrated, hold, judge_hold,
                                          migration_then_switch, old_colour_requests)
from zerodrop.scenarios.proof import ProofSettings, prove
from zerodrop.scenarios.steps import Context, StepFailed

LOAD = ProofSettings(users=10, rate=60.0, baseline_s=1.0, tail_s=1.0, show_progress=False)
SWITCH = SwitchSettings(replicas=1, verify_timeout=5)
BLUE, GREEN = "v1.0.0", "v1.2.0"
SWITCH_STEP = "switch traffic to green"
CAUGHT_AT = ("blue's smoke checks on the migrated schema",
             "blue's post-deploy checks on the migrated schema",
             "blue holds on the migrated schema")


def _migrate_and_switch(tmp_path, release: str):
    platform = stand_up(LocalConfig(replicas=1), idle_replicas=0)
    try:
        scenario = migration_then_switch(
            platform, GREEN, MigrationSettings(SWITCH, env={"MIGRATE_RELEASE": release}),
            name=f"migration-{release}")
        proof = prove(platform, scenario, Context(platform), LOAD, tmp_path / "out",
                      tmp_path / "ledger")
        return platform, proof
    except BaseException:
        platform.teardown()
        raise


def _ledger(proof) -> list[LedgerRecord]:
    with open(proof.load.ledger_path, encoding="utf-8") as f:
        return list(read_records(f))


def _step(proof, name: str):
    return next(s for s in proof.scenario.steps if s.name == name)


@pytest.mark.slow
def test_additive_migration_then_switch_passes(tmp_path):
    """Positive control: the nullable column leaves blue whole; then green takes over."""
    platform, proof = _migrate_and_switch(tmp_path, "add_payment_note")
    try:
        assert proof.scenario.ok and proof.verdict.verdict == "PASS", proof.explain()
        migrated = [e for e in proof.timeline if e.name == EventName.MIGRATED
                    and e.detail.get("version") == GREEN]
        assert migrated and any("add_payment_note" in line
                                for line in migrated[0].detail["output"]), migrated
        assert migrated[0].detail["env"] == {"MIGRATE_RELEASE": "add_payment_note"}
        assert platform.active_color() == "green"
        versions = {r.version for r in _ledger(proof) if r.version}
        assert versions == {BLUE, GREEN}, versions  # both served, one after the other
    finally:
        platform.teardown()


@pytest.mark.slow
@pytest.mark.parametrize("release", ["rename_balance_column", "drop_payment_description"])
def test_breaking_migration_is_caught_before_the_switch(tmp_path, release):
    """Negative control: a migration blue cannot live with stops the scenario before any
    traffic moves, and the reasons name blue's failing requests."""
    platform, proof = _migrate_and_switch(tmp_path, release)
    try:
        failed = [s for s in proof.scenario.steps if s.status == "failed"]
        assert failed and failed[0].name in CAUGHT_AT, proof.explain()
        assert _step(proof, SWITCH_STEP).status == "not run", proof.explain()
        assert proof.verdict.verdict == "FAIL", proof.explain()
        assert platform.active_color() == "blue", "traffic must stay on blue"
        records = _ledger(proof)
        assert not [r for r in records if r.version == GREEN], "green must never serve"
        t_migrated = next(e.t for e in proof.timeline if e.name == EventName.MIGRATED
                          and e.detail.get("version") == GREEN)
        blue_failed = [r for r in records if r.failed and r.version == BLUE
                       and r.t_start >= t_migrated]
        assert blue_failed, "the breaking migration made none of blue's requests fail"
        explained = proof.explain()
        # the verdict's reasons: blue's failures on the routes the load sent, after the migration
        # began (the window is named after the last step started before its first failure: the
        # migration's, or a check's that started before the first failing request was answered)
        after_migration = ("migrate v1.2.0 while blue serves",) + CAUGHT_AT
        assert any("(blue)" in r and any(f"'{step}'" in r for step in after_migration)
                   for r in proof.verdict.reasons), explained
        routes = {r.route for r in blue_failed}
        assert any(route in explained for route in routes), explained
    finally:
        platform.teardown()


@pytest.mark.slow
def test_unknown_release_migration_fails_the_first_step_in_one_line(tmp_path):
    """A migration that cannot run stops the scenario at its first step, with the migrate
    command's own line naming the known releases; blue keeps serving."""
    platform, proof = _migrate_and_switch(tmp_path, "no_such_release")
    try:
        first = proof.scenario.steps[0]
        assert first.name == "migrate v1.2.0 while blue serves" and first.status == "failed"
        assert "unknown release migration 'no_such_release'" in first.error, first.error
        assert "add_payment_note" in first.error and "\n" not in first.error
        assert _step(proof, SWITCH_STEP).status == "not run"
        assert platform.active_color() == "blue"
    finally:
        platform.teardown()


# ---- the hold judge: pure, and never a silent pass ---------------------------------------

def _record(t: float, version: str = BLUE, status: int = 200, outcome: str = "ok",
            route: str = "/api/accounts/{id}/balance") -> LedgerRecord:
    return LedgerRecord(t_start=t, t_end=t + 0.01, method="GET", route=route, status=status,
                        outcome=outcome, version=version, error="" if outcome == "ok" else "boom")


def test_hold_judge_passes_only_when_no_request_of_blue_failed():
    ok = [_record(i * 0.01) for i in range(50)]
    assert judge_hold(ok, "blue", BLUE) == ""
    bad = ok + [_record(0.2, status=500, outcome="http_error"),
                _record(0.3, status=0, outcome="reset", version="")]
    text = judge_hold(old_colour_requests(bad, BLUE), "blue", BLUE)
    assert text.startswith("2 of 52 requests of blue (v1.0.0) failed"), text
    assert "http_error 500 1" in text and "reset 1" in text
    assert "GET /api/accounts/{id}/balance 2" in text and "e.g. GET" in text


def test_hold_judge_ignores_other_versions_and_keepalive_races():
    records = [_record(0.0), _record(0.1, version="v9", status=500, outcome="http_error"),
               _record(0.2, outcome="keepalive_race", status=0, version="")]
    judged = old_colour_requests(records, BLUE)
    assert len(judged) == 2  # v9 is not blue's; a failure with no answer is
    assert judge_hold(judged, "blue", BLUE) == ""
    assert len(old_colour_requests(records, "")) == 3  # blue's version unknown: all of them


class _NoPlatform:
    """A stand-in: the hold step never touches the platform."""
    events = None


class _Ledger:
    """A stand-in for load.ledger.LedgerTail: a fixed list of records."""

    def __init__(self, records):
        self.records = records

    def since(self, t):
        return [r for r in self.records if r.t_start >= t]


def _hold_ctx(live) -> Context:
    ctx = Context(_NoPlatform())  # type: ignore[arg-type]
    ctx.live = live
    return ctx


def test_hold_step_without_a_live_ledger_says_it_cannot_judge():
    step = hold("blue", BLUE, _Migrated(time.time() - 5), MigrationSettings())
    with pytest.raises(StepFailed, match=r"cannot judge .* \(INCONCLUSIVE\).*load inside"):
        step.run(_hold_ctx(None))


def test_hold_step_with_too_few_requests_says_it_cannot_judge():
    t0 = time.time() - 5
    step = hold("blue", BLUE, _Migrated(t0),
                MigrationSettings(hold_s=0, min_requests=20, judge_timeout=0.3))
    with pytest.raises(StepFailed, match=r"INCONCLUSIVE.*3 of its requests.*at least 20"):
        step.run(_hold_ctx(_Ledger([_record(t0 + 0.1 * i) for i in range(3)])))


def test_hold_step_fails_on_a_failed_request_of_blue_and_passes_without():
    t0 = time.time() - 5
    settings = MigrationSettings(hold_s=0, min_requests=5, judge_timeout=1)
    good = [_record(t0 + 0.1 * i) for i in range(10)]
    hold("blue", BLUE, _Migrated(t0), settings).run(_hold_ctx(_Ledger(good)))
    before = _record(t0 - 1, status=500, outcome="http_error")  # before the migration: not judged
    hold("blue", BLUE, _Migrated(t0), settings).run(_hold_ctx(_Ledger([before, *good])))
    bad = good + [_record(t0 + 2, status=500, outcome="http_error")]
    with pytest.raises(StepFailed, match=r"1 of 11 requests of blue \(v1.0.0\) failed"):
        hold("blue", BLUE, _Migrated(t0), settings).run(_hold_ctx(_Ledger(bad)))


def test_a_platform_without_migrate_refuses_in_one_line():
    from zerodrop.platforms.base import Platform
    with pytest.raises(PlatformError, match="cannot run a migration"):
        Platform.migrate(_NoPlatform(), "v1.2.0")  # type: ignore[arg-type]


# ---- Platform.migrate on the local platform, for any service's migrate command -----------

@pytest.mark.slow
def test_local_migrate_runs_the_services_own_command_with_version_and_env(tmp_path):
    """Another service (the to-do example): its profile's migrate command runs again, with
    APP_VERSION and the env, and the timeline says so."""
    from tests.integration.conftest import ROOT
    from zerodrop.platforms.local.platform import LocalPlatform
    app = ROOT / "examples" / "todo_service" / "app.py"
    platform = LocalPlatform(LocalConfig(
        replicas=0, app_cmd=f"{{python}} {app} serve --port {{port}}",
        migrate_cmd=f"{{python}} {app} migrate", readiness_path="/readyz"))
    try:
        platform.migrate("v2.0.0", {"SOME_FLAG": "1"})
        event = [e for e in platform.events.named(EventName.MIGRATED)
                 if e.detail.get("version") == "v2.0.0"]
        assert event and event[0].detail["env"] == {"SOME_FLAG": "1"}, event
        assert "AUTH_TOKEN" not in event[0].detail["env"], "only the caller's env is shown"
    finally:
        platform.teardown()


@pytest.mark.slow
def test_local_migrate_that_fails_is_one_line_with_its_output_tail(tmp_path):
    """Negative control: a migrate command that exits non-zero (only when told to, so that
    the platform's own first migration passes) is a PlatformError with its last lines."""
    from zerodrop.platforms.local.platform import LocalPlatform
    fails = ("{python} -c \"import os,sys; print('migrating to', os.environ.get('APP_VERSION')); "
             "sys.exit(3 if os.environ.get('FAIL_MIGRATION') else 0)\"")
    platform = LocalPlatform(LocalConfig(replicas=0, migrate_cmd=fails))
    try:
        with pytest.raises(PlatformError) as caught:
            platform.migrate("v9.9.9", {"FAIL_MIGRATION": "1"})
        text = str(caught.value)
        assert "of v9.9.9 failed (exit 3): migrating to v9.9.9" in text and "\n" not in text, text
        assert not [e for e in platform.events.named(EventName.MIGRATED)
                    if e.detail.get("version") == "v9.9.9"], "a failed migration is no event"
    finally:
        platform.teardown()


def test_migration_job_names_are_new_dns_labels():
    import re

    from zerodrop.platforms.kubernetes.platform import _migration_job_name
    names = {_migration_job_name("payment-service-migration", "v1.2.0") for _ in range(20)}
    assert len(names) == 20, "each run of the Job needs a name of its own"
    long = _migration_job_name("a" * 80, "V9.9.9+build/" + "x" * 80)
    for name in names | {long}:
        assert len(name) <= 63 and re.fullmatch(r"[a-z0-9]([-a-z0-9]*[a-z0-9])?", name), name
    assert next(iter(names)).startswith("payment-service-migration-v1-2-0-")


def test_a_cluster_overlay_without_a_migration_job_refuses_before_any_api_call(tmp_path):
    """The to-do example's overlay with its migrate Job deleted (kustomize ``$patch: delete``):
    ``KubernetesPlatform.migrate`` says so in one line. A stand-in platform object: no cluster
    and no API client at all, so reaching the API would be an AttributeError, not this."""
    import os

    from zerodrop.platforms.kubernetes.platform import KubeConfig, KubernetesPlatform, layout_of
    from zerodrop.profiles import profile as profiles
    from tests.integration.conftest import ROOT
    example = ROOT / "examples" / "todo_service"
    profile = profiles.load(example / "todo.profile.toml")
    overlay = tmp_path / "no-job"
    overlay.mkdir()
    (overlay / "kustomization.yaml").write_text(f"""\
apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - {os.path.relpath(example / "k8s" / "overlays" / "kind", overlay)}
patches:
  - patch: |-
      $patch: delete
      apiVersion: batch/v1
      kind: Job
      metadata: {{name: todo-migrate}}
""")
    standin = object.__new__(KubernetesPlatform)
    standin.config = KubeConfig(overlay=overlay, profile=profile, image=None)
    standin.layout, standin.profile = layout_of(standin.config), profile
    standin.namespace, standin.admin_token = "zd-standin", "unused"
    with pytest.raises(PlatformError, match=r"has no migration Job, so v2\.0\.0's migration "
                                            r"cannot run on this cluster"):
        standin.migrate("v2.0.0")


# An app older than the release migrations, as a stand-in: the real migrate command with the
# release's env taken away (what an image built before them does: the base migrations only).
_OLD_MIGRATE = """\
import os, sys
os.environ.pop("MIGRATE_RELEASE", None)
from zerodrop.payment_service.__main__ import main
sys.exit(main(["migrate"]))
"""


@pytest.mark.slow
def test_the_suite_fails_when_the_app_ignores_the_release_migration(tmp_path):
    """Negative control of the suite's last check (with an older-app stand-in): blue holds
    and the switch passes, since nothing changed, but the migration never said it applied
    add_payment_note, so the suite fails instead of proving nothing."""
    from tests.integration.conftest import run_pytest
    script = tmp_path / "old_migrate.py"
    script.write_text(_OLD_MIGRATE)
    done = run_pytest("suites/zero_downtime/test_migration.py", "--replicas", "1",
                      "--migrate-cmd", f"{{python}} {script}",
                      "--evidence-dir", str(tmp_path / "out"), timeout=300)
    out = done.stdout + done.stderr
    assert done.returncode == 1, out[-3000:]
    assert "did not say it applied add_payment_note" in out, out[-3000:]
    assert "schema at version 5 (0 applied)" in out, out[-3000:]
