"""Service profiles: one TOML file describes the service under test, so a new service needs no
Python. The load (``load/locustfile.py``), the data check (``scenarios/integrity.py``), the money
check (``scenarios/money.py``), the smoke suite and the local platform's probes read it.

The shipped default is ``profiles/payment-service.toml`` (the reference service); a second,
different service is described by ``examples/todo_service/todo.profile.toml``. Every key::

    [service]
    name = "todo-service"
    version_header = "X-App-Version"     # names the version that answered (required on answers)
    color_header = "X-App-Color"         # optional; names the colour
    replica_header = "X-Replica"         # optional; names the replica
    request_id_header = "X-Request-Id"   # sent with every request, echoed by the service if it can
    idempotency_header = "Idempotency-Key"
    auth = "bearer"                      # "bearer" (Authorization: Bearer <token>) or "none"

    [probes]
    health = "/health"                   # any 2xx: the process answers
    liveness = "/health/live"
    readiness = "/health/ready"          # 2xx/3xx: ready (the local platform's readinessProbe)
    ready_jq = ['.status == "healthy"']  # optional; must hold on a ready answer (smoke suite)

    [local]                              # optional: how the local platform starts the app
    app_cmd = "{python} {profile_dir}/app.py serve --port {port}"
    migrate_cmd = "{python} {profile_dir}/app.py migrate"

    [kubernetes]                         # optional: the service's own manifests on a cluster
    manifests = "k8s/overlays/kind"      # a kustomize folder, relative to this file (--manifests wins)
    service = "todo"                     # the Service clients use (default: [service] name)
    color_label = "slot"                 # its selector label that switches blue|green (default version)
    container = "api"                    # the app's container (default: the only one, or named as
                                         # the Service)

    [[request]]                          # the load's mix: one table per kind of request
    name = "create_todo"                 # unique; the ledger's kind unless `kind` is given
    method = "POST"                      # default GET
    path = "/v1/todos"                   # may use {value} placeholders
    route = "/v1/todos"                  # the ledger's route (default: the path template)
    weight = 30                          # share of the mix (0: never sent by the load)
    status = 201                         # expected status (default 200)
    values = { title = "text 3", prio = "int 1 5" }   # generated for each request, see below
    headers = { Content-Type = "application/json" }  # may use {value}
    body = '{"title": "{title}", "priority": {prio}}' # may use {value}
    idempotent = true                    # sends idempotency_header: {key}; retries keep it
    jq = ['.done == false']              # must hold on the answer's JSON
    echo = { title = ".title" }          # the answer repeats these values exactly
    write = { id = ".id", value = "title", readback = ".title" }  # an acknowledged write: its id,
                                         # the value the read-back must show, and where
    save = { todo_id = ".id" }           # remembered for later requests ("saved todo_id")
    replay = "create_todo"               # instead of its own: an earlier create_todo sent again
    money = "credit"                     # "credit", "debit" or "balance" (see [money])
    auth = true                          # send the token (default true)

    [readback]                           # how the data check finds acknowledged writes again
    path = "/v1/todos/{id}"              # 200 and the write's value, or 404 (lost)
    by_key = "/v1/todos?key={key}"       # every write the service holds for one key
    by_key_ids = ".items[].id"           # their ids (all outputs of this jq)
    noun = "to-do"                       # what the verdict calls one ("write")
    value = "title"                      # and the value it compares ("value")

    [money]                              # optional account invariants
    accounts = ["load-account-0", "load-account-1"]
    balance_path = "/api/accounts/{account}/balance"
    balance_jq = ".balance"
    check_account = "acc-test-001"       # the post-deploy credit's (never a load account)

    [post_deploy]                        # optional
    flow_poll = "/api/payments/{id}"     # after a write: poll until flow_final holds, then
    flow_final = '.status != "pending"'  # flow_success must hold
    flow_success = '.status == "completed"'
    concurrent = "balance"               # the request the concurrency check sends 50 times

    [steady_state]                       # optional: a game day's hypothesis (zerodrop gameday)
    error_budget = 0.01                  # at most this share of requests fails (default 0.01)
    slow_ms = 1000                       # at most slow_share of requests take longer than this
    slow_share = 0.05                    # (defaults 1000 ms and 0.05)

    [[invalid]]                          # requests the service must refuse as the client's fault
    name = "negative amount"
    method = "POST"                      # default POST
    path = "/api/payments"
    headers = { Content-Type = "application/json" }
    body = '{"amount": -1}'              # raw text
    status = 400                         # or a list; default: any 4xx
    jq = ['has("errors")']

Value generators (``values``): ``uuid``; ``money MIN MAX`` (an exact decimal at the scale of
MIN and MAX); ``int MIN MAX``; ``pick A B C`` (one of the words); ``text N`` (N lower-case words);
``account`` (one of [money] accounts); ``saved NAME`` (a value an earlier answer saved; while
none is saved yet, the request that saves it is sent instead). ``{key}`` is the request's
idempotency key (a fresh uuid; the same on a retry or a replay).

A ``money`` request names its account in the value ``account`` and its amount in ``amount``; a
credit or debit must be ``idempotent`` and answer with ``echo = { amount = ... }``; the balance
read is the one ``money = "balance"`` request, whose path is also how the money check reads a
balance.

Bad profiles fail before anything starts, in one line naming the file, the line and the problem
(``ProfileError``).
"""
from __future__ import annotations

