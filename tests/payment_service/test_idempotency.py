"""An Idempotency-Key never produces two payments or transactions, sequentially or concurrently."""
from __future__ import annotations

from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal

import requests

from .conftest import AUTH, Service, balance, pay, sql, unique, wait_settled


def test_sequential_replay_returns_the_first_answer(svc: Service) -> None:
    key = unique("idem")
    first = pay(svc, "acc-001", "acc-002", 12.34, key=key)
    again = pay(svc, "acc-001", "acc-002", 12.34, key=key)
    assert first.status_code == again.status_code == 201
    assert "Idempotent-Replayed" not in first.headers
    assert again.headers["Idempotent-Replayed"] == "true"
    assert again.content == first.content
    assert len(svc.get("/api/payments", params={"idempotency_key": key}).json()["payments"]) == 1


def test_same_amount_written_differently_is_the_same_body(svc: Service) -> None:
    key = unique("idem")
    first = svc.post("/api/payments", headers={**AUTH, "Idempotency-Key": key, "Content-Type": "application/json"},
                     data=b'{"amount":150.00,"currency":"EUR","from_account":"acc-001","to_account":"acc-002"}')
    again = svc.post("/api/payments", headers={**AUTH, "Idempotency-Key": key, "Content-Type": "application/json"},
                     data=b'{"to_account":"acc-002","amount":150.0,"currency":"EUR","from_account":"acc-001"}')
    assert again.headers.get("Idempotent-Replayed") == "true" and again.json()["id"] == first.json()["id"]


def test_same_key_different_body_is_422(svc: Service) -> None:
    key = unique("idem")
    assert pay(svc, "acc-001", "acc-002", 1, key=key).status_code == 201
    r = pay(svc, "acc-001", "acc-002", 2, key=key)
    assert r.status_code == 422 and r.json()["errors"][0]["field"] == "Idempotency-Key"
    assert len(svc.get("/api/payments", params={"idempotency_key": key}).json()["payments"]) == 1


def test_twenty_concurrent_same_key_requests_make_one_payment(svc: Service, account) -> None:
    src, dst = account(balance_minor=10_000), account()
    key = unique("idem")

    def attempt(_: int) -> requests.Response:
        # a session per thread: requests.Session is not thread-safe
        return requests.post(svc.url + "/api/payments", timeout=15,
                             headers={**AUTH, "Idempotency-Key": key},
                             json={"amount": 7.5, "currency": "EUR", "from_account": src, "to_account": dst})

    with ThreadPoolExecutor(max_workers=20) as pool:
        responses = list(pool.map(attempt, range(20)))
    assert [r.status_code for r in responses] == [201] * 20
    assert len({r.json()["id"] for r in responses}) == 1
    assert sum(r.headers.get("Idempotent-Replayed") != "true" for r in responses) == 1
    listed = svc.get("/api/payments", params={"idempotency_key": key}).json()["payments"]
    assert len(listed) == 1
    wait_settled(svc, listed[0]["id"])
    assert balance(svc, src) == Decimal("92.50") and balance(svc, dst) == Decimal("7.50")


def test_transaction_replay_applies_once(svc: Service, account) -> None:
    acct = account()
    key = unique("idem")
    headers = {**AUTH, "Idempotency-Key": key}
    body = {"type": "credit", "amount": 5, "account_id": acct}
    with ThreadPoolExecutor(max_workers=10) as pool:
        responses = list(pool.map(lambda _: requests.post(svc.url + "/api/transactions", json=body,
                                                          headers=headers, timeout=15), range(10)))
    assert [r.status_code for r in responses] == [201] * 10
    assert len({r.content for r in responses}) == 1                    # byte-identical replays
    assert balance(svc, acct) == Decimal("5.00")
    assert sql(svc.db_url, "SELECT COUNT(*) FROM transactions WHERE idempotency_key = :k", k=key) == [(1,)]
    other = svc.post("/api/transactions", json={**body, "amount": 6}, headers=headers)
    assert other.status_code == 422


def test_keys_are_scoped_per_route(svc: Service, account) -> None:
    key = unique("idem")
    acct = account()
    assert pay(svc, "acc-001", "acc-002", 1, key=key).status_code == 201
    r = svc.post("/api/transactions", json={"type": "credit", "amount": 1, "account_id": acct},
                 headers={**AUTH, "Idempotency-Key": key})
    assert r.status_code == 201 and "Idempotent-Replayed" not in r.headers
