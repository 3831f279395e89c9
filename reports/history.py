"""The nightly history: one directory per run, and tonight compared with the nights before.

Layout (``--history-dir``, default ``reports/history/``, ignored by git)::

    reports/history/
      20261202T051500Z-1202051500ab12/     one run: UTC time it was stored, then the run id
        context.json                       target, service, commit, date, run id (never a secret)
        verdict-<proof>.json               the verdict JSON of each proof of the run
        ledger-summary.json                per route and overall: count, failures by outcome,
                                           p50/p95/p99, and a bounded latency sample
        comparison.json                    how this run compared with the earlier ones
        allure-history.jsonl               carried over from the run before (Allure's trend)
      trend.html, trend.png                every run side by side (reports/trend.py)

The comparison (``compare``) is a pure function of summaries: tonight's latency sample
against the pooled samples of the last N runs that were good (PASS, no regression), with
``reports.judge.compare_latency`` (Mann-Whitney: is tonight slower?), and tonight's failed /
total against theirs with ``compare_errors`` (Fisher: does tonight fail more often?). A
regression is the judge's FAIL, said with its size and its confidence (the p-value) in one
line; MARGINAL is noted; NO_DATA is never a pass. The first run has no history: it is stored
and says so, it is not a passed comparison.
"""
from __future__ import annotations

import json
import math
import random
import re
import shutil
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Iterable, Sequence

from zerodrop.records.ledger import LedgerRecord
from zerodrop.reports.judge import (FAIL, MARGINAL, NO_DATA, PASS, Comparison, JudgeSettings,
                                    above_limit, compare_errors, compare_latency)
from zerodrop.reports.stats import Quantiles

SAMPLE_CAP = 5_000        # latencies kept per run for the judge (a uniform reservoir sample)
TAIL_FLOOR_MS = 100.0     # a tail is noted only when tonight's p99 is this much above the baseline's
DEFAULT_LAST = 5          # earlier runs pooled as the baseline
NO_HISTORY = "no history"
SUMMARY_FILE = "ledger-summary.json"
CONTEXT_FILE = "context.json"
COMPARISON_FILE = "comparison.json"
ALLURE_HISTORY = "allure-history.jsonl"
# what a run's context may hold: names and times only (a token, a kubeconfig's contents or an
# admin token never reach the history, whatever the caller passes)
CONTEXT_KEYS = ("target", "service", "commit", "date", "run_id", "command", "hold_s",
                "rate", "namespace", "context")
_DIR = re.compile(r"^\d{8}T\d{6}Z-[A-Za-z0-9_.-]+$")


# ---- the ledger summary ---------------------------------------------------------------------

class _Route:
    __slots__ = ("count", "failed", "by_outcome", "q")

    def __init__(self) -> None:
        self.count = 0
        self.failed = 0
        self.by_outcome: dict[str, int] = {}
        self.q = Quantiles()

    def add(self, r: LedgerRecord) -> None:
        self.count += 1
        if r.failed:
            self.failed += 1
            self.by_outcome[r.outcome] = self.by_outcome.get(r.outcome, 0) + 1
        else:
            self.q.add(r.latency_ms)

    def as_dict(self) -> dict[str, Any]:
        def ms(q: float) -> float | None:
            v = self.q.quantile(q)
            return None if v is None else round(v, 3)
        return {"count": self.count, "failed": self.failed,
                "failures_by_outcome": dict(sorted(self.by_outcome.items())),
                "p50": ms(0.50), "p95": ms(0.95), "p99": ms(0.99)}


def summarize_ledger(records: Iterable[LedgerRecord], phase: str = "steady",
                     sample_cap: int = SAMPLE_CAP, seed: int = 0) -> dict[str, Any]:
    """One pass over a ledger: per route and overall, the requests, the failures by outcome
    and p50/p95/p99 of the answered ones (exact up to 50,000 per route, then within 1 %), and a
    uniform sample of at most ``sample_cap`` answered latencies (reservoir sampling with a
    fixed seed: the same ledger gives the same sample). ``phase`` names the run's one phase."""
    rng = random.Random(seed)
    overall, routes = _Route(), {}
    sample: list[float] = []
    seen_ok = 0
    for r in records:
        overall.add(r)
        route = f"{r.method} {r.route}".strip() or "?"
        if route not in routes:
            routes[route] = _Route()
        routes[route].add(r)
        if not r.failed:
            seen_ok += 1
            ms = round(r.latency_ms, 3)
            if len(sample) < sample_cap:
                sample.append(ms)
            else:
                k = rng.randrange(seen_ok)
                if k < sample_cap:
                    sample[k] = ms
    return {"phase": phase, "overall": {**overall.as_dict(), "sample_ms": sample},
            "routes": {k: v.as_dict() for k, v in sorted(routes.items())}}