import json
import random
import re
import string
import tomllib
import uuid
from dataclasses import dataclass, field
from decimal import Decimal, InvalidOperation
from functools import lru_cache
from pathlib import Path
from typing import Any, Mapping

import jq

DEFAULT_PATH = Path(__file__).resolve().parent / "payment-service.toml"
PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
METHODS = ("GET", "POST", "PUT", "PATCH", "DELETE")
MONEY_ROLES = ("credit", "debit", "balance")
GENERATORS = ("uuid", "money", "int", "pick", "text", "account", "saved")
RESERVED = ("key",)
WORDS = ("alpha", "bravo", "charlie", "delta", "echo", "foxtrot", "golf", "hotel", "india",
         "juliet", "kilo", "lima", "mike", "november", "oscar", "papa", "quebec", "romeo")

_SECTIONS = {
    "service": {"name", "version_header", "color_header", "replica_header", "request_id_header",
                "idempotency_header", "auth"},
    "probes": {"health", "liveness", "readiness", "ready_jq"},
    "local": {"app_cmd", "migrate_cmd"},
    "kubernetes": {"manifests", "service", "color_label", "container"},
    "readback": {"path", "by_key", "by_key_ids", "noun", "value"},
    "money": {"accounts", "balance_path", "balance_jq", "check_account"},
    "post_deploy": {"flow_poll", "flow_final", "flow_success", "flow_timeout", "concurrent"},
    "steady_state": {"error_budget", "slow_ms", "slow_share"},
}
_INVALID_KEYS = {"name", "method", "path", "body", "headers", "status", "jq", "auth"}
_REQUEST_KEYS = {"name", "kind", "method", "path", "route", "weight", "status", "values", "headers",
                 "body", "idempotent", "jq", "echo", "write", "save", "replay", "money", "auth"}


class ProfileError(ValueError):
    """A profile cannot be used; the message is one line: the file, the line, the problem."""


@dataclass(frozen=True)
class Gen:
    """One value generator of a request."""

    kind: str
    args: tuple[str, ...] = ()

    def make(self, rng: random.Random, accounts: tuple[str, ...],
             saved: Mapping[str, list[str]]) -> str | None:
        k, a = self.kind, self.args
        if k == "uuid":
            return str(uuid.UUID(int=rng.getrandbits(128), version=4))
        if k == "int":
            return str(rng.randint(int(a[0]), int(a[1])))
        if k == "money":
            lo, hi = Decimal(a[0]), Decimal(a[1])
            scale = max(-lo.as_tuple().exponent, -hi.as_tuple().exponent, 0)
            unit = Decimal(1).scaleb(-scale)
            minor = rng.randint(int(lo / unit), int(hi / unit))
            return str((Decimal(minor) * unit).quantize(unit))
        if k == "pick":
            return rng.choice(a)
        if k == "text":
            return " ".join(rng.choice(WORDS) for _ in range(int(a[0])))
        if k == "account":
            return rng.choice(accounts)
        if k == "saved":
            pool = saved.get(a[0])
            return rng.choice(pool) if pool else None
        raise AssertionError(k)


@dataclass(frozen=True)
class Write:
    id_jq: str
    value: str = ""        # the value name whose generated value the read-back must show
    readback_jq: str = ""  # where the read-back shows it


@dataclass(frozen=True)
class RequestSpec:
    name: str
    kind: str
    method: str = "GET"
    path: str = "/"
    route: str = "/"
    weight: int = 0
    status: int = 200
    values: Mapping[str, Gen] = field(default_factory=dict)
    headers: Mapping[str, str] = field(default_factory=dict)
    body: str | None = None
    idempotent: bool = False
    jq: tuple[str, ...] = ()
    echo: Mapping[str, str] = field(default_factory=dict)
    write: Write | None = None
    save: Mapping[str, str] = field(default_factory=dict)
    replay: str = ""
    money: str = ""
    auth: bool = True

    @property
    def reads_body(self) -> bool:
        return bool(self.jq or self.echo or self.write or self.save or self.money == "balance")


