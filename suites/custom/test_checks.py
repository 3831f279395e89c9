"""Checks listed in a file (``--checks``): method, path, expected status, jq expression."""
from __future__ import annotations

import allure
import pytest

from zerodrop.checks.checkfile import Check
from zerodrop.checks.expect import expect_jq, expect_status
from zerodrop.checks.steps import call

pytestmark = pytest.mark.custom


@allure.epic("zerodrop")
@allure.feature("custom checks")
@allure.severity(allure.severity_level.NORMAL)
def test_check(api, check: Check):
    allure.dynamic.story(check.name)
    resp = call(api, check.method, check.path, body=check.body, auth=check.auth,
                headers=check.headers, title=f"{check.name}: {check.method} {check.path}")
    expect_status(resp, check.status)
    if check.jq:
        expect_jq(resp, check.jq)
