"""The seed's post-deployment-tests.py, ported to pytest.

Fixed from the seed: balances are compared exactly (Decimal; the seed used floats and a 0.01
tolerance), waits poll a condition with a deadline instead of sleeping a fixed 5 s, a
connection error during the concurrency test is counted as a failure instead of crashing it,
and the credit carries an Idempotency-Key so a retried run cannot credit twice.
"""
from __future__ import annotations

import time
import uuid
from decimal import Decimal

import allure
import pytest

from suites.expect import (ExpectationFailed, body_of, exact_number, expect_jq, expect_status,
                           jq_value)
from suites.load import burst
from suites.steps import call

pytestmark = pytest.mark.post_deploy


def _poll(deadline_s: float, interval: float, fn):
    """Call ``fn`` until it returns something other than None, or the deadline passes."""
    deadline = time.monotonic() + deadline_s
    while True:
        value = fn()
        if value is not None:
            return value
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


@allure.epic("zerodrop")
@allure.feature("post-deploy")
@allure.story("end-to-end payment flow")
@allure.severity(allure.severity_level.BLOCKER)
def test_end_to_end_payment_flow(api, zd_settings):
    """Create a payment, poll it to a final state, require 'completed'."""
    payment = {"amount": Decimal("150.00"), "currency": "EUR", "from_account": "acc-001",
               "to_account": "acc-002", "description": "Test payment"}
    resp = call(api, "POST", "/api/payments", body=payment,
                headers={"Idempotency-Key": f"zd-e2e-{uuid.uuid4()}"})
    expect_status(resp, 201)
    created = body_of(resp)
    payment_id = jq_value(".id", created)
    if not payment_id:
        raise ExpectationFailed(f"payment response has no id: {resp.text[:300]}")
    amount = exact_number(resp, "amount")
    if amount is not None and amount != Decimal("150.00"):
        raise ExpectationFailed(f"payment amount came back as {amount}, sent 150.00")

    last: dict = {}

    def final_state():
        r = call(api, "GET", f"/api/payments/{payment_id}", title=f"poll payment {payment_id}")
        expect_status(r, 200)
        last["body"] = body_of(r)
        status = jq_value(".status", last["body"])
        return status if status in ("completed", "failed") else None

    with allure.step(f"poll until final (deadline {zd_settings.payment_timeout:g} s)"):
        status = _poll(zd_settings.payment_timeout, 0.25, final_state)
    if status is None:
        raise ExpectationFailed(f"payment {payment_id} did not complete within "
                                f"{zd_settings.payment_timeout:g} s; last seen: {last.get('body')}")
    if status != "completed":
        raise ExpectationFailed(f"payment {payment_id} failed: {last.get('body')}")


@allure.epic("zerodrop")
@allure.feature("post-deploy")
@allure.story("concurrency")
@allure.severity(allure.severity_level.CRITICAL)
def test_concurrent_requests(api, zd_settings):
    """50 balance reads over 10 workers (the seed's test-account-0..9), success rate counted."""
    n, w = zd_settings.concurrent_requests, zd_settings.concurrent_workers
    with allure.step(f"{n} balance reads over {w} workers"):
        result = burst(lambda i: api.get(f"/api/accounts/balance/test-account-{i % 10}"), n, w)
        allure.attach(result.describe(), "concurrency result", allure.attachment_type.TEXT)
    assert result.success_rate >= zd_settings.min_success_rate, (
        f"concurrent request success rate {result.success_rate:.1f}% is below "
        f"{zd_settings.min_success_rate:g}%: {result.describe()}")


def _balance(api, account: str) -> Decimal:
    resp = call(api, "GET", f"/api/accounts/{account}/balance")
    expect_status(resp, 200)
    value = exact_number(resp, "balance")
    if value is None:
        raise ExpectationFailed(f"balance of {account} is missing: {resp.text[:200]}")
    return value


@allure.epic("zerodrop")
@allure.feature("post-deploy")
@allure.story("data consistency")
@allure.severity(allure.severity_level.BLOCKER)
def test_data_consistency(api):
    """A credit of 50.00 moves the balance by exactly 50.00, no more, no less."""
    account, credit = "acc-test-001", Decimal("50.00")
    initial = _balance(api, account)
    resp = call(api, "POST", "/api/transactions",
                body={"type": "credit", "amount": credit, "account_id": account,
                      "reference": "consistency-test"},
                headers={"Idempotency-Key": f"zd-credit-{uuid.uuid4()}"})
    expect_status(resp, 201)
    expected = initial + credit
    seen: list[Decimal] = []

    def settled():
        seen.append(_balance(api, account))
        return True if seen[-1] == expected else None

    with allure.step(f"balance of {account} reaches exactly {expected}"):
        ok = _poll(5.0, 0.2, settled)
    if not ok:
        raise ExpectationFailed(
            f"balance inconsistency on {account}: expected exactly {expected} "
            f"({initial} + {credit}), got {seen[-1]} (off by {seen[-1] - expected})")


INVALID_PAYMENT = {"amount": Decimal("-100.00"), "currency": "INVALID", "from_account": "",
                   "to_account": ""}


@allure.epic("zerodrop")
@allure.feature("post-deploy")
@allure.story("error handling")
@allure.severity(allure.severity_level.CRITICAL)
def test_error_handling(api):
    """The seed's invalid payment gets 400 with an 'errors' field."""
    resp = call(api, "POST", "/api/payments", body=INVALID_PAYMENT)
    expect_status(resp, 400)
    expect_jq(resp, 'has("errors")', show="keys")


BAD_INPUTS = {
    "malformed JSON": '{"amount": 10.00, "currency": "EUR",',
    "not an object": "[1, 2, 3]",
    "amount is a string": '{"amount": "ten", "currency": "EUR", "from_account": "acc-001", '
                          '"to_account": "acc-002"}',
    "zero amount": '{"amount": 0, "currency": "EUR", "from_account": "acc-001", '
                   '"to_account": "acc-002"}',
    "empty body": "",
}


@allure.epic("zerodrop")
@allure.feature("post-deploy")
@allure.story("error handling")
@allure.severity(allure.severity_level.CRITICAL)
@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_is_a_client_error(api, case):
    """Bad input is the client's fault: a 4xx answer, never a 5xx."""
    resp = call(api, "POST", "/api/payments", raw=BAD_INPUTS[case], title=f"POST {case}")
    if not 400 <= resp.status_code < 500:
        raise ExpectationFailed(f"{case}: expected a 4xx answer, got HTTP {resp.status_code}: "
                                f"{resp.text[:200]}")


@allure.epic("zerodrop")
@allure.feature("post-deploy")
@allure.story("authentication")
@allure.severity(allure.severity_level.CRITICAL)
@pytest.mark.parametrize("header", [None, "Bearer wrong-token"], ids=["missing", "wrong"])
def test_payments_require_the_token(api, header):
    """A payment without the right bearer token is refused with 401 (or 403)."""
    headers = {"Authorization": header} if header else None
    resp = call(api, "POST", "/api/payments", auth=header is not None, headers=headers,
                body={"amount": Decimal("1.00"), "currency": "EUR",
                      "from_account": "acc-001", "to_account": "acc-002"})
    expect_status(resp, 401, 403)