@dataclass(frozen=True)
class Readback:
    path: str
    by_key: str = ""
    by_key_ids: str = ""
    noun: str = "write"    # what the verdict calls a write ("payment")
    value: str = "value"   # and the value it compares ("amount")


@dataclass(frozen=True)
class Money:
    accounts: tuple[str, ...]
    balance_path: str
    balance_jq: str
    check_account: str = ""  # the post-deploy credit's account: never one the load writes to


@dataclass(frozen=True)
class Flow:
    """After a write is acknowledged: poll ``poll`` until ``final`` holds, then ``success``
    must hold (the payment-service completes payments asynchronously)."""

    poll: str
    final: str
    success: str


@dataclass(frozen=True)
class Invalid:
    """A request the service must refuse as the client's fault (post-deploy error handling)."""

    name: str
    method: str
    path: str
    body: str | None
    headers: Mapping[str, str]
    status: tuple[int, ...]  # () : any 4xx
    jq: tuple[str, ...]
    auth: bool = True


@dataclass(frozen=True)
class Profile:
    name: str
    source: str
    version_header: str = "X-App-Version"
    color_header: str = ""
    replica_header: str = ""
    request_id_header: str = "X-Request-Id"
    idempotency_header: str = "Idempotency-Key"
    auth: str = "bearer"
    health: str = "/health"
    liveness: str = "/health/live"
    readiness: str = "/health/ready"
    ready_jq: tuple[str, ...] = ()
    app_cmd: str = ""
    migrate_cmd: str = ""
    kube_manifests: str = ""      # [kubernetes] manifests, resolved against the profile's folder
    kube_service: str = ""        # the Service clients use (default: [service] name)
    color_label: str = "version"  # the selector label whose value (blue|green) is the colour
    kube_container: str = ""      # the app's container (default: the only one, or the Service's name)
    requests: tuple[RequestSpec, ...] = ()
    readback: Readback | None = None
    money: Money | None = None
    flow: Flow | None = None
    concurrent: str = ""    # the request the post-deploy concurrency check sends
    # [steady_state]: a game day's hypothesis (shares of requests, not money)
    error_budget: float = 0.01   # at most this share of requests fails
    slow_ms: float = 1000.0      # at most slow_share of requests take longer than this
    slow_share: float = 0.05
    invalid: tuple[Invalid, ...] = ()
    text: str = ""

    # -- lookups --------------------------------------------------------------------------------

    def request(self, name: str) -> RequestSpec:
        for r in self.requests:
            if r.name == name:
                return r
        raise KeyError(name)

    @property
    def mix(self) -> dict[str, int]:
        return {r.name: r.weight for r in self.requests}

    @property
    def write_kinds(self) -> frozenset[str]:
        """The ledger kinds whose acknowledged answers the data check reads back."""
        return frozenset(r.kind for r in self.requests if r.write is not None)

    @property
    def money_accounts(self) -> tuple[str, ...]:
        return self.money.accounts if self.money is not None else ()

    def saver_of(self, name: str) -> RequestSpec:
        for r in self.requests:
            if name in r.save:
                return r
        raise KeyError(name)

    @property
    def is_default(self) -> bool:
        """The shipped payment-service profile (however its path was written)."""
        return bool(self.source) and Path(self.source).resolve() == DEFAULT_PATH

    @property
    def profile_dir(self) -> str:
        return str(Path(self.source).resolve().parent) if self.source else ""

    def auth_headers(self, token: str) -> dict[str, str]:
        return {"Authorization": f"Bearer {token}"} if self.auth == "bearer" else {}


@dataclass
class Rendered:
    """One request of a spec, its values generated: what to send and what it sent."""

    spec: RequestSpec
    method: str
    path: str
    headers: dict[str, str]
    body: bytes
    values: dict[str, str]
    key: str = ""


def render_request(profile: "Profile", spec: RequestSpec, rng: random.Random,
                   accounts: tuple[str, ...] = (), saved: Mapping[str, Any] | None = None,
                   ) -> Rendered | None:
    """``spec`` with fresh values (None when a ``saved`` value it needs is not saved yet)."""
    values: dict[str, str] = {}
    for vname, gen in spec.values.items():
        value = gen.make(rng, accounts or profile.money_accounts, saved or {})
        if value is None:
            return None
        values[vname] = value
    headers = {k: render(v, values) for k, v in spec.headers.items()} if spec.headers else {}
    key = ""
    if spec.idempotent:
        key = values["key"] = str(uuid.UUID(int=rng.getrandbits(128), version=4))
        headers[profile.idempotency_header] = key
    body = render(spec.body, values).encode() if spec.body is not None else b""
    return Rendered(spec, spec.method, render(spec.path, values), headers, body, values, key)


