"""Bad input is a 400 naming every bad field at once (never a 500); auth failures are 401."""
from __future__ import annotations

import pytest
import requests

from .conftest import AUTH, Service, pay

JSON_AUTH = {**AUTH, "Content-Type": "application/json"}
GOOD = {"amount": 1, "currency": "EUR", "from_account": "acc-001", "to_account": "acc-002"}


def fields(response: requests.Response) -> list[str]:
    assert response.status_code == 400, (response.status_code, response.text)
    errors = response.json()["errors"]
    assert all(set(e) == {"field", "message"} and e["message"] for e in errors)
    return sorted(e["field"] for e in errors)


def test_the_seeds_invalid_payment(svc: Service) -> None:
    r = svc.post("/api/payments", json={"amount": -100.00, "currency": "INVALID", "from_account": "",
                                        "to_account": ""})
    assert fields(r) == ["amount", "currency", "from_account", "to_account"]


@pytest.mark.parametrize("amount, why", [
    ("100", "string"), (True, "boolean"), (None, "null"), ([1], "list"), ({"v": 1}, "object"),
    (0, "zero"), (-0.01, "negative"), (1.001, "too many decimals for EUR"), (1e13, "absurdly large"),
    (10**40, "huge integer"),
])
def test_bad_amounts(svc: Service, amount, why) -> None:
    assert fields(svc.post("/api/payments", json={**GOOD, "amount": amount})) == ["amount"], why


def test_amount_and_other_fields_missing(svc: Service) -> None:
    assert fields(svc.post("/api/payments", json={})) == ["amount", "currency", "from_account", "to_account"]


@pytest.mark.parametrize("currency", ["INVALID", "eur", "XAU", "", 978, None])
def test_bad_currencies(svc: Service, currency) -> None:
    assert fields(svc.post("/api/payments", json={**GOOD, "currency": currency})) == ["currency"]


@pytest.mark.parametrize("patch, bad", [
    ({"from_account": ""}, ["from_account"]), ({"to_account": "   "}, ["to_account"]),
    ({"from_account": 7}, ["from_account"]), ({"to_account": None}, ["to_account"]),
    ({"to_account": "acc-001"}, ["to_account"]),                  # same account on both sides
    ({"description": 5}, ["description"]), ({"description": "x" * 256}, ["description"]),
    ({"from_account": "a" * 129}, ["from_account"]),
])
def test_bad_accounts_and_description(svc: Service, patch, bad) -> None:
    assert fields(svc.post("/api/payments", json={**GOOD, **patch})) == bad


@pytest.mark.parametrize("field", ["from_account", "to_account", "description"])
@pytest.mark.parametrize("text", ["\\ud800", "x\\u0000y"])                # lone surrogate, NUL
def test_unstorable_text_is_400_not_a_database_error(svc: Service, field, text) -> None:
    raw = ('{"amount":1,"currency":"EUR","from_account":"acc-001","to_account":"acc-002","%s":"%s"}'
           % (field, text)).encode()
    r = svc.post("/api/payments", data=raw, headers=JSON_AUTH)
    assert fields(r) == [field]
    raw = ('{"type":"credit","amount":1,"account_id":"%s","reference":"%s"}' % (text, text)).encode()
    assert fields(svc.post("/api/transactions", data=raw, headers=JSON_AUTH)) == ["account_id", "reference"]


def test_nul_in_ids_is_not_found(svc: Service) -> None:
    assert svc.get("/api/payments/pay%00x").status_code == 404
    assert svc.get("/api/accounts/acc%00/balance").status_code == 404
    assert svc.get("/api/payments?idempotency_key=k%00").json() == {"payments": []}


def test_unknown_extra_fields_are_allowed(svc: Service) -> None:
    assert svc.post("/api/payments", json={**GOOD, "memo": "x", "description": "y" * 255}).status_code == 201


@pytest.mark.parametrize("data, headers", [
    (b"{not json", JSON_AUTH),
    (b"[1, 2]", JSON_AUTH),
    (b'"just a string"', JSON_AUTH),
    (b"", JSON_AUTH),
    (b'{"amount": NaN, "currency": "EUR"}', JSON_AUTH),
    (b"\xff\xfe", JSON_AUTH),
    (b"[" * 50000 + b"]" * 50000, JSON_AUTH),                     # deep nesting
    (b'{"amount": 1}', {**AUTH, "Content-Type": "text/plain"}),
    (b'{"amount": 1}', AUTH),                                      # no Content-Type at all
])
def test_bad_bodies(svc: Service, data, headers) -> None:
    for path in ("/api/payments", "/api/transactions"):
        assert fields(svc.post(path, data=data, headers=headers)) == ["body"]


