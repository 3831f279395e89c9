"""The smoke and post-deploy checks, in the words of a service profile (profiles/profile.py):
the seed's smoke-tests.sh and post-deployment-tests.py, for any service the profile describes.
For the payment-service profile these are the seed's checks exactly (health, readiness with the
database, a pending payment, the payment flow to "completed", 50 balance reads, a credit that
moves the balance exactly, the invalid payment); for another service, the same questions about
its own requests.

Each raises ``ExpectationFailed`` with one readable message, or returns quietly. A check the
profile gives no material for raises ``NotApplicable`` (the suites deselect it up front and say
so; see ``applicable``), never passes without looking.
"""
from __future__ import annotations

import random
from decimal import Decimal
from typing import Callable

import allure

from zerodrop.checks.api import Api
from zerodrop.checks.burst import BurstResult, burst
from zerodrop.checks.expect import ExpectationFailed, body_of, excerpt, expect_jq, expect_status, jq_all
from zerodrop.checks.seed import poll
from zerodrop.checks.steps import call
from zerodrop.profiles.profile import (Invalid, Profile, Rendered, RequestSpec, plain_json, render,
                                        render_request, same_value)


class NotApplicable(Exception):
    """The profile describes nothing this check could look at."""


def applicable(profile: Profile) -> dict[str, str]:
    """check name -> why it cannot run for this profile (absent: it can)."""
    out = {}
    if _first_write(profile) is None:
        out["write_flow"] = "the profile has no write request (write = {...})"
        out["basic_write"] = out["write_flow"]
    if _concurrent(profile) is None:
        out["concurrent"] = "the profile has no GET request the load sends"
    if _credit(profile) is None:
        out["money"] = "the profile has no [money] section with a credit request and a check_account"
    if not profile.invalid:
        out["invalid"] = "the profile lists no [[invalid]] requests"
    if not profile.is_default:
        out["fault_api"] = ("a canary is broken on purpose through the reference payment-service's "
                            "fault API, which this service does not have")
    if not profile.is_default:
        out["release_migration"] = ("the migration-safety proof applies the reference "
                                    "payment-service's release migrations (MIGRATE_RELEASE), "
                                    "which this service does not have")
    if profile.auth != "bearer" or _first_write(profile, authenticated=True) is None:
        out["token"] = "the profile's service takes no token (auth = \"none\") or has no authenticated write"
    return out


def _rng() -> random.Random:
    return random.Random()


def send(api: Api, profile: Profile, r: Rendered, *, auth: bool | None = None,
         headers: dict[str, str] | None = None, title: str | None = None):
    use_auth = (r.spec.auth and profile.auth == "bearer") if auth is None else auth
    return call(api, r.method, r.path, raw=r.body.decode() if r.body else None, auth=use_auth,
                headers={**r.headers, **(headers or {})}, title=title or f"{r.spec.name}: {r.method} {r.path}")


def check_answer(resp, profile: Profile, r: Rendered, jq_first: bool = False) -> None:
    """The spec's own expectations: the status, every jq, every echoed value (exactly).
    ``jq_first``: the jq before the status, as the seed's smoke-tests.sh reads the body with
    `jq -e` whatever the status (its post-deployment tests check the status first)."""
    if not jq_first:
        expect_status(resp, r.spec.status)
    for expr in r.spec.jq:
        expect_jq(resp, expr)
    expect_status(resp, r.spec.status)
    for vname, expr in r.spec.echo.items():
        seen = _first(expr, resp)
        if not same_value(seen, r.values[vname]):
            raise ExpectationFailed(f"{r.spec.name}: {expr} is {seen!r}, sent {vname} "
                                    f"{r.values[vname]}; {excerpt(resp)}")


def _plain(resp):
    """The JSON body for jq, numbers with a fraction kept as their exact text."""
    body_of(resp)  # a body that is not JSON fails here, with an excerpt
    return plain_json(resp.content)


def _first(expr: str, resp):
    out = jq_all(expr, _plain(resp))
    return out[0] if out else None


def _holds(expr: str, resp) -> bool:
    out = jq_all(expr, _plain(resp))
    return bool(out) and out[0] is not None and out[0] is not False


# ---- smoke -------------------------------------------------------------------------------------
def check_health(api: Api, profile: Profile) -> None:
    """The health path answers 2xx (the seed's `curl -f`)."""
    resp = call(api, "GET", profile.health, auth=False)
    if not 200 <= resp.status_code < 300:
        raise ExpectationFailed(f"health check failed: HTTP {resp.status_code}: {resp.text[:200]}")