def render(template: str, values: Mapping[str, str]) -> str:
    """``{name}`` placeholders filled (JSON braces such as ``{"a": 1}`` are left alone)."""
    return PLACEHOLDER.sub(lambda m: values[m.group(1)], template)


def plain_json(content: bytes | str) -> Any:
    """JSON for jq: numbers with a fraction kept as their exact text (jq itself reads
    doubles, and money must never go through a float): 12.10 stays "12.10", and
    ``same_value`` compares it as a decimal."""
    return json.loads(content, parse_float=str)


def same_value(seen: Any, sent: str) -> bool:
    """Exact equality of a value an answer shows and the value sent: as decimals when both
    are numbers (10.50 == 10.5; never through a float), as text otherwise."""
    if isinstance(seen, bool) or seen is None:
        return False
    try:
        return Decimal(str(seen)) == Decimal(sent)
    except (InvalidOperation, ValueError):
        return str(seen) == sent


# ---- loading ------------------------------------------------------------------------------------

_cache: dict[str, Profile] = {}


def load(path: str | Path | None = None) -> Profile:
    """The profile in ``path`` (the shipped payment-service profile when None)."""
    p = Path(path) if path else DEFAULT_PATH
    try:
        text = p.read_text(encoding="utf-8")
    except OSError as exc:
        raise ProfileError(f"profile {p}: {exc.strerror or exc}") from None
    return from_text(text, str(p))


def from_text(text: str, source: str = "") -> Profile:
    """A profile from its TOML text (the load generator gets it this way, also in a pod)."""
    key = source + "\0" + text
    if key not in _cache:
        _cache[key] = parse(text, source)
    return _cache[key]


def parse(text: str, source: str) -> Profile:
    where = _Where(text, source or "profile")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise ProfileError(f"{where.file}: not valid TOML: {exc}") from None
    unknown = set(data) - set(_SECTIONS) - {"request", "invalid"}
    if unknown:
        key = sorted(unknown)[0]
        raise where.error(key, f"unknown section or key {key!r}; allowed: "
                               f"{', '.join(sorted([*_SECTIONS, 'request', 'invalid']))}")
    sec = {name: _section(data, name, where) for name in _SECTIONS}
    service, probes, local = sec["service"], sec["probes"], sec["local"]
    auth = _str(service, "auth", where, "bearer")
    if auth not in ("bearer", "none"):
        raise where.error("auth", f"[service] auth must be \"bearer\" or \"none\", got {auth!r}")
    ready_jq = _jq_list(probes.get("ready_jq", []), "ready_jq", where)
    for name in ("health", "liveness", "readiness"):
        _path(probes.get(name, "/"), name, where, ())
    money = None
    if sec["money"]:
        m = sec["money"]
        accounts = m.get("accounts")
        if not isinstance(accounts, list) or not accounts or not all(isinstance(a, str) and a for a in accounts):
            raise where.error("accounts", "[money] accounts must be a non-empty list of account names")
        check_account = _str(m, "check_account", where, "")
        if check_account in accounts:
            raise where.error("check_account", "[money] check_account must not be one of the load's accounts: "
                                               "the post-deploy credit would upset the money check")
        money = Money(tuple(accounts), _path(m.get("balance_path", ""), "balance_path", where, ("account",)),
                      _jq(m.get("balance_jq", ""), "balance_jq", where), check_account)
    readback = None
    if sec["readback"]:
        rb = sec["readback"]
        by_key = rb.get("by_key", "")
        readback = Readback(_path(rb.get("path", ""), "path", where, ("id",)),
                            _path(by_key, "by_key", where, ("key",)) if by_key else "",
                            _jq(rb["by_key_ids"], "by_key_ids", where) if "by_key_ids" in rb else "",
                            _str(rb, "noun", where, "write"), _str(rb, "value", where, "value"))
        if bool(readback.by_key) != bool(readback.by_key_ids):
            raise where.error("by_key", "[readback] by_key and by_key_ids go together")
    entries = data.get("request", [])
    if not isinstance(entries, list) or not entries:
        raise ProfileError(f"{where.file}: no [[request]] tables: the load needs at least one")
    requests = [_request(e, i, where, money) for i, e in enumerate(entries, 1)]
    _cross_check(requests, readback, money, where)
    pd = sec["post_deploy"]
    flow = None
    if {"flow_poll", "flow_final", "flow_success"} & set(pd):
        if not {"flow_poll", "flow_final", "flow_success"} <= set(pd):
            raise where.error("flow_poll", "[post_deploy] flow_poll, flow_final and flow_success go together")
        flow = Flow(_path(pd["flow_poll"], "flow_poll", where, ("id",)), _jq(pd["flow_final"], "flow_final", where),
                    _jq(pd["flow_success"], "flow_success", where))
    concurrent = _str(pd, "concurrent", where, "")
    if concurrent and concurrent not in {r.name for r in requests}:
        raise where.error("concurrent", f"[post_deploy] concurrent names {concurrent!r}, which is not a request")
    invalid = tuple(_invalid(e, i, where) for i, e in enumerate(_list(data, "invalid", where), 1))
    kube = _kubernetes(sec["kubernetes"], where, source)
    steady = _steady_state(sec["steady_state"], where)
    profile = Profile(
        name=_str(service, "name", where, Path(source).stem if source else "service"),
        source=source,
        version_header=_str(service, "version_header", where, "X-App-Version"),
        color_header=_str(service, "color_header", where, ""),
        replica_header=_str(service, "replica_header", where, ""),
        request_id_header=_str(service, "request_id_header", where, "X-Request-Id"),
        idempotency_header=_str(service, "idempotency_header", where, "Idempotency-Key"),
        auth=auth,
        health=probes.get("health", "/health"), liveness=probes.get("liveness", "/health/live"),
        readiness=probes.get("readiness", "/health/ready"), ready_jq=ready_jq,
        app_cmd=_str(local, "app_cmd", where, ""), migrate_cmd=_str(local, "migrate_cmd", where, ""),
        **kube,
        requests=tuple(requests), readback=readback, money=money, flow=flow,
        concurrent=concurrent, invalid=invalid, text=text, **steady)
    if not any(r.weight > 0 for r in requests):
        raise ProfileError(f"{where.file}: every [[request]] has weight 0: the load would send nothing")
    check_bodies(profile)
    return profile


