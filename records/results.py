"""What a scenario and the checks around it hand to the verdict: typed results, never keys in
a dict. Pure data: no I/O, nothing of the project imported.

- ``Cutover``: one switch of the Service from one version to another (a proof may hold several:
  ten switches back and forth, canary stages).
- ``FaultWindow``: a fault on purpose, from when it started to when it was removed.
- ``DataCheck``: the acknowledged writes looked up again after the run.
- ``LoadTarget``: what the load generator was asked for and what it managed.
- ``ScenarioFacts``: everything one scenario run reports, in one object.
"""
from __future__ import annotations

from dataclasses import dataclass, field


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


@dataclass(frozen=True)
class LoadTarget:
    """What the load generator was asked for and what it managed."""

    target_rps: float
    achieved_rps: float
    saturated: bool = False  # the generator itself ran out of CPU (its numbers are suspect)
    detail: str = ""
