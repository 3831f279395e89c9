"""Time to verdict of the README's main job (`./zd verify`) on the local default.

Runs the main job's pytest command as a user would (environment already installed), several
times, and reports the wall time of the whole job and when each verdict file appeared:

    .venv/bin/python benchmarks/time_to_verdict.py --runs 3 [--write] [-- PYTEST ARGS]

Arguments after ``--`` go to pytest, e.g. ``-- --target kind --kind-cluster zerodrop
--keep-cluster`` for the same job on a kind cluster (the cluster itself is not timed then).

The issue's target: at most 60 s for the whole job. Never asserted in tests (shared, noisy
machine); --write appends a dated table to benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def main_job_command(evidence: Path, alluredir: Path, extra: list[str]) -> list[str]:
    """What `./zd verify` runs (zd: `pytest suites`), with the evidence sent to scratch."""
    return [sys.executable, "-m", "pytest", "suites", "-q", "--evidence-dir", str(evidence),
            "--alluredir", str(alluredir), *extra]


def one_run(extra: list[str]) -> dict:
    with tempfile.TemporaryDirectory(prefix="zd-ttv-") as tmp:
        evidence, allure = Path(tmp) / "evidence", Path(tmp) / "allure"
        cmd = main_job_command(evidence, allure, extra)
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
        verdicts = {f.stem: json.loads(f.read_text())["verdict"] for f in evidence.glob("*.json")}
        return {"wall_s": wall, "exit": proc.returncode, "first_verdict_s": min(seen.values(), default=None),
                "verdicts": verdicts, "tail": out.strip().splitlines()[-1:] if out else [],
                "command": " ".join(shlex.quote(c) for c in cmd)}


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
    print("\n".join(table) + "\n\n" + summary)
    if args.write:
        cpu = next((x.split(":", 1)[1].strip() for x in Path("/proc/cpuinfo").read_text().splitlines()
                    if x.startswith("model name")), "?")
        with open(ROOT / "benchmarks" / "RESULTS.md", "a") as f:
            f.write(f"\n## time_to_verdict: run of {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}\n\n"
                    f"Command: `.venv/bin/python benchmarks/time_to_verdict.py --runs {args.runs} --write"
                    f"{' -- ' + ' '.join(args.pytest_args) if args.pytest_args else ''}`, "
                    f"which runs `{runs[0]['command']}` (the environment already installed).\n\n"
                    f"Machine: nproc {os.cpu_count()}, {cpu}, Python {platform.python_version()}.\n\n"
                    + "\n".join(table) + "\n\n" + summary + "\n")
    return 0 if all(r["exit"] == 0 for r in runs) else 1


if __name__ == "__main__":
    sys.exit(main())
