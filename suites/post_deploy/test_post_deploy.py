"""The seed's post-deployment-tests.py, ported to pytest, in the words of the service profile
(the checks live in checks/service.py).

For the payment-service profile these are the seed's tests: a payment polled to "completed",
50 balance reads over 10 workers, a credit that moves a balance exactly, the invalid payment
refused with 400 and its errors, bad input refused as the client's fault, the token required.
Fixed from the seed: balances are compared exactly (Decimal; the seed used floats and a 0.01
tolerance), waits poll a condition with a deadline instead of sleeping a fixed 5 s, a
connection error during the concurrency test is counted as a failure instead of crashing it,
and every write carries an idempotency key so a retried run cannot credit twice.
"""
from __future__ import annotations

import allure
import pytest

from zerodrop.checks import service
from zerodrop.checks.steps import labels

pytestmark = pytest.mark.post_deploy
BLOCKER, CRITICAL = allure.severity_level.BLOCKER, allure.severity_level.CRITICAL


@labels("post-deploy", "end-to-end write flow", BLOCKER)
@pytest.mark.profile_needs("write_flow")
def test_end_to_end_write_flow(api, zd_settings, zd_profile):
    """A write, read back exactly; with the profile's flow, polled to its final state, which
    must be the successful one (a payment to 'completed')."""
    service.check_write_flow(api, zd_profile, zd_settings.payment_timeout)


@labels("post-deploy", "concurrency", CRITICAL)
@pytest.mark.profile_needs("concurrent")
def test_concurrent_requests(api, zd_settings, zd_profile):
    """50 reads over 10 workers (the seed's balance reads), success rate counted."""
    result = service.concurrent_reads(api, zd_profile, zd_settings.concurrent_requests,
                                      zd_settings.concurrent_workers)
    assert result.success_rate >= zd_settings.min_success_rate, (
        f"concurrent request success rate {result.success_rate:.1f}% is below "
        f"{zd_settings.min_success_rate:g}%: {result.describe()}")


@labels("post-deploy", "data consistency", BLOCKER)
@pytest.mark.profile_needs("money")
def test_data_consistency(api, zd_profile):
    """A credit moves the balance by exactly its amount, no more, no less."""
    service.check_data_consistency(api, zd_profile)


@labels("post-deploy", "error handling", CRITICAL)
@pytest.mark.profile_needs("invalid")
def test_error_handling(api, zd_profile, invalid):
    """Bad input is the client's fault: the 4xx the profile lists (any 4xx when it lists
    none), never a 5xx (the seed's invalid payment: 400 with an 'errors' field)."""
    service.check_invalid(api, zd_profile, invalid)


@labels("post-deploy", "authentication", CRITICAL)
@pytest.mark.profile_needs("token")
@pytest.mark.parametrize("header", [None, "Bearer wrong-token"], ids=["missing", "wrong"])
def test_writes_require_the_token(api, zd_profile, header):
    """A write without the right bearer token is refused with 401 (or 403)."""
    service.check_requires_token(api, zd_profile, header)
