"""The live counters of a load run: what each Locust process writes (``ProcessProgress``, one
JSON file per process, replaced atomically) and what the harness shows (``Progress``, summed).
One shape, one writer (``ProcessProgress.to_json``), one reader (``ProcessProgress.from_json``).
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Iterable


@dataclass(frozen=True)
class ProcessProgress:
    """One Locust process's counters at time ``t``."""

    role: str
    pid: int
    t: float
    started: float
    requests: int = 0
    failures: int = 0
    by_outcome: dict[str, int] = field(default_factory=dict)
    last_second: int = 0                      # requests that ended in the last second
    last_second_by_color: dict[str, int] = field(default_factory=dict)  # "-": no answer
    written: int = 0                          # ledger records on disk
    cpu_warning: bool = False
    cpu_usage: float = 0.0
    # the open-model schedule: arrivals due, those started late (the generator's lag), those
    # skipped because the concurrency cap was reached, and the most requests in flight at once
    scheduled: int = 0
    late: int = 0
    missed_cap: int = 0
    missed_late: int = 0  # of the skipped ones, those already late: a stall's burst (CPU)
    max_inflight: int = 0

    def to_json(self) -> str:
        return json.dumps(asdict(self))

    @classmethod
    def from_json(cls, text: str) -> "ProcessProgress":
        data = json.loads(text)
        known = {f.name for f in fields(cls)}
        return cls(**{k: v for k, v in data.items() if k in known})


@dataclass(frozen=True)
class Progress:
    """Live counters summed over the Locust processes of a run."""

    elapsed: float
    planned: float
    requests: int
    rps: float  # requests that ended in the last second
    failures: int
    by_color: dict[str, int] = field(default_factory=dict)  # answers of the last second; "-": none
    saturated: bool = False  # a Locust process reported CPU above 90 %
    scheduled: int = 0
    late: int = 0
    missed_cap: int = 0
    missed_late: int = 0
    max_inflight: int = 0

    @property
    def active_color(self) -> tuple[str, float] | None:
        """The colour that served most of the last second's answers, and its share (0..1)."""
        answered = {c: n for c, n in self.by_color.items() if c != "-"}
        total = sum(answered.values())
        if not total:
            return None
        color = max(answered, key=lambda c: answered[c])
        return color, answered[color] / total

    @classmethod
    def summed(cls, processes: Iterable[ProcessProgress], elapsed: float,
               planned: float) -> "Progress":
        requests = failures = n_1s = 0
        by_color: dict[str, int] = {}
        saturated = False
        scheduled = late = missed = missed_late = inflight = 0
        for p in processes:
            scheduled += p.scheduled
            late += p.late
            missed += p.missed_cap
            missed_late += p.missed_late
            inflight += p.max_inflight
            requests += p.requests
            failures += p.failures
            n_1s += p.last_second
            for color, n in p.last_second_by_color.items():
                by_color[color] = by_color.get(color, 0) + int(n)
            saturated = saturated or p.cpu_warning
        return cls(elapsed=elapsed, planned=planned, requests=requests, rps=float(n_1s),
                   failures=failures, by_color=by_color, saturated=saturated,
                   scheduled=scheduled, late=late, missed_cap=missed, missed_late=missed_late,
                   max_inflight=inflight)


def parse_many(texts: Iterable[str]) -> list[ProcessProgress]:
    """Progress files' contents; one replaced while read (torn, or not JSON) is skipped."""
    out = []
    for text in texts:
        try:
            out.append(ProcessProgress.from_json(text))
        except (ValueError, TypeError, KeyError):
            continue
    return out


def as_dicts(processes: Iterable[ProcessProgress]) -> list[dict[str, Any]]:
    return [asdict(p) for p in processes]
