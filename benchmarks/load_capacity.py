"""What arrival rate does one Locust process keep ON SCHEDULE (open model), how far off its schedule
does it start requests, and what does the per-request ledger cost?

    .venv/bin/python benchmarks/load_capacity.py [--seconds 6] [--rates 1000,2000,...,16000]
        [--rounds 2] [--py-spy PATH [--profile-rate R]] [--merge-records N] [--write]

Against a trivially fast local target (a raw asyncio HTTP server in its OWN process, answering
every request with a fixed 200, a small JSON body and the X-App-* headers, keep-alive; the mix is
GET /health only, which carries no request body and needs no body check), each measurement is
one ``load.runner.LoadRun`` (one Locust process, the real locustfile) of a fixed window:

1. the rate steps: the scheduled rate stepped up (``--rates``), keep-alive population only, no
   idle clients, ledger ON; stepping stops once the schedule is clearly not kept (under 90 % of
   the scheduled rate achieved, or over 10 % of the arrivals late or skipped). "On schedule" is
   the runner's own judgement: the LoadResult's ``shortfall`` is "" (at most 1 % of the arrivals
   skipped at the concurrency cap, at most 2 % started over 0.2 s late, no Locust process
   demanding >= 90 % of a core, no Locust CPU warning);
2. the default populations (keep-alive 60, fresh 15, retry 25, 8 idle clients) at
   ``--default-rate`` (the issue's 3,000 req/s) and at 100 req/s;
3. ledger ON vs OFF at one rate (``--overhead-rate``; default the highest on-schedule step),
   alternating which goes first, ``--rounds`` pairs: the on-CPU time of the Locust process per
   request answered (an open model sends the same requests either way, so the ledger's cost shows
   as CPU, not as a lower rate, until the CPU runs out).

For every run: requests counted by the TARGET (GET /__count before and after; the runner's
preflight GET /health is subtracted), ledger records, the achieved rate (ledger requests over
their start span, ``LoadResult.achieved_rps``), the SCHEDULE ERROR from the merged ledger
(``t_start - planned`` of every first attempt: p50, p99, max), the generator's counters
(``scheduled``, ``late``, ``missed_cap``, ``max_inflight``), the Locust process's on-CPU share of
one core during the window (/proc/PID/schedstat) and the ``shortfall``.

``--py-spy PATH`` adds one run at ``--profile-rate`` (default the ON/OFF rate) under ``py-spy record
--gil --nonblocking`` (samples of the Locust process while it holds the GIL, without pausing it)
and prints where its CPU goes; the raw stacks stay in $TMPDIR/zerodrop-load-profile.txt. ``--merge-records N`` also times
merge_ledgers over N records (see ``merge_benchmark``). ``--write`` writes the tables into
benchmarks/RESULTS.md. Nothing here asserts timings: it measures.
"""
from __future__ import annotations

import argparse
import asyncio
import collections
import datetime
import json
import math
import os
import platform
import re
import shutil
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

BODY = b'{"status":"ok"}'
ANSWER = (b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nX-App-Version: v1\r\nX-App-Color: blue\r\n"
          b"X-Replica: bench-0\r\nX-Request-Id: -\r\nContent-Length: " + str(len(BODY)).encode() + b"\r\n\r\n" + BODY)
MIX = {"health": 1}
KEEPALIVE = {"keepalive": 1, "fresh": 0, "retry": 0}
LATE_MS = 200.0  # load.arrivals.LATE_S, in ms (not imported: keeps this process free of the load package)
CLEARLY_BEHIND = 0.10  # a step with more than this share of arrivals late or skipped ends the stepping


# -- the target (runs in its own process: `load_capacity.py --serve PORTFILE`) ------------------------

class _Target(asyncio.Protocol):
    count = 0

    def connection_made(self, transport):
        self.t = transport
        self.buf = b""

    def data_received(self, data):
        self.buf += data
        while True:
            end = self.buf.find(b"\r\n\r\n")
            if end < 0:
                return
            head, self.buf = self.buf[:end], self.buf[end + 4:]
            # the mix is GET /health only (no request bodies); GET /__count reads the counter
            if head.startswith(b"GET /__count"):
                body = str(_Target.count).encode()
                self.t.write(b"HTTP/1.1 200 OK\r\nContent-Length: " + str(len(body)).encode() + b"\r\n\r\n" + body)
            else:
                _Target.count += 1
                self.t.write(ANSWER)


