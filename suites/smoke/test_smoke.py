"""The seed's smoke-tests.sh, ported: run against a colour before traffic reaches it
(``--color green``) or against the Service.

Fixed from the seed: the brief load counts real answers (the seed read an `ab` latency
percentile as a success rate), and it no longer SKIPs when `ab` is missing.
"""
from __future__ import annotations

from decimal import Decimal

import allure
import pytest

from suites.expect import ExpectationFailed, expect_jq, expect_status
from suites.load import burst
from suites.steps import call

pytestmark = pytest.mark.smoke

SEED_PAYMENT = {
    "amount": Decimal("100.00"),  # exact on the wire: 100.00
    "currency": "EUR",
    "from_account": "test-account-1",
    "to_account": "test-account-2",
}


@allure.epic("zerodrop")
@allure.feature("smoke")
@allure.story("health")
@allure.severity(allure.severity_level.BLOCKER)
def test_health(api):
    """Test 1: /health answers 2xx (the seed's `curl -f`)."""
    resp = call(api, "GET", "/health", auth=False)
    if not 200 <= resp.status_code < 300:
        raise ExpectationFailed(f"health check failed: HTTP {resp.status_code}: {resp.text[:200]}")


@allure.epic("zerodrop")
@allure.feature("smoke")
@allure.story("readiness")
@allure.severity(allure.severity_level.BLOCKER)
def test_readiness(api):
    """Test 2: /health/ready says healthy (`jq -e '.status == "healthy"'`)."""
    resp = call(api, "GET", "/health/ready", auth=False)
    expect_jq(resp, '.status == "healthy"', show=".status")
    expect_status(resp, 200)


@allure.epic("zerodrop")
@allure.feature("smoke")
@allure.story("payments")
@allure.severity(allure.severity_level.BLOCKER)
def test_basic_payment(api):
    """Test 3: a payment is accepted and pending (`jq -e '.status == "pending"'`)."""
    resp = call(api, "POST", "/api/payments", body=SEED_PAYMENT)
    expect_jq(resp, '.status == "pending"', show=".status")
    expect_status(resp, 201, 200, 202)


@allure.epic("zerodrop")
@allure.feature("smoke")
@allure.story("database")
@allure.severity(allure.severity_level.CRITICAL)
def test_database_connectivity(api):
    """Test 4: readiness reports the database healthy (`.components.database.status`)."""
    resp = call(api, "GET", "/health/ready", auth=False)
    expect_jq(resp, '.components.database.status == "healthy"',
              show=".components.database")


@allure.epic("zerodrop")
@allure.feature("smoke")
@allure.story("brief load")
@allure.severity(allure.severity_level.CRITICAL)
def test_brief_load(api, zd_settings):
    """Test 5: a brief load (ab -n 100 -c 10 on /health) with a REAL success rate."""
    n, c = zd_settings.brief_load_requests, zd_settings.brief_load_concurrency
    with allure.step(f"{n} requests, concurrency {c}, GET /health"):
        result = burst(lambda i: api.get("/health"), n, c)
        allure.attach(result.describe(), "brief load result", allure.attachment_type.TEXT)
    assert result.success_rate >= zd_settings.min_success_rate, (
        f"brief load success rate {result.success_rate:.1f}% is below "
        f"{zd_settings.min_success_rate:g}%: {result.describe()}")
