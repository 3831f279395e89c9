"""The seed's checks as plain functions of an ``Api``: the pytest suites call them, and so do
the scenarios (smoke-test the idle colour before a switch, post-deploy checks after it).

Each raises ``ExpectationFailed`` with one readable message, or returns quietly.
Fixed from the seed: exact money (Decimal), polling with deadlines instead of fixed sleeps,
Idempotency-Keys on every write, and a real success rate for the brief load.
"""
from __future__ import annotations

import time
import uuid
from decimal import Decimal
from typing import Callable, TypeVar

import allure
import requests

from zerodrop.checks.api import Api
from zerodrop.checks.expect import (ExpectationFailed, body_of, exact_number, expect_jq, expect_status, jq_value)
from zerodrop.checks.burst import BurstResult, burst
from zerodrop.checks.steps import call

T = TypeVar("T")

SEED_PAYMENT = {"amount": Decimal("100.00"), "currency": "EUR",
                "from_account": "test-account-1", "to_account": "test-account-2"}
INVALID_PAYMENT = {"amount": Decimal("-100.00"), "currency": "INVALID", "from_account": "",
                   "to_account": ""}


def poll(deadline_s: float, interval: float, fn: Callable[[], T | None]) -> T | None:
    """Call ``fn`` until it returns something other than None, or the deadline passes."""
    deadline = time.monotonic() + deadline_s
    while True:
        value = fn()
        if value is not None:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


# ---- smoke-tests.sh -----------------------------------------------------------------------------
def check_health(api: Api) -> None:
    """/health answers 2xx (the seed's `curl -f`)."""
    resp = call(api, "GET", "/health", auth=False)
    if not 200 <= resp.status_code < 300:
        raise ExpectationFailed(f"health check failed: HTTP {resp.status_code}: {resp.text[:200]}")


def check_readiness(api: Api) -> None:
    """/health/ready says healthy (`jq -e '.status == "healthy"'`)."""
    resp = call(api, "GET", "/health/ready", auth=False)
    expect_jq(resp, '.status == "healthy"', show=".status")
    expect_status(resp, 200)


def check_basic_payment(api: Api) -> None:
    """A payment is accepted and pending (`jq -e '.status == "pending"'`)."""
    resp = call(api, "POST", "/api/payments", body=SEED_PAYMENT,
                headers={"Idempotency-Key": f"zd-smoke-{uuid.uuid4()}"})
    expect_jq(resp, '.status == "pending"', show=".status")
    expect_status(resp, 201, 200, 202)


def check_database(api: Api) -> None:
    """Readiness reports the database healthy (`.components.database.status`)."""
    resp = call(api, "GET", "/health/ready", auth=False)
    expect_jq(resp, '.components.database.status == "healthy"', show=".components.database")


def brief_load(api: Api, requests_n: int, concurrency: int) -> BurstResult:
    """ab -n 100 -c 10 on /health, counting answers (not latency percentiles)."""
    with allure.step(f"{requests_n} requests, concurrency {concurrency}, GET /health"):
        result = burst(lambda i: api.get("/health"), requests_n, concurrency)
        allure.attach(result.describe(), "brief load result", allure.attachment_type.TEXT)
    return result


SMOKE = (check_health, check_readiness, check_basic_payment, check_database)


# ---- post-deployment-tests.py -------------------------------------------------------------------
def check_payment_flow(api: Api, timeout: float = 60.0) -> str:
    """Create a payment, poll it to a final state, require 'completed'. Returns its id."""
    payment = {"amount": Decimal("150.00"), "currency": "EUR", "from_account": "acc-001",
               "to_account": "acc-002", "description": "Test payment"}
    resp = call(api, "POST", "/api/payments", body=payment,
                headers={"Idempotency-Key": f"zd-e2e-{uuid.uuid4()}"})
    expect_status(resp, 201)
    payment_id = jq_value(".id", body_of(resp))
    if not payment_id:
        raise ExpectationFailed(f"payment response has no id: {resp.text[:300]}")
    amount = exact_number(resp, "amount")
    if amount is not None and amount != Decimal("150.00"):
        raise ExpectationFailed(f"payment amount came back as {amount}, sent 150.00")
    last: dict = {}

    def final_state() -> str | None:
        r = call(api, "GET", f"/api/payments/{payment_id}", title=f"poll payment {payment_id}")
        expect_status(r, 200)
        last["body"] = body_of(r)
        status = jq_value(".status", last["body"])
        return status if status in ("completed", "failed") else None

    with allure.step(f"poll until final (deadline {timeout:g} s)"):
        status = poll(timeout, 0.25, final_state)
    if status is None:
        raise ExpectationFailed(f"payment {payment_id} did not complete within {timeout:g} s; "
                                f"last seen: {last.get('body')}")
    if status != "completed":
        raise ExpectationFailed(f"payment {payment_id} failed: {last.get('body')}")
    return payment_id


def concurrent_reads(api: Api, requests_n: int, workers: int) -> BurstResult:
    """The seed's 50 balance reads over 10 workers (test-account-0..9)."""
    with allure.step(f"{requests_n} balance reads over {workers} workers"):
        result = burst(lambda i: api.get(f"/api/accounts/balance/test-account-{i % 10}"),
                       requests_n, workers)
        allure.attach(result.describe(), "concurrency result", allure.attachment_type.TEXT)
    return result


def balance(api: Api, account: str) -> Decimal:
    resp = call(api, "GET", f"/api/accounts/{account}/balance")
    expect_status(resp, 200)
    value = exact_number(resp, "balance")
    if value is None:
        raise ExpectationFailed(f"balance of {account} is missing: {resp.text[:200]}")
    return value


def check_data_consistency(api: Api, account: str = "acc-test-001",
                           credit: Decimal = Decimal("50.00")) -> None:
    """A credit moves the balance by exactly the amount, no more, no less."""
    initial = balance(api, account)
    resp = call(api, "POST", "/api/transactions",
                body={"type": "credit", "amount": credit, "account_id": account,
                      "reference": "consistency-test"},
                headers={"Idempotency-Key": f"zd-credit-{uuid.uuid4()}"})
    expect_status(resp, 201)
    expected = initial + credit
    seen: list[Decimal] = []

    def settled() -> bool | None:
        seen.append(balance(api, account))
        return True if seen[-1] == expected else None

    with allure.step(f"balance of {account} reaches exactly {expected}"):
        ok = poll(5.0, 0.2, settled)
    if not ok:
        raise ExpectationFailed(
            f"balance inconsistency on {account}: expected exactly {expected} "
            f"({initial} + {credit}), got {seen[-1]} (off by {seen[-1] - expected})")


def check_error_handling(api: Api) -> None:
    """The seed's invalid payment gets 400 with an 'errors' field."""
    resp = call(api, "POST", "/api/payments", body=INVALID_PAYMENT)
    expect_status(resp, 400)
    expect_jq(resp, 'has("errors")', show="keys")


def run_checks(api: Api, checks) -> list[str]:
    """Run checks in order; the failures, one line each (for a scenario step)."""
    failures = []
    for check in checks:
        name = getattr(check, "__name__", "check")
        try:
            check(api)
        except ExpectationFailed as exc:
            failures.append(f"{name}: {exc}")
        except requests.RequestException as exc:
            failures.append(f"{name}: no answer from {api.base_url} ({type(exc).__name__})")
    return failures
