"""The seed's smoke-tests.sh, ported: run against a colour before traffic reaches it
(``--preview green``) or against the Service.

Fixed from the seed: the brief load counts real answers (the seed read an `ab` latency
percentile as a success rate), and it no longer SKIPs when `ab` is missing.
"""
from __future__ import annotations

import allure
import pytest

from zerodrop.checks import seed as checks
from zerodrop.checks.steps import labels

pytestmark = pytest.mark.smoke


BLOCKER, CRITICAL = allure.severity_level.BLOCKER, allure.severity_level.CRITICAL


@labels("smoke", "health", BLOCKER)
def test_health(api):
    """Test 1: /health answers 2xx (the seed's `curl -f`)."""
    checks.check_health(api)


@labels("smoke", "readiness", BLOCKER)
def test_readiness(api):
    """Test 2: /health/ready says healthy (`jq -e '.status == "healthy"'`)."""
    checks.check_readiness(api)


@labels("smoke", "payments", BLOCKER)
def test_basic_payment(api):
    """Test 3: a payment is accepted and pending (`jq -e '.status == "pending"'`)."""
    checks.check_basic_payment(api)


@labels("smoke", "database", CRITICAL)
def test_database_connectivity(api):
    """Test 4: readiness reports the database healthy (`.components.database.status`)."""
    checks.check_database(api)


@labels("smoke", "brief load", CRITICAL)
def test_brief_load(api, zd_settings):
    """Test 5: a brief load (ab -n 100 -c 10 on /health) with a REAL success rate."""
    result = checks.brief_load(api, zd_settings.brief_load_requests,
                               zd_settings.brief_load_concurrency)
    assert result.success_rate >= zd_settings.min_success_rate, (
        f"brief load success rate {result.success_rate:.1f}% is below "
        f"{zd_settings.min_success_rate:g}%: {result.describe()}")
