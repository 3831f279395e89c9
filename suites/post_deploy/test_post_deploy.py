"""The seed's post-deployment-tests.py, ported to pytest (the checks live in suites/checks.py).

Fixed from the seed: balances are compared exactly (Decimal; the seed used floats and a 0.01
tolerance), waits poll a condition with a deadline instead of sleeping a fixed 5 s, a
connection error during the concurrency test is counted as a failure instead of crashing it,
and every write carries an Idempotency-Key so a retried run cannot credit twice.
"""
from __future__ import annotations

from decimal import Decimal

import allure
import pytest

from zerodrop.checks import seed as checks
from zerodrop.checks.expect import ExpectationFailed, expect_status
from zerodrop.checks.steps import call, labels

pytestmark = pytest.mark.post_deploy
BLOCKER, CRITICAL = allure.severity_level.BLOCKER, allure.severity_level.CRITICAL


@labels("post-deploy", "end-to-end payment flow", BLOCKER)
def test_end_to_end_payment_flow(api, zd_settings):
    """Create a payment, poll it to a final state, require 'completed'."""
    checks.check_payment_flow(api, zd_settings.payment_timeout)


@labels("post-deploy", "concurrency", CRITICAL)
def test_concurrent_requests(api, zd_settings):
    """50 balance reads over 10 workers (the seed's test-account-0..9), success rate counted."""
    result = checks.concurrent_reads(api, zd_settings.concurrent_requests,
                                     zd_settings.concurrent_workers)
    assert result.success_rate >= zd_settings.min_success_rate, (
        f"concurrent request success rate {result.success_rate:.1f}% is below "
        f"{zd_settings.min_success_rate:g}%: {result.describe()}")


@labels("post-deploy", "data consistency", BLOCKER)
def test_data_consistency(api):
    """A credit of 50.00 moves the balance by exactly 50.00, no more, no less."""
    checks.check_data_consistency(api)


@labels("post-deploy", "error handling", CRITICAL)
def test_error_handling(api):
    """The seed's invalid payment gets 400 with an 'errors' field."""
    checks.check_error_handling(api)


BAD_INPUTS = {
    "malformed JSON": '{"amount": 10.00, "currency": "EUR",',
    "not an object": "[1, 2, 3]",
    "amount is a string": '{"amount": "ten", "currency": "EUR", "from_account": "acc-001", '
                          '"to_account": "acc-002"}',
    "zero amount": '{"amount": 0, "currency": "EUR", "from_account": "acc-001", '
                   '"to_account": "acc-002"}',
    "empty body": "",
}


@labels("post-deploy", "error handling", CRITICAL)
@pytest.mark.parametrize("case", list(BAD_INPUTS), ids=list(BAD_INPUTS))
def test_bad_input_is_a_client_error(api, case):
    """Bad input is the client's fault: a 4xx answer, never a 5xx."""
    resp = call(api, "POST", "/api/payments", raw=BAD_INPUTS[case], title=f"POST {case}")
    if not 400 <= resp.status_code < 500:
        raise ExpectationFailed(f"{case}: expected a 4xx answer, got HTTP {resp.status_code}: "
                                f"{resp.text[:200]}")


@labels("post-deploy", "authentication", CRITICAL)
@pytest.mark.parametrize("header", [None, "Bearer wrong-token"], ids=["missing", "wrong"])
def test_payments_require_the_token(api, header):
    """A payment without the right bearer token is refused with 401 (or 403)."""
    headers = {"Authorization": header} if header else None
    resp = call(api, "POST", "/api/payments", auth=header is not None, headers=headers,
                body={"amount": Decimal("1.00"), "currency": "EUR",
                      "from_account": "acc-001", "to_account": "acc-002"})
    expect_status(resp, 401, 403)
