"""Asynchronous completion: pending -> completed/failed, exactly once, in any replica."""
from __future__ import annotations

import time
from concurrent.futures import ThreadPoolExecutor
from decimal import Decimal
from pathlib import Path

import pytest
import requests

from .conftest import AUTH, BACKENDS, Service, add_account, balance, fresh_db, pay, sql, start_services, wait_settled


def test_pending_then_completed_moves_money(svc: Service, account) -> None:
    src, dst = account(balance_minor=20_000), account()
    created = pay(svc, src, dst, 150.00).json()
    assert created["status"] == "pending"
    assert balance(svc, src) == Decimal("200.00")             # nothing moves while pending
    done = wait_settled(svc, created["id"])
    assert (done["status"], done["processed_by"]) == ("completed", "blue-0")
    assert balance(svc, src) == Decimal("50.00") and balance(svc, dst) == Decimal("150.00")


@pytest.mark.parametrize("setup, reason", [
    ("poor", "insufficient_funds"), ("ghost", "unknown_account"), ("usd", "currency_mismatch")])
def test_failures_move_nothing(svc: Service, account, setup, reason) -> None:
    src = account(balance_minor=100)
    dst = {"poor": account(), "ghost": "nobody-here", "usd": account("USD")}[setup]
    amount = 5 if setup == "poor" else 1
    done = wait_settled(svc, pay(svc, src, dst, amount).json()["id"])
    assert (done["status"], done["failure_reason"]) == ("failed", reason)
    assert balance(svc, src) == Decimal("1.00")


@pytest.mark.slow
@pytest.mark.parametrize("database", BACKENDS, indirect=True)
def test_two_processes_share_one_database(tmp_path: Path, database: str) -> None:
    """200 concurrent creations with idempotency keys, spread over two replicas (each key sent to
    both), then every payment completes exactly once and the balances add up to the cent."""
    db_url = database
    accounts = [add_account(db_url, f"xp-{i}", "EUR", 1_000_000) for i in range(6)]   # 10000.00 each
    specs = {"blue": {"REPLICA_NAME": "blue-0", "APP_COLOR": "blue"},
             "green": {"REPLICA_NAME": "green-0", "APP_COLOR": "green"}}
    with start_services(tmp_path, db_url, specs) as replicas:
        blue, green = replicas

        def create(i: int) -> list[requests.Response]:
            body = {"amount": Decimal(i % 17 + 1) / 100 + 1, "currency": "EUR",
                    "from_account": accounts[i % 6], "to_account": accounts[(i + 1 + i % 5) % 6]}
            if body["from_account"] == body["to_account"]:
                body["to_account"] = accounts[(i + 2) % 6]
            headers = {**AUTH, "Idempotency-Key": f"xp-key-{i}"}
            # The same key to both replicas, like a client retrying through the Service.
            return [requests.post(r.url + "/api/payments", json=body, headers=headers, timeout=30)
                    for r in (replicas[i % 2], replicas[(i + 1) % 2])]

        with ThreadPoolExecutor(max_workers=16) as pool:
            results = list(pool.map(create, range(200)))

            # And a true race: one key, 16 simultaneous requests split over both replicas.
            race_body = {"amount": 2.5, "currency": "EUR", "from_account": accounts[0], "to_account": accounts[1]}
            barrier = __import__("threading").Barrier(16)

            def race(i: int) -> requests.Response:
                barrier.wait(10)
                return requests.post(replicas[i % 2].url + "/api/payments", json=race_body, timeout=30,
                                     headers={**AUTH, "Idempotency-Key": "xp-race"})
            raced = list(pool.map(race, range(16)))
        assert [r.status_code for r in raced] == [201] * 16
        assert len({r.json()["id"] for r in raced}) == 1
        assert sum(r.headers.get("Idempotent-Replayed") != "true" for r in raced) == 1
        results.append((raced[0], raced[1]))
        assert all(a.status_code == b.status_code == 201 for a, b in results)
        assert all(a.json()["id"] == b.json()["id"] for a, b in results)
        expected_moves = {a.json()["id"]: a.json() for a, _ in results}
        assert len(expected_moves) == 201

        def all_settled() -> bool:
            rows = sql(db_url, "SELECT COUNT(*) FROM payments WHERE status IN ('pending', 'processing')")
            return rows[0][0] == 0
        from .conftest import wait_until
        wait_until(all_settled, 60, "all 201 payments to leave pending")

        rows = sql(db_url, "SELECT id, status, processed_by, idempotency_key FROM payments")
        assert len(rows) == 201 and {r.status for r in rows} == {"completed"}
        assert {r.processed_by for r in rows} <= {"blue-0", "green-0"}
        assert len({r.idempotency_key for r in rows}) == 201
        assert sql(db_url, "SELECT COUNT(*) FROM idempotency_keys WHERE route = 'payments'") == [(201,)]

        expected = {a: Decimal("10000.00") for a in accounts}
        for p in expected_moves.values():
            amount = Decimal(str(p["amount"]))
            expected[p["from_account"]] -= amount
            expected[p["to_account"]] += amount
        for acct in accounts:
            assert balance(blue, acct) == balance(green, acct) == expected[acct]
        assert sum(expected.values()) == Decimal("60000.00")

        # credits and debits through both replicas at once: 60 x +0.01 and 20 x -0.02 on one account
        till = add_account(db_url, "xp-till", "EUR", 0)

        def move(i: int) -> int:
            body = {"type": "credit" if i < 60 else "debit", "amount": 0.01 if i < 60 else 0.02, "account_id": till}
            return requests.post(replicas[i % 2].url + "/api/transactions", json=body, headers=AUTH,
                                 timeout=30).status_code
        with ThreadPoolExecutor(max_workers=16) as pool:
            codes = list(pool.map(move, range(80)))
        # a debit can arrive before enough credits: then it is refused (422) and moves nothing
        assert set(codes) <= {201, 422} and codes[:60] == [201] * 60
        debited = codes[60:].count(201)
        assert balance(blue, till) == Decimal("0.60") - Decimal("0.02") * debited
        assert sql(db_url, "SELECT COUNT(*) FROM transactions WHERE account_id = :a", a=till) == [(60 + debited,)]
        for replica in replicas:
            assert replica.proc.poll() is None, replica.stderr_tail()


@pytest.mark.slow
def test_payment_created_on_one_replica_is_completed_by_another(tmp_path: Path, template_db: Path) -> None:
    db_url = fresh_db(template_db, tmp_path)
    # blue stops (no drain) long before its payment is due, so only green can complete it
    specs = {"green": {"REPLICA_NAME": "green-0"},
             "blue": {"REPLICA_NAME": "blue-0", "PAYMENT_PROCESSING_SECONDS": "1.5"}}
    with start_services(tmp_path, db_url, specs) as (green, blue):
        created = pay(blue, "acc-001", "acc-002", 3).json()
        blue.signal()
        assert blue.proc.wait(15) == 0
        assert time.time() < created_at(created) + 1.5, "blue outlived the processing delay; test is void"
        done = wait_settled(green, created["id"])
        assert (done["status"], done["processed_by"]) == ("completed", "green-0")


def created_at(payment: dict) -> float:
    import datetime
    return datetime.datetime.fromisoformat(payment["created_at"].replace("Z", "+00:00")).timestamp()