def check_readiness(api: Api, profile: Profile) -> None:
    """The readiness path answers 2xx, and every ``ready_jq`` holds (the payment-service's:
    `.status == "healthy"` and the database healthy)."""
    resp = call(api, "GET", profile.readiness, auth=False)
    for expr in profile.ready_jq:
        expect_jq(resp, expr)
    if not 200 <= resp.status_code < 300:
        raise ExpectationFailed(f"readiness answered HTTP {resp.status_code}; {excerpt(resp)}")


def check_basic_write(api: Api, profile: Profile) -> Rendered:
    """The profile's first write is accepted as the profile says (a pending payment)."""
    spec = _first_write(profile)
    if spec is None:
        raise NotApplicable(applicable(profile)["basic_write"])
    r = _render(profile, spec)
    resp = send(api, profile, r)
    check_answer(resp, profile, r, jq_first=True)
    return r


def smoke_checks(profile: Profile) -> tuple[Callable[[Api], None], ...]:
    """The smoke checks a scenario runs against a colour before it gets traffic."""
    def health(api: Api) -> None:
        check_health(api, profile)

    def readiness(api: Api) -> None:
        check_readiness(api, profile)

    def basic_write(api: Api) -> None:
        check_basic_write(api, profile)

    out = [health, readiness]
    if _first_write(profile) is not None:
        out.append(basic_write)
    return tuple(out)


# ---- post-deploy -------------------------------------------------------------------------------
def check_write_flow(api: Api, profile: Profile, timeout: float = 60.0) -> str:
    """A write, then its read-back shows exactly what was written; with a [post_deploy] flow,
    polled until final and required successful (the seed's payment to "completed").
    Returns the write's id."""
    spec = _first_write(profile)
    if spec is None:
        raise NotApplicable(applicable(profile)["write_flow"])
    r = _render(profile, spec)
    resp = send(api, profile, r)
    check_answer(resp, profile, r)
    ident = _first(spec.write.id_jq, resp)
    if ident in (None, ""):
        raise ExpectationFailed(f"{spec.name}: the answer has no id at {spec.write.id_jq}; {excerpt(resp)}")
    ident = str(ident)
    rb = profile.readback
    back = call(api, "GET", render(rb.path, {"id": ident}), auth=profile.auth == "bearer",
                title=f"read back {ident}")
    expect_status(back, 200)
    if spec.write.value:
        seen = _first(spec.write.readback_jq, back)
        if not same_value(seen, r.values[spec.write.value]):
            raise ExpectationFailed(f"{spec.name} {ident}: read back {spec.write.readback_jq} = {seen!r}, "
                                    f"written {r.values[spec.write.value]}; {excerpt(back)}")
    if profile.flow is None:
        return ident
    flow, last = profile.flow, {}

    def final_state() -> bool | None:
        got = call(api, "GET", render(flow.poll, {"id": ident}), auth=profile.auth == "bearer",
                   title=f"poll {ident}")
        expect_status(got, 200)
        last["resp"] = got
        return True if _holds(flow.final, got) else None

    with allure.step(f"poll until final (deadline {timeout:g} s)"):
        done = poll(timeout, 0.25, final_state)
    seen = last["resp"].text[:300] if "resp" in last else "nothing"
    if done is None:
        raise ExpectationFailed(f"{spec.name} {ident} did not reach a final state ({flow.final}) within "
                                f"{timeout:g} s; last seen: {seen}")
    if not _holds(flow.success, last["resp"]):
        raise ExpectationFailed(f"{spec.name} {ident} ended unsuccessfully ({flow.success} does not hold): {seen}")
    return ident


def concurrent_reads(api: Api, profile: Profile, requests_n: int, workers: int) -> BurstResult:
    """The seed's 50 balance reads over 10 workers: ``requests_n`` of the profile's
    concurrency request (``[post_deploy] concurrent``, or its first GET)."""
    spec = _concurrent(profile)
    if spec is None:
        raise NotApplicable(applicable(profile)["concurrent"])
    rendered = [_render(profile, spec) for _ in range(requests_n)]
    auth = spec.auth and profile.auth == "bearer"
    with allure.step(f"{requests_n} x {spec.name} over {workers} workers"):
        result = burst(lambda i: api.request(rendered[i].method, rendered[i].path, auth=auth,
                                             headers=rendered[i].headers), requests_n, workers)
        allure.attach(result.describe(), "concurrency result", allure.attachment_type.TEXT)
    return result


