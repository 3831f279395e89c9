"""Locust user classes for the payment service: the traffic that crosses a blue/green switch.

Run on its own::

    ZERODROP_LEDGER_DIR=/tmp/ledger locust -f load/locustfile.py --host http://127.0.0.1:8080 \
        --headless -u 20 -r 20 --run-time 30s

or through ``load.runner.LoadRun``, which sets these environment variables:

    ZERODROP_TOKEN            Bearer token for /api (default "test-token")
    ZERODROP_RATE_PER_USER    requests/s of each user, constant_throughput (default 10)
    ZERODROP_REQUEST_TIMEOUT  seconds, connect and each socket read (default 5)
    ZERODROP_MIX              JSON {"health": 5, "balance": 45, "create_payment": 25,
                              "payment_status": 25} (task weights; default as shown)
    ZERODROP_LEDGER_DIR       where ledger-<role>-<pid>.jsonl and progress-<role>-<pid>.json go;
                              unset: no ledger (a warning says so)
    ZERODROP_LEDGER_OFF       "1": count progress but write no records (benchmarks only)
    ZERODROP_PARENT_PID       when set, the process shuts itself down once that process is gone
                              (no orphan load generator if the harness is SIGKILLed)

One task is exactly one request, so ``constant_throughput`` paces requests, not task bodies.

No retries, anywhere: a retry turns a dropped request into a slow success and hides exactly what
this harness exists to see. FastHttpUser's ``max_retries = 0`` means one attempt at the
UserAgent level (``range(max_retries + 1)``). Below that, geventhttpclient's ``HTTPClient.request``
silently re-sends idempotent requests (GET) on another pooled connection when a kept-alive
connection turns out closed or reset (up to pool size + 1 times). That is switched off here by
``disable_stale_connection_retries()``; tests/load proves it with a server that closes a
kept-alive connection on the second request (the GET is recorded as ``reset``, and the server saw
exactly as many requests as the ledger holds). Keep-alive itself stays on: it is what real
clients do and what makes drains matter.
"""
from __future__ import annotations

import json
import logging
import os
import random
import uuid
from collections import deque
from decimal import Decimal, InvalidOperation
from pathlib import Path

import gevent
from locust import FastHttpUser, constant_throughput, events

from zerodrop.load import ledger

log = logging.getLogger("zerodrop.load")

# replay_payment sends an earlier payment again with its Idempotency-Key, as a client whose
# answer got lost must: the service has to answer with the same payment
DEFAULT_MIX = {"health": 5, "balance": 40, "create_payment": 25, "payment_status": 25,
               "replay_payment": 5}
ACCOUNTS = [f"test-account-{i}" for i in range(10)]
POLL_MEMORY = 50  # payment ids a user remembers for status polls


def _env_float(name: str, default: float) -> float:
    raw = os.environ.get(name, "")
    try:
        value = float(raw) if raw else default
    except ValueError:
        raise SystemExit(f"zerodrop locustfile: {name}={raw!r} is not a number")
    if value <= 0:
        raise SystemExit(f"zerodrop locustfile: {name}={raw!r} must be > 0")
    return value


def _env_mix() -> dict[str, int]:
    raw = os.environ.get("ZERODROP_MIX", "")
    if not raw:
        return dict(DEFAULT_MIX)
    try:
        mix = json.loads(raw)
        if not isinstance(mix, dict):
            raise ValueError
        mix = {str(k): int(v) for k, v in mix.items()}
    except (ValueError, TypeError):
        raise SystemExit(f"zerodrop locustfile: ZERODROP_MIX={raw!r} is not a JSON object of integer weights")
    unknown = set(mix) - set(DEFAULT_MIX)
    if unknown or any(v < 0 for v in mix.values()) or sum(mix.values()) <= 0:
        raise SystemExit(f"zerodrop locustfile: ZERODROP_MIX={raw!r}: weights >= 0 for {sorted(DEFAULT_MIX)}, "
                         "at least one > 0")
    return mix


