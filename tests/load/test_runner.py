"""LoadRun end to end against a real payment-service process: the ledger it produces, distributed
mode, stopping mid-run, and that no Locust process outlives a run on any path."""
from __future__ import annotations

import os
import time
from collections import Counter
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from zerodrop.load.progress import format_line
from zerodrop.records.ledger import read_records
from zerodrop.load.runner import LoadError, LoadPlan, LoadRun
from zerodrop.records.progress import Progress

from . import standins
from .conftest import processes_mentioning, wait_until

pytestmark = pytest.mark.slow
AUTH = {"Authorization": "Bearer test-token"}


def _records(path: Path):
    return list(read_records(path.read_text().splitlines()))


def test_standalone_run_records_every_request(replica, tmp_path: Path):
    led = tmp_path / "ledger"
    seen: list[Progress] = []
    # payments weigh more than by default, so that the rarest path (a retrying client's
    # concurrent duplicate: retry 25 % x payments x 20 %) is taken ~7 times, not ~3 (p(none) 5 %)
    mix = {"health": 5, "balance": 15, "create_payment": 50, "payment_status": 10,
           "replay_payment": 5, "credit": 10, "debit": 5}
    with LoadRun(LoadPlan(host=replica.url, users=5, rate=100, max_duration=60, ledger_dir=led, mix=mix),
                 progress=seen.append) as run:
        t_before = time.time()
        run.start()
        assert processes_mentioning(str(led)), "Locust runs in its own process"
        time.sleep(3)
        live = run.progress()
        result = run.stop()
        t_after = time.time()
    records = _records(result.ledger_path)
    assert result.ledger_path == led / "ledger.jsonl"
    assert len(records) == result.requests
    # ~3 s at 100 req/s (plus start-up and stop); the exact count is the ledger's, never rounded
    assert 200 <= result.requests <= 600
    assert result.failures == 0 and {r.outcome for r in records} == {"ok"}
    assert result.target_rps == LoadPlan(host=replica.url, rate=100).total_rate and 0 < result.achieved_rps
    assert result.locust_exit_code == 0 and not result.saturated
    assert all((r.version, r.color, r.replica) == ("v1", "blue", "blue-0") for r in records)
    assert all(len(r.request_id) == 32 for r in records)
    assert len({r.request_id for r in records}) == len(records)
    # one clock: wall time, inside the run, sorted by start
    assert all(t_before <= r.t_start <= r.t_end <= t_after for r in records)
    assert [r.t_start for r in records] == sorted(r.t_start for r in records)
    routes = Counter(r.route for r in records)
    assert set(routes) == {"/health", "/api/accounts/{id}/balance", "/api/payments", "/api/payments/{id}",
                           "/api/payments (replay)", "/api/payments (duplicate)", "/api/transactions"}
    # every population sends, each the way it is meant to
    assert {r.population for r in records} == {"keepalive", "idle", "fresh", "retry"}
    assert {r.conn for r in records if r.population == "fresh"} == {"new"}
    assert "reused" in {r.conn for r in records if r.population == "keepalive"}
    assert all(0 <= r.t_start - r.planned < 1.0 for r in records)  # sent on (or near) schedule
    # a concurrent duplicate names its first send, and both answers name one payment
    by_id = {r.request_id: r for r in records}
    dups = [r for r in records if r.route == "/api/payments (duplicate)"]
    assert dups and all(r.attempt == 2 and r.payment_id == by_id[r.first_request_id].payment_id
                        and r.idempotency_key == by_id[r.first_request_id].idempotency_key for r in dups)
    money = [r for r in records if r.kind in ("credit", "debit")]
    assert money and all(r.account.startswith("load-account-") and r.amount for r in money)
    assert all(r.balance for r in records if r.kind == "balance")
    payments = [r for r in records if r.route == "/api/payments"]
    # a replay sends an earlier payment's key again and gets that payment back
    first_id = {r.idempotency_key: r.payment_id for r in payments}
    replays = [r for r in records if r.route == "/api/payments (replay)"]
    assert replays and all(r.status == 201 and r.payment_id == first_id[r.idempotency_key]
                           for r in replays if r.idempotency_key in first_id)
    assert all(r.method == "POST" and r.status == 201 and r.payment_id and r.idempotency_key and r.amount
               for r in payments)
    # the ledger's amounts are exactly what the service stored
    for r in payments[:5]:
        stored = requests.get(f"{replica.url}/api/payments/{r.payment_id}", headers=AUTH, timeout=5).json()
        assert Decimal(str(stored["amount"])) == Decimal(r.amount)
    polls = [r for r in records if r.route == "/api/payments/{id}"]
    assert {r.payment_id for r in polls} <= {r.payment_id for r in payments}
    # live progress while running, and the callback saw it too
    assert live.requests > 0 and live.failures == 0 and live.active_color == ("blue", 1.0)
    assert seen and "active: blue (100%)" in format_line(seen[-1])
    assert processes_mentioning(str(led)) == []