def serve(port_file: str) -> None:
    async def main():
        loop = asyncio.get_running_loop()
        server = await loop.create_server(_Target, "127.0.0.1", 0, backlog=1024)
        Path(port_file).write_text(str(server.sockets[0].getsockname()[1]))
        await server.serve_forever()

    asyncio.run(main())


def _count(url: str) -> int:
    with urllib.request.urlopen(url + "/__count", timeout=5) as r:
        return int(r.read())


def _on_cpu_s(pid: int) -> float | None:
    """Seconds process ``pid`` has run on a CPU (/proc/PID/schedstat, first field)."""
    try:
        return int(Path(f"/proc/{pid}/schedstat").read_text().split()[0]) / 1e9
    except (OSError, ValueError, IndexError):
        return None


# -- measurements -----------------------------------------------------------------------------------

def schedule_error(ledger_path: Path) -> dict:
    """``t_start - planned`` (ms) of every first attempt in a merged ledger: p50, p99, max, and how
    many started over 0.2 s late by the ledger's own clock."""
    errors = []
    with open(ledger_path, encoding="utf-8") as f:
        for line in f:
            rec = json.loads(line)
            if rec.get("attempt", 1) == 1 and rec.get("planned", 0.0) > 0:
                errors.append((rec["t_start"] - rec["planned"]) * 1000.0)
    errors.sort()
    if not errors:
        return {"n": 0, "p50": math.nan, "p99": math.nan, "max": math.nan, "over_late": 0}

    def pct(p: float) -> float:  # nearest rank
        return errors[max(0, math.ceil(p * len(errors)) - 1)]

    return {"n": len(errors), "p50": pct(0.50), "p99": pct(0.99), "max": errors[-1],
            "over_late": sum(e > LATE_MS for e in errors)}


