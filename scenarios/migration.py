"""Migration safety: the next version's schema migration is applied while the old colour serves
under load, and the old colour must keep working on the migrated schema BEFORE any traffic
moves, because that is what keeps a rollback possible (the seed's forward-compatible migration
Job, checked instead of assumed).

The steps, against the Platform interface only:

1. "migrate <version> while <blue> serves": ``Platform.migrate`` (locally the migrate command
   once more, on a cluster the overlay's migration Job), with the release's env (e.g.
   ``MIGRATE_RELEASE=add_payment_note``);
2. "<blue>'s smoke checks on the migrated schema": the seed's smoke tests against blue's own
   address (``blue_green.smoke_test``);
3. "<blue> holds on the migrated schema": every request of the run's load that started after
   the migration finished and that blue answered, or that failed with no answer while blue
   was the only colour serving, judged from the live ledger (``ctx.live``); one failure fails
   the step, naming how many, their outcomes and statuses, their routes and a few examples;
4. "<blue>'s post-deploy checks on the migrated schema": the post-deploy checks through the
   Service, which still selects blue (``blue_green.post_deploy``);
5. the ordinary switch to green (``blue_green.switch_steps``).

The load is judged (3) before the post-deploy checks (4), not after: a schema that breaks
payment processing makes the post-deploy write flow wait out its whole payment timeout (30 s)
before it fails, while the load has shown blue's failing requests within a second or two; the
verdict still judges every request of the run, those during (4) too.

A failure in 1-4 stops the scenario before "find active colour": the Service never leaves
blue, green never serves. Where the ledger cannot be read while the load runs (the load inside
a cluster), step 4 fails saying it cannot judge: it never passes without having looked.
"""
from __future__ import annotations

import time
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Sequence

from zerodrop.platforms.base import Platform
from zerodrop.records.ledger import LedgerRecord
from zerodrop.scenarios.blue_green import (SwitchSettings, _active, other, post_deploy,
                                           smoke_test, switch_steps, undo_switch)
from zerodrop.scenarios.steps import Context, Scenario, Step, StepFailed

LEDGER_FLUSH_S = 1.0   # the load's processes flush their ledger every ~0.5 s
NOT_A_SCHEMA_FAILURE = ("keepalive_race",)  # HTTP/1.1's race on a reused connection: no answer
MAX_EXAMPLES = 3


@dataclass(frozen=True)
class MigrationSettings:
    switch: SwitchSettings = field(default_factory=SwitchSettings)
    env: dict[str, str] | None = None  # the migration's env, e.g. {"MIGRATE_RELEASE": "..."}
    hold_s: float = 1.0        # at least this long of load on the migrated schema is judged
    min_requests: int = 20     # ... and at least this many of the old colour's requests
    judge_timeout: float = 15.0  # how long the hold step waits for them (a slow load)

    def validate(self) -> None:
        self.switch.validate()
        if self.hold_s < 0 or self.judge_timeout <= 0:
            raise ValueError("hold_s must be >= 0 and judge_timeout > 0 seconds")
        if self.min_requests < 1:
            raise ValueError(f"min_requests must be >= 1, got {self.min_requests}")


@dataclass
class _Migrated:
    """What the migrate step hands the hold step: when the migration finished."""
    t_done: float | None = None


def migration_then_switch(platform: Platform, new_version: str,
                          settings: MigrationSettings = MigrationSettings(),
                          name: str = "migration-then-switch") -> Scenario:
    """Migrate to ``new_version``'s schema while the active colour serves, prove that colour
    still works on it, then switch to ``new_version`` on the idle colour."""
    settings.validate()
    old = _active(platform)
    new = other(old)
    s = settings.switch
    old_version = platform.deployed_version(old) or ""
    migrated = _Migrated()
    steps = [
        migrate(platform, old, new_version, settings.env, migrated),
        Step(f"{old}'s smoke checks on the migrated schema",
             smoke_test(platform, old, s.token, s.verify_timeout, s.profile).run),
        hold(old, old_version, migrated, settings),
        Step(f"{old}'s post-deploy checks on the migrated schema",
             post_deploy(platform, s.token, s.payment_timeout, s.profile).run),
        *switch_steps(platform, old, new, s, new_version),
    ]
    return Scenario(name, tuple(steps), on_failure=undo_switch(platform, old, new))