# ---- the runs on disk -----------------------------------------------------------------------

@dataclass
class Run:
    """One stored run: its directory, its context, its verdicts, its summary and (once made)
    its comparison with the runs before it."""

    path: Path
    context: dict[str, Any]
    verdicts: dict[str, dict[str, Any]]
    summary: dict[str, Any]
    comparison: dict[str, Any] | None = None

    @property
    def name(self) -> str:
        return self.path.name

    @property
    def passed(self) -> bool:
        return bool(self.verdicts) and all(v.get("verdict") == "PASS" for v in self.verdicts.values())

    @property
    def good(self) -> bool:
        """A baseline for later nights: its proofs passed and it was no regression."""
        return self.passed and not (self.comparison or {}).get("regressions")


def run_dir_name(now: datetime, run_id: str) -> str:
    stamp = now.astimezone(timezone.utc).strftime("%Y%m%dT%H%M%SZ")
    safe = re.sub(r"[^A-Za-z0-9_.-]", "-", run_id) or "run"
    return f"{stamp}-{safe}"


def safe_context(context: dict[str, Any]) -> dict[str, Any]:
    """Only the names and times a history may hold (``CONTEXT_KEYS``), as strings or numbers."""
    return {k: context[k] for k in CONTEXT_KEYS
            if k in context and isinstance(context[k], (str, int, float)) and context[k] != ""}


def store_run(history_dir: Path, run_id: str, verdicts: dict[str, dict[str, Any]],
              summary: dict[str, Any], context: dict[str, Any],
              now: datetime | None = None) -> Run:
    """A new directory for this run, with its context, verdicts and ledger summary; Allure's
    history file carried over from the run before it (when that one has one)."""
    now = now or datetime.now(timezone.utc)
    history_dir.mkdir(parents=True, exist_ok=True)
    earlier = list_runs(history_dir)
    path = history_dir / run_dir_name(now, run_id)
    n = 1
    while path.exists():  # the same second and run id twice: keep both
        n += 1
        path = history_dir / f"{run_dir_name(now, run_id)}-{n}"
    path.mkdir()
    ctx = {**safe_context(context), "stored": now.astimezone(timezone.utc).isoformat(timespec="seconds")}
    _write(path / CONTEXT_FILE, ctx)
    for name, verdict in verdicts.items():
        _write(path / f"verdict-{_slug(name)}.json", verdict)
    _write(path / SUMMARY_FILE, summary)
    for previous in reversed(earlier):  # the latest run that has one (an interrupted run may not)
        if carry_allure_history(previous, path):
            break
    return Run(path, ctx, dict(verdicts), summary)


def carry_allure_history(previous: Path, new: Path) -> bool:
    """Copy the run before's ``allure-history.jsonl`` into the new run's directory (the Allure
    report of the new run extends it, so its trend shows the nights); whether there was one."""
    src = previous / ALLURE_HISTORY
    if not src.is_file():
        return False
    shutil.copyfile(src, new / ALLURE_HISTORY)
    return True


def save_comparison(run: Run, comparison: "NightlyComparison") -> None:
    run.comparison = comparison.as_dict()
    _write(run.path / COMPARISON_FILE, run.comparison)


def list_runs(history_dir: Path) -> list[Path]:
    """The run directories under ``history_dir``, oldest first (their names sort by time)."""
    if not history_dir.is_dir():
        return []
    return sorted(p for p in history_dir.iterdir() if p.is_dir() and _DIR.match(p.name))


def load_run(path: Path) -> Run | None:
    """A stored run, or None when its files are missing or unreadable (a run interrupted while
    it was being stored is no baseline)."""
    try:
        context = json.loads((path / CONTEXT_FILE).read_text(encoding="utf-8"))
        summary = json.loads((path / SUMMARY_FILE).read_text(encoding="utf-8"))
        verdicts = {p.stem[len("verdict-"):]: json.loads(p.read_text(encoding="utf-8"))
                    for p in sorted(path.glob("verdict-*.json"))}
        comp_path = path / COMPARISON_FILE
        comparison = json.loads(comp_path.read_text(encoding="utf-8")) if comp_path.is_file() else None
    except (OSError, ValueError):
        return None
    return Run(path, context, verdicts, summary, comparison)