def _steady_state(sec: dict[str, Any], where: "_Where") -> dict[str, float]:
    """[steady_state]: error_budget and slow_share are shares (0..1), slow_ms milliseconds."""
    out: dict[str, float] = {}
    for key, low, high in (("error_budget", 0.0, 1.0), ("slow_share", 0.0, 1.0),
                           ("slow_ms", 1.0, 600_000.0)):
        if key not in sec:
            continue
        v = sec[key]
        if isinstance(v, bool) or not isinstance(v, (int, float)) or not low <= v <= high:
            raise where.error(key, f"[steady_state] {key} must be a number from {low:g} to {high:g}")
        out[key] = float(v)
    return out


def _request(entry: Any, i: int, where: "_Where", money: Money | None) -> RequestSpec:
    if not isinstance(entry, dict):
        raise ProfileError(f"{where.file}: [[request]] #{i} must be a table")
    name = entry.get("name")
    if not isinstance(name, str) or not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_]*", name or ""):
        raise where.error("name", f"[[request]] #{i} needs a name of letters, digits and _", nth=i)
    w = where.at_request(name)
    unknown = set(entry) - _REQUEST_KEYS
    if unknown:
        key = sorted(unknown)[0]
        raise w.error(key, f"request {name!r}: unknown key {key!r}; allowed: {', '.join(sorted(_REQUEST_KEYS))}")
    method = _str(entry, "method", w, "GET").upper()
    if method not in METHODS:
        raise w.error("method", f"request {name!r}: method {method!r} is not one of {', '.join(METHODS)}")
    values = _values(entry.get("values", {}), name, w)
    names = (*values, *RESERVED)
    replay = _str(entry, "replay", w, "")
    path = _path(entry.get("path", "/" if replay else ""), "path", w, names, name)
    headers = entry.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise w.error("headers", f"request {name!r}: headers must be a table of strings")
    for v in headers.values():
        _placeholders(v, names, w, "headers", name)
    body = entry.get("body")
    if body is not None:
        if not isinstance(body, str):
            raise w.error("body", f"request {name!r}: body must be a string template")
        _placeholders(body, names, w, "body", name)
    status = entry.get("status", 200)
    if not isinstance(status, int) or isinstance(status, bool) or not 100 <= status <= 599:
        raise w.error("status", f"request {name!r}: status must be an HTTP status code")
    weight = entry.get("weight", 1)
    if not isinstance(weight, int) or isinstance(weight, bool) or weight < 0:
        raise w.error("weight", f"request {name!r}: weight must be an integer >= 0")
    echo = _jq_table(entry.get("echo", {}), "echo", w, name)
    for value in echo:
        if value not in names:
            raise w.error("echo", f"request {name!r}: echo names {value!r}, which is not one of its values "
                                  f"({', '.join(names)})")
    save = _jq_table(entry.get("save", {}), "save", w, name)
    write = None
    if "write" in entry:
        wr = entry["write"]
        if not isinstance(wr, dict) or "id" not in wr or set(wr) - {"id", "value", "readback"}:
            raise w.error("write", f"request {name!r}: write is {{ id = JQ, value = NAME, readback = JQ }}")
        value = wr.get("value", "")
        if value and value not in names:
            raise w.error("write", f"request {name!r}: write value {value!r} is not one of its values")
        if bool(value) != bool(wr.get("readback")):
            raise w.error("write", f"request {name!r}: write value and readback go together")
        write = Write(_jq(wr["id"], "write", w), value, _jq(wr["readback"], "write", w) if value else "")
    role = _str(entry, "money", w, "")
    if role and role not in MONEY_ROLES:
        raise w.error("money", f"request {name!r}: money must be one of {', '.join(MONEY_ROLES)}")
    if role:
        if money is None:
            raise w.error("money", f"request {name!r}: money = {role!r} needs a [money] section")
        if "account" not in values or values["account"].kind != "account":
            raise w.error("money", f"request {name!r}: a money request takes its account from "
                                   "values = {{ account = \"account\" }}")
        if role in ("credit", "debit") and ("amount" not in echo or not entry.get("idempotent")):
            raise w.error("money", f"request {name!r}: a {role} must be idempotent and echo its amount "
                                   "(echo = { amount = JQ })")
    idempotent = entry.get("idempotent", False)
    auth = entry.get("auth", True)
    if not isinstance(idempotent, bool) or not isinstance(auth, bool):
        raise w.error("idempotent" if not isinstance(idempotent, bool) else "auth",
                      f"request {name!r}: idempotent and auth are true or false")
    kind = _str(entry, "kind", w, role or name)
    return RequestSpec(name=name, kind=kind, method=method, path=path,
                       route=_str(entry, "route", w, path), weight=weight, status=status,
                       values=values, headers=headers, body=body, idempotent=idempotent,
                       jq=_jq_list(entry.get("jq", []), "jq", w), echo=echo, write=write, save=save,
                       replay=replay, money=role, auth=auth)


