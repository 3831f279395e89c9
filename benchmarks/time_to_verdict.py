"""Time to verdict of the README's main job (`./zd verify`) on the local default, and the
statistical power of each proof it runs.

Runs the main job's pytest command as a user would (environment already installed), several
times, and reports the wall time of the whole job and when each verdict file appeared:

    .venv/bin/python benchmarks/time_to_verdict.py --runs 3 [--write] [-- PYTEST ARGS]

Arguments after ``--`` go to pytest, e.g. ``-- --target kind --kind-cluster zerodrop
--keep-cluster`` for the same job on a kind cluster (the cluster itself is not timed then).

For every proof (each ``<evidence-dir>/<proof>.json``) it also reports what the verdict had to
judge: requests judged (``requests_total``), failures, the 95 % upper bound on the failure rate
(``bound_95.failure_rate_upper``), each population's requests, the load's target vs achieved
rate, and the requests that STARTED inside the switch window [t_switch, t_drained].
``Verdict.requests_in_window`` is not in the evidence JSON (``to_dict()`` leaves it out), so that
count is taken from the proof's own ledger (the file named by the JSON's ``ledger``): records with
t_start in [``switch.t_switch``, the timeline's "wait for <old> to stop done" event], the event
emitted right after the scenario set t_drained; the count the verdict's own PASS reason states
("N requests started within the switch window") is shown beside it as a cross-check. pytest's
--basetemp is set inside the run's scratch directory so the ledgers (in tmp_path) are still
there to read when the job has ended.

The issue's targets: at most 60 s for the whole job; per proof >= 3,000 requests judged (so the
95 % upper bound at zero failures is <= 0.1 %) and >= 500 of them inside the switch window.
Never asserted in tests (shared, noisy machine); --write puts a dated section at the top of the
runs in benchmarks/RESULTS.md (after the ``<!-- runs -->`` marker).
"""
from __future__ import annotations

import argparse
import json
import os
import re
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
GOAL_WALL_S, GOAL_JUDGED, GOAL_IN_WINDOW, GOAL_BOUND = 60.0, 3_000, 500, 0.001
_REASON_WINDOW = re.compile(r"(?:only )?([\d,]+) requests? started within (?:the switch window|the window)")


def main_job_command(evidence: Path, alluredir: Path, basetemp: Path, extra: list[str]) -> list[str]:
    """What `./zd verify` runs (zd: `pytest suites`), with the evidence sent to scratch and
    pytest's tmp_path (where each proof's ledger goes) kept there until it has been read."""
    return [sys.executable, "-m", "pytest", "suites", "-q", "--evidence-dir", str(evidence),
            "--alluredir", str(alluredir), "--basetemp", str(basetemp), *extra]


def drained_at(doc: dict) -> float | None:
    """When the switch was drained: the "wait for <old> to stop done" step event (emitted right
    after the scenario's ctx.drained(time.time()); later by microseconds)."""
    ts = [e["t"] for e in doc.get("timeline", [])
          if e.get("source") == "scenario" and (e.get("detail") or {}).get("step") == "done"
          and str(e.get("name", "")).startswith("wait for ") and "to stop" in str(e.get("name", ""))]
    return max(ts) if ts else None


def count_in_window(ledger: Path, t_from: float, t_to: float) -> int | None:
    """Ledger records that started within [t_from, t_to] (the verdict's requests_in_window)."""
    from zerodrop.records.ledger import read_records  # the project's one reader
    if not ledger.is_file():
        return None
    with open(ledger, encoding="utf-8") as f:
        return sum(1 for r in read_records(f) if t_from <= r.t_start <= t_to)


def proof_power(doc: dict) -> dict:
    """What one proof's verdict judged, from its evidence JSON (and its ledger)."""
    sw, load = doc.get("switch") or {}, doc.get("load") or {}
    t_switch, t_drained = sw.get("t_switch"), drained_at(doc)
    in_window = (count_in_window(Path(doc["ledger"]), t_switch, t_drained)
                 if doc.get("ledger") and t_switch is not None and t_drained is not None else None)
    stated = [int(m.group(1).replace(",", "")) for r in doc.get("reasons", [])
              for m in [_REASON_WINDOW.search(r)] if m]
    return {"verdict": doc.get("verdict"), "judged": doc.get("requests_total"),
            "failed": doc.get("requests_failed"),
            "upper": (doc.get("bound_95") or {}).get("failure_rate_upper"),
            "by_outcome": dict(doc.get("failures_by_outcome") or {}),
            "classes": [(c.get("outcome"), c.get("status"), c.get("count"), c.get("after_event"),
                         c.get("after_s"), c.get("populations") or {})
                        for c in doc.get("failure_classes") or []],
            "reasons": [r for r in doc.get("reasons", []) if doc.get("verdict") != "PASS"][:3],
            "in_window": in_window, "in_window_stated": stated[0] if stated else None,
            "window_s": (t_drained - t_switch) if in_window is not None else None,
            "populations": {k: v.get("requests") for k, v in (doc.get("populations") or {}).items()},
            "target_rps": load.get("target_rps"), "achieved_rps": load.get("achieved_rps"),
            "shortfall": load.get("shortfall"), "scheduled": load.get("scheduled"),
            "late": load.get("late"), "missed_cap": load.get("missed_cap")}


