"""The seed's smoke-tests.sh, ported, in the words of the service profile (``--profile``): run
against a colour before traffic reaches it (``--preview green``) or against the Service.

For the payment-service profile these are the seed's tests: /health, readiness healthy with
the database healthy (the seed's tests 2 and 4), a payment accepted as pending, a brief load.
Fixed from the seed: the brief load counts real answers (the seed read an `ab` latency
percentile as a success rate), and it no longer SKIPs when `ab` is missing.
"""
from __future__ import annotations

import allure
import pytest

from zerodrop.checks import seed, service
from zerodrop.checks.steps import labels

pytestmark = pytest.mark.smoke


BLOCKER, CRITICAL = allure.severity_level.BLOCKER, allure.severity_level.CRITICAL


@labels("smoke", "health", BLOCKER)
def test_health(api, zd_profile):
    """Test 1: the health path answers 2xx (the seed's `curl -f`)."""
    service.check_health(api, zd_profile)


@labels("smoke", "readiness", BLOCKER)
def test_readiness(api, zd_profile):
    """Tests 2 and 4: the readiness path answers 2xx and every ``ready_jq`` of the profile
    holds (`jq -e '.status == "healthy"'`, and `.components.database.status`)."""
    service.check_readiness(api, zd_profile)


@labels("smoke", "write", BLOCKER)
@pytest.mark.profile_needs("basic_write")
def test_basic_write(api, zd_profile):
    """Test 3: the profile's first write is accepted as it says (a payment is pending:
    `jq -e '.status == "pending"'`), and echoes what was sent."""
    service.check_basic_write(api, zd_profile)


@labels("smoke", "brief load", CRITICAL)
def test_brief_load(api, zd_settings, zd_profile):
    """Test 5: a brief load (ab -n 100 -c 10 on the health path) with a REAL success rate."""
    result = seed.brief_load(api, zd_settings.brief_load_requests,
                             zd_settings.brief_load_concurrency, zd_profile.health)
    assert result.success_rate >= zd_settings.min_success_rate, (
        f"brief load success rate {result.success_rate:.1f}% is below "
        f"{zd_settings.min_success_rate:g}%: {result.describe()}")
