"""The jq assertions and the check-file format: pure functions, no process needed."""
from __future__ import annotations

from pathlib import Path

import pytest
import requests

from zerodrop.checks.checkfile import CheckFileError, load_checks
from zerodrop.checks.expect import ExpectationFailed, expect_jq, expect_status, jq_true, jq_value

ROOT = Path(__file__).resolve().parents[2]


def _response(status: int, text: str) -> requests.Response:
    resp = requests.Response()
    resp.status_code = status
    resp._content = text.encode()
    resp.url = "http://127.0.0.1:1/health/ready"
    resp.request = requests.Request("GET", resp.url).prepare()
    return resp


def test_jq_follows_jq_e_truthiness():
    assert jq_true(0) and jq_true("") and jq_true([])
    assert not jq_true(False) and not jq_true(None)
    assert jq_value(".components.database.status",
                    {"components": {"database": {"status": "healthy"}}}) == "healthy"


def test_expect_jq_passes_and_fails_with_the_value_seen():
    ok = _response(200, '{"status": "healthy"}')
    expect_jq(ok, '.status == "healthy"', show=".status")
    bad = _response(200, '{"status": "degraded", "components": {}}')
    with pytest.raises(ExpectationFailed) as err:
        expect_jq(bad, '.status == "healthy"', show=".status")
    msg = str(err.value)
    assert '`.status == "healthy"`' in msg and '.status = "degraded"' in msg
    assert "HTTP 200" in msg and '"degraded"' in msg  # the response excerpt


def test_expect_jq_on_a_non_json_body_fails_clearly():
    with pytest.raises(ExpectationFailed, match="not JSON"):
        expect_jq(_response(502, "<html>bad gateway</html>"), ".status")


def test_expect_jq_runtime_error_is_a_failed_check():
    with pytest.raises(ExpectationFailed, match="failed"):
        expect_jq(_response(200, '"a string"'), 'has("errors")')


def test_expect_status_names_both_numbers():
    with pytest.raises(ExpectationFailed, match="expected HTTP 201, got 500"):
        expect_status(_response(500, "{}"), 201)


def test_the_shipped_checks_file_loads():
    checks = load_checks(ROOT / "suites" / "custom" / "payment-service.checks.toml")
    assert len(checks) >= 4 and all(c.path.startswith("/") for c in checks)


@pytest.mark.parametrize("content, message", [
    ("", "no [[check]] entries"),
    ("[[check]]\nname='x'\n", "path must be a string starting with /"),
    ("[[check]]\nname='x'\npath='/a'\njq='.status =='\n", "bad jq expression"),
    ("[[check]]\nname='x'\npath='/a'\nstatus=999\n", "status must be an HTTP status code"),
    ("[[check]]\nname='x'\npath='/a'\nexpect=1\n", "unknown key(s) expect"),
    ("[[check]]\nname='x'\npath='/a'\n[[check]]\nname='x'\npath='/b'\n", "duplicate name"),
    ("[[check]\n", "not valid"),
])
def test_bad_checks_files_get_one_clear_line(tmp_path, content, message):
    f = tmp_path / "c.toml"
    f.write_text(content)
    with pytest.raises(CheckFileError) as err:
        load_checks(f)
    assert message in str(err.value) and "\n" not in str(err.value)


def test_a_missing_checks_file_is_named(tmp_path):
    with pytest.raises(CheckFileError, match="No such file"):
        load_checks(tmp_path / "absent.toml")