LABEL_KEY = re.compile(r"^([a-z0-9]([-a-z0-9.]{0,251}[a-z0-9])?/)?[A-Za-z0-9]([-A-Za-z0-9_.]{0,61}[A-Za-z0-9])?$")
DNS_NAME = re.compile(r"^[a-z]([-a-z0-9]{0,61}[a-z0-9])?$")


def _kubernetes(sec: dict, where: "_Where", source: str) -> dict[str, str]:
    """The [kubernetes] section as Profile fields; the manifests' folder resolved against the
    profile's own (so the profile works from any working directory)."""
    out = {"kube_manifests": "", "kube_service": _str(sec, "service", where, ""),
           "color_label": _str(sec, "color_label", where, "version"),
           "kube_container": _str(sec, "container", where, "")}
    manifests = _str(sec, "manifests", where, "")
    if manifests:
        base = Path(source).resolve().parent if source else Path.cwd()
        out["kube_manifests"] = str((base / manifests).resolve())
    if not LABEL_KEY.match(out["color_label"]):
        raise where.error("color_label", f"[kubernetes] color_label {out['color_label']!r} is not a "
                                         "Kubernetes label key")
    for key in ("service", "container"):
        if sec.get(key) is not None and not DNS_NAME.match(sec[key]):
            raise where.error(key, f"[kubernetes] {key} {sec[key]!r} is not a Kubernetes name "
                                   "(lowercase letters, digits and '-')")
    return out


def _list(data: dict, name: str, where: "_Where") -> list:
    entries = data.get(name, [])
    if not isinstance(entries, list) or not all(isinstance(e, dict) for e in entries):
        raise where.error(name, f"[[{name}]] must be tables")
    return entries


def _invalid(entry: dict, i: int, where: "_Where") -> Invalid:
    name = entry.get("name")
    if not isinstance(name, str) or not name.strip():
        raise where.error("invalid", f"[[invalid]] #{i} needs a name")
    unknown = set(entry) - _INVALID_KEYS
    if unknown:
        raise where.error(sorted(unknown)[0], f"[[invalid]] {name!r}: unknown key {sorted(unknown)[0]!r}; "
                                              f"allowed: {', '.join(sorted(_INVALID_KEYS))}")
    method = _str(entry, "method", where, "POST").upper()
    if method not in METHODS:
        raise where.error("method", f"[[invalid]] {name!r}: method {method!r} is not one of {', '.join(METHODS)}")
    status = entry.get("status", [])
    status = [status] if isinstance(status, int) else status
    if not isinstance(status, list) or not all(isinstance(x, int) and 400 <= x <= 499 for x in status):
        raise where.error("status", f"[[invalid]] {name!r}: status is a 4xx code or a list of them")
    headers = entry.get("headers", {})
    if not isinstance(headers, dict) or not all(isinstance(v, str) for v in headers.values()):
        raise where.error("headers", f"[[invalid]] {name!r}: headers must be a table of strings")
    body = entry.get("body")
    if body is not None and not isinstance(body, str):
        raise where.error("body", f"[[invalid]] {name!r}: body is the raw text to send")
    auth = entry.get("auth", True)
    if not isinstance(auth, bool):
        raise where.error("auth", f"[[invalid]] {name!r}: auth is true or false")
    return Invalid(name, method, _path(entry.get("path", ""), "path", where, ()), body, headers,
                   tuple(status), _jq_list(entry.get("jq", []), "jq", where), auth)