def test_distributed_run_merges_one_sorted_ledger(replica, tmp_path: Path):
    led = tmp_path / "ledger"
    with LoadRun(LoadPlan(host=replica.url, users=4, rate=60, max_duration=60, workers=2, ledger_dir=led,
                          mix={"health": 1, "balance": 1})) as run:
        run.start(ready_timeout=40)
        wait_until(lambda: run.progress().requests >= 120, 20, "120 requests from the workers")
        result = run.stop()
    workers = sorted(led.glob("ledger-worker-*.jsonl"))
    assert len(workers) == 2, "each worker writes its own ledger"
    assert not list(led.glob("ledger-master-*.jsonl")), "the master makes no requests"
    per_worker = [len(_records(p)) for p in workers]
    assert all(n > 0 for n in per_worker), per_worker
    records = _records(result.ledger_path)
    assert len(records) == sum(per_worker) == result.requests
    assert [r.t_start for r in records] == sorted(r.t_start for r in records)
    assert result.failures == 0 and result.locust_exit_code == 0
    assert processes_mentioning(str(led)) == []


def test_stop_mid_run_and_exceptions_leave_no_process(replica, tmp_path: Path):
    led = tmp_path / "ledger"
    with pytest.raises(RuntimeError, match="the scenario blew up"):
        with LoadRun(LoadPlan(host=replica.url, users=2, rate=20, max_duration=600, ledger_dir=led)) as run:
            run.start()
            pids = run.pids
            assert pids and processes_mentioning(str(led))
            raise RuntimeError("the scenario blew up")
    assert processes_mentioning(str(led)) == []
    assert run.result is not None and run.result.requests > 0  # __exit__ still stopped and merged
    assert (led / "ledger.jsonl").exists()


def test_run_time_cap_ends_the_run_by_itself(replica, tmp_path: Path):
    led = tmp_path / "ledger"
    with LoadRun(LoadPlan(host=replica.url, users=2, rate=20, max_duration=1, ledger_dir=led)) as run:
        run.start()
        wait_until(lambda: all(p.popen.poll() is not None for p in run._procs), 20, "Locust to end at --run-time")
        result = run.stop()
    assert result.locust_exit_code == 0 and 0 < result.requests <= 60


def test_locust_that_never_gets_a_request_through_is_an_error_and_is_killed(tmp_path: Path):
    led = tmp_path / "ledger"
    with standins.StandIn(standins.hang) as srv:
        with pytest.raises(LoadError) as info:
            with LoadRun(LoadPlan(host=srv.url, users=1, rate=1, request_timeout=30, ledger_dir=led)) as run:
                run.start(ready_timeout=3, preflight=False)
    msg = str(info.value)
    assert msg.startswith(f"no request completed within 3s of starting Locust against {srv.url}")
    assert "last log lines:" in msg and "Starting Locust" in msg and "\n" not in msg
    assert processes_mentioning(str(led)) == []


def test_a_full_concurrency_cap_is_named_as_the_cap(tmp_path: Path):
    """A target that never answers holds every request in flight; with a cap of 3 the schedule
    (50 req/s) cannot be kept, and the result says the cap did it, not the CPU or the target."""
    led = tmp_path / "ledger"
    with standins.StandIn(standins.hang) as srv:
        with LoadRun(LoadPlan(host=srv.url, users=1, rate=50, max_inflight=3, request_timeout=3,
                              mix={"health": 1}, populations={"keepalive": 1}, idle_clients=0,
                              ledger_dir=led)) as run:
            run.start(ready_timeout=10, preflight=False)
            wait_until(lambda: run.progress().requests >= 3, 15, "the first timeouts")
            result = run.stop()
    assert result.shortfall == "cap" and result.saturated, result.detail
    assert result.missed_cap > 0 and result.max_inflight == 3
    assert "concurrency cap (3 in flight per process) was reached" in result.detail
    assert result.load_target().shortfall == "cap"


def test_generator_that_cannot_keep_up_is_saturated(tmp_path: Path):
    """Ask one Locust process for far more than it can make (100,000 req/s) from a target that
    answers at once: the result says the generator set the pace, and names which of its two
    limits bound first. Which one does depends on the machine, not on the harness: where the
    stand-in answers slower than the schedule starts requests, the 400 in flight fill first
    (``cap``, as a busy CI machine showed); where it keeps up, the process runs flat out
    (``cpu``). Either way the detail must name that limit and nothing else."""
    led = tmp_path / "ledger"
    with standins.StandIn(standins.healthy) as srv:
        with LoadRun(LoadPlan(host=srv.url, users=4, rate=100_000, mix={"health": 1}, ledger_dir=led)) as run:
            run.start()
            time.sleep(2)
            result = run.stop()
    assert result.achieved_rps < 0.8 * result.target_rps
    assert result.saturated, result.detail
    assert result.shortfall in ("cap", "cpu"), result.detail
    if result.shortfall == "cap":
        assert result.detail.startswith("the generator's concurrency cap (400 in flight per process)"), result.detail
        assert result.missed_cap > 0.01 * result.scheduled
    else:
        assert ("of a core" in result.detail or "CPU usage above 90%" in result.detail
                or result.detail.startswith("the generator's own CPU")), result.detail
    assert result.failures == 0


