"""Every outcome class, proven with REAL failures: real Locust processes (load/locustfile.py via
LoadRun) against real sockets. The servers in tests/load/standins.py are stand-ins for a broken
service — a closed port, a server that resets, one that cuts its answer, one that never
answers, one that answers 500, ones that answer 201 with a wrong body — not mocks of Locust.

All scenarios run at once (one Locust process each) so the module costs one Locust start-up.
"""
from __future__ import annotations

import contextlib
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path

import pytest

from zerodrop.records.ledger import LedgerRecord, read_records
from zerodrop.load.runner import LoadPlan, LoadResult, LoadRun

from . import standins
from .standins import closed_port
from .conftest import processes_mentioning, wait_until

pytestmark = pytest.mark.slow


@dataclass
class Scenario:
    behaviour: standins.Behaviour | None  # None: a closed port
    mix: dict[str, int]
    request_timeout: float = 2.0
    workers: int = 0


SCENARIOS = {
    "refused": Scenario(None, {"health": 1}),
    "reset": Scenario(standins.reset, {"balance": 1}),
    "cut": Scenario(standins.close_mid_answer, {"health": 1}),
    "timeout": Scenario(standins.hang, {"health": 1}, request_timeout=0.5),
    "timeout_distributed": Scenario(standins.hang, {"health": 1}, request_timeout=0.5, workers=1),
    "http_error": Scenario(standins.server_error, {"balance": 1}),
    "wrong_amount": Scenario(standins.wrong_amount, {"create_payment": 1}),
    "not_json": Scenario(standins.not_json, {"create_payment": 1}),
    "kept_alive_close": Scenario(standins.closes_kept_alive, {"health": 1}),
}


@dataclass
class Outcome:
    result: LoadResult
    records: list[LedgerRecord]
    server_requests: int  # what the stand-in read (-1: no server)
    ledger_dir: Path


@pytest.fixture(scope="module")
def outcomes(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Outcome]:
    base = tmp_path_factory.mktemp("outcomes")
    with contextlib.ExitStack() as stack:
        servers = {}
        runs = {}
        for name, sc in SCENARIOS.items():
            if sc.behaviour is None:
                host = f"http://127.0.0.1:{closed_port()}"
            else:
                servers[name] = stack.enter_context(standins.StandIn(sc.behaviour))
                host = servers[name].url
            # one population (kept-alive clients that send often): each stand-in's failure is
            # then the only way a request can end
            plan = LoadPlan(host=host, users=2, rate=20, max_duration=30, mix=sc.mix, workers=sc.workers,
                            request_timeout=sc.request_timeout, ledger_dir=base / name,
                            populations={"keepalive": 1}, idle_clients=0)
            runs[name] = stack.enter_context(LoadRun(plan))
        # the stand-ins are broken on purpose: no preflight, we want their failures recorded
        with ThreadPoolExecutor(len(runs)) as pool:
            for fut in [pool.submit(run.start, 30, False) for run in runs.values()]:
                fut.result()
        # each run has seen at least a few answers (or failures) before it is stopped
        for name, run in runs.items():
            wait_until(lambda: run.progress().requests >= 6, 20, f"6 requests in the {name} run")
        results = {}
        with ThreadPoolExecutor(len(runs)) as pool:
            futures = {name: pool.submit(run.stop) for name, run in runs.items()}
            for name, fut in futures.items():
                res = fut.result()
                results[name] = Outcome(res, list(read_records(res.ledger_path.read_text().splitlines())),
                                        servers[name].requests if name in servers else -1, base / name)
        return results


def _outcomes(o: Outcome) -> Counter:
    return Counter(r.outcome for r in o.records)


def test_closed_port_is_refused(outcomes):
    o = outcomes["refused"]
    assert o.records and set(_outcomes(o)) == {"refused"}
    assert all(r.status == 0 and "ConnectionRefused" in r.error and r.request_id for r in o.records)
    assert o.result.failures == o.result.requests == len(o.records)