def one_run(extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="zd-ttv-") as tmp:
        evidence, allure = Path(tmp) / "evidence", Path(tmp) / "allure"
        cmd = main_job_command(evidence, allure, Path(tmp) / "pytest", extra)
        t0 = time.time()
        proc = subprocess.Popen(cmd, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.STDOUT,
                                text=True, env={**os.environ, "PYTHONPATH": str(ROOT)})
        seen: dict[str, float] = {}
        while proc.poll() is None:
            for f in evidence.glob("*.json") if evidence.exists() else []:
                seen.setdefault(f.stem, time.time() - t0)
            time.sleep(0.05)
        wall = time.time() - t0
        out = proc.stdout.read() if proc.stdout else ""
        docs = {f.stem: json.loads(f.read_text()) for f in sorted(evidence.glob("*.json"))}
        return {"wall_s": wall, "exit": proc.returncode, "first_verdict_s": min(seen.values(), default=None),
                "verdicts": {k: d["verdict"] for k, d in docs.items()},
                "proofs": {k: proof_power(d) for k, d in docs.items()},
                "tail": out.strip().splitlines()[-1:] if out else [],
                "command": " ".join(shlex.quote(c) for c in cmd)}


def _int(x) -> str:
    return "-" if x is None else f"{x:,}"


def _pct(rate: float | None) -> str:
    """Three significant digits (enough to tell 0.0998 % from 0.1 %)."""
    return "-" if rate is None else f"{rate * 100:.3g} %"


def power_table(runs: list[dict]) -> list[str]:
    rows = ["| run | proof | verdict | requests judged | started in switch window (ledger / verdict's reason) | "
            "switch window | failed (by outcome) | 95 % upper bound on failure rate | populations (requests) | "
            "load: target / achieved req/s (scheduled, late, missed_cap) |",
            "|---|---|---|---:|---:|---:|---|---:|---|---|"]
    for i, r in enumerate(runs, 1):
        for name, p in sorted(r["proofs"].items()):
            pops = ", ".join(f"{k} {_int(v)}" for k, v in sorted(p["populations"].items())) or "-"
            win = "-" if p["window_s"] is None else f"{p['window_s']:.2f} s"
            load = (f"{p['target_rps']:g} / {p['achieved_rps']:.1f}" if p["target_rps"] is not None
                    and p["achieved_rps"] is not None else "-")
            load += (f" ({_int(p['scheduled'])}, {_int(p['late'])}, {_int(p['missed_cap'])}"
                     f"{', shortfall ' + p['shortfall'] if p['shortfall'] else ''})")
            rows.append(f"| {i} | {name} | {p['verdict']} | {_int(p['judged'])} | "
                        f"{_int(p['in_window'])} / {_int(p['in_window_stated'])} | {win} | "
                        f"{_int(p['failed'])}{_outcomes(p['by_outcome'])} | {_pct(p['upper'])} | "
                        f"{pops} | {load} |")
    return rows


def _outcomes(by: dict) -> str:
    return f" ({', '.join(f'{k} {v:,}' for k, v in sorted(by.items()))})" if by else ""


def failure_notes(runs: list[dict]) -> list[str]:
    """Each proof that did not PASS: its failure classes and the verdict's first reasons."""
    out = []
    for i, r in enumerate(runs, 1):
        for name, p in sorted(r["proofs"].items()):
            if p["verdict"] == "PASS":
                continue
            classes = "; ".join(
                f"{o}{' ' + str(st) if st else ''} x{n}"
                f"{f' {a_s:.2f} s after {ev}' if ev and a_s is not None else ''}"
                f" ({', '.join(f'{k} {v}' for k, v in sorted(pops.items()))})"
                for o, st, n, ev, a_s, pops in p["classes"]) or "none"
            reasons = " / ".join(x[:300] for x in p["reasons"])
            out.append(f"- run {i}, {name} {p['verdict']}: failure classes: {classes}. "
                       f"Reasons: {reasons}")
    return out