def _cross_check(requests: list[RequestSpec], readback: Readback | None, money: Money | None,
                 where: "_Where") -> None:
    by_name: dict[str, RequestSpec] = {}
    for r in requests:
        if r.name in by_name:
            raise where.at_request(r.name).error("name", f"request {r.name!r} is defined twice")
        by_name[r.name] = r
    saved = {k for r in requests for k in r.save}
    for r in requests:
        w = where.at_request(r.name)
        if r.replay and r.replay not in by_name:
            raise w.error("replay", f"request {r.name!r}: replay names {r.replay!r}, which is not a request")
        if r.replay and not by_name[r.replay].idempotent:
            raise w.error("replay", f"request {r.name!r}: replays {r.replay!r}, which is not idempotent "
                                    "(a replay without a key would be a second write, not a replay)")
        for gen in r.values.values():
            if gen.kind == "saved" and gen.args[0] not in saved:
                raise w.error("values", f"request {r.name!r}: 'saved {gen.args[0]}' is saved by no request "
                                        "(save = {{ NAME = JQ }})")
            if gen.kind == "account" and money is None:
                raise w.error("values", f"request {r.name!r}: 'account' needs a [money] section with accounts")
        if r.write is not None and readback is None:
            raise w.error("write", f"request {r.name!r} is a write, but there is no [readback]: the data "
                                   "check must be able to look it up again")
        if r.write is not None and r.idempotent and readback is not None and not readback.by_key:
            raise w.error("write", f"request {r.name!r} is an idempotent write, but [readback] has no "
                                   "by_key: a key the service cannot look up would pass unchecked")
    shown = {r.write.readback_jq for r in requests if r.write is not None and r.write.readback_jq}
    if len(shown) > 1:
        raise where.error("write", "every write is read back through the one [readback] path: their "
                                   f"readback jq must be the same, got {', '.join(sorted(shown))}")
    if money is not None and not any(r.money == "balance" for r in requests):
        raise ProfileError(f"{where.file}: [money] needs a request with money = \"balance\"")


def _values(raw: Any, name: str, w: "_Where") -> dict[str, Gen]:
    if not isinstance(raw, dict):
        raise w.error("values", f"request {name!r}: values must be a table of generators")
    out: dict[str, Gen] = {}
    for key, spec in raw.items():
        if key in RESERVED:
            raise w.error("values", f"request {name!r}: {{{key}}} is reserved (the idempotency key)")
        words = spec.split() if isinstance(spec, str) else []
        kind, args = (words[0], tuple(words[1:])) if words else ("", ())
        if kind not in GENERATORS:
            raise w.error(key, f"request {name!r}: value {key!r} = {spec!r}: the generator is one of "
                               f"{', '.join(GENERATORS)}")
        try:
            if kind == "int" or kind == "money":
                lo, hi = (int(args[0]), int(args[1])) if kind == "int" else (Decimal(args[0]), Decimal(args[1]))
                if len(args) != 2 or lo > hi or (kind == "money" and lo < 0):
                    raise ValueError
            elif kind in ("pick", "saved") and not args or kind == "text" and not (len(args) == 1 and 0 < int(args[0]) <= 50):
                raise ValueError
            elif kind in ("uuid", "account") and args or kind == "saved" and len(args) != 1:
                raise ValueError
        except (ValueError, IndexError, InvalidOperation):
            raise w.error(key, f"request {name!r}: value {key!r} = {spec!r} is not a valid {kind} "
                               "generator") from None
        out[key] = Gen(kind, args)
    return out


def _section(data: dict, name: str, where: "_Where") -> dict:
    sec = data.get(name, {})
    if not isinstance(sec, dict):
        raise where.error(name, f"[{name}] must be a table")
    unknown = set(sec) - _SECTIONS[name]
    if unknown:
        key = sorted(unknown)[0]
        raise where.error(key, f"[{name}] has an unknown key {key!r}; allowed: {', '.join(sorted(_SECTIONS[name]))}")
    return sec


