"""The load that crosses a blue/green switch: an open-model schedule of requests to the payment
service from four client populations, every request recorded in the ledger.

Run on its own::

    ZERODROP_LEDGER_DIR=/tmp/ledger ZERODROP_RATE=200 locust -f load/locustfile.py \
        --host http://127.0.0.1:8080 --headless -u 1 -r 1 --run-time 30s

or through ``load.runner.LoadRun``, which sets the variables below. Locust hosts the run (its
process model, master/workers, stop handling, request events); one Locust user per process runs
the schedule (``load/arrivals.py``: when each request is due, populations, the request mix).

    ZERODROP_RATE             this process's scheduled arrivals per second (default 100)
    ZERODROP_ARRIVALS         constant | poisson (default constant)
    ZERODROP_POPULATIONS      JSON weights over keepalive, fresh, retry (default 60/15/25)
    ZERODROP_IDLE_CLIENTS     idle keep-alive clients over all processes (default 8; 0 = none)
    ZERODROP_IDLE_PERIOD      seconds between an idle client's requests (> the drain window)
    ZERODROP_MAX_INFLIGHT     the generator's concurrency cap per process (default 400)
    ZERODROP_MAX_ATTEMPTS     attempts of a retrying client (default 3)
    ZERODROP_MIX              JSON weights over the request kinds (see arrivals.DEFAULT_MIX)
    ZERODROP_MONEY_ACCOUNTS   comma-separated accounts the credits, debits and balance reads use
    ZERODROP_TOKEN            Bearer token for /api (default "test-token")
    ZERODROP_REQUEST_TIMEOUT  seconds, connect and each socket read (default 5)
    ZERODROP_LEDGER_DIR       where ledger-<role>-<pid>.jsonl and progress-<role>-<pid>.json go
    ZERODROP_LEDGER_OFF       "1": count progress but write no records (benchmarks only)
    ZERODROP_PROCESS_INDEX / ZERODROP_PROCESSES  this process's share of the idle clients
    ZERODROP_PARENT_PID       the process exits once that process is gone (no orphan generator)

No hidden retries: the HTTP client (``load/http1.py``) sends each request once; only the
``retry`` population sends again, and every attempt is a ledger record of its own, linked to the
first by ``first_request_id``. A failure that a retry recovered stays a failure in the ledger.
"""
from __future__ import annotations

import json
import logging
import os
import random
import time
import uuid
from collections import deque
from dataclasses import dataclass, replace
from decimal import Decimal, InvalidOperation
import re
from pathlib import Path
from typing import Callable
from urllib.parse import urlsplit

import gevent
from locust import User, constant, events, task
from locust.exception import StopUser
from locust.user.task import LOCUST_STATE_STOPPING

from zerodrop.load import ledger
from zerodrop.load.arrivals import LATE_S, STALL_S, Chooser, Settings, SettingsError, schedule
from zerodrop.load.http1 import Connection, Pool, Response
from zerodrop.profiles.profile import compile_jq as _compiled, render_request, same_value

log = logging.getLogger("zerodrop.load")

try:
    SETTINGS = Settings.from_env(os.environ)
except SettingsError as exc:
    raise SystemExit(f"zerodrop locustfile: {exc}")
POLL_MEMORY = 50  # payment ids remembered for status polls and replays
TRANSPORT_RETRY_BACKOFF_S = 0.05
_listener: ledger.LedgerListener | None = None


class _Answer:
    """What the ledger's listener reads from an answer: ``status_code`` and ``headers.get``
    (under the names the ledger knows, X-App-Version & co., whatever the profile's headers are)."""

    __slots__ = ("status_code", "headers")

    def __init__(self, resp: Response | None, names: dict[str, str]):
        self.status_code = resp.status if resp is not None else 0
        self.headers = _Headers(resp.headers if resp is not None else {}, names)


class _Headers:
    __slots__ = ("raw", "names")

    def __init__(self, raw: dict, names: dict[str, str]):
        self.raw, self.names = raw, names

    def get(self, name, default=None):  # noqa: D102 - case-insensitive, through the profile's names
        return self.raw.get(self.names.get(name.lower(), name.lower()), default)


def _header_map(profile) -> dict[str, str]:
    """ledger header name (lower case) -> the profile's answer header (lower case)."""
    names = {"x-app-version": profile.version_header, "x-app-color": profile.color_header,
             "x-replica": profile.replica_header, "x-request-id": profile.request_id_header}
    return {k: (v or "x-zerodrop-absent").lower() for k, v in names.items()}