def load_runs(history_dir: Path) -> list[Run]:
    return [r for r in (load_run(p) for p in list_runs(history_dir)) if r is not None]


def _write(path: Path, data: Any) -> None:
    tmp = path.with_suffix(path.suffix + ".tmp")
    tmp.write_text(json.dumps(data, indent=2, sort_keys=True) + "\n", encoding="utf-8")
    tmp.replace(path)


def _slug(name: str) -> str:
    return re.sub(r"[^A-Za-z0-9_.-]", "-", name) or "proof"


# ---- the comparison (pure) ------------------------------------------------------------------

@dataclass(frozen=True)
class NightlyComparison:
    """Tonight against the baseline: the outcome (PASS, MARGINAL, FAIL, NO_DATA or NO_HISTORY),
    one line per regression (FAIL), per marginal change and per metric without data."""

    outcome: str
    baseline_runs: tuple[str, ...]
    regressions: tuple[str, ...] = ()
    marginal: tuple[str, ...] = ()
    no_data: tuple[str, ...] = ()
    lines: tuple[str, ...] = ()          # what a person reads, every comparison included
    comparisons: tuple[Comparison, ...] = field(default=(), compare=False)

    @property
    def regressed(self) -> bool:
        return bool(self.regressions)

    def as_dict(self) -> dict[str, Any]:
        return {"outcome": self.outcome, "baseline_runs": list(self.baseline_runs),
                "regressions": list(self.regressions), "marginal": list(self.marginal),
                "no_data": list(self.no_data), "lines": list(self.lines),
                "comparisons": [c.as_dict() for c in self.comparisons]}


def _confidence(p: float | None, outcome: str = FAIL) -> str:
    if p is None:
        return "p unknown"
    if outcome == PASS:  # "confidence 20 %" of a change nobody claims would only confuse
        return f"p={p:.2g}"
    conf = 1.0 - p
    shown = ">99.99%" if conf > 0.9999 else f"{conf:.2%}"
    return f"p={p:.2g}, confidence {shown}"


def _percentiles(summary: dict[str, Any]) -> dict[str, float | None]:
    o = summary.get("overall", {})
    return {q: o.get(q) for q in ("p50", "p95", "p99")}


def _pooled_percentile(summaries: Sequence[dict[str, Any]], q: float) -> float | None:
    values = sorted(v for s in summaries for v in s.get("overall", {}).get("sample_ms", []))
    if not values:
        return None
    return values[max(1, math.ceil(q * len(values))) - 1]


def _ms(v: float | None) -> str:
    return "-" if v is None else f"{v:,.1f} ms"


def compare(tonight: dict[str, Any], earlier: Sequence[dict[str, Any]],
            earlier_names: Sequence[str] = (),
            settings: JudgeSettings = JudgeSettings()) -> NightlyComparison:
    """Tonight's ledger summary against the pooled summaries ``earlier`` (the baseline runs,
    oldest first, named by ``earlier_names``). Pure: summaries in, a comparison out."""
    names = tuple(earlier_names) or tuple(f"run {i + 1}" for i in range(len(earlier)))
    if not earlier:
        return NightlyComparison(NO_HISTORY, (), lines=(
            "no history yet: this run is the first of its history; nothing to compare it with "
            "(it is stored as the baseline of the next runs)",))
    now_o = tonight.get("overall", {})
    pooled = [v for s in earlier for v in s.get("overall", {}).get("sample_ms", [])]
    lat = compare_latency(now_o.get("sample_ms", []), pooled, settings)
    failed_before = sum(int(s.get("overall", {}).get("failed", 0)) for s in earlier)
    total_before = sum(int(s.get("overall", {}).get("count", 0)) for s in earlier)
    err = compare_errors(int(now_o.get("failed", 0)), int(now_o.get("count", 0)),
                         failed_before, total_before, settings)
    over = f"the last {len(earlier)} good run{'s' if len(earlier) != 1 else ''}"
    p_now = _percentiles(tonight)
    p_then = {q: _pooled_percentile(earlier, x) for q, x in (("p50", .5), ("p95", .95), ("p99", .99))}
    lat_words = _latency_line(lat, p_now, p_then, over)
    err_words = _errors_line(err, over)
    regressions, marginal, no_data = [], [], []
    for c, words in ((lat, lat_words), (err, err_words)):
        {FAIL: regressions, MARGINAL: marginal, NO_DATA: no_data}.get(c.outcome, []).append(words)
    tail = tail_note(now_o.get("sample_ms", []), p_then.get("p99"), over, settings)
    lines = (lat_words, err_words)
    if tail:
        marginal.append(tail)
        lines += (tail,)
    outcome = max((lat.outcome, err.outcome, MARGINAL if tail else PASS),
                  key=[PASS, MARGINAL, NO_DATA, FAIL].index)
    return NightlyComparison(outcome, names, tuple(regressions), tuple(marginal), tuple(no_data),
                             lines, (lat, err))