def test_body_over_the_limit_is_400_even_when_streamed(svc: Service) -> None:
    big = b'{"description": "' + b"x" * 70000 + b'"}'
    assert fields(svc.post("/api/payments", data=big, headers=JSON_AUTH)) == ["body"]

    def chunks():  # chunked transfer: no Content-Length to reject up front
        yield b'{"description": "'
        for _ in range(100):
            yield b"x" * 1000
        yield b'"}'
    r = svc.post("/api/payments", data=chunks(), headers=JSON_AUTH)
    assert fields(r) == ["body"] and r.headers.get("Connection") == "close"


def test_bad_transactions(svc: Service) -> None:
    r = svc.post("/api/transactions", json={"type": "refund", "amount": "5", "account_id": ""})
    assert fields(r) == ["account_id", "amount", "type"]
    r = svc.post("/api/transactions", json={"type": "credit", "amount": 0.001, "account_id": "acc-test-001"})
    assert fields(r) == ["amount"]                                  # EUR account: 2 decimals
    r = svc.post("/api/transactions", json={"type": "credit", "amount": 1, "account_id": "acc-test-001",
                                           "reference": ["x"]})
    assert fields(r) == ["reference"]


def test_bad_idempotency_key_is_reported_with_the_other_fields(svc: Service) -> None:
    r = svc.post("/api/payments", json={**GOOD, "amount": 0}, headers={**AUTH, "Idempotency-Key": "k" * 256})
    assert fields(r) == ["Idempotency-Key", "amount"]


@pytest.mark.parametrize("headers", [{}, {"Authorization": "Bearer wrong"}, {"Authorization": "test-token"},
                                     {"Authorization": "Basic dGVzdC10b2tlbg=="}, {"Authorization": "Bearer"}])
def test_missing_or_wrong_token_is_401(svc: Service, headers) -> None:
    for method, path in (("POST", "/api/payments"), ("GET", "/api/payments/pay_x"),
                         ("GET", "/api/accounts/acc-001/balance"), ("POST", "/api/transactions")):
        r = svc.http.request(method, svc.url + path, json=GOOD, headers=headers, timeout=10)
        assert r.status_code == 401
        assert r.headers["WWW-Authenticate"] == "Bearer"
        assert r.json()["errors"][0]["field"] == "authorization"


def test_bearer_scheme_is_case_insensitive(svc: Service) -> None:
    assert pay(svc, "acc-001", "acc-002").status_code == 201
    r = svc.post("/api/payments", json=GOOD, headers={"Authorization": "bearer test-token"})
    assert r.status_code == 201


def test_validation_functions_report_every_field() -> None:
    from zerodrop.payment_service import money, validation
    clean, errors = validation.payment(money.loads('{"amount": 150.00, "currency": "EUR", '
                                                   '"from_account": "a", "to_account": "b"}'))
    assert errors == [] and clean["amount_minor"] == 15000
    _, errors = validation.payment({"amount": False, "currency": None, "to_account": 1, "description": 2})
    assert sorted(e["field"] for e in errors) == ["amount", "currency", "description", "from_account", "to_account"]


NASTY = [None, True, False, 0, -1, 1, 1.5, 10**30, -1e-30, 1e308, "", " ", "1", "EUR", "\\ud800", "x\\u0000",
         "é" * 300, [], [1], {}, {"a": 1}, "acc-001", "acc-002", "credit", "debit", 0.001, 99999999999999.99]


def test_fuzzed_bodies_never_answer_5xx(svc: Service) -> None:
    """Valid bodies with 0-3 fields replaced by nasty values: every answer is < 500."""
    import json
    import random
    rng = random.Random(20240601)
    valid = {"/api/payments": {"amount": 1, "currency": "EUR", "from_account": "acc-001", "to_account": "acc-002"},
             "/api/transactions": {"type": "credit", "amount": 1, "account_id": "acc-test-001"}}
    seen = set()
    for i in range(300):
        path = "/api/payments" if i % 2 else "/api/transactions"
        body = dict(valid[path])
        for key in rng.sample(list(body) + ["description", "reference", "extra"], rng.randint(0, 3)):
            body[key] = rng.choice(NASTY)
        raw = json.dumps(body).replace("\\\\u", "\\u").encode()      # let escapes reach the parser
        headers = dict(JSON_AUTH)
        if i % 3 == 0:
            headers["Idempotency-Key"] = rng.choice(["k", "é", "k" * 300, f"fuzz-{i}"])
        r = svc.post(path, data=raw, headers=headers)
        assert r.status_code < 500, (path, raw, r.status_code, r.text)
        seen.add(r.status_code)
    assert {201, 400, 422} <= seen                             # the fuzzer reached every outcome