def migrate(platform: Platform, serving: str, version: str, env: dict[str, str] | None,
            migrated: _Migrated) -> Step:
    """The next version's migration, on the shared database, while ``serving`` serves."""
    def run(ctx: Context) -> None:
        platform.migrate(version, dict(env or {}))
        migrated.t_done = time.time()
    return Step(f"migrate {version} while {serving} serves", run)


def hold(color: str, version: str, migrated: _Migrated, settings: MigrationSettings) -> Step:
    """The old colour's requests since the migration, from the live ledger: none may fail."""
    def run(ctx: Context) -> None:
        if migrated.t_done is None:
            raise StepFailed("the migration's end was not recorded; nothing to judge from")
        if ctx.live is None:
            raise StepFailed(
                f"cannot judge whether {color} holds on the migrated schema (INCONCLUSIVE): the "
                f"load's ledger cannot be read while it runs (load inside the cluster); run the "
                f"load from this machine (--load-from here) to judge it")
        judged = _wait_for_requests(ctx.live, migrated.t_done, color, version, settings)
        problem = judge_hold(judged, color, version, migrated.t_done)
        if problem:
            raise StepFailed(problem)
    return Step(f"{color} holds on the migrated schema", run)


def _wait_for_requests(live: Any, t_from: float, color: str, version: str,
                       settings: MigrationSettings) -> list[LedgerRecord]:
    """Until the ledger shows ``hold_s`` of load after ``t_from`` (and has flushed it) with at
    least ``min_requests`` of the old colour's; those requests, or StepFailed (cannot judge)."""
    t_enough = t_from + settings.hold_s + LEDGER_FLUSH_S
    deadline = time.monotonic() + settings.judge_timeout + max(0.0, t_enough - time.time())
    while True:
        now = time.time()
        judged = old_colour_requests(live.since(t_from), version)
        if now >= t_enough and len(judged) >= settings.min_requests:
            return judged
        if time.monotonic() > deadline:
            raise StepFailed(
                f"cannot judge whether {color} holds on the migrated schema (INCONCLUSIVE): "
                f"{len(judged)} of its requests in the ledger since the migration, at least "
                f"{settings.min_requests} are needed; is the load running?")
        time.sleep(0.2)


def old_colour_requests(records: Sequence[LedgerRecord], version: str) -> list[LedgerRecord]:
    """The requests the old colour is answerable for while it is the only one serving: those
    its version answered, and those that failed with no answer at all (every request when its
    version is unknown: nothing else serves then)."""
    if not version:
        return list(records)
    return [r for r in records if r.version == version or (r.failed and not r.version)]


def judge_hold(records: Sequence[LedgerRecord], color: str, version: str,
               t_migrated: float | None = None) -> str:
    """Pure: "" when none of ``records`` failed, else one line naming the failures: how many,
    their outcomes and statuses, their routes, a few examples (timed from ``t_migrated``, the
    migration's end, or else from the first record)."""
    failed = [r for r in records if r.failed and r.outcome not in NOT_A_SCHEMA_FAILURE]
    if not failed:
        return ""
    t0 = t_migrated if t_migrated is not None else min(r.t_start for r in records)
    kinds = Counter(r.outcome if not r.status else f"{r.outcome} {r.status}" for r in failed)
    routes = Counter(f"{r.method} {r.route}" for r in failed)
    since = "after the migration" if t_migrated is not None else "after the first"
    examples = [f"{r.method} {r.route} -> {r.status or r.outcome} {r.t_start - t0:.2f} s {since}"
                + (f" ({r.error[:60]})" if r.error else "") for r in failed[:MAX_EXAMPLES]]
    return (f"{len(failed)} of {len(records)} requests of {color} ({version}) failed on the "
            f"migrated schema, so a rollback to it would fail too: "
            f"{_most(kinds)}; on {_most(routes)}; e.g. {'; '.join(examples)}")


def _most(counts: Counter, n: int = 4) -> str:
    shown = ", ".join(f"{k} {v:,}" for k, v in counts.most_common(n))
    rest = len(counts) - n
    return shown + (f", {rest} more" if rest > 0 else "")
