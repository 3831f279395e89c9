"""The reference service's write tail on SQLite: with and without its per-process write queue.

Two real processes (as two replicas: blue and green) share one SQLite file set up exactly as the
service sets it up (``storage.create_engine``: WAL, busy_timeout, BEGIN IMMEDIATE) and each runs
``--threads`` threads that post credits through ``Store.create_transaction`` (the route behind
POST /api/transactions) for ``--seconds``. Every write's latency is recorded. The two variants run
in alternating rounds (the order flips every round) on the same machine, so they share its noise:

- ``queue``: the store as shipped (writers of one process queue in arrival order, module
  docstring of payment_service/storage.py);
- ``no-queue``: the same store with its queue off, every thread polling SQLite's busy handler.

Usage: .venv/bin/python benchmarks/sqlite_write_tail.py [--rounds 3] [--threads 24] [--seconds 8]
Prints a Markdown table; ``--append`` adds it to benchmarks/RESULTS.md.
"""
from __future__ import annotations

import argparse
import multiprocessing as mp
import statistics
import sys
import tempfile
import threading
import time
from decimal import Decimal
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

import sqlalchemy as sa  # noqa: E402

from payment_service import migrations, storage  # noqa: E402


def _writer_process(url: str, threads: int, seconds: float, queue_on: bool, start_at: float,
                    out: mp.Queue) -> None:
    store = storage.Store(storage.create_engine(url))
    if not queue_on:
        store._write_queue = None
    latencies: list[float] = []
    errors = [0]
    lock = threading.Lock()

    def run() -> None:
        mine: list[float] = []
        bad = 0
        while time.time() < start_at:
            time.sleep(0.001)
        end = start_at + seconds
        while time.time() < end:
            t0 = time.perf_counter()
            try:
                store.create_transaction({"account_id": "acct_bench", "type": "credit", "amount": Decimal("1.00")},
                                         None, "")
            except storage.DatabaseUnavailable:   # no turn within the write queue's timeout
                bad += 1
            except sa.exc.OperationalError:       # "database is locked": the busy timeout ran out
                bad += 1
            mine.append(time.perf_counter() - t0)
        with lock:
            latencies.extend(mine)
            errors[0] += bad

    workers = [threading.Thread(target=run) for _ in range(threads)]
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    store.dispose()
    out.put((latencies, errors[0]))


def one_round(url: str, threads: int, seconds: float, queue_on: bool) -> tuple[list[float], int]:
    out: mp.Queue = mp.Queue()
    start_at = time.time() + 1.5   # both processes begin together, after their imports
    procs = [mp.Process(target=_writer_process, args=(url, threads, seconds, queue_on, start_at, out))
             for _ in range(2)]
    for p in procs:
        p.start()
    results = [out.get(timeout=seconds + 60) for _ in procs]
    for p in procs:
        p.join(timeout=30)
    return [x for lat, _ in results for x in lat], sum(e for _, e in results)


def summary(lat: list[float], errors: int, seconds: float) -> dict[str, float]:
    lat = sorted(lat)
    n = len(lat)
    return {"writes/s": n / seconds, "p50": lat[n // 2] * 1000, "p99": lat[int(n * 0.99)] * 1000,
            "max": lat[-1] * 1000, "over_1s": sum(x > 1 for x in lat), "over_5s": sum(x > 5 for x in lat),
            "errors": errors}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--threads", type=int, default=24, help="writer threads per process (uvicorn's pool is 40)")
    ap.add_argument("--seconds", type=float, default=8.0)
    ap.add_argument("--append", action="store_true", help="append the table to benchmarks/RESULTS.md")
    a = ap.parse_args()
    rows: dict[str, list[dict[str, float]]] = {"queue": [], "no-queue": []}
    with tempfile.TemporaryDirectory(prefix="zd-sqlite-bench-") as tmp:
        url = f"sqlite:///{tmp}/payments.db"
        engine = storage.create_engine(url)
        migrations.apply(storage.write_engine(engine), log=lambda _m: None)
        with engine.begin() as conn:
            conn.exec_driver_sql("INSERT INTO accounts (id, currency, balance_minor, updated_at_us) "
                                 "VALUES ('acct_bench', 'EUR', 0, 0)")
        engine.dispose()
        for r in range(a.rounds):
            order = ["queue", "no-queue"] if r % 2 == 0 else ["no-queue", "queue"]
            for variant in order:
                lat, errors = one_round(url, a.threads, a.seconds, variant == "queue")
                s = summary(lat, errors, a.seconds)
                rows[variant].append(s)
                print(f"round {r + 1} {variant:8}: {s['writes/s']:.0f} writes/s, p50 {s['p50']:.1f} ms, "
                      f"p99 {s['p99']:.0f} ms, max {s['max']:.0f} ms, >1 s {s['over_1s']}, "
                      f">5 s {s['over_5s']}, errors {s['errors']}", flush=True)
    cmd = (f".venv/bin/python benchmarks/sqlite_write_tail.py --rounds {a.rounds} --threads {a.threads} "
           f"--seconds {a.seconds:g}")
    lines = [f"## sqlite_write_tail: run of {time.strftime('%Y-%m-%d %H:%M UTC', time.gmtime())}", "",
             f"`{cmd}`", "",
             "2 processes x %d threads writing credits to one SQLite file; median of %d rounds "
             "(worst in brackets)" % (a.threads, a.rounds), "",
             "| variant | writes/s | p50 ms | p99 ms | max ms | writes > 1 s | writes > 5 s | errors |",
             "|---|---|---|---|---|---|---|---|"]
    for variant, runs in rows.items():
        def med(k: str) -> float:
            return statistics.median(x[k] for x in runs)

        def worst(k: str) -> float:
            return max(x[k] for x in runs)
        lines.append(f"| {variant} | {med('writes/s'):.0f} | {med('p50'):.1f} | {med('p99'):.0f} ({worst('p99'):.0f}) "
                     f"| {med('max'):.0f} ({worst('max'):.0f}) | {med('over_1s'):.0f} ({worst('over_1s'):.0f}) "
                     f"| {med('over_5s'):.0f} ({worst('over_5s'):.0f}) | {med('errors'):.0f} ({worst('errors'):.0f}) |")
    table = "\n".join(lines) + "\n"
    print("\n" + table)
    if a.append:
        with open(ROOT / "benchmarks" / "RESULTS.md", "a") as fh:
            fh.write("\n" + table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