def disable_stale_connection_retries() -> None:
    """Make geventhttpclient's HTTPClient.request never re-send a request on another connection.

    The retry is decided by the module function ``_may_retry_after_send_error(method)``; it is
    looked up at call time, so replacing it switches every retry branch off (the one branch that
    retries regardless is for ``Expect: 100-continue``, which these users never send). Fails loud
    when a geventhttpclient upgrade renames it, rather than silently retrying again.
    """
    import geventhttpclient.client as ghc

    if not hasattr(ghc, "_may_retry_after_send_error"):
        raise RuntimeError("geventhttpclient changed: _may_retry_after_send_error is gone; "
                           "check how HTTPClient.request retries and disable it again (load/locustfile.py)")
    ghc._may_retry_after_send_error = lambda method: False


disable_stale_connection_retries()

TOKEN = os.environ.get("ZERODROP_TOKEN", "test-token")
RATE_PER_USER = _env_float("ZERODROP_RATE_PER_USER", 10.0)
REQUEST_TIMEOUT = _env_float("ZERODROP_REQUEST_TIMEOUT", 5.0)
MIX = _env_mix()
_listener: ledger.LedgerListener | None = None


def money(minor: int) -> str:
    """Exact decimal text of an amount in minor units (no float ever touches money)."""
    return f"{minor // 100}.{minor % 100:02d}"


class PaymentServiceUser(FastHttpUser):
    """A client of the payment service: health checks, balance reads, payments and their status.

    Every task sends exactly one request with a fresh X-Request-Id, and judges the answer:
    a status other than the expected one is ``UnexpectedStatus`` (-> http_error), a wrong body is
    ``BadBody`` (-> bad_body); a transport failure is left exactly as the client raised it.
    """

    abstract = True  # the concrete class below gets its weights from ZERODROP_MIX
    wait_time = constant_throughput(RATE_PER_USER)
    network_timeout = REQUEST_TIMEOUT
    connection_timeout = REQUEST_TIMEOUT
    max_retries = 0  # one attempt; see the module docstring for the retry below this one
    max_redirects = 0
    concurrency = 1  # one greenlet per user: one connection, kept alive
    default_headers = {"Authorization": f"Bearer {TOKEN}"}

    def on_start(self) -> None:
        self.created: deque[str] = deque(maxlen=POLL_MEMORY)
        self.sent: deque[tuple[str, str, str]] = deque(maxlen=POLL_MEMORY)  # key, amount, body

    # -- one request, judged ---------------------------------------------------------------------

    def _call(self, method: str, path: str, route: str, expected: int, body: str | None = None,
              extra_headers: dict[str, str] | None = None, context: dict[str, str] | None = None,
              check=None) -> None:
        request_id = uuid.uuid4().hex
        headers = {"X-Request-Id": request_id}
        if extra_headers:
            headers.update(extra_headers)
        ctx = {"request_id": request_id}
        if context:
            ctx.update(context)
        with self.client.request(method, path, name=route, data=body, headers=headers, context=ctx,
                                 catch_response=True) as resp:
            ctx = resp.request_meta["context"]  # Locust fires a copy of the context we passed
            status = resp.status_code or 0
            err = resp.request_meta.get("exception")
            if status == 0 or (err is not None and type(err).__name__ != "LocustBadStatusCode"):
                return  # a transport failure: leave the client's own exception for the ledger
            if status != expected:
                resp.failure(ledger.UnexpectedStatus(f"HTTP {status}, expected {expected}"))
                return
            if check is not None:
                try:
                    problem = check(resp, ctx)
                except Exception as exc:  # noqa: BLE001 - a crashing check must not unrecord the request
                    problem = f"body check crashed: {exc!r}"[:200]
                if problem:
                    resp.failure(ledger.BadBody(problem))
                    return
            resp.success()

    # -- the tasks -------------------------------------------------------------------------------

    def health(self) -> None:
        self._call("GET", "/health", "/health", 200)

    def balance(self) -> None:
        account = random.choice(ACCOUNTS)
        self._call("GET", f"/api/accounts/{account}/balance", "/api/accounts/{id}/balance", 200,
                   check=_check_json_object)

    def create_payment(self) -> None:
        amount = money(random.randint(1, 999_999))
        src, dst = random.sample(ACCOUNTS, 2)
        key = str(uuid.uuid4())
        body = (f'{{"amount": {amount}, "currency": "EUR", '
                f'"from_account": "{src}", "to_account": "{dst}"}}')
        self.sent.append((key, amount, body))
        self._send_payment(key, amount, body, "/api/payments")

    def replay_payment(self) -> None:
        """The same payment again, same body, same Idempotency-Key: the answer must be the
        first one's (the data check holds every answer for a key to one payment id)."""
        if not self.sent:
            self.create_payment()  # nothing to replay yet: still exactly one request
            return
        key, amount, body = random.choice(self.sent)
        self._send_payment(key, amount, body, "/api/payments (replay)")

    def _send_payment(self, key: str, amount: str, body: str, route: str) -> None:
        self._call("POST", "/api/payments", route, 201, body=body,
                   extra_headers={"Idempotency-Key": key, "Content-Type": "application/json"},
                   context={"amount": amount, "idempotency_key": key}, check=self._check_created)

    def payment_status(self) -> None:
        if not self.created:
            self.create_payment()  # nothing to poll yet: still exactly one request
            return
        payment_id = random.choice(self.created)
        self._call("GET", f"/api/payments/{payment_id}", "/api/payments/{id}", 200,
                   context={"payment_id": payment_id}, check=_check_payment_id)

    def _check_created(self, resp, ctx: dict[str, str]) -> str:
        try:
            data = json.loads(resp.text or "", parse_float=Decimal)
        except ValueError:
            return "201 body is not JSON"
        if not isinstance(data, dict) or not data.get("id"):
            return "201 body has no payment id"
        ctx["payment_id"] = str(data["id"])
        if data.get("status") != "pending":
            return f"201 body status is {data.get('status')!r}, expected 'pending'"
        try:
            same = Decimal(str(data.get("amount"))) == Decimal(ctx["amount"])
        except InvalidOperation:
            same = False
        if not same:
            return f"201 body amount {data.get('amount')!r} != sent {ctx['amount']}"
        self.created.append(ctx["payment_id"])
        return ""


