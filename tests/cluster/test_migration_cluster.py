"""Migration safety on a real kind cluster (scenarios/migration.py): the overlay's migration Job
runs once more as v1.2.0's, against the namespace's PostgreSQL, while blue serves the load
through the Service's NodePort.

- the additive migration (add_payment_note): the Job runs, is deleted afterwards, blue holds,
  and the switch to green PASSes (positive control);
- the breaking one (rename_balance_column) is caught before "switch traffic to green": the
  reasons name blue's failing requests, blue keeps the Service, green never serves (negative
  control);
- a migration Job that cannot succeed is waited for with a deadline and fails the first step
  with its pod's log tail.

The app image must hold the release migrations: ``.ci/run`` builds ``zerodrop/payment-service:dev``
from this tree; elsewhere build one (``infra/cluster/build-app-image.sh migration zd-dev``) and
name it in ``ZD_MIGRATION_IMAGE``. An image without them is caught: the Job's output must name
the release it applied.
"""
from __future__ import annotations

import dataclasses
import os

import pytest

from zerodrop.platforms.kubernetes.platform import KubeConfig, new_namespace, stand_up
from zerodrop.records.events import EventName
from zerodrop.records.ledger import read_records
from zerodrop.scenarios.blue_green import SwitchSettings
from zerodrop.scenarios.migration import MigrationSettings, migration_then_switch
from zerodrop.scenarios.proof import ProofSettings, prove
from zerodrop.scenarios.steps import Context

pytestmark = pytest.mark.slow
IMAGE = os.environ.get("ZD_MIGRATION_IMAGE", "zerodrop/payment-service:dev")
LOAD = ProofSettings(users=10, rate=60.0, baseline_s=1.0, tail_s=1.0, show_progress=False)
SWITCH = SwitchSettings(replicas=1, verify_timeout=10, ready_timeout=120)
BLUE, GREEN = "v1.0.0", "v1.2.0"
_n = iter(range(1, 1000))


def _platform(cluster, run_id):
    return stand_up(cluster, KubeConfig(replicas=1, run_id=run_id, ready_timeout=120,
                                        image=IMAGE),
                    new_namespace(run_id, f"mig{next(_n)}"), idle_replicas=0)


def _run(platform, tmp_path, release: str):
    scenario = migration_then_switch(platform, GREEN,
                                     MigrationSettings(SWITCH, env={"MIGRATE_RELEASE": release}),
                                     name=f"k8s-migration-{release}")
    return prove(platform, scenario, Context(platform), LOAD, tmp_path / "out",
                 tmp_path / "ledger")


def _migration_jobs(platform) -> list[str]:
    jobs = platform.batch.list_namespaced_job(platform.namespace).items
    return [j.metadata.name for j in jobs if j.metadata.name.startswith("payment-service-migration-")
            and j.metadata.deletion_timestamp is None]


def test_additive_migration_job_runs_and_the_switch_passes(cluster, run_id, tmp_path):
    platform = _platform(cluster, run_id)
    try:
        proof = _run(platform, tmp_path, "add_payment_note")
        migrated = [e for e in proof.timeline if e.name == EventName.MIGRATED
                    and e.detail.get("version") == GREEN]
        assert migrated, "the migration Job's event is missing"
        assert any("1001_add_payment_note" in line for line in migrated[0].detail["output"]), (
            f"the Job's output names no release migration: is {IMAGE} older than the release "
            f"migrations? {migrated[0].detail['output']}")
        assert proof.scenario.ok and proof.verdict.verdict == "PASS", proof.explain()
        assert platform.active_color() == "green"
        assert not _migration_jobs(platform), "the migration Job must be deleted afterwards"
    finally:
        platform.teardown()


def test_breaking_migration_job_is_caught_before_the_switch(cluster, run_id, tmp_path):
    platform = _platform(cluster, run_id)
    try:
        proof = _run(platform, tmp_path, "rename_balance_column")
        steps = {s.name: s for s in proof.scenario.steps}
        failed = [s.name for s in proof.scenario.steps if s.status == "failed"]
        assert failed and failed[0] in ("blue's smoke checks on the migrated schema",
                                        "blue holds on the migrated schema",
                                        "blue's post-deploy checks on the migrated schema"), \
            proof.explain()
        assert steps["switch traffic to green"].status == "not run", proof.explain()
        assert proof.verdict.verdict == "FAIL"
        assert any("(blue)" in r and "migrate v1.2.0 while blue serves" in r
                   for r in proof.verdict.reasons), proof.explain()
        assert platform.active_color() == "blue"
        with open(proof.load.ledger_path, encoding="utf-8") as f:
            records = list(read_records(f))
        assert not [r for r in records if r.version == GREEN], "green must never serve"
        assert [r for r in records if r.failed and r.version == BLUE], proof.explain()
    finally:
        platform.teardown()


def test_a_failing_migration_job_is_one_line_with_its_log_tail(cluster, run_id, tmp_path):
    """The Job keeps failing (an unknown release: exit 2 each try); the wait ends at its
    deadline, the step's error carries the pod's log, and the Job is deleted."""
    platform = _platform(cluster, run_id)
    try:
        platform.config = dataclasses.replace(platform.config, ready_timeout=25)
        proof = _run(platform, tmp_path, "no_such_release")
        first = proof.scenario.steps[0]
        assert first.name == "migrate v1.2.0 while blue serves" and first.status == "failed"
        assert "did not complete" in first.error and "no_such_release" in first.error, first.error
        assert "\n" not in first.error
        assert platform.active_color() == "blue"
        assert not _migration_jobs(platform), "the failed migration Job must be deleted too"
    finally:
        platform.teardown()
