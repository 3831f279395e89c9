"""Migration safety, proven per deployment (scenarios/migration.py): the next version's schema
migration runs while blue serves under load (locally the migrate command, on a cluster the
overlay's migration Job), blue must pass its smoke checks, hold every request of the load and
pass its post-deploy checks on the migrated schema (so that a rollback to it stays possible),
and only then does traffic switch to green, every request judged as in a switch.

The migration is v1.2.0's additive one, ``MIGRATE_RELEASE=add_payment_note`` (a nullable
column). Its negative controls, the breaking migrations caught before the switch, are in
tests/integration/test_migration.py and tests/cluster/test_migration_cluster.py. Runs only for
the reference payment-service, whose release migrations these are (``profile_needs``), and
with the load on this machine (``--load-from here``, the default): with the load inside the
cluster it is skipped with that reason, as the hold step could only say it cannot judge.
"""
from __future__ import annotations

from dataclasses import replace

import allure
import pytest

from zerodrop.checks.steps import labels
from zerodrop.fixtures.proofs import load_errors_in_one_line
from zerodrop.records.events import EventName
from zerodrop.scenarios.blue_green import SwitchSettings
from zerodrop.scenarios.migration import MigrationSettings, migration_then_switch
from zerodrop.scenarios.proof import prove
from zerodrop.scenarios.steps import Context

pytestmark = [pytest.mark.zero_downtime, pytest.mark.xdist_group("zero_downtime")]
BLOCKER = allure.severity_level.BLOCKER
NEW_VERSION = "v1.2.0"
RELEASE = {"MIGRATE_RELEASE": "add_payment_note"}  # v1.2.0's migration: additive
SHORT_S = 1.0  # baseline and tail: the scenario's own steps are most of the run
# A modest rate: the run holds two post-deploy write flows (blue's on the migrated schema, then
# green's), ~25 s on a busy 2-core machine; at the proofs' 360/s the load's payments drain the
# reference test accounts that the post-deploy write flow pays from (insufficient_funds).
MAX_RATE = 120.0


@labels("zero-downtime", "migration then switch under load", BLOCKER)
@pytest.mark.profile_needs("release_migration")
@pytest.mark.skipif("getattr(config.option, 'load_from', 'here') == 'cluster'",
                    reason="migration safety judges blue from the load's ledger as it grows; a "
                           "load inside the cluster hands its ledger over only when it stops: "
                           "run it with --load-from here (as on --target kind)")
def test_migration_then_switch_under_load(zd_platform, zd_proof_settings, zd_evidence_dir,
                                          zd_terminal, zd_judged, tmp_path, pytestconfig):
    """v1.2.0's migration while blue (v1.0.0) serves; blue still whole on the new schema; then
    green (v1.2.0) takes over: no request dropped, no payment lost."""
    o = pytestconfig.option
    switch = SwitchSettings(token=o.token, replicas=o.replicas, ready_timeout=o.ready_timeout,
                            payment_timeout=o.payment_timeout,
                            profile=getattr(o, "service_profile", None))
    scenario = migration_then_switch(zd_platform, NEW_VERSION,
                                     MigrationSettings(switch, env=dict(RELEASE)),
                                     name="migration-then-switch")
    load = replace(zd_proof_settings, baseline_s=min(zd_proof_settings.baseline_s, SHORT_S),
                   tail_s=min(zd_proof_settings.tail_s, SHORT_S),
                   rate=min(zd_proof_settings.rate, MAX_RATE))
    with zd_terminal() as stream, load_errors_in_one_line():
        proof = prove(zd_platform, scenario, Context(zd_platform), load, zd_evidence_dir,
                      tmp_path / "ledger", progress_stream=stream)
    zd_judged(proof)
    migrated = [e for e in proof.timeline if e.name == EventName.MIGRATED
                and e.detail.get("version") == NEW_VERSION]
    said = migrated[0].detail.get("output", []) if migrated else []
    assert any(RELEASE["MIGRATE_RELEASE"] in line for line in said), (
        f"the migration ran but did not say it applied {RELEASE['MIGRATE_RELEASE']} (its output: "
        f"{said[-3:]}): an app image older than the release migrations? rebuild it "
        f"(infra/cluster/build-app-image.sh) or name a newer one with --image")
