"""What a scenario and the checks around it hand to the verdict: typed results, never keys in
a dict. Pure data: no I/O, nothing of the project imported.

- ``Cutover``: one switch of the Service from one version to another (a proof may hold several:
  ten switches back and forth, canary stages).
- ``FaultWindow``: a fault on purpose, from when it started to when it was removed.
- ``DataCheck``: the acknowledged writes looked up again after the run.
- ``LoadTarget``: what the load generator was asked for and what it managed.
- ``MoneyCheck``: the balances after the run against the credits and debits the load sent.
- ``ScenarioFacts``: everything one scenario run reports, in one object.
"""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass(frozen=True)
class Cutover:
    """One switch: the versions on each side and when.

    ``t_switch``: the Service selector was replaced (traffic may move from here on).
    ``t_drained``: the old colour's last replica had ended; every request that STARTS after
    this must be answered by the new version. None when the scenario never got that far.
    """

    old_version: str
    new_version: str
    t_switch: float | None
    t_drained: float | None
    old_color: str = ""
    new_color: str = ""


@dataclass(frozen=True)
class FaultWindow:
    """A fault applied on purpose: ``t_end`` None while it is still on."""

    name: str
    t_start: float
    t_end: float | None = None
    target: str = ""


@dataclass(frozen=True)
class ScenarioFacts:
    """What one scenario run reports to the verdict, beside the timeline."""

    cutovers: tuple[Cutover, ...] = ()
    faults: tuple[FaultWindow, ...] = ()
    readiness_findings: tuple[str, ...] = ()
    # a canary's analysis (scenarios/canary.py): its stages with the weight, the requests per
    # version and each check's value and outcome, its outcome, and t_fault_on / t_detected /
    # t_rolled_back; JSON-safe, carried into the verdict's JSON as it is
    canary: dict[str, Any] | None = None
    # no switch on purpose (a steady-load probe: scenarios/steady.py): zero cutovers are then
    # the plan, not a switch that never happened; the verdict judges answers and data only
    steady: bool = False

    @property
    def cutover(self) -> Cutover:
        """The last switch (the one a single-switch proof judges), or an empty one."""
        return self.cutovers[-1] if self.cutovers else Cutover("", "", None, None)


@dataclass(frozen=True)
class DataCheck:
    """After the run: every payment acknowledged with 201 looked up again."""

    acknowledged: int
    missing: list[str] = field(default_factory=list)        # payment ids not found
    mismatched: list[str] = field(default_factory=list)     # found with another amount
    duplicated_keys: list[str] = field(default_factory=list)  # a key that produced two payments
    # payment ids acknowledged for a key that the lookup by that key does not find
    not_found_by_key: list[str] = field(default_factory=list)
    # keys whose lookup finds one payment, but not the one acknowledged for that key
    key_leads_elsewhere: list[str] = field(default_factory=list)
    keys_unchecked: int = 0  # keys past the check's bound (-> INCONCLUSIVE: not looked at)
    # keys whose acknowledged answers named more than one payment (a replay got another one)
    keys_answered_twice: list[str] = field(default_factory=list)
    error: str = ""  # set when the check itself could not run (-> INCONCLUSIVE); no prefix
    # the words the verdict uses, from the service profile's [readback]
    noun: str = "payment"
    value: str = "amount"
    key_name: str = "Idempotency-Key"


@dataclass(frozen=True)
class LoadTarget:
    """What the load generator was asked for and what it managed."""

    target_rps: float
    achieved_rps: float
    saturated: bool = False  # the generator could not keep its schedule (its numbers are suspect)
    detail: str = ""
    shortfall: str = ""      # why: "cap" (its concurrency cap), "cpu" (its own CPU) or "lost" (a
                             # worker process or pod died mid-run); "" kept it
    scheduled: int = 0       # arrivals the open-model schedule planned
    late: int = 0            # of those, started more than 0.2 s after their planned time
    missed_cap: int = 0      # of those, never sent: the concurrency cap was reached
    max_inflight: int = 0    # the most requests in flight at once (summed over processes)


@dataclass(frozen=True)
class MoneyMismatch:
    """One account whose final balance is not what its acknowledged writes make: every amount
    an exact decimal string. ``unknown``: writes of unknown outcome on the account, none of whose
    subsets explains the difference."""

    account: str
    start: str
    credits: str    # the sum of the acknowledged credits
    debits: str     # the sum of the acknowledged debits
    expected: str   # start + credits - debits
    final: str
    unknown: int = 0


@dataclass(frozen=True)
class StaleRead:
    """A balance read outside what the writes around it allow: below ``lower`` it missed a
    write acknowledged before it started (read-your-writes), above ``upper`` it showed money no
    write sent before it ended could make."""

    account: str
    request_id: str
    t_start: float
    value: str
    lower: str
    upper: str


@dataclass(frozen=True)
class MoneyCheck:
    """After the run: every account's balance against the credits and debits the load sent.

    ``judged`` False: this verdict does not judge money (an old ledger, a slice that is not the
    last); the rules stay silent. A write is one Idempotency-Key: acknowledged when one of its
    attempts got 201, rejected when every attempt got a 4xx, unknown otherwise (it may have been
    applied). ``unchecked`` says why an invariant could not be checked and ``error`` why the check
    could not run (both -> INCONCLUSIVE; no prefix)."""

    accounts: tuple[str, ...] = ()
    judged: bool = False
    credits_acked: int = 0
    debits_acked: int = 0
    mismatches: tuple[MoneyMismatch, ...] = ()
    stale_reads: tuple[StaleRead, ...] = ()
    reads_checked: int = 0
    unknown_writes: int = 0
    rejected_writes: int = 0
    unchecked: str = ""
    error: str = ""
