"""Process lifecycle: CLI errors, migrate as its own step, readiness, and the graceful drain."""
from __future__ import annotations

import json
import signal
import socket
import threading
import time
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Iterator

import pytest
import requests

from .conftest import (AUTH, base_env, cli, fresh_db, pay, sql, start_service, wait_settled, wait_until)

SLOW = '{"latency_ms": 2500, "latency_routes": "/api/accounts/acc-001"}'


def one_line(stderr: str) -> str:
    lines = stderr.strip().splitlines()
    assert len(lines) == 1 and "Traceback" not in stderr, stderr
    return lines[0]


class Slow(threading.Thread):
    """One request in flight on its own connection; records how it ended."""

    def __init__(self, url: str):
        super().__init__(daemon=True)
        self.url, self.result = url, None

    def run(self) -> None:
        try:
            self.result = requests.get(self.url + "/api/accounts/acc-001/balance", headers=AUTH, timeout=20)
        except requests.RequestException as exc:
            self.result = exc


# -- graceful shutdown -------------------------------------------------------------------------

@pytest.mark.slow
def test_sigterm_drains_then_finishes_in_flight_and_exits_0(tmp_path: Path, template_db: Path) -> None:
    with start_service(tmp_path, fresh_db(template_db, tmp_path), DRAIN_SECONDS="1.0", FAULTS=SLOW) as s:
        keepalive = requests.Session()
        assert "close" not in keepalive.get(s.url + "/health").headers.get("Connection", "")
        slow = Slow(s.url)
        slow.start()
        time.sleep(0.3)                                   # the slow request is in flight
        signalled = time.monotonic()
        s.signal(signal.SIGTERM)

        ready = wait_until(lambda: [s.get("/health/ready", timeout=2)], 5, "a readiness answer while draining")[0]
        while ready.json()["status"] != "draining":
            ready = s.get("/health/ready", timeout=2)
        assert ready.status_code == 503 and ready.headers["Connection"] == "close"
        # the drain window still serves normally, and tells keep-alive clients to go elsewhere
        during = keepalive.get(s.url + "/api/accounts/acc-002/balance", headers=AUTH, timeout=5)
        assert during.status_code == 200 and during.headers["Connection"] == "close"
        assert s.proc.poll() is None

        def refused() -> bool:
            try:
                socket.create_connection(("127.0.0.1", s.port), timeout=1).close()
                return False
            except OSError:
                return True
        wait_until(refused, 5, "the listener to close after the drain window")
        assert time.monotonic() - signalled >= 0.9          # not before DRAIN_SECONDS (sanity bound)
        assert slow.is_alive() or isinstance(slow.result, requests.Response)

        assert s.proc.wait(15) == 0
        slow.join(5)
        assert isinstance(slow.result, requests.Response), slow.result
        assert slow.result.status_code == 200 and slow.result.json()["account_id"] == "acc-001"
        log = s.log.read_text()
        assert "draining for 1s" in log and "stopped" in log and "Traceback" not in log


@pytest.mark.slow
def test_no_graceful_shutdown_cuts_in_flight_requests(tmp_path: Path, template_db: Path) -> None:
    faults = json.dumps({**json.loads(SLOW), "no_graceful_shutdown": True})
    with start_service(tmp_path, fresh_db(template_db, tmp_path), DRAIN_SECONDS="5", FAULTS=faults) as s:
        slow = Slow(s.url)
        slow.start()
        time.sleep(0.3)
        s.signal(signal.SIGTERM)
        assert s.proc.wait(5) == 143
        slow.join(5)
        assert isinstance(slow.result, requests.ConnectionError), slow.result


@pytest.mark.slow
def test_second_signal_cuts_the_drain_short(tmp_path: Path, template_db: Path) -> None:
    with start_service(tmp_path, fresh_db(template_db, tmp_path), DRAIN_SECONDS="30") as s:
        s.signal(signal.SIGTERM)
        wait_until(lambda: s.get("/health/ready", timeout=2).status_code == 503, 5, "draining")
        started = time.monotonic()
        s.signal(signal.SIGINT)
        assert s.proc.wait(10) == 0
        assert time.monotonic() - started < 10               # far short of DRAIN_SECONDS=30


