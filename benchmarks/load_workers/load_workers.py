"""Does the in-cluster load (``--load-from cluster``) get more requests out with more Locust
worker pods? One platform on a kind cluster, then ``ClusterLoadRun`` with 1, 2 and 4 workers
(a master pod plus N worker pods) at the same requested rate, interleaved, each for a fixed
window:

    .venv/bin/python benchmarks/load_workers/load_workers.py [--cluster zd-dev] [--rate 2000]
        [--seconds 15] [--workers 1,2,4] [--rounds 2] [--replicas 1] [--json PATH]

The target is the platform's own Service (the reference payment-service, ``--replicas`` pods of
the active colour), the mix is GET /health only and every client is a kept-alive one (no idle
clients): the cheapest request the service answers, so that the generator's limits show
before the service's. The order of the worker counts flips every round.

For every run: the achieved rate (``LoadResult.achieved_rps``: ledger requests over their start
span) and the rate inside the steady window (the progress counters before and after it); each
worker's requests per second (its own ledger file over the same span); the generator's
counters (``scheduled``, ``late``, ``missed_cap``, ``shortfall``); p50/p99 latency of the answered
requests from the merged ledger; and CPU seconds per second over the window from each pod's
cgroup (``/sys/fs/cgroup/cpu.stat``): the load pods summed (and the busiest one), and the
target's pods. Nothing here asserts a timing: it measures (benchmarks/load_workers/README.md
holds the table and its reading).
"""
from __future__ import annotations

import argparse
import json
import math
import os
import platform as host
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
sys.path.insert(0, str(ROOT))

MIX = {"health": 1}
KEEPALIVE = {"keepalive": 1, "fresh": 0, "retry": 0}
IMAGES = ("zerodrop/payment-service:dev", "zerodrop/postgres:15", "zerodrop/harness:dev")


def cgroup_cpu_s(platform, pod: str, container: str) -> float | None:
    """CPU seconds the pod's container has used: cgroup v2 cpu.stat usage_usec, or cgroup v1
    cpuacct.usage (nanoseconds; this machine's kind node); None when it cannot be read."""
    from kubernetes import client
    from kubernetes.stream import stream
    api = client.CoreV1Api(platform.cluster.api_client())
    try:
        out = stream(api.connect_get_namespaced_pod_exec, pod, platform.namespace, container=container,
                     command=["sh", "-c", "cat /sys/fs/cgroup/cpu.stat 2>/dev/null || "
                              "cat /sys/fs/cgroup/cpuacct/cpuacct.usage"],
                     stderr=False, stdout=True, stdin=False, tty=False)
        for line in out.splitlines():
            if line.startswith("usage_usec"):
                return int(line.split()[1]) / 1e6
        return int(out.strip()) / 1e9
    except Exception:
        return None
    finally:
        api.api_client.close()


def cpu_snapshot(platform, run) -> dict[str, float | None]:
    """CPU seconds of every load pod (by tag) and of every target pod (``target:<name>``)."""
    from zerodrop.platforms.kubernetes.load_job import CONTAINER
    snap = {p.tag: cgroup_cpu_s(platform, p.name, CONTAINER) for p in run.pods}
    targets = platform.core.list_namespaced_pod(platform.namespace,
                                                label_selector=platform.layout.label_selector()).items
    for t in targets:
        if t.status.phase == "Running" and not t.metadata.deletion_timestamp:
            snap[f"target:{t.metadata.name}"] = cgroup_cpu_s(platform, t.metadata.name,
                                                             platform.layout.container)
    return snap


def latency_ms(ledger: Path) -> tuple[float, float, dict[str, int]]:
    """p50 and p99 (nearest rank) of the answered requests, and the failures by outcome."""
    lat, failed = [], {}
    with open(ledger, encoding="utf-8") as f:
        for line in f:
            r = json.loads(line)
            if r["outcome"] == "ok":
                lat.append((r["t_end"] - r["t_start"]) * 1000.0)
            else:
                failed[r["outcome"]] = failed.get(r["outcome"], 0) + 1
    lat.sort()
    if not lat:
        return math.nan, math.nan, failed

    def pct(p: float) -> float:
        return lat[max(0, math.ceil(p * len(lat)) - 1)]
    return pct(0.50), pct(0.99), failed


