"""Detection and rollback of a bad canary: how long from the fault to the rollback decision, and
from the decision to no canary traffic, on the local platform (1 s scrape) or a kind cluster.

Each trial stands up a platform of its own, starts the canary of v2.0.0 under an open-model load
of fresh connections, switches a fault on in the canary (30 % of its answers become 500s) a known
time into its first stage, and reads back from the canary facts and the ledger:

- ``detect_s``   = t_detected - t_fault_on: the fault on, to the rollback decision;
- ``to_zero_s``  = the last request the canary answered that STARTED after the decision, minus
                   the decision (0 when none did): the decision, to no canary traffic;
- ``rolled_s``   = t_rolled_back - t_fault_on: the fault on, to all traffic on the stable version.

    .venv/bin/python benchmarks/canary_detection.py --trials 3 [--target local|kind]
        [--kind-cluster NAME] [--rate 200] [--write]

Never asserted in tests (shared, noisy machine); --write adds a dated section to
benchmarks/RESULTS.md after the ``<!-- runs -->`` marker, with the seed's and Flagger's figures
in the same table.
"""
from __future__ import annotations

import argparse
import datetime as dt
import os
import statistics
import sys
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
FAULT = {"error_rate": 0.3}
# what others claim or default to, for the same table
REFERENCES = [
    ("seed article (canary-controller.py): its own claim", "45 s", "30 s",
     "90 s to full rollback"),
    ("seed article as written: 5 min stages, judged only at a stage's end", "up to 300 s", "-",
     "up to 300 s"),
    ("Flagger defaults: a check every `interval` (1m), rollback after `threshold` (5) failures",
     "60-300 s", "at the next check", "up to ~300 s"),
]


def one_trial(target: str, cluster: str | None, rate: float, fault_after: float, tmp: Path) -> dict:
    from zerodrop.records.ledger import read_records
    from zerodrop.scenarios.canary import CanarySettings, canary
    from zerodrop.scenarios.proof import ProofSettings, prove
    from zerodrop.scenarios.steps import Context
    load = ProofSettings(users=10, rate=rate, baseline_s=1.0, tail_s=1.0, show_progress=False,
                         populations={"fresh": 100}, idle_clients=0)
    settings = CanarySettings(stages=(10, 50, 100), stage_s=30.0, min_requests=50, replicas=1,
                              max_p99_ms=5000.0, fault=FAULT, fault_after_s=fault_after)
    platform = stand_up(target, cluster, tmp)
    try:
        proof = prove(platform, canary(platform, "v2.0.0", settings), Context(platform), load,
                      tmp / "out", tmp / "ledger")
    finally:
        platform.teardown()
    facts = proof.verdict.to_dict()["canary"]
    if facts["outcome"] != "rolled back" or facts["t_detected"] is None:
        raise SystemExit(f"canary_detection: the faulty canary was not rolled back: "
                         f"{proof.scenario.failure or facts['outcome']}")
    t0 = proof.verdict.to_dict()["switch"]["t_switch"]  # the first canary share: time 0
    decision = t0 + facts["t_detected"]
    with open(proof.load.ledger_path, encoding="utf-8") as lines:
        late = [r.t_start for r in read_records(lines) if r.version == "v2.0.0"
                and r.t_start >= decision]
    return {"detect_s": facts["t_detected"] - facts["t_fault_on"],
            "to_zero_s": (max(late) - decision) if late else 0.0,
            "rolled_s": facts["t_rolled_back"] - facts["t_fault_on"],
            "late_requests": len(late),
            "failed": proof.verdict.to_dict()["requests_failed"],
            "prometheus": facts.get("prometheus") is not None}


def stand_up(target: str, cluster: str | None, tmp: Path):
    if target == "local":
        from zerodrop.platforms.local.platform import LocalConfig
        from zerodrop.platforms.local.platform import stand_up as local
        return local(LocalConfig(replicas=1, prometheus=True), idle_replicas=0)
    from zerodrop.platforms.kubernetes.platform import KubeConfig, new_namespace
    from zerodrop.platforms.kubernetes.platform import stand_up as kube
    from zerodrop.platforms.kubernetes.providers.kind import KindOptions, acquire_kind
    from zerodrop.platforms.provider import new_run_id
    c = acquire_kind(KindOptions(name=cluster, keep=True, kubeconfig_dir=tmp))
    run = new_run_id()
    return kube(c, KubeConfig(replicas=1, run_id=run, router="gateway", prometheus="cluster"),
                new_namespace(run, "bench"), idle_replicas=0)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--trials", type=int, default=3)
    ap.add_argument("--target", choices=("local", "kind"), default="local")
    ap.add_argument("--kind-cluster", default=os.environ.get("ZD_KIND_CLUSTER"))
    ap.add_argument("--rate", type=float, default=200.0)
    ap.add_argument("--fault-after", type=float, default=2.0)
    ap.add_argument("--write", action="store_true")
    a = ap.parse_args()
    if a.target == "kind" and not a.kind_cluster:
        print("canary_detection: --target kind needs --kind-cluster (or ZD_KIND_CLUSTER)",
              file=sys.stderr)
        return 4
    rows = []
    for i in range(a.trials):
        with tempfile.TemporaryDirectory(prefix="zd-bench-canary-") as d:
            row = one_trial(a.target, a.kind_cluster, a.rate, a.fault_after, Path(d))
        rows.append(row)
        print(f"trial {i + 1}: detect {row['detect_s']:.2f} s, to zero canary traffic "
              f"{row['to_zero_s']:.2f} s ({row['late_requests']} canary requests after the "
              f"decision), rolled back {row['rolled_s']:.2f} s after the fault; "
              f"{row['failed']} failed requests", flush=True)
    med = {k: statistics.median(r[k] for r in rows) for k in ("detect_s", "to_zero_s", "rolled_s")}
    worst = {k: max(r[k] for r in rows) for k in med}
    table = [f"| zerodrop, {a.target} ({'1 s scrape, ' if rows[0]['prometheus'] else ''}"
             f"{a.rate:g} req/s, median / worst of {len(rows)}) | {med['detect_s']:.2f} / "
             f"{worst['detect_s']:.2f} s | {med['to_zero_s']:.2f} / {worst['to_zero_s']:.2f} s | "
             f"{med['rolled_s']:.2f} / {worst['rolled_s']:.2f} s from the fault |"]
    table += [f"| {who} | {d} | {z} | {r} |" for who, d, z, r in REFERENCES]
    text = "\n".join(["| who | fault to decision | decision to zero canary traffic | rollback |",
                      "|---|---|---|---|", *table])
    print(text)
    if a.write:
        stamp = dt.datetime.now(dt.timezone.utc).strftime("%Y-%m-%d %H:%M UTC")
        section = (f"## canary_detection ({a.target}): run of {stamp}\n\n"
                   f"`.venv/bin/python benchmarks/canary_detection.py --trials {a.trials} "
                   f"--target {a.target} --rate {a.rate:g}`\n\n{text}\n\n")
        path = ROOT / "benchmarks" / "RESULTS.md"
        body = path.read_text(encoding="utf-8")
        marker = "<!-- runs -->"
        body = body.replace(marker, marker + "\n\n" + section, 1) if marker in body else \
            body + "\n" + section
        path.write_text(body, encoding="utf-8")
    return 0


if __name__ == "__main__":
    sys.exit(main())