@pytest.mark.slow
def test_shutdown_timeout_bounds_the_wait_for_in_flight_requests(tmp_path: Path, template_db: Path) -> None:
    with start_service(tmp_path, fresh_db(template_db, tmp_path), DRAIN_SECONDS="0",
                       SHUTDOWN_TIMEOUT_SECONDS="0.5", FAULTS=SLOW) as s:
        slow = Slow(s.url)
        slow.start()
        time.sleep(0.3)
        started = time.monotonic()
        s.signal(signal.SIGTERM)
        assert s.proc.wait(10) == 0
        assert time.monotonic() - started < 2.0                # did not wait the 2.5 s request out
        slow.join(5)
        assert isinstance(slow.result, requests.Response), slow.result
        assert slow.result.status_code == 503 and slow.result.headers["X-Replica"]
        assert slow.result.json()["errors"][0]["message"] == "shutting down; request abandoned"
        assert "abandoned GET /api/accounts/acc-001/balance" in s.log.read_text()
        assert "Traceback" not in s.log.read_text()


def test_sigint_drains_like_sigterm(tmp_path: Path, template_db: Path) -> None:
    with start_service(tmp_path, fresh_db(template_db, tmp_path), DRAIN_SECONDS="0.2") as s:
        s.signal(signal.SIGINT)
        assert s.proc.wait(10) == 0
        assert "SIGINT: draining" in s.log.read_text()


def test_sigterm_right_after_listening_still_drains(tmp_path: Path, template_db: Path) -> None:
    # the port file appears before the app is built; a signal then must not kill the process
    with start_service(tmp_path, fresh_db(template_db, tmp_path), wait_ready=False, DRAIN_SECONDS="0.2") as s:
        s.signal(signal.SIGTERM)
        assert s.proc.wait(10) == 0
        assert "SIGTERM: draining" in s.log.read_text()


# -- start-up errors ---------------------------------------------------------------------------

def test_port_in_use_is_one_line_and_exit_2(tmp_path: Path) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        port = taken.getsockname()[1]
        result = cli("serve", "--host", "127.0.0.1", "--port", str(port), "--port-file", str(tmp_path / "p"),
                     env=base_env(f"sqlite:///{tmp_path}/x.db"))
    assert result.returncode == 2
    assert one_line(result.stderr) == f"payment-service: port {port} on 127.0.0.1 is already in use"
    assert not (tmp_path / "p").exists()


def test_crash_on_start_exits_3_before_listening(tmp_path: Path) -> None:
    result = cli("serve", "--port", "0", "--port-file", str(tmp_path / "p"),
                 env=base_env(f"sqlite:///{tmp_path}/x.db", FAULTS='{"crash_on_start": true}'))
    assert result.returncode == 3
    assert "crash_on_start" in one_line(result.stderr)
    assert not (tmp_path / "p").exists()


@pytest.mark.parametrize("args, env, needle", [
    (["serve", "--bogus"], {}, "--bogus"),
    (["serve", "--port", "eighty"], {}, "--port"),
    (["serve", "--port", "70000"], {}, "70000"),
    ([], {}, "command"),
    (["serve"], {"DATABASE_URL": "mysql://u@h/db"}, "DATABASE_URL"),
    (["migrate"], {"DATABASE_URL": "not a url"}, "DATABASE_URL"),
    (["serve"], {"DRAIN_SECONDS": "soon"}, "DRAIN_SECONDS"),
    (["serve"], {"MAX_BODY_BYTES": "-5"}, "MAX_BODY_BYTES"),
    (["serve"], {"EXTERNAL_APIS": '[{"name": "x"}]'}, "EXTERNAL_APIS"),
])
def test_usage_errors_are_one_line(tmp_path: Path, args, env, needle) -> None:
    merged = base_env(f"sqlite:///{tmp_path}/x.db")
    merged.update(env)
    result = cli(*args, env=merged)
    assert result.returncode == 2
    assert needle in one_line(result.stderr)


# -- migrations --------------------------------------------------------------------------------