def test_locust_ends_itself_when_the_harness_is_killed(replica, tmp_path: Path):
    """SIGKILL leaves no chance to clean up: the Locust processes notice their parent is gone
    (ZERODROP_PARENT_PID) and shut down, workers included."""
    import signal
    import subprocess
    import sys

    led = tmp_path / "ledger"
    code = (
        "import sys, time\n"
        "from pathlib import Path\n"
        "from zerodrop.load.runner import LoadPlan, LoadRun\n"
        f"run = LoadRun(LoadPlan(host={replica.url!r}, users=2, rate=20, workers=1, ledger_dir=Path({str(led)!r})))\n"
        "run.start(ready_timeout=40)\n"
        "print('flowing', flush=True)\n"
        "time.sleep(120)\n"
    )
    harness = subprocess.Popen([sys.executable, "-c", code], cwd=Path(__file__).resolve().parents[2],
                               stdout=subprocess.PIPE, text=True)
    try:
        assert harness.stdout.readline().strip() == "flowing"
        locusts = [pid for pid, _ in processes_mentioning(str(led)) if pid != harness.pid]
        assert len(locusts) == 2  # master + 1 worker
        harness.send_signal(signal.SIGKILL)
        harness.wait(10)
        wait_until(lambda: processes_mentioning(str(led)) == [], 20, "the orphaned Locust processes to exit")
    finally:
        if harness.poll() is None:
            harness.kill()
            harness.wait(10)
        for pid, _cmd in processes_mentioning(str(led)):  # only ours: the unique ledger dir
            os.kill(pid, signal.SIGKILL)
    # what they recorded before going is on disk, flushed on their way out
    assert sum(1 for p in led.glob("ledger-worker-*.jsonl") for _ in p.open()) > 0


def test_ledger_and_progress_follow_a_blue_green_switch(tmp_path: Path):
    """Through the local platform's Service front: load starts on blue, the selector moves to
    green, blue is scaled to zero (its kept-alive connections drain), and both the live progress
    and the ledger show the answers moving to green. Failures are counted, not judged here (that
    is the verdict's job): every record is either answered with a colour or a failure."""
    from zerodrop.platforms.local.platform import LocalConfig, stand_up

    led = tmp_path / "ledger"
    platform = stand_up(LocalConfig(replicas=1))
    try:
        with LoadRun(LoadPlan(host=platform.service_url, users=4, rate=80, max_duration=60, ledger_dir=led)) as run:
            run.start()
            wait_until(lambda: (run.progress().active_color or ("",))[0] == "blue", 10, "blue to serve")
            platform.route_to("green")
            platform.scale("blue", 0)
            wait_until(lambda: (run.progress().active_color or ("",))[0] == "green", 20,
                       "green to serve most of the last second")
            result = run.stop()
    finally:
        platform.teardown()
    records = _records(result.ledger_path)
    by_color = Counter(r.color for r in records if r.outcome == "ok")
    assert by_color["blue"] > 0 and by_color["green"] > 0, by_color
    versions = {(r.color, r.version) for r in records if r.outcome == "ok"}
    assert versions == {("blue", "v1.0.0"), ("green", "v1.1.0")}
    assert all(r.color and r.replica for r in records if r.outcome == "ok")
    assert all(r.error for r in records if r.outcome != "ok")
    last_blue = max(r.t_end for r in records if r.color == "blue")
    first_green = min(r.t_start for r in records if r.color == "green")
    assert first_green < max(r.t_start for r in records) and last_blue < max(r.t_end for r in records)
    assert processes_mentioning(str(led)) == []


def test_a_worker_that_dies_mid_run_is_named_and_makes_the_run_suspect(replica, tmp_path: Path):
    """Negative control: one of two Locust workers is SIGKILLed while the master runs. Its share
    of the schedule and its unflushed ledger lines are gone; the result must say so (the verdict
    then cannot PASS), never report the rest as a complete run."""
    import signal as signals
    led = tmp_path / "ledger"
    with LoadRun(LoadPlan(host=replica.url, users=4, rate=60, max_duration=60, workers=2, ledger_dir=led,
                          mix={"health": 1, "balance": 1})) as run:
        run.start(ready_timeout=40)
        wait_until(lambda: run.progress().requests >= 60, 20, "60 requests from the workers")
        victim = [p for p in run._procs if p.role == "worker"][1]
        os.kill(victim.popen.pid, signals.SIGKILL)
        victim.popen.wait(timeout=10)
        time.sleep(0.5)
        result = run.stop()
    assert result.saturated and result.shortfall == "lost", result
    assert result.detail.startswith("lost load worker worker-1 (exited with -9 while the master ran)"), \
        result.detail
    assert processes_mentioning(str(led)) == []