def test_reset_by_peer_is_reset(outcomes):
    o = outcomes["reset"]
    assert o.records and set(_outcomes(o)) == {"reset"}
    assert all(r.status == 0 and r.error and r.version == "" for r in o.records)
    assert o.server_requests == len(o.records)  # every request the server read is in the ledger


def test_answer_cut_mid_body_is_reset(outcomes):
    o = outcomes["cut"]
    assert o.records and set(_outcomes(o)) == {"reset"}
    assert o.server_requests == len(o.records)


def test_no_answer_is_timeout(outcomes):
    o = outcomes["timeout"]
    assert o.records and set(_outcomes(o)) == {"timeout"}
    # the 0.5 s per-request timeout, give or take scheduling on a busy machine
    assert all(0.4 <= r.t_end - r.t_start < 3.0 for r in o.records)
    # the requests still in flight when stop() came were waited for, not dropped
    assert o.server_requests == len(o.records)


def test_in_flight_requests_of_workers_are_waited_for(outcomes):
    o = outcomes["timeout_distributed"]
    assert o.records and set(_outcomes(o)) == {"timeout"}
    assert len(list(o.ledger_dir.glob("ledger-worker-*.jsonl"))) == 1
    assert o.server_requests == len(o.records)


def test_500_is_http_error_with_the_answer_headers(outcomes):
    o = outcomes["http_error"]
    assert o.records and set(_outcomes(o)) == {"http_error"}
    r = o.records[0]
    assert (r.status, r.version, r.color, r.replica) == (500, "v9", "green", "standin-0")
    assert "HTTP 500, expected 200" in r.error
    assert o.server_requests == len(o.records)


def test_201_with_the_wrong_amount_is_bad_body_and_keeps_the_payment(outcomes):
    o = outcomes["wrong_amount"]
    assert o.records and set(_outcomes(o)) == {"bad_body"}
    for r in o.records:
        assert r.status == 201 and r.route == "/api/payments" and r.method == "POST"
        assert "amount" in r.error and r.payment_id == "pay_wrong"
        assert r.idempotency_key and r.amount and "." in r.amount


def test_201_that_is_not_json_is_bad_body_and_keeps_the_key(outcomes):
    o = outcomes["not_json"]
    assert o.records and set(_outcomes(o)) == {"bad_body"}
    assert all("not JSON" in r.error and r.idempotency_key and r.amount for r in o.records)
    assert len({r.idempotency_key for r in o.records}) == len(o.records)  # a fresh key per payment


def test_a_closed_keep_alive_connection_is_the_keepalive_race_and_is_not_retried(outcomes):
    """The server reads a request on a kept-alive connection and closes it without a byte of an
    answer: the keep-alive race, its own failure class. The client never re-sends it behind the
    harness's back: the ledger holds exactly the requests the server read (a hidden retry would
    make the server see more), and every race is on a reused connection."""
    o = outcomes["kept_alive_close"]
    counts = _outcomes(o)
    # the race is told by its end coming at once (20 ms); on a machine busy enough to wake the
    # client later, the same end reads as a reset: never anything else, never on a new connection
    assert counts["ok"] > 0 and counts["keepalive_race"] > 0, counts
    assert set(counts) <= {"ok", "keepalive_race", "reset"}, counts
    assert o.server_requests == len(o.records)
    assert {r.conn for r in o.records if r.outcome != "ok"} == {"reused"}
    assert {r.conn for r in o.records if r.outcome == "ok"} == {"new"}


def test_no_locust_process_outlives_its_run(outcomes):
    for name, o in outcomes.items():
        assert processes_mentioning(str(o.ledger_dir)) == [], name
        # Locust's own exit code (1 when it counted the failures; a master may quit before its
        # worker's last stats arrive), never a kill (-9)
        assert o.result.locust_exit_code in (0, 1), name