@dataclass
class Req:
    """One request to send (possibly several times, by a retrying client)."""

    kind: str
    method: str
    path: str
    route: str
    expected: int
    body: bytes = b""
    headers: dict | None = None
    context: dict | None = None
    check: Callable[[Response, dict], str] | None = None
    auth: bool = True
    duplicable: bool = False  # an idempotent write: the retry population may send it twice at once
    values: dict | None = None  # the generated values it was built from (a replay checks against them)


class Engine:
    """One process's schedule: the scheduled populations at ``rate``, the idle clients on
    their own fixed phases, the concurrency cap, and the counters the progress file carries."""

    def __init__(self, environment, host: str, settings: Settings):
        self.env = environment
        self.s = settings
        parts = urlsplit(host)
        self.host, self.port = parts.hostname or "127.0.0.1", parts.port or 80
        self.pool = Pool(self.host, self.port, settings.request_timeout)
        self.rng = random.Random()
        self.population = Chooser(settings.populations, self.rng)
        self.profile = settings.profile
        self.kind = Chooser(settings.mix, self.rng)
        self.inflight = 0
        self.stopping = False
        self.saved: dict[str, deque[str]] = {}  # values answers saved, for later requests
        self.replayed = {r.replay for r in self.profile.requests if r.replay}
        self.sent: dict[str, deque[Req]] = {n: deque(maxlen=POLL_MEMORY) for n in self.replayed}
        self.auth = self.profile.auth_headers(settings.token)
        self.answer_headers = _header_map(self.profile)
        self.counters = _listener.schedule if _listener is not None else {}

    # -- the schedule ---------------------------------------------------------------------------

    def run(self, should_stop: Callable[[], bool]) -> None:
        self._warm()
        t0 = time.time() + 0.02
        idle = [gevent.spawn(self._idle_client, t0 + offset) for offset in self.s.idle_offsets()]
        c = self.counters
        planned = schedule(self.s.rate, t0, self.s.arrivals, self.rng)
        due = next(planned)
        try:
            while not self.population and not should_stop():
                gevent.sleep(0.05)  # only idle clients: nothing is scheduled here
            while not should_stop():
                now = time.time()
                if due > now:
                    gevent.sleep(min(due - now, 0.05))
                    continue
                while due <= now:
                    c["scheduled"] = c.get("scheduled", 0) + 1
                    if now - due > LATE_S:
                        c["late"] = c.get("late", 0) + 1
                    if self.inflight >= self.s.max_inflight:
                        c["missed_cap"] = c.get("missed_cap", 0) + 1
                        if now - due > STALL_S:  # a burst after the generator stalled, not a slow service
                            c["missed_late"] = c.get("missed_late", 0) + 1
                    else:
                        self.inflight += 1
                        c["max_inflight"] = max(c.get("max_inflight", 0), self.inflight)
                        gevent.spawn(self._arrival, due)
                    due = next(planned)
                gevent.sleep(0)
        finally:
            self.stopping = True
            deadline = time.monotonic() + self.s.request_timeout + 0.5
            while self.inflight > 0 and time.monotonic() < deadline:
                gevent.sleep(0.05)
            gevent.joinall(idle, timeout=max(0.0, deadline - time.monotonic()))
            gevent.killall([g for g in idle if not g.dead], block=False)
            self.pool.close()

    def _warm(self) -> None:
        """Open the keep-alive pool's connections before the schedule starts (a client's pool
        is warm when a switch happens; the first requests then measure the service)."""
        conns = []
        for _ in range(self.s.warm_connections if self.s.populations.get("keepalive", 0) else 0):
            conn = Connection(self.host, self.port, self.s.request_timeout)
            try:
                conn.open()
            except OSError:
                break
            conns.append(conn)
        for conn in conns:
            self.pool.release(conn)

    def _arrival(self, planned: float) -> None:
        try:
            population = self.population.pick()
            req = self.build(self.kind.pick())
            if population == "fresh":
                conn = Connection(self.host, self.port, self.s.request_timeout)
                try:
                    self.send(conn, req, planned, "fresh", close=True)
                finally:
                    conn.close()
            elif population == "retry":
                if req.duplicable and self.rng.random() < self.s.duplicate_share:
                    self._duplicate(req, planned)
                else:
                    self._with_retries(req, planned)
            else:
                self._pooled(req, planned, population)
        finally:
            self.inflight -= 1

    def _pooled(self, req: Req, planned: float, population: str, attempt: int = 1,
                first_id: str = "", route: str | None = None, request_id: str = "") -> tuple[bool, str]:
        conn = self.pool.acquire()
        try:
            return self.send(conn, req, planned, population, attempt=attempt, first_id=first_id,
                             route=route, request_id=request_id)
        finally:
            self.pool.release(conn)

    def _with_retries(self, req: Req, planned: float) -> None:
        """Send; on a connection error or a timeout (no answer), send again with the same
        Idempotency-Key and body, up to ``max_attempts``, backing off. An HTTP answer, even an
        error, is never retried here: the service decided."""
        first_id = ""
        for attempt in range(1, self.s.max_attempts + 1):
            route = req.route if attempt == 1 else f"{req.route} (retry)"
            no_answer, rid = self._pooled(req, planned, "retry", attempt, first_id, route)
            first_id = first_id or rid
            if not no_answer or self.stopping:
                return
            gevent.sleep(TRANSPORT_RETRY_BACKOFF_S * 2 ** (attempt - 1))

    def _duplicate(self, req: Req, planned: float) -> None:
        """The same payment sent twice at once on two connections (a double click, a client
        that gave up waiting too early): both answers must name the same payment."""
        first_id = uuid.uuid4().hex
        second = gevent.spawn(self._pooled, req, planned, "retry", 2, first_id,
                              f"{req.route} (duplicate)")
        self._pooled(req, planned, "retry", request_id=first_id)
        second.join()

    def _idle_client(self, first: float) -> None:
        """One idle keep-alive client: a request every ``idle_period_s`` from ``first`` on, on
        its own connection, checked for a server close before each send."""
        conn = Connection(self.host, self.port, self.s.request_timeout)
        k = 0
        while not self.stopping:
            due = first + k * self.s.idle_period_s
            k += 1
            wait = due - time.time()
            if wait > 0:
                gevent.sleep(wait)
            if self.stopping:
                break
            if conn.sock is not None and not conn.still_open():
                conn.close()  # the server closed it while we were idle: a new one, as a client would
                conn = Connection(self.host, self.port, self.s.request_timeout)
            elif conn.sock is None and conn.answers:
                conn = Connection(self.host, self.port, self.s.request_timeout)
            self.send(conn, self.build(self.kind.pick()), due, "idle")
        conn.close()

    # -- one request ----------------------------------------------------------------------------

    def send(self, conn: Connection, req: Req, planned: float, population: str, attempt: int = 1,
             first_id: str = "", route: str | None = None, close: bool = False,
             request_id: str = "") -> tuple[bool, str]:
        """Send ``req`` once on ``conn`` and fire Locust's request event (-> one ledger record).
        Returns (no answer arrived, the X-Request-Id sent)."""
        rid = request_id or uuid.uuid4().hex
        headers = dict(self.auth) if req.auth else {}
        headers[self.profile.request_id_header] = rid
        if req.headers:
            headers.update(req.headers)
        if close:
            headers["Connection"] = "close"
        ctx = dict(req.context or ())
        ctx.update(request_id=rid, population=population, kind=req.kind, attempt=attempt,
                   first_request_id=first_id, planned=planned, conn="reused" if conn.reused else "new")
        exc: BaseException | None = None
        resp: Response | None = None
        start = time.time()
        try:
            resp = conn.request(req.method, req.path, headers, req.body)
        except Exception as e:  # noqa: BLE001 - every transport failure is recorded as it was raised
            exc = e
        elapsed_ms = (time.time() - start) * 1000.0
        if resp is not None:
            if resp.status != req.expected:
                exc = ledger.UnexpectedStatus(f"HTTP {resp.status}, expected {req.expected}")
            elif req.check is not None:
                try:
                    problem = req.check(resp, ctx)
                except Exception as e:  # noqa: BLE001 - a crashing check must not unrecord the request
                    problem = f"body check crashed: {e!r}"[:200]
                if problem:
                    exc = ledger.BadBody(problem)
        self.env.events.request.fire(request_type=req.method, name=route or req.route, response_time=elapsed_ms,
                                     response_length=len(resp.body) if resp is not None else 0,
                                     response=_Answer(resp, self.answer_headers), context=ctx, exception=exc, start_time=start)
        return resp is None, rid

    # -- what to ask: the service profile's requests --------------------------------------------

    def build(self, name: str) -> Req:
        """One request of the profile's kind ``name``, its values generated; a request that
        needs a value no answer has saved yet is replaced by the request that saves it."""
        spec = self.profile.request(name)
        if spec.replay:
            return self._replay(spec)
        r = render_request(self.profile, spec, self.rng, self.s.accounts, self.saved)
        if r is None:  # a value nothing has saved yet (the run's first seconds)
            needed = next(g.args[0] for g in spec.values.values() if g.kind == "saved" and not self.saved.get(g.args[0]))
            return self.build(self.profile.saver_of(needed).name)
        values = r.values
        ctx: dict = {}
        about = next((values[v] for v, g in spec.values.items() if g.kind == "saved"), None)
        if about is not None:  # the ledger's id of what a read is about (a status poll's payment)
            ctx["payment_id"] = about
        if r.key:
            ctx["idempotency_key"] = r.key
        if spec.write is not None and spec.write.value:
            ctx["amount"] = values[spec.write.value]
        if spec.money:
            ctx["account"] = values["account"]
            if spec.money != "balance":
                ctx["amount"] = values["amount"]
        req = Req(spec.kind, spec.method, r.path, spec.route, spec.status, r.body,
                  r.headers, ctx, self._checker(spec, values) if spec.reads_body else None,
                  auth=spec.auth, duplicable=spec.idempotent and spec.write is not None, values=values)
        if spec.name in self.replayed:
            self.sent[spec.name].append(req)
        return req

    def _replay(self, spec) -> Req:
        """An earlier request of ``spec.replay`` again: the same key, the same body; its answer
        must name what the first one made (the data check holds every answer of a key to one)."""
        earlier = self.sent.get(spec.replay)
        if not earlier:
            return self.build(spec.replay)
        first = self.rng.choice(earlier)
        original = self.profile.request(spec.replay)
        # the original's echo and id, but the replay's own jq: what a replay answers may have
        # moved on since (a to-do completed meanwhile), while what was sent cannot have
        checks = replace(original, jq=spec.jq, save={})
        return Req(first.kind, first.method, first.path, spec.route, first.expected, first.body,
                   first.headers, {k: v for k, v in (first.context or {}).items()
                                   if k in ("idempotency_key", "amount", "account")},
                   self._checker(checks, first.values or {}) if checks.reads_body else None,
                   auth=first.auth)

    def _checker(self, spec, values: dict[str, str]) -> Callable[[Response, dict], str]:
        """The answer's checks: the jq expressions hold, the echoed values are the sent ones
        (exactly), the write's id and the balance are read into the ledger, values are saved."""
        profile, saved = self.profile, self.saved

        def check(resp: Response, ctx: dict) -> str:
            data = _json(resp)
            if data is None:
                return f"{resp.status} body is not JSON"
            if spec.write is not None:  # first: a write with a bad body may still have been made
                ident = _first(spec.write.id_jq, data, resp.body)
                if ident in (None, "", False):
                    return f"{resp.status} body has no id at {spec.write.id_jq}"
                ctx["payment_id"] = str(ident)
            for expr in spec.jq:
                if not _holds(expr, resp.body):
                    return f"jq `{expr}` does not hold on the answer"[:200]
            for vname, expr in spec.echo.items():
                seen = _first(expr, data, resp.body)
                if not same_value(seen, values[vname]):
                    return f"{resp.status} body {expr} is {_text(seen)}, sent {vname} {values[vname]}"[:200]
            if spec.money == "balance":
                value = _first(profile.money.balance_jq, data, resp.body)
                try:
                    if isinstance(value, bool) or value is None:
                        raise InvalidOperation
                    ctx["balance"] = str(Decimal(str(value)))
                except InvalidOperation:
                    return f"balance {value!r} at {profile.money.balance_jq} is not a decimal"
            for sname, expr in spec.save.items():
                value = _first(expr, data, resp.body)
                if value not in (None, ""):
                    saved.setdefault(sname, deque(maxlen=POLL_MEMORY)).append(str(value))
            return ""

        return check