def per_worker(ledger_dir: Path) -> dict[str, int]:
    counts = {}
    for path in sorted(ledger_dir.glob("ledger-worker-*.jsonl")):
        tag = path.name.split(".")[0].removeprefix("ledger-")
        counts[tag] = counts.get(tag, 0) + sum(1 for line in open(path, encoding="utf-8") if line.strip())
    return counts


def measure(platform, workers: int, rate: float, seconds: float, users: int) -> dict:
    from zerodrop.load.runner import LoadPlan
    from zerodrop.platforms.kubernetes.load_job import ClusterLoadRun

    directory = Path(tempfile.mkdtemp(prefix="zd-bench-workers-"))
    plan = LoadPlan(host=platform.service_url, users=users, rate=rate, max_duration=seconds + 60,
                    workers=workers, mix=dict(MIX), populations=dict(KEEPALIVE), idle_clients=0,
                    ledger_dir=directory / "ledger")
    t_start = time.monotonic()
    try:
        with ClusterLoadRun(platform, plan, image=platform.config.harness_image) as run:
            run.start()
            started = time.monotonic() - t_start
            p0, cpu0, w0 = run.progress(), cpu_snapshot(platform, run), time.monotonic()
            time.sleep(seconds)
            p1, cpu1, w1 = run.progress(), cpu_snapshot(platform, run), time.monotonic()
            res = run.stop()
        p50, p99, failed = latency_ms(res.ledger_path)
        counts = per_worker(directory / "ledger")
    finally:
        shutil.rmtree(directory, ignore_errors=True)
    wall = w1 - w0
    cpu = {k: (cpu1[k] - cpu0[k]) / wall for k in cpu0
           if cpu0.get(k) is not None and cpu1.get(k) is not None}
    span = res.requests / res.achieved_rps if res.achieved_rps else math.nan
    load_cpu = [v for k, v in cpu.items() if not k.startswith("target:")]
    return {
        "workers": workers, "rate": rate, "seconds": seconds, "start_s": started,
        "achieved": res.achieved_rps, "window_rps": (p1.requests - p0.requests) / wall,
        "per_worker": {k: n / span for k, n in counts.items()}, "requests": res.requests,
        "scheduled": res.scheduled, "late": res.late, "missed_cap": res.missed_cap,
        "max_inflight": res.max_inflight, "shortfall": res.shortfall, "detail": res.detail,
        "p50_ms": p50, "p99_ms": p99, "failed": failed,
        "load_cpu": sum(load_cpu), "load_cpu_max": max(load_cpu, default=math.nan),
        "cpu": cpu, "target_cpu": sum(v for k, v in cpu.items() if k.startswith("target:")),
    }


def table(rows: list[dict]) -> list[str]:
    out = ["| workers | round | achieved req/s | in window req/s | per worker req/s | scheduled | late | "
           "missed_cap | shortfall | p50 ms | p99 ms | failed | load pods CPU (busiest) | target CPU |",
           "|---:|---:|---:|---:|---|---:|---:|---:|---|---:|---:|---:|---:|---:|"]
    for r in rows:
        per = ", ".join(f"{v:,.0f}" for v in r["per_worker"].values())
        out.append(f"| {r['workers']} | {r['round']} | {r['achieved']:,.0f} | {r['window_rps']:,.0f} | {per} | "
                   f"{r['scheduled']:,} | {r['late']:,} | {r['missed_cap']:,} | {r['shortfall'] or '-'} | "
                   f"{r['p50_ms']:.1f} | {r['p99_ms']:.1f} | {failed(r)} | "
                   f"{r['load_cpu']:.2f} ({r['load_cpu_max']:.2f}) | {r['target_cpu']:.2f} |")
    return out


def failed(r: dict) -> str:
    return ", ".join(f"{k} {v:,}" for k, v in sorted(r["failed"].items())) or "0"