def goals(runs: list[dict]) -> str:
    """Each goal against every proof of every run: the worst case decides."""
    proofs = [p for r in runs for p in r["proofs"].values()]
    walls = [r["wall_s"] for r in runs]
    judged = [p["judged"] or 0 for p in proofs]
    window = [p["in_window"] or 0 for p in proofs]
    judged_min = min(judged)
    zero_bound = 1.0 - 0.05 ** (1.0 / judged_min) if judged_min > 0 else None  # one-sided, k = 0
    failing = [(i, n, p) for i, r in enumerate(runs, 1) for n, p in sorted(r["proofs"].items())
               if p["failed"]]

    def met(ok: bool) -> str:
        return "met" if ok else "NOT met"
    if not proofs:
        return "No evidence JSON was written: no proof to judge the goals by."
    return "\n".join([
        f"- requests judged per proof >= {GOAL_JUDGED:,}: {met(min(judged) >= GOAL_JUDGED)} "
        f"(min {min(judged):,}, max {max(judged):,} over {len(proofs)} proofs)",
        f"- so the 95 % upper bound at zero failures <= {GOAL_BOUND:.1%}: "
        f"{met(zero_bound is not None and zero_bound <= GOAL_BOUND)} (at the smallest n, "
        f"{judged_min:,}: {_pct(zero_bound)})",
        f"- proofs that saw failures: {len(failing)} of {len(proofs)}"
        + (" (" + "; ".join(f"run {i} {n}: {p['failed']:,} failed, bound {_pct(p['upper'])}"
                            for i, n, p in failing) + ")" if failing else ""),
        f"- requests started in the switch window >= {GOAL_IN_WINDOW:,}: "
        f"{met(min(window) >= GOAL_IN_WINDOW)} (min {min(window):,}, max {max(window):,})",
        f"- the whole job within {GOAL_WALL_S:g} s: {met(max(walls) <= GOAL_WALL_S)} "
        f"(max {max(walls):.1f} s)"])


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--runs", type=int, default=3)
    ap.add_argument("--write", action="store_true", help="append the table to RESULTS.md")
    ap.add_argument("pytest_args", nargs="*", help="after --: passed to pytest")
    args = ap.parse_args()
    if args.runs < 1:
        print("time_to_verdict: --runs must be >= 1", file=sys.stderr)
        return 2
    runs = []
    for i in range(args.runs):
        r = one_run(args.pytest_args)
        runs.append(r)
        print(f"run {i + 1}: {r['wall_s']:.1f} s, exit {r['exit']}, first verdict at "
              f"{r['first_verdict_s'] or 0:.1f} s, {r['verdicts']}, {r['tail']}", flush=True)
    walls = [r["wall_s"] for r in runs]
    table = ["| run | wall time of the job | first verdict written | verdicts | exit |",
             "|---|---:|---:|---|---:|"]
    for i, r in enumerate(runs, 1):
        v = ", ".join(f"{k}: {x}" for k, x in sorted(r["verdicts"].items()))
        table.append(f"| {i} | {r['wall_s']:.1f} s | {r['first_verdict_s'] or 0:.1f} s | {v} | {r['exit']} |")
    summary = (f"Median wall time {statistics.median(walls):.1f} s (min {min(walls):.1f}, max "
               f"{max(walls):.1f})" + ("; target: at most 60 s." if not args.pytest_args else "."))
    power = power_table(runs)
    checked = goals(runs)
    notes = failure_notes(runs)
    if notes:
        checked += "\n\nProofs that did not PASS:\n\n" + "\n".join(notes)
    print("\n".join(table) + "\n\n" + summary + "\n\n" + "\n".join(power) + "\n\n" + checked)
    if args.write:
        cpu = next((x.split(":", 1)[1].strip() for x in Path("/proc/cpuinfo").read_text().splitlines()
                    if x.startswith("model name")), "?")
        load = " ".join(f"{x:.2f}" for x in os.getloadavg())
        section = (f"## time_to_verdict: run of {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n\n"
                   f"Command: `.venv/bin/python benchmarks/time_to_verdict.py --runs {args.runs} --write"
                   f"{' -- ' + ' '.join(args.pytest_args) if args.pytest_args else ''}`, "
                   f"which runs `{runs[0]['command']}` (the environment already installed).\n\n"
                   f"Machine: nproc {os.cpu_count()}, {cpu}, Python {platform.python_version()}; "
                   f"load average {load} at the end.\n\n"
                   + "\n".join(table) + "\n\n" + summary + "\n\n"
                   "Per proof (from its evidence JSON; the switch window's count from its ledger):\n\n"
                   + "\n".join(power) + "\n\nThe goals, worst proof of every run:\n\n" + checked + "\n")
        path = ROOT / "benchmarks" / "RESULTS.md"
        text, marker = path.read_text(), "<!-- runs -->\n"
        # the newest run first: right after the marker (at the end when there is none)
        path.write_text(text.replace(marker, marker + "\n" + section, 1) if marker in text
                        else text + "\n" + section)
    return 0 if all(r["exit"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