def tail_note(tonight_ms: Sequence[float], baseline_p99: float | None, over: str,
              settings: JudgeSettings = JudgeSettings()) -> str:
    """The tail, NOTED (marginal) and never a regression by itself: significantly more than 1 %
    of tonight's requests slower than the baseline's p99 (``above_limit``: binomial, p below
    ``alpha_fail``), with tonight's p99 more than ``latency_tolerance`` times and
    ``TAIL_FLOOR_MS`` above it. On a shared machine one slow second moves a p99; a real
    slowdown also moves the median, which ``compare_latency`` judges. "" when nothing to note."""
    n = len(tonight_ms)
    if baseline_p99 is None or n < settings.min_requests:
        return ""
    ordered = sorted(tonight_ms)
    p99 = ordered[max(1, math.ceil(0.99 * n)) - 1]
    if not (p99 > baseline_p99 * settings.latency_tolerance and p99 - baseline_p99 > TAIL_FLOOR_MS):
        return ""
    slower = sum(1 for v in tonight_ms if v > baseline_p99)
    outcome, p = above_limit(slower, n, 0.01, settings)
    if outcome != FAIL:
        return ""
    return (f"latency tail (noted, not a regression by itself): {slower:,} of {n:,} requests "
            f"({slower / n:.1%}) slower than the p99 of {over} ({_ms(baseline_p99)}); p99 "
            f"{_ms(p99)} tonight; binomial p={p:.2g}")


def _latency_line(c: Comparison, now: dict, then: dict, over: str) -> str:
    if c.outcome == NO_DATA:
        return f"latency: no data, not a pass ({c.detail.split('(', 1)[-1].rstrip(')')})"
    assert c.canary is not None and c.stable is not None and c.effect is not None
    head = {FAIL: "latency regression", MARGINAL: "latency: marginal",
            PASS: "latency: no regression"}[c.outcome]
    ratio = f"{c.effect:.2f}x" if math.isfinite(c.effect) else "from 0 ms"
    return (f"{head}: median {_ms(c.canary)} tonight vs {_ms(c.stable)} over {over} "
            f"({c.canary - c.stable:+,.1f} ms, {ratio}; p95 {_ms(now.get('p95'))} vs "
            f"{_ms(then.get('p95'))}, p99 {_ms(now.get('p99'))} vs {_ms(then.get('p99'))}); "
            f"Mann-Whitney {_confidence(c.p_value, c.outcome)}, {c.n_canary:,} vs {c.n_stable:,} requests")


def _errors_line(c: Comparison, over: str) -> str:
    if c.outcome == NO_DATA:
        return f"error rate: no data, not a pass ({c.detail.split('(', 1)[-1].rstrip(')')})"
    assert c.canary is not None and c.stable is not None and c.effect is not None
    head = {FAIL: "error-rate regression", MARGINAL: "error rate: marginal",
            PASS: "error rate: no regression"}[c.outcome]
    return (f"{head}: {c.canary:.2%} of {c.n_canary:,} requests failed tonight vs "
            f"{c.stable:.2%} of {c.n_stable:,} over {over} ({c.effect * 100:+.2f} percentage "
            f"points); Fisher {_confidence(c.p_value, c.outcome)}")


def baseline(runs: Sequence[Run], last: int = DEFAULT_LAST) -> list[Run]:
    """The runs tonight is compared with: the last ``last`` good ones (their proofs passed and
    they were no regression), oldest first. A bad night never becomes the measure of the next."""
    return [r for r in runs if r.good][-last:] if last > 0 else []
