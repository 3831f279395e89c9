"""The store's per-process write queue (SQLite only): first come, first served, bounded wait.

SQLite's busy handler lets a newcomer overtake an old waiter (it polls with a growing back-off),
which gave the reference service multi-second write tails under load; the queue is the fix
(benchmarks/sqlite_write_tail.py measures the tail with and without it)."""
from __future__ import annotations

import threading
from decimal import Decimal

import pytest

from payment_service import storage

from .conftest import add_account, fresh_db, wait_until


def test_waiters_get_the_lock_in_the_order_they_asked():
    q = storage.WriteQueue()
    assert q.acquire(1)
    order: list[int] = []

    def waiter(i: int) -> None:
        assert q.acquire(10)
        order.append(i)
        q.release()

    threads = []
    for i in range(8):
        t = threading.Thread(target=waiter, args=(i,))
        t.start()
        threads.append(t)
        wait_until(lambda: len(q._waiters) == i + 1, 5, f"waiter {i} queued", 0.001)  # before i + 1 asks
    # a newcomer arriving while the lock is handed over must queue behind all eight
    late = threading.Thread(target=waiter, args=(99,))
    q.release()
    late.start()
    for t in threads + [late]:
        t.join(10)
    assert order == list(range(8)) + [99]
    assert not q._held and not q._waiters


def test_a_waiter_that_runs_out_of_time_leaves_the_queue_and_the_rest_still_get_their_turn():
    q = storage.WriteQueue()
    assert q.acquire(1)
    got: list[bool] = []
    impatient = threading.Thread(target=lambda: got.append(q.acquire(0.05)))
    impatient.start()
    impatient.join(5)
    assert got == [False] and not q._waiters
    patient = threading.Thread(target=lambda: got.append(q.acquire(5)))
    patient.start()
    wait_until(lambda: len(q._waiters) == 1, 5, "the patient waiter queued", 0.001)
    q.release()
    patient.join(5)
    assert got == [False, True] and q._held
    q.release()
    assert not q._held


def test_a_write_with_no_turn_in_time_is_database_unavailable_and_sqlite_only(tmp_path, template_db, monkeypatch):
    url = fresh_db(template_db, tmp_path)
    add_account(url, "acct_q")
    engine = storage.create_engine(url)
    store = storage.Store(engine)
    assert store._write_queue is not None
    credit = {"account_id": "acct_q", "type": "credit", "amount": Decimal("1.00")}
    assert store.create_transaction(credit, None, "").status == 201
    monkeypatch.setattr(storage, "WRITE_QUEUE_TIMEOUT", 0.05)
    assert store._write_queue.acquire(1)     # another writer of this process holds its turn
    try:
        with pytest.raises(storage.DatabaseUnavailable, match="write queue"):
            store.create_transaction(credit, None, "")
    finally:
        store._write_queue.release()
    assert store.create_transaction(credit, None, "").status == 201
    store.dispose()
    # PostgreSQL has row locks and no busy handler: no queue there (the dialect decides, no server needed)
    pg = storage.Store(storage.create_engine("postgresql+psycopg://u:p@127.0.0.1:1/none"))
    assert pg._write_queue is None