def medians(rows: list[dict], counts: list[int]) -> list[str]:
    out = ["| workers | achieved req/s (median, min-max) | in window req/s (median) | p99 ms (median) | "
           "load pods CPU (median) |", "|---:|---|---:|---:|---:|"]
    for n in counts:
        rs = [r for r in rows if r["workers"] == n]
        a = [r["achieved"] for r in rs]
        out.append(f"| {n} | {statistics.median(a):,.0f} ({min(a):,.0f}-{max(a):,.0f}) | "
                   f"{statistics.median(r['window_rps'] for r in rs):,.0f} | "
                   f"{statistics.median(r['p99_ms'] for r in rs):.1f} | "
                   f"{statistics.median(r['load_cpu'] for r in rs):.2f} |")
    return out


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--cluster", default=os.environ.get("ZD_KIND_CLUSTER", "zd-dev"))
    ap.add_argument("--rate", type=float, default=2000.0, help="requested req/s (at most 3000 here)")
    ap.add_argument("--seconds", type=float, default=15.0, help="the steady window of each run (<= 30)")
    ap.add_argument("--workers", default="1,2,4")
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--replicas", type=int, default=1, help="pods of the active colour (the target)")
    ap.add_argument("--users", type=int, default=20, help="kept-alive connections opened first")
    ap.add_argument("--json", type=Path, default=None, help="also write every run's numbers here")
    a = ap.parse_args(argv)
    counts = [int(x) for x in a.workers.split(",")]
    if a.rate > 3000 or a.seconds > 30 or min(counts) < 1:
        ap.error("this machine is shared: --rate <= 3000, --seconds <= 30, workers >= 1")

    from zerodrop.platforms.kubernetes.platform import KubeConfig, new_namespace, stand_up
    from zerodrop.platforms.kubernetes.providers.base import finish
    from zerodrop.platforms.kubernetes.providers.kind import KindOptions, acquire_kind
    from zerodrop.platforms.provider import new_run_id

    kube_dir = Path(tempfile.mkdtemp(prefix="zd-bench-kube-"))
    cluster = acquire_kind(KindOptions(name=a.cluster, keep=True, images=IMAGES, kubeconfig_dir=kube_dir))
    run_id = new_run_id()
    rows: list[dict] = []
    platform = stand_up(cluster, KubeConfig(replicas=a.replicas, run_id=run_id, ready_timeout=180,
                                            load_from="cluster"),
                        new_namespace(run_id, "bench-workers"), idle_replicas=0)
    try:
        for rnd in range(1, a.rounds + 1):
            for n in (counts if rnd % 2 else list(reversed(counts))):
                row = {**measure(platform, n, a.rate, a.seconds, a.users), "round": rnd}
                rows.append(row)
                print(f"workers {n} round {rnd}: achieved {row['achieved']:,.0f} req/s, window "
                      f"{row['window_rps']:,.0f}, shortfall {row['shortfall'] or '-'}, late {row['late']:,}, "
                      f"missed_cap {row['missed_cap']:,}, p50/p99 {row['p50_ms']:.1f}/{row['p99_ms']:.1f} ms, "
                      f"load CPU {row['load_cpu']:.2f}, target CPU {row['target_cpu']:.2f}", flush=True)
    finally:
        platform.teardown()
        finish(cluster, run_id)
        shutil.rmtree(kube_dir, ignore_errors=True)
    print()
    print(f"Requested {a.rate:,.0f} req/s for {a.seconds:g} s, GET /health, kept-alive clients, "
          f"{a.replicas} target pod(s); nproc {os.cpu_count()}, {host.processor() or host.machine()}, "
          f"load average {' '.join(f'{x:.2f}' for x in os.getloadavg())} at the end.")
    print()
    print("\n".join(table(rows)))
    print()
    print("\n".join(medians(rows, counts)))
    if a.json:
        a.json.write_text(json.dumps(rows, indent=1, default=str))
    return 0


if __name__ == "__main__":
    sys.exit(main())