def _json(resp: Response):
    try:
        return json.loads(resp.body or b"", parse_float=Decimal)
    except ValueError:
        return None


_SIMPLE_PATH = re.compile(r"^(\.[A-Za-z_][A-Za-z0-9_]*)+$")


def _first(expr: str, data, raw: bytes):
    """The first output of a jq expression: plain paths (``.a.b``) read from ``data`` (numbers
    exact, as Decimal), anything else by jq on the answer's text."""
    if _SIMPLE_PATH.match(expr):
        for part in expr[1:].split("."):
            if not isinstance(data, dict):
                return None
            data = data.get(part)
        return data
    try:
        out = _compiled(expr).input_text(raw.decode("utf-8", "replace")).all()
    except ValueError:
        return None
    return out[0] if out else None


def _text(value) -> str:
    return json.dumps(value, default=str) if not isinstance(value, Decimal) else str(value)


def _holds(expr: str, raw: bytes) -> bool:
    try:
        out = _compiled(expr).input_text(raw.decode("utf-8", "replace")).all()
    except ValueError:
        return False
    return bool(out) and out[0] is not None and out[0] is not False  # jq -e


class OpenModelUser(User):
    """One per Locust process: runs this process's share of the schedule until Locust stops
    it (SIGTERM, --run-time), then lets the requests in flight finish."""

    wait_time = constant(0)

    @task
    def run_schedule(self) -> None:
        Engine(self.environment, self.host, SETTINGS).run(lambda: self._state == LOCUST_STATE_STOPPING)
        raise StopUser()


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