def measure(url: str, rate: float, seconds: float, *, ledger: bool = True, populations: dict | None = None,
            idle_clients: int = 0, users: int = 20, py_spy: str | None = None) -> dict:
    """One LoadRun of ``seconds`` at ``rate`` scheduled req/s (one Locust process)."""
    from zerodrop.load.runner import LoadPlan, LoadRun

    led = Path(tempfile.mkdtemp(prefix="zerodrop-bench-"))
    plan = LoadPlan(host=url, users=users, rate=rate, max_duration=seconds + 60, ledger_dir=led / "ledger",
                    mix=dict(MIX), ledger=ledger, populations=populations, idle_clients=idle_clients)
    profile = None
    try:
        c_start = _count(url)
        with LoadRun(plan) as run:
            run.start(ready_timeout=60)
            pid = run.pids[0]
            spy = None
            if py_spy:
                profile = Path(tempfile.gettempdir()) / "zerodrop-load-profile.txt"  # kept: raw stacks
                spy = subprocess.Popen([py_spy, "record", "--pid", str(pid), "--duration", str(int(seconds)),
                                        "--rate", "500", "--format", "raw", "--nolineno", "--gil", "--threads",
                                        "--nonblocking", "--output", str(profile)],
                                       stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
            cpu0, c0, t0 = _on_cpu_s(pid), _count(url), time.monotonic()
            time.sleep(seconds)
            cpu1, c1, t1 = _on_cpu_s(pid), _count(url), time.monotonic()
            if spy is not None:
                try:
                    _, err = spy.communicate(timeout=30)
                except subprocess.TimeoutExpired:
                    spy.kill()
                    _, err = spy.communicate()
                if spy.returncode != 0:
                    print(f"py-spy failed: {err.decode(errors='replace')[-500:]}", file=sys.stderr)
            res = run.stop()
        c_end = _count(url)
        err = schedule_error(res.ledger_path) if ledger else None
        prof = summarize_profile(profile) if profile is not None and profile.exists() else None
    finally:
        shutil.rmtree(led, ignore_errors=True)
    wall = t1 - t0
    cpu = (cpu1 - cpu0) if cpu0 is not None and cpu1 is not None else math.nan
    demand = re.search(r"demanded (\d+)%", res.detail)
    why = [tag for tag, needle in (("cap", "concurrency cap"), ("late", "started more than"),
                                   ("core", "demanded"), ("warning", "Locust reported")) if needle in res.detail]
    return {
        "rate": rate, "ledger": ledger, "populations": populations, "idle_clients": idle_clients,
        "counted": c_end - c_start - 1,  # the runner's preflight GET /health is not the schedule's
        "window_rps": (c1 - c0) / wall, "cpu_share": cpu / wall,
        "cpu_us_per_req": cpu / (c1 - c0) * 1e6 if c1 > c0 else math.nan,
        "records": res.requests if ledger else None, "achieved": res.achieved_rps, "err": err,
        "scheduled": res.scheduled, "late": res.late, "missed_cap": res.missed_cap,
        "max_inflight": res.max_inflight, "shortfall": res.shortfall, "why": why,
        "demand": int(demand.group(1)) if demand else None, "failures": res.failures, "detail": res.detail,
        "profile": prof,
    }


def clearly_behind(m: dict) -> bool:
    """The schedule is clearly not kept: stop stepping the rate up."""
    behind = max(m["late"] + m["missed_cap"], m["err"]["over_late"] if m["err"] else 0)
    return m["achieved"] < 0.9 * m["rate"] or (m["scheduled"] and behind > CLEARLY_BEHIND * m["scheduled"])


def summarize_profile(path: Path, top: int = 14) -> dict:
    """py-spy's raw (collapsed) stacks -> samples, top functions by own samples, and the inclusive
    share of the generator's main parts."""
    own: collections.Counter[str] = collections.Counter()
    incl: collections.Counter[str] = collections.Counter()
    total = 0
    parts = {  # name -> a frame that marks it (function (file))
        "Engine.send (one request, all of it)": "send (load/locustfile.py)",
        "Connection.request (http1: write + read + parse)": "request (load/http1.py)",
        "events.request.fire -> ledger listener": "on_request (load/ledger.py)",
        "record_from_event (build the record)": "record_from_event (load/ledger.py)",
        "record_line / to_json (serialise)": "to_json (records/ledger.py)",
        "uuid.uuid4 (X-Request-Id)": "uuid4 (",
        "Engine.run (the scheduler loop itself)": "Engine.run (load/locustfile.py)",
        "Pool.acquire (still_open select per request)": "acquire (load/http1.py)",
        "gevent.spawn (one greenlet per arrival)": "spawn (",
        "LedgerListener.flush (file append)": "flush (load/ledger.py)",
        "Locust stats (events.request listeners of Locust)": "locust/stats.py",
    }
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        stack, _, n = line.rpartition(" ")
        if not n.isdigit():
            continue
        n = int(n)
        frames = [_short(f) for f in stack.split(";") if not f.startswith("thread (")]
        frames = frames or ["(no Python frame: gevent's C loop, greenlet switches)"]
        total += n
        own[frames[-1]] += n
        for name, needle in parts.items():
            if any(needle in f for f in frames):
                incl[name] += n
    return {"samples": total, "own": own.most_common(top), "inclusive": [(k, incl[k]) for k in parts]}


def _short(frame: str) -> str:
    """``func (/long/path/site-packages/pkg/mod.py)`` -> ``func (pkg/mod.py)``."""
    m = re.match(r"(.*) \((.*)\)$", frame.strip())
    if not m:
        return frame.strip()
    func, path = m.groups()
    p = path.replace(str(ROOT) + "/", "")
    if "site-packages/" in p:
        p = p.split("site-packages/", 1)[1]
    elif "/lib/python" in p:
        p = "stdlib/" + p.split("/lib/python", 1)[1].split("/", 1)[-1]
    return f"{func} ({p})"


def merge_benchmark(n: int = 1_000_000) -> dict:
    """Time and peak RSS of merge_ledgers over n records in 2 nearly-sorted files (in a child process
    so its peak RSS is the merge's alone)."""
    led = Path(tempfile.mkdtemp(prefix="zerodrop-merge-bench-"))
    code = f"""
import random, resource, time, json, sys
sys.path.insert(0, {str(ROOT)!r})
from pathlib import Path
from zerodrop.records.ledger import LedgerRecord
from zerodrop.load.ledger import merge_ledgers, record_line
rng = random.Random(1)
d = Path({str(led)!r})
for w in range(2):
    with open(d / f"ledger-worker-{{w}}.jsonl", "w") as out:
        t = 1_000_000.0
        for i in range({n} // 2):
            t += 0.0005
            lat = rng.expovariate(1 / 0.01)  # completion order: starts disorder by up to ~latency
            out.write(record_line(LedgerRecord(t_start=t - lat, t_end=t, method="GET", route="/health", status=200,
                      outcome="ok", version="v1", color="blue", replica="r0", request_id="%032x" % i)) + "\\n")
rss0 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
t0 = time.perf_counter()
out = merge_ledgers(d).path
dt = time.perf_counter() - t0
rss1 = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
print(json.dumps({{"seconds": dt, "rss_before_mb": rss0 / 1024, "rss_peak_mb": rss1 / 1024,
                  "bytes": out.stat().st_size}}))
"""
    try:
        proc = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True,
                              timeout=600)
    finally:
        shutil.rmtree(led, ignore_errors=True)
    if proc.returncode != 0:
        raise RuntimeError(proc.stderr[-2000:])
    return json.loads(proc.stdout.strip().splitlines()[-1])


