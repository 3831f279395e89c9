"""Real processes, real sockets, real SQLite files: the payment-service as the harness runs it."""
from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Iterator

import pytest
import requests

from tests.procs import stop_process
import sqlalchemy as sa

ROOT = Path(__file__).resolve().parents[2]
PYTHON = sys.executable
TOKEN = "test-token"
ADMIN = "admin-secret"
AUTH = {"Authorization": f"Bearer {TOKEN}"}
ADMIN_AUTH = {"Authorization": f"Bearer {ADMIN}"}
START_TIMEOUT_S = 20.0


def wait_until(predicate: Callable[[], Any], timeout: float, what: str, interval: float = 0.05) -> Any:
    """Poll until predicate() is truthy; the error names what we waited for."""
    deadline = time.monotonic() + timeout
    last_exc: Exception | None = None
    while time.monotonic() < deadline:
        try:
            value = predicate()
            if value:
                return value
        except Exception as exc:  # noqa: BLE001 - remembered for the timeout message
            last_exc = exc
        time.sleep(interval)
    raise AssertionError(f"timed out after {timeout:.1f}s waiting for {what}"
                         + (f" (last error: {last_exc!r})" if last_exc else ""))


def base_env(db_url: str, **overrides: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in (
        "APP_VERSION", "APP_COLOR", "REPLICA_NAME", "SERVICE_NAME", "DATABASE_URL", "AUTH_TOKEN", "ADMIN_TOKEN",
        "DRAIN_SECONDS", "SHUTDOWN_TIMEOUT_SECONDS", "KEEP_ALIVE_SECONDS", "PAYMENT_PROCESSING_SECONDS",
        "MAX_BODY_BYTES", "EXTERNAL_APIS", "FAULTS")}
    env.update({"PYTHONPATH": str(ROOT), "DATABASE_URL": db_url, "AUTH_TOKEN": TOKEN,
                # no drain by default: teardown stays fast; the drain tests set their own
                "PAYMENT_PROCESSING_SECONDS": "0.2", "DRAIN_SECONDS": "0"})
    env.update(overrides)
    return env


