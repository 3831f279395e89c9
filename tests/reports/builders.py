"""Ledgers and timelines built in code: a clean blue/green switch, and ways to break it."""
from __future__ import annotations

from dataclasses import replace
from typing import Iterator

from zerodrop.records.events import Event
from zerodrop.records.results import Cutover, DataCheck, LoadTarget
from zerodrop.records.results import MoneyCheck, MoneyMismatch, StaleRead
from zerodrop.records.ledger import LedgerRecord

T0 = 1_700_000_000.0
OLD, NEW = "1.0.0", "1.1.0"
SWITCH_AT, DRAINED_AT = 10.0, 15.0  # seconds after T0


def cutover(switch: float | None = SWITCH_AT, drained: float | None = DRAINED_AT) -> Cutover:
    return Cutover(OLD, NEW, None if switch is None else T0 + switch,
                   None if drained is None else T0 + drained)


def timeline() -> list[Event]:
    return [
        Event(T0 - 1.0, "load", "load started", {"users": 20}),
        Event(T0 + 2.0, "scenario", "deploy green", {"color": "green", "version": NEW}),
        Event(T0 + 9.5, "platform", "replica ready", {"color": "green", "replica": "green-0"}),
        Event(T0 + SWITCH_AT, "platform", "selector patched", {"selector": "green"}),
        Event(T0 + 12.0, "scenario", "scale down blue", {"color": "blue"}),
        Event(T0 + 12.1, "platform", "replica terminating", {"color": "blue", "replica": "blue-0"}),
        Event(T0 + DRAINED_AT, "platform", "replica terminated",
              {"color": "blue", "replica": "blue-0", "code": 0}),
    ]


def early_exit_timeline(seconds: float = 0.2, held: int = 7, window: float = 1.0,
                        at: float = 12.1) -> list[Event]:
    """The shared timeline with blue-0 told to stop at ``at`` (holding ``held`` client
    connections, a ``window`` s drain window) and gone ``seconds`` later."""
    events = [e for e in timeline() if e.name not in ("replica terminating", "replica terminated")]
    return events + [
        Event(T0 + at, "platform", "replica terminating",
              {"color": "blue", "replica": "blue-0", "connections": held, "drain_window_s": window}),
        Event(T0 + at + seconds + 0.2, "platform", "replica terminated",
              {"color": "blue", "replica": "blue-0", "code": 0, "expected": True,
               "seconds_after_sigterm": seconds}),
    ]


def record(t: float, version: str | None = None, *, latency_s: float | None = None,
           outcome: str = "ok", status: int | None = None, replica: str | None = None,
           i: int = 0) -> LedgerRecord:
    """One request started at T0 + t; the version defaults to what a clean switch serves.
    An ok request takes 5 ms unless told; a failure is seen at once unless told."""
    if latency_s is None:
        latency_s = 0.005 if outcome == "ok" else 0.0
    if version is None:
        if t < SWITCH_AT:
            version = OLD
        elif t > DRAINED_AT:
            version = NEW
        else:
            version = OLD if i % 2 else NEW
    color = "blue" if version == OLD else "green"
    if status is None:
        status = 200 if outcome == "ok" else 0
    return LedgerRecord(
        t_start=T0 + t, t_end=T0 + t + latency_s, method="GET", route="/api/balance",
        status=status, outcome=outcome, version=version if status else "",
        color=color if status else "", replica=(replica or f"{color}-{i % 2}") if status else "",
        request_id=f"r{i}")


def clean(seconds: float = 30.0, rps: int = 100) -> Iterator[LedgerRecord]:
    """A clean switch: old before the switch, either in the window, new after the drain."""
    n = int(seconds * rps)
    for i in range(n):
        yield record(i / rps, i=i)


def with_failures(records, pred, **changes) -> Iterator[LedgerRecord]:
    """Replace every record for which pred(i, record) holds. A failure is seen the moment its
    request starts unless ``t_end`` is given (the verdict places failures by t_end)."""
    for i, r in enumerate(records):
        if pred(i, r):
            extra = {} if "t_end" in changes or changes.get("outcome", "ok") == "ok" \
                else {"t_end": r.t_start}
            yield replace(r, **{**extra, **changes})
        else:
            yield r


def good_data(acknowledged: int = 1200) -> DataCheck:
    return DataCheck(acknowledged=acknowledged)


def good_load() -> LoadTarget:
    return LoadTarget(target_rps=100.0, achieved_rps=99.0)


def good_money(**changes) -> MoneyCheck:
    """A money check that judged four accounts and found every balance exact."""
    base = MoneyCheck(accounts=("load-account-1", "load-account-2", "load-account-3",
                                "load-account-4"), judged=True, credits_acked=312,
                      debits_acked=280, reads_checked=1203)
    return replace(base, **changes)


def money_mismatch(account: str = "load-account-1", final: str = "1000.01",
                   unknown: int = 0) -> MoneyMismatch:
    """900.00 + 150.01 - 50.00 = 1000.00 expected; ``final`` found."""
    return MoneyMismatch(account, "900.00", "150.01", "50.00", "1000.00", final, unknown)


def stale_read(t: float = 12.0, value: str = "100.00", lower: str = "150.00",
               upper: str = "150.00", account: str = "load-account-2",
               request_id: str = "9f1c") -> StaleRead:
    """A balance read started at T0 + t."""
    return StaleRead(account, request_id, T0 + t, value, lower, upper)
