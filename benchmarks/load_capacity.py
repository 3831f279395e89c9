"""How many requests/s can load/ generate, and what does the per-request ledger cost?

    .venv/bin/python benchmarks/load_capacity.py [--seconds 8] [--rounds 3] [--users 50] [--write]

Against a trivially fast local target (a raw asyncio HTTP server in its OWN process, answering
every request with a fixed 200 and the X-App-* headers, keep-alive), measure the requests/s that
the target answered during a steady window (after a 1 s warm-up):

- one Locust process, ledger ON and OFF, alternating, ``--rounds`` times, same duration each
  (OFF = the listener only counts for the progress file: no record built, serialised or written);
- distributed mode (ledger ON) with 1 and 2 workers;
- merge_ledgers over 1,000,000 nearly-sorted records in 2 files: time and peak RSS of the merge.

The count comes from the TARGET (GET /__count), the same instrument for every mode. The total
target rate is set far above what one process can do (users never wait), so this measures the
generator's ceiling. ``--write`` writes the table into benchmarks/RESULTS.md.
Nothing here asserts timings: it measures.
"""
from __future__ import annotations

import argparse
import asyncio
import datetime
import json
import os
import platform
import statistics
import shutil
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
            # the generator sends no bodies on /health; GET /__count reads the counter
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


# -- measurements -----------------------------------------------------------------------------------

def measure(url: str, users: int, seconds: float, ledger: bool, workers: int = 0) -> dict:
    from zerodrop.load.runner import LoadPlan, LoadRun

    led = Path(tempfile.mkdtemp(prefix="zerodrop-bench-"))
    plan = LoadPlan(host=url, users=users, rate=1_000_000, max_duration=seconds + 60, workers=workers,
                    ledger_dir=led / "ledger", mix={"health": 1}, ledger=ledger)
    try:
        with LoadRun(plan) as run:
            run.start(ready_timeout=60)
            time.sleep(1.0)  # warm-up: every user spawned and connected
            c0, t0 = _count(url), time.monotonic()
            time.sleep(seconds)
            c1, t1 = _count(url), time.monotonic()
            res = run.stop()
        size = sum(p.stat().st_size for p in (led / "ledger").glob("ledger-*.jsonl"))
    finally:
        shutil.rmtree(led, ignore_errors=True)
    rps = (c1 - c0) / (t1 - t0)
    return {"rps": rps, "ledger_records": res.requests, "ledger_bytes": size, "saturated": res.saturated,
            "detail": res.detail}


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

    return (f"nproc {os.cpu_count()}, CPU {model}, Python {platform.python_version()}, "
            f"Locust {version('locust')}, geventhttpclient {version('geventhttpclient')}, "
            f"{platform.system()} {platform.release()}")


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--serve", metavar="PORTFILE", help=argparse.SUPPRESS)
    ap.add_argument("--seconds", type=float, default=8.0, help="steady window per measurement (default 8)")
    ap.add_argument("--rounds", type=int, default=3, help="ledger ON/OFF pairs (default 3)")
    ap.add_argument("--users", type=int, default=50, help="Locust users (default 50)")
    ap.add_argument("--merge-records", type=int, default=1_000_000, help="records for the merge benchmark")
    ap.add_argument("--write", action="store_true", help="write the results into benchmarks/RESULTS.md")
    args = ap.parse_args()
    if args.serve:
        serve(args.serve)
        return 0

    port_file = Path(tempfile.mkdtemp(prefix="zerodrop-target-")) / "port"
    target = subprocess.Popen([sys.executable, __file__, "--serve", str(port_file)])
    try:
        deadline = time.monotonic() + 20
        while not (port_file.exists() and port_file.read_text()):
            if time.monotonic() > deadline or target.poll() is not None:
                raise SystemExit("the benchmark target did not start")
            time.sleep(0.05)
        url = f"http://127.0.0.1:{port_file.read_text()}"
        rows = []
        on, off = [], []
        for r in range(args.rounds):
            # alternate which goes first, so drift on a shared machine hits both alike
            order = (True, False) if r % 2 == 0 else (False, True)
            for ledger in order:
                m = measure(url, args.users, args.seconds, ledger)
                (on if ledger else off).append(m["rps"])
                rows.append((f"round {r + 1}", "1 process", "on" if ledger else "off", m))
                print(f"round {r + 1} ledger {'on ' if ledger else 'off'}: {m['rps']:8.0f} req/s"
                      f"  saturated={m['saturated']}", flush=True)
        for w in (1, 2):
            m = measure(url, args.users, args.seconds, True, workers=w)
            rows.append(("distributed", f"master + {w} worker{'s' if w > 1 else ''}", "on", m))
            print(f"distributed {w} worker(s): {m['rps']:8.0f} req/s  saturated={m['saturated']}", flush=True)
    finally:
        target.terminate()
        target.wait(10)
        shutil.rmtree(port_file.parent, ignore_errors=True)
    merge = merge_benchmark(args.merge_records)
    print(f"merge {args.merge_records} records: {merge['seconds']:.1f} s, peak RSS {merge['rss_peak_mb']:.0f} MB")

    med_on, med_off = statistics.median(on), statistics.median(off)
    overhead = (med_off - med_on) / med_off * 100 if med_off else float("nan")
    table = ["| run | mode | ledger | req/s (target-counted) | ledger records | saturated |",
             "|---|---|---|---:|---:|---|"]
    for name, mode, ledger, m in rows:
        recs = f"{m['ledger_records']:,}" if ledger == "on" else "-"
        table.append(f"| {name} | {mode} | {ledger} | {m['rps']:,.0f} | {recs} | {'yes' if m['saturated'] else 'no'} |")
    summary = (f"Median of {args.rounds} rounds, one process: ledger ON {med_on:,.0f} req/s, OFF {med_off:,.0f} req/s "
               f"-> ledger overhead {overhead:.1f}% (min/max ON {min(on):,.0f}/{max(on):,.0f}, "
               f"OFF {min(off):,.0f}/{max(off):,.0f}).")
    merge_line = (f"merge_ledgers of {args.merge_records:,} records ({merge['bytes'] / 1e6:.0f} MB, 2 nearly-sorted "
                  f"files): {merge['seconds']:.1f} s, peak RSS {merge['rss_peak_mb']:.0f} MB "
                  f"(process before merging: {merge['rss_before_mb']:.0f} MB).")
    print("\n".join(table))
    print(summary)
    print(merge_line)
    if args.write:
        cmd = "cd /work/main && .venv/bin/python benchmarks/load_capacity.py " + " ".join(
            a for a in sys.argv[1:])
        block = "\n".join([
            f"## Run of {datetime.datetime.now(datetime.timezone.utc):%Y-%m-%d %H:%M} UTC",
            "",
            f"Command: `{cmd}`",
            "",
            f"Machine: {machine()}",
            "",
            f"Settings: {args.users} users, users never wait (target rate 1,000,000 req/s), GET /health only, "
            f"{args.seconds:g} s steady window after a 1 s warm-up, counted by the target.",
            "",
            *table,
            "",
            summary,
            "",
            merge_line,
            "",
        ])
        results = Path(__file__).with_name("RESULTS.md")
        text = results.read_text() if results.exists() else ""
        marker = "<!-- runs -->"
        if marker not in text:
            text = text.rstrip() + f"\n\n{marker}\n"
        text = text.replace(marker, marker + "\n\n" + block, 1)
        results.write_text(text)
        print(f"written to {results}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