def cli(*args: str, env: dict[str, str], timeout: float = 30) -> subprocess.CompletedProcess[str]:
    return subprocess.run([PYTHON, "-m", "zerodrop.payment_service", *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=timeout)


@dataclass
class Service:
    proc: subprocess.Popen[bytes]
    port: int
    log: Path
    db_url: str
    http: requests.Session = field(default_factory=requests.Session)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def get(self, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("headers", AUTH)
        kw.setdefault("timeout", 10)
        return self.http.get(self.url + path, **kw)

    def post(self, path: str, **kw: Any) -> requests.Response:
        kw.setdefault("headers", AUTH)
        kw.setdefault("timeout", 10)
        return self.http.post(self.url + path, **kw)

    def admin(self, method: str, body: Any = None) -> requests.Response:
        return self.http.request(method, self.url + "/admin/faults", json=body, headers=ADMIN_AUTH, timeout=10)

    def stderr_tail(self, lines: int = 25) -> str:
        try:
            return "\n".join(self.log.read_text(errors="replace").splitlines()[-lines:])
        except OSError:
            return "(no stderr captured)"

    def signal(self, sig: int = signal.SIGTERM) -> None:
        self.proc.send_signal(sig)


_stop = stop_process


@contextlib.contextmanager
def start_services(workdir: Path, db_url: str, specs: dict[str, dict[str, str]],
                   wait_ready: bool = True) -> Iterator[list[Service]]:
    """Start several `serve --port 0 --port-file` replicas at once (they share db_url), wait for
    each on a deadline (readiness 200 unless wait_ready is False), and always stop them all."""
    procs: list[tuple[str, subprocess.Popen[bytes], Path, Path]] = []
    try:
        for name, env in specs.items():
            port_file, log = workdir / f"{name}.port", workdir / f"{name}.stderr"
            with open(log, "wb") as err:
                procs.append((name, subprocess.Popen(
                    [PYTHON, "-m", "zerodrop.payment_service", "serve", "--host", "127.0.0.1", "--port", "0",
                     "--port-file", str(port_file)],
                    cwd=ROOT, env=base_env(db_url, **env), stdout=err, stderr=err), port_file, log))
        services = []
        for name, proc, port_file, log in procs:
            def port() -> int | None:
                if proc.poll() is not None:
                    raise RuntimeError(f"exited with {proc.returncode}")
                return int(port_file.read_text()) if port_file.exists() else None

            try:
                service = Service(proc, wait_until(port, START_TIMEOUT_S, f"{name} to write {port_file}"), log, db_url)
                if wait_ready:
                    wait_until(lambda: service.get("/health/ready", timeout=2).status_code == 200,
                               START_TIMEOUT_S, f"{name} /health/ready to answer 200")
            except AssertionError as exc:
                raise AssertionError(f"{exc}; exit code {proc.poll()}; last stderr lines:\n"
                                     f"{log.read_text(errors='replace')[-3000:]}") from None
            services.append(service)
        yield services
    finally:
        for _name, proc, _pf, _log in procs:
            if proc.poll() is None:
                proc.terminate()
        for _name, proc, _pf, _log in procs:
            _stop(proc)


@contextlib.contextmanager
def start_service(workdir: Path, db_url: str, name: str = "svc", wait_ready: bool = True,
                  **env: str) -> Iterator[Service]:
    with start_services(workdir, db_url, {name: env}, wait_ready) as (service,):
        yield service


# -- database helpers (real SQLite files; direct SQL only to set up or inspect) --------------------

@pytest.fixture(scope="session")
def template_db(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """One migrated database made by the real `migrate` CLI, copied for each test that needs one."""
    path = tmp_path_factory.mktemp("template") / "payments.db"
    result = cli("migrate", env=base_env(f"sqlite:///{path}"))
    assert result.returncode == 0, result.stderr
    return path


def fresh_db(template: Path, directory: Path, name: str = "payments.db") -> str:
    target = directory / name
    shutil.copyfile(template, target)
    return f"sqlite:///{target}"


def sql(db_url: str, statement: str, **params: Any) -> list[Any]:
    engine = sa.create_engine(db_url)
    try:
        with engine.begin() as conn:
            result = conn.execute(sa.text(statement), params)
            return result.all() if result.returns_rows else []
    finally:
        engine.dispose()


def add_account(db_url: str, account_id: str, currency: str = "EUR", balance_minor: int = 0) -> str:
    sql(db_url, "INSERT INTO accounts (id, currency, balance_minor, updated_at_us) VALUES (:i, :c, :b, 0)",
        i=account_id, c=currency, b=balance_minor)
    return account_id


_counter = iter(range(10**9))


def unique(prefix: str) -> str:
    return f"{prefix}-{os.getpid()}-{next(_counter)}"


# -- the shared service ------------------------------------------------------------------------

@pytest.fixture(scope="session")
def shared(template_db: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Service]:
    """One replica for the tests that only need isolated accounts, with the admin API enabled."""
    workdir = tmp_path_factory.mktemp("shared")
    with start_service(workdir, fresh_db(template_db, workdir), name="shared", ADMIN_TOKEN=ADMIN,
                       APP_VERSION="v1.2.3", APP_COLOR="blue", REPLICA_NAME="blue-0") as service:
        yield service


@pytest.fixture
def svc(shared: Service) -> Iterator[Service]:
    """The shared replica with every fault off before and after the test."""
    assert shared.proc.poll() is None, f"shared service died:\n{shared.stderr_tail()}"
    assert shared.admin("DELETE").status_code == 200
    yield shared
    assert shared.admin("DELETE").status_code == 200


@pytest.fixture
def account(svc: Service) -> Callable[..., str]:
    def make(currency: str = "EUR", balance_minor: int = 0) -> str:
        return add_account(svc.db_url, unique("acct"), currency, balance_minor)
    return make


def balance(svc: Service, account_id: str) -> Any:
    response = svc.get(f"/api/accounts/{account_id}/balance")
    assert response.status_code == 200, response.text
    return response.json(parse_float=__import__("decimal").Decimal)["balance"]


def pay(svc: Service, src: str, dst: str, amount: Any = 10, currency: str = "EUR", key: str | None = None,
        **extra: Any) -> requests.Response:
    headers = dict(AUTH)
    if key:
        headers["Idempotency-Key"] = key
    body = {"amount": amount, "currency": currency, "from_account": src, "to_account": dst, **extra}
    return svc.post("/api/payments", json=body, headers=headers)


def wait_settled(svc: Service, payment_id: str, timeout: float = 15) -> dict[str, Any]:
    def settled() -> dict[str, Any] | None:
        body = svc.get(f"/api/payments/{payment_id}").json()
        return body if body["status"] in ("completed", "failed") else None
    return wait_until(settled, timeout, f"payment {payment_id} to complete or fail")


# -- PostgreSQL (a throwaway cluster, when the server binaries are installed) -----------------------

def _pg_bin(name: str) -> str | None:
    found = shutil.which(name)
    if found:
        return found
    for candidate in sorted(Path("/usr/lib/postgresql").glob(f"*/bin/{name}"), reverse=True):
        return str(candidate)
    return None


PG_AVAILABLE = all(_pg_bin(n) for n in ("initdb", "pg_ctl"))
# The postgresql case exists only where a server can be started; sqlite always runs.
BACKENDS = ["sqlite", "postgresql"] if PG_AVAILABLE else ["sqlite"]


def _as_pg_user(cmd: list[str]) -> list[str]:
    # initdb and postgres refuse to run as root
    return ["runuser", "-u", "postgres", "--", *cmd] if os.geteuid() == 0 else cmd


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[str]:
    import pwd
    import tempfile
    workdir = Path(tempfile.mkdtemp(prefix="zd-pg-"))
    if os.geteuid() == 0:
        os.chown(workdir, pwd.getpwnam("postgres").pw_uid, -1)
    with socket_port() as port:
        pass
    data = workdir / "data"
    subprocess.run(_as_pg_user([_pg_bin("initdb"), "-D", str(data), "-A", "trust", "-U", "postgres"]),
                   check=True, capture_output=True, timeout=120)
    subprocess.run(_as_pg_user([_pg_bin("pg_ctl"), "-D", str(data), "-l", str(workdir / "log"), "-w", "-o",
                                f"-p {port} -k {workdir} -c listen_addresses=127.0.0.1 -c fsync=off "
                                "-c max_connections=200", "start"]),
                   check=True, capture_output=True, timeout=60)
    try:
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}"
    finally:
        subprocess.run(_as_pg_user([_pg_bin("pg_ctl"), "-D", str(data), "-m", "immediate", "stop"]),
                       capture_output=True, timeout=60)
        shutil.rmtree(workdir, ignore_errors=True)


@contextlib.contextmanager
def socket_port() -> Iterator[int]:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        yield s.getsockname()[1]


@pytest.fixture
def database(request: pytest.FixtureRequest, tmp_path: Path, template_db: Path) -> str:
    """A freshly migrated database of the backend the test is parametrized with."""
    if request.param == "sqlite":
        return fresh_db(template_db, tmp_path)
    server = request.getfixturevalue("postgres_server")
    name = f"zd_{os.getpid()}_{next(_counter)}"
    engine = sa.create_engine(f"{server}/postgres", isolation_level="AUTOCOMMIT")
    with engine.connect() as conn:
        conn.exec_driver_sql(f'CREATE DATABASE "{name}"')
    engine.dispose()
    url = f"{server}/{name}"
    result = cli("migrate", env=base_env(url))
    assert result.returncode == 0, result.stderr
    return url
