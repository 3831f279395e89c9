"""The store's per-process write queue (SQLite only): first come, first served, bounded wait.

SQLite's busy handler lets a newcomer overtake an old waiter (it polls with a growing back-off),
which gave the reference service multi-second write tails under load; the queue is the fix
(benchmarks/sqlite_write_tail.py measures the tail with and without it)."""
from __future__ import annotations

import threading
import time
from decimal import Decimal

import pytest

from payment_service import migrations, storage


def wait_until(pred, timeout: float = 5.0) -> None:
    end = time.monotonic() + timeout
    while not pred():
        assert time.monotonic() < end, "condition not reached"
        time.sleep(0.001)


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
        wait_until(lambda: len(q._waiters) == i + 1)   # i queued before i + 1 asks
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
    wait_until(lambda: len(q._waiters) == 1)
    q.release()
    patient.join(5)
    assert got == [False, True] and q._held
    q.release()
    assert not q._held


def test_a_write_with_no_turn_in_time_is_database_unavailable_and_sqlite_only(tmp_path, monkeypatch):
    url = f"sqlite:///{tmp_path / 'p.db'}"
    engine = storage.create_engine(url)
    migrations.apply(storage.write_engine(engine), log=lambda _m: None)
    with engine.begin() as conn:
        conn.exec_driver_sql("INSERT INTO accounts (id, currency, balance_minor, updated_at_us) "
                             "VALUES ('acct_q', 'EUR', 0, 0)")
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