def _str(table: dict, key: str, where: "_Where", default: str) -> str:
    value = table.get(key, default)
    if not isinstance(value, str):
        raise where.error(key, f"{key} must be a string")
    return value


def _path(value: Any, key: str, where: "_Where", names: tuple[str, ...], request: str = "") -> str:
    if not isinstance(value, str) or not value.startswith("/"):
        raise where.error(key, f"{key} must be a path starting with /, got {value!r}")
    _placeholders(value, names, where, key, request)
    return value


def _placeholders(template: str, names: tuple[str, ...], where: "_Where", key: str, request: str) -> None:
    for m in PLACEHOLDER.finditer(template):
        if m.group(1) not in names:
            whose = f"request {request!r}: " if request else ""
            raise where.error(key, f"{whose}{key} uses the placeholder {{{m.group(1)}}}, which does not exist; "
                                   f"known: {', '.join('{' + n + '}' for n in names) or 'none'}")


@lru_cache(maxsize=256)
def compile_jq(expression: str) -> Any:
    """A compiled jq program (cached); ValueError with one line for a bad expression."""
    try:
        return jq.compile(expression)
    except ValueError as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else "syntax error"
        raise ValueError(f"bad jq expression {expression!r}: {first}") from None


def _jq(expr: Any, key: str, where: "_Where") -> str:
    if not isinstance(expr, str) or not expr.strip():
        raise where.error(key, f"{key} must be a jq expression")
    try:
        compile_jq(expr)
    except ValueError as exc:
        raise where.error(key, f"{key}: {exc}") from None
    return expr


def _jq_list(raw: Any, key: str, where: "_Where") -> tuple[str, ...]:
    if isinstance(raw, str):
        raw = [raw]
    if not isinstance(raw, list):
        raise where.error(key, f"{key} must be a list of jq expressions")
    return tuple(_jq(e, key, where) for e in raw)


def _jq_table(raw: Any, key: str, where: "_Where", name: str) -> dict[str, str]:
    if not isinstance(raw, dict):
        raise where.error(key, f"request {name!r}: {key} must be a table of NAME = JQ")
    return {k: _jq(v, key, where) for k, v in raw.items()}


class _Where:
    """Finds the line a problem is on (tomllib gives no positions): the first line, from the
    current [[request]] on, that sets the key."""

    def __init__(self, text: str, file: str, start: int = 0) -> None:
        self.text, self.file, self.start = text, file, start
        self.lines = text.splitlines()

    def at_request(self, name: str) -> "_Where":
        pattern = re.compile(r"^\s*name\s*=\s*[\"']" + re.escape(name) + r"[\"']")
        for i, line in enumerate(self.lines):
            if pattern.match(line):
                return _Where(self.text, self.file, i)
        return self

    def line_of(self, key: str, nth: int = 0) -> int | None:
        pattern = re.compile(r"^\s*(\[\[?\s*)?[\"']?" + re.escape(key) + r"\b")
        inline = re.compile(r"[{,]\s*[\"']?" + re.escape(key) + r"[\"']?\s*=")
        if nth:
            seen = 0
            for i, line in enumerate(self.lines):
                if line.strip().startswith("[[request]]"):
                    seen += 1
                    if seen == nth:
                        return i + 1
        for i in range(self.start, len(self.lines)):
            if pattern.match(self.lines[i]) or inline.search(self.lines[i]):
                return i + 1
        return None

    def error(self, key: str, message: str, nth: int = 0) -> ProfileError:
        line = self.line_of(key, nth)
        return ProfileError(f"{self.file}{f':{line}' if line else ''}: {message}")


def sample_values(spec: RequestSpec, accounts: tuple[str, ...] = ("account",)) -> dict[str, str]:
    """Values for a dry render (profile checks, documentation): saved values are placeholders."""
    rng = random.Random(0)
    out = {}
    for k, g in spec.values.items():
        out[k] = g.make(rng, accounts or ("account",), {}) if g.kind != "saved" else "saved-" + k
    out["key"] = "key-" + "".join(rng.choice(string.ascii_lowercase) for _ in range(8))
    return out


def check_bodies(profile: Profile) -> None:
    """Every JSON body template renders to valid JSON (a typo found before the run, not as
    thousands of 4xx answers)."""
    where = _Where(profile.text, profile.source or "profile")
    for r in profile.requests:
        if r.body is None:
            continue
        ctype = next((v for k, v in r.headers.items() if k.lower() == "content-type"), "")
        if "json" not in ctype:
            continue
        rendered = render(r.body, sample_values(r, profile.money_accounts))
        try:
            json.loads(rendered)
        except ValueError as exc:
            raise where.at_request(r.name).error("body", f"request {r.name!r}: the body is not JSON once "
                                                         f"filled ({exc}): {rendered[:120]}") from None