@pytest.mark.slow
def test_migrate_is_its_own_step_and_serve_reports_an_old_schema(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path}/payments.db"
    first = cli("migrate", "--to", "3", env=base_env(db_url))
    assert first.returncode == 0
    assert first.stdout.splitlines() == ["applied migration 0001_accounts_and_payments",
                                         "applied migration 0002_reference_accounts",
                                         "applied migration 0003_transactions"]
    with start_service(tmp_path, db_url, wait_ready=False) as s:
        def old_schema() -> dict | None:
            r = s.get("/health/ready", timeout=2)
            return r.json() if r.status_code == 503 else None
        body = wait_until(old_schema, 10, "readiness to report the old schema")
        assert body["status"] == "unhealthy"
        assert body["components"]["database"]["details"] == "schema version 3 < required 4; run migrate"
        second = cli("migrate", env=base_env(db_url))          # while the old replica is running
        assert second.returncode == 0 and second.stdout.splitlines() == ["applied migration 0004_idempotency_keys",
                                                                          "applied migration 0005_load_accounts"]
        wait_until(lambda: s.get("/health/ready").status_code == 200, 10, "readiness after migrate")
    again = cli("migrate", env=base_env(db_url))
    assert again.returncode == 0 and again.stdout == ""          # nothing pending, nothing printed


def test_serve_never_migrates(tmp_path: Path) -> None:
    db_url = f"sqlite:///{tmp_path}/empty.db"
    with start_service(tmp_path, db_url, wait_ready=False) as s:
        r = wait_until(lambda: [s.get("/health/ready", timeout=2)], 10, "a readiness answer")[0]
        assert r.status_code == 503
        assert r.json()["components"]["database"]["details"] == "schema version 0 < required 4; run migrate"
        assert pay(s, "acc-001", "acc-002").status_code == 503
    assert sql(db_url, "SELECT name FROM sqlite_master WHERE type = 'table'") == []


def test_older_app_runs_on_a_newer_schema(tmp_path: Path, template_db: Path) -> None:
    db_url = fresh_db(template_db, tmp_path)
    # what a future additive migration could do: a nullable column, a new table, a version row
    sql(db_url, "ALTER TABLE payments ADD COLUMN risk_score INTEGER")
    sql(db_url, "CREATE TABLE refunds (id TEXT PRIMARY KEY)")
    sql(db_url, "INSERT INTO schema_version (version, name, applied_at_us) VALUES (99, 'future', 0)")
    with start_service(tmp_path, db_url) as s:
        done = wait_settled(s, pay(s, "acc-001", "acc-002", 1).json()["id"])
        assert done["status"] == "completed"


# -- readiness with external APIs -----------------------------------------------------------------

@pytest.fixture
def upstream() -> Iterator[str]:
    class Ok(BaseHTTPRequestHandler):
        def do_GET(self) -> None:  # noqa: N802
            self.send_response(200)
            self.end_headers()
            self.wfile.write(b"ok")

        def log_message(self, *args) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Ok)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}/"
    finally:
        server.shutdown()
        server.server_close()


def closed_port_url() -> str:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return f"http://127.0.0.1:{s.getsockname()[1]}/"


@pytest.mark.parametrize("critical_down, code, status", [(False, 200, "healthy"), (True, 503, "unhealthy")])
def test_external_apis_only_critical_ones_fail_readiness(tmp_path: Path, template_db: Path, upstream: str,
                                                        critical_down: bool, code: int, status: str) -> None:
    apis = [{"name": "fraud-api", "url": upstream, "critical": True},
            {"name": "fx-rates", "url": closed_port_url(), "critical": critical_down}]
    with start_service(tmp_path, fresh_db(template_db, tmp_path), wait_ready=False,
                       EXTERNAL_APIS=json.dumps(apis)) as s:
        r = wait_until(lambda: [s.get("/health/ready", timeout=5)], 10, "a readiness answer")[0]
        assert (r.status_code, r.json()["status"]) == (code, status)
        components = r.json()["components"]
        assert components["fraud-api"]["status"] == "healthy"
        assert components["fx-rates"]["status"] == "unhealthy" and components["fx-rates"]["details"]
        assert components["database"]["status"] == "healthy"