def _check_json_object(resp, _ctx: dict[str, str]) -> str:
    try:
        data = json.loads(resp.text or "")
    except ValueError:
        return "body is not JSON"
    return "" if isinstance(data, dict) else "body is not a JSON object"


def _check_payment_id(resp, ctx: dict[str, str]) -> str:
    try:
        data = json.loads(resp.text or "")
    except ValueError:
        return "body is not JSON"
    if not isinstance(data, dict) or str(data.get("id")) != ctx["payment_id"]:
        return f"payment body is not payment {ctx['payment_id']}"
    return ""


class PaymentUser(PaymentServiceUser):
    """The runnable user: task weights from ZERODROP_MIX."""

    abstract = False
    tasks = {getattr(PaymentServiceUser, name): weight for name, weight in MIX.items() if weight > 0}


@events.init.add_listener
def _on_init(environment, **_kw) -> None:
    global _listener
    raw = os.environ.get(ledger.ENV_LEDGER_DIR, "")
    directory = Path(raw) if raw else None
    if directory is None and ledger.role_of(environment) != "master":
        log.warning("ZERODROP_LEDGER_DIR is not set: requests are NOT recorded in a ledger")
    _listener = ledger.install(environment, directory)
    parent = os.environ.get("ZERODROP_PARENT_PID", "")
    if parent.isdigit():
        gevent.spawn(_exit_when_orphaned, int(parent))


def _exit_when_orphaned(parent_pid: int) -> None:
    import signal

    while True:
        gevent.sleep(1.0)
        if os.getppid() != parent_pid:
            log.warning("the harness (pid %d) is gone: stopping this load generator", parent_pid)
            os.kill(os.getpid(), signal.SIGTERM)
            return