def machine() -> str:
    model = "unknown"
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                model = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    from importlib.metadata import version  # never `import locust` here: it monkey-patches this process

    try:
        load = "load average %.2f %.2f %.2f at the end" % os.getloadavg()
    except OSError:
        load = ""
    return (f"nproc {os.cpu_count()}, CPU {model}, Python {platform.python_version()}, "
            f"Locust {version('locust')}, gevent {version('gevent')}, "
            f"{platform.system()} {platform.release()}; {load}")


# -- formatting -------------------------------------------------------------------------------------

def _pops(m: dict) -> str:
    if m["populations"] is None:
        return f"default 60/15/25 + {m['idle_clients']} idle"
    return "keepalive"


def _ms(x: float) -> str:
    return "-" if x is None or math.isnan(x) else (f"{x:,.1f}" if abs(x) < 100 else f"{x:,.0f}")


def _short_fall(m: dict) -> str:
    if not m["shortfall"]:
        return "**\"\"** (on schedule)"
    why = ", ".join(("core %d%%" % m["demand"]) if w == "core" and m["demand"] is not None else w
                    for w in m["why"])
    return f"{m['shortfall']} ({why})"


def row(name: str, m: dict) -> str:
    e = m["err"]
    err = " / ".join(_ms(e[k]) for k in ("p50", "p99", "max")) if e else "-"
    return (f"| {name} | {m['rate']:,.0f} | {_pops(m)} | {'on' if m['ledger'] else 'off'} | {m['counted']:,} | "
            f"{m['records']:,} | {m['achieved']:,.0f} | {err} | {m['late']:,} | {m['missed_cap']:,} | "
            f"{e['over_late'] if e else '-'} | {m['max_inflight']} | {m['cpu_share']:.0%} | {_short_fall(m)} |"
            if m["records"] is not None else
            f"| {name} | {m['rate']:,.0f} | {_pops(m)} | off | {m['counted']:,} | - | - | - | {m['late']:,} | "
            f"{m['missed_cap']:,} | - | {m['max_inflight']} | {m['cpu_share']:.0%} | {_short_fall(m)} |")