def balance(api: Api, profile: Profile, account: str) -> Decimal:
    m = profile.money
    resp = call(api, "GET", render(m.balance_path, {"account": account}), auth=profile.auth == "bearer")
    expect_status(resp, 200)
    value = _first(m.balance_jq, resp)
    try:
        if isinstance(value, bool) or value is None:
            raise ValueError
        return Decimal(str(value))
    except (ValueError, ArithmeticError):
        raise ExpectationFailed(f"balance of {account} at {m.balance_jq} is not a decimal: {excerpt(resp)}") from None


def check_data_consistency(api: Api, profile: Profile) -> None:
    """A credit moves the balance by exactly its amount, no more, no less."""
    spec = _credit(profile)
    if spec is None:
        raise NotApplicable(applicable(profile)["money"])
    r = _render(profile, spec)
    account, amount = profile.money.check_account, Decimal(r.values["amount"])
    r.values["account"] = account  # never a load account: the money check of a proof counts those
    r.body = render(spec.body, r.values).encode() if spec.body is not None else b""
    r.path = render(spec.path, r.values)
    initial = balance(api, profile, account)
    resp = send(api, profile, r)
    check_answer(resp, profile, r)
    expected = initial + amount
    seen: list[Decimal] = []

    def settled() -> bool | None:
        seen.append(balance(api, profile, account))
        return True if seen[-1] == expected else None

    with allure.step(f"balance of {account} reaches exactly {expected}"):
        ok = poll(5.0, 0.2, settled)
    if not ok:
        raise ExpectationFailed(
            f"balance inconsistency on {account}: expected exactly {expected} "
            f"({initial} + {amount}), got {seen[-1]} (off by {seen[-1] - expected})")


def check_invalid(api: Api, profile: Profile, inv: Invalid) -> None:
    """Bad input is the client's fault: the listed 4xx (any 4xx when none is listed), never a
    5xx, and the answer's jq holds."""
    resp = call(api, inv.method, inv.path, raw=inv.body, auth=inv.auth and profile.auth == "bearer",
                headers=dict(inv.headers), title=f"{inv.name}: {inv.method} {inv.path}")
    if inv.status:
        expect_status(resp, *inv.status)
    elif not 400 <= resp.status_code < 500:
        raise ExpectationFailed(f"{inv.name}: expected a 4xx answer, got HTTP {resp.status_code}: "
                                f"{resp.text[:200]}")
    for expr in inv.jq:
        expect_jq(resp, expr)


def check_requires_token(api: Api, profile: Profile, header: str | None) -> None:
    """The profile's first authenticated write, without the right bearer token, is refused
    with 401 (or 403)."""
    spec = _first_write(profile, authenticated=True)
    if spec is None or profile.auth != "bearer":
        raise NotApplicable(applicable(profile)["token"])
    r = _render(profile, spec)
    headers = {"Authorization": header} if header else None
    resp = send(api, profile, r, auth=header is not None, headers=headers,
                title=f"{spec.name} with {'a wrong' if header else 'no'} token")
    expect_status(resp, 401, 403)


# ---- which requests -----------------------------------------------------------------------------
def _render(profile: Profile, spec: RequestSpec) -> Rendered:
    r = render_request(profile, spec, _rng())
    if r is None:
        raise NotApplicable(f"request {spec.name} needs a saved value; the checks send no request that saves it")
    return r


def _first_write(profile: Profile, authenticated: bool = False) -> RequestSpec | None:
    writes = [r for r in profile.requests if r.write is not None and not r.replay
              and not any(g.kind == "saved" for g in r.values.values())]
    if authenticated:
        writes = [r for r in writes if r.auth]
    return writes[0] if writes else None


def _concurrent(profile: Profile) -> RequestSpec | None:
    if profile.concurrent:
        return profile.request(profile.concurrent)
    reads = [r for r in profile.requests if r.method == "GET" and r.weight > 0 and not r.replay
             and not any(g.kind == "saved" for g in r.values.values())]
    return reads[0] if reads else None


def _credit(profile: Profile) -> RequestSpec | None:
    if profile.money is None or not profile.money.check_account:
        return None
    return next((r for r in profile.requests if r.money == "credit"), None)