HEADER = ["| run | scheduled req/s | populations | ledger | counted by target | ledger records | achieved req/s "
          "| schedule error p50 / p99 / max (ms) | late | missed_cap | ledger > 200 ms late | max_inflight "
          "| Locust on-CPU | shortfall |",
          "|---|---:|---|---|---:|---:|---:|---|---:|---:|---:|---:|---:|---|"]


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--serve", metavar="PORTFILE", help=argparse.SUPPRESS)
    ap.add_argument("--seconds", type=float, default=6.0, help="window of each run (default 6)")
    ap.add_argument("--rates", default="1000,2000,3000,4000,6000,8000,10000,12000,14000,16000",
                    help="scheduled rates to step through, req/s (default 1000,...,16000)")
    ap.add_argument("--default-rate", type=float, default=3000.0,
                    help="rate of the default-populations row (default 3000)")
    ap.add_argument("--overhead-rate", type=float, default=0.0,
                    help="rate of the ledger ON/OFF pairs (default: the highest on-schedule step)")
    ap.add_argument("--rounds", type=int, default=2, help="ledger ON/OFF pairs (default 2; 0: none)")
    ap.add_argument("--py-spy", metavar="PATH", default="", help="py-spy binary: profile one extra run")
    ap.add_argument("--profile-rate", type=float, default=0.0,
                    help="rate of the profiled run (default: the ledger ON/OFF rate)")
    ap.add_argument("--merge-records", type=int, default=0, help="also time merge_ledgers over N records (0: no)")
    ap.add_argument("--write", action="store_true", help="write the results into benchmarks/RESULTS.md")
    args = ap.parse_args()
    if args.serve:
        serve(args.serve)
        return 0

    rates = [float(r) for r in args.rates.split(",") if r.strip()]
    port_file = Path(tempfile.mkdtemp(prefix="zerodrop-target-")) / "port"
    target = subprocess.Popen([sys.executable, __file__, "--serve", str(port_file)])
    started = time.monotonic()
    steps, extra, pairs, prof = [], [], [], None
    try:
        deadline = time.monotonic() + 20
        while not (port_file.exists() and port_file.read_text()):
            if time.monotonic() > deadline or target.poll() is not None:
                raise SystemExit("the benchmark target did not start")
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port_file.read_text()}"

        def show(name: str, m: dict) -> None:
            e = m["err"] or {}
            print(f"{name:>22}: {m['rate']:6.0f}/s sched, counted {m['counted']:6d}, achieved {m['achieved']:6.0f}/s, "
                  f"err p50/p99/max {_ms(e.get('p50', math.nan))}/{_ms(e.get('p99', math.nan))}/"
                  f"{_ms(e.get('max', math.nan))} ms, late {m['late']}, missed {m['missed_cap']}, "
                  f"inflight {m['max_inflight']}, cpu {m['cpu_share']:.0%}, "
                  f"{m['cpu_us_per_req']:.0f} us/req, shortfall {m['shortfall']!r} {m['detail']}", flush=True)

        for rate in rates:
            m = measure(url, rate, args.seconds, populations=dict(KEEPALIVE))
            steps.append(m)
            show("step", m)
            if clearly_behind(m):
                break
        kept = [m["rate"] for m in steps if not m["shortfall"]]
        for name, rate in ((f"default populations", args.default_rate), ("default populations", 100.0)):
            m = measure(url, rate, args.seconds, populations=None, idle_clients=8)
            extra.append((name, m))
            show(name, m)
        overhead_rate = args.overhead_rate or (max(kept) if kept else rates[0])
        for r in range(args.rounds):
            order = (True, False) if r % 2 == 0 else (False, True)  # drift on a shared machine hits both
            for ledger in order:
                m = measure(url, overhead_rate, args.seconds, ledger=ledger, populations=dict(KEEPALIVE))
                pairs.append((r + 1, m))
                show(f"round {r + 1} ledger {'on' if ledger else 'off'}", m)
        if args.py_spy:
            prof = measure(url, args.profile_rate or overhead_rate, args.seconds, populations=dict(KEEPALIVE), py_spy=args.py_spy)
            show("profiled", prof)
    finally:
        target.terminate()
        target.wait(10)
        shutil.rmtree(port_file.parent, ignore_errors=True)
    merge = merge_benchmark(args.merge_records) if args.merge_records else None
    elapsed = time.monotonic() - started

    table = list(HEADER)
    for m in steps:
        table.append(row("step", m))
    for name, m in extra:
        table.append(row(name, m))
    max_kept = f"{max(kept):,.0f} req/s" if kept else "none of the steps"
    verdict = "met" if kept and max(kept) >= 3000 else "NOT met"
    summary = [f"Highest scheduled rate kept on schedule (shortfall \"\") by one Locust process, ledger on, "
               f"keep-alive population: {max_kept}; the issue's goal (>= 3,000 req/s on schedule) is {verdict} "
               f"in this run."]
    otable = []
    if pairs:
        otable = ["| round | ledger | scheduled req/s | counted by target (window req/s) | Locust on-CPU "
                  "| CPU per request answered (µs) | schedule error p99 (ms) | late | missed_cap | shortfall |",
                  "|---|---|---:|---:|---:|---:|---:|---:|---:|---|"]
        for r, m in pairs:
            otable.append(f"| {r} | {'on' if m['ledger'] else 'off'} | {m['rate']:,.0f} | {m['window_rps']:,.0f} | "
                          f"{m['cpu_share']:.0%} | {m['cpu_us_per_req']:.0f} | "
                          f"{_ms(m['err']['p99']) if m['err'] else '-'} | {m['late']:,} | {m['missed_cap']:,} | "
                          f"{_short_fall(m)} |")
        on = [m["cpu_us_per_req"] for _, m in pairs if m["ledger"]]
        off = [m["cpu_us_per_req"] for _, m in pairs if not m["ledger"]]
        med_on, med_off = statistics.median(on), statistics.median(off)
        summary.append(f"Ledger overhead at {overhead_rate:,.0f} req/s: median CPU per request ON {med_on:.0f} µs, "
                       f"OFF {med_off:.0f} µs -> the ledger costs {(med_on - med_off) / med_off * 100:.1f} % "
                       f"more generator CPU per request ({len(on)} alternating pairs).")
    ptable = []
    if prof is not None and prof["profile"]:
        p = prof["profile"]
        total = p["samples"] or 1
        ptable = [f"py-spy over the Locust process at {prof['rate']:,.0f} req/s scheduled (keep-alive, ledger on, "
                  f"{args.seconds:g} s, 500 samples/s, --gil --nonblocking: {p['samples']:,}; that run: "
                  f"{prof['cpu_share']:.0%} on-CPU, shortfall {prof['shortfall'] or chr(34) * 2}):", "",
                  "| part of the generator (inclusive) | share of on-CPU samples |", "|---|---:|"]
        ptable += [f"| {k} | {n / total:.1%} |" for k, n in p["inclusive"]]
        ptable += ["", "| function (own samples) | share |", "|---|---:|"]
        ptable += [f"| `{f}` | {n / total:.1%} |" for f, n in p["own"]]
    merge_line = ""
    if merge:
        merge_line = (f"merge_ledgers of {args.merge_records:,} records ({merge['bytes'] / 1e6:.0f} MB, 2 nearly-sorted "
                      f"files): {merge['seconds']:.1f} s, peak RSS {merge['rss_peak_mb']:.0f} MB.")
    print("\n".join(table))
    print("\n".join(otable))
    print("\n".join(summary))
    print("\n".join(ptable))
    if merge_line:
        print(merge_line)
    print(f"benchmark wall time {elapsed:.0f} s")
    if args.write:
        cmd = "cd /work/main && .venv/bin/python benchmarks/load_capacity.py " + " ".join(sys.argv[1:])
        block = [
            f"## Open model: run of {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
            "",
            f"Command: `{cmd}` ({elapsed:.0f} s)",
            "",
            f"Machine: {machine()}",
            "",
            f"Settings: one Locust process per run (its own LoadRun), constant arrivals, GET /health only, a "
            f"{args.seconds:g} s window after requests flow, max_inflight 400, 20 warm connections. \"counted by "
            "target\" covers the whole run (the preflight GET /health subtracted); the schedule error is "
            "t_start - planned of every first attempt in the merged ledger; \"late\"/\"missed_cap\" are the "
            "generator's own counters, \"ledger > 200 ms late\" the same threshold applied to the ledger; "
            "\"Locust on-CPU\" is the Locust process's time on a CPU during the window (/proc/PID/schedstat) "
            "as a share of one core.",
            "",
            *table,
            "",
        ]
        if otable:
            block += [*otable, ""]
        block += [*summary, ""]
        if ptable:
            block += [*ptable, ""]
        if merge_line:
            block += [merge_line, ""]
        results = Path(__file__).with_name("RESULTS.md")
        text = results.read_text() if results.exists() else ""
        marker = "<!-- runs -->"
        if marker not in text:
            text = text.rstrip() + f"\n\n{marker}\n"
        text = text.replace(marker, marker + "\n\n" + "\n".join(block), 1)
        results.write_text(text)
        print(f"written to {results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
