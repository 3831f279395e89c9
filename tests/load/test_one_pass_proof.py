"""A proof of several scenarios reads the merged ledger ONCE: every record goes to the judge
and the payment collector of the slice it started in. The platform and the load generator are
stand-ins here (the real ones are in tests/integration); the scenarios, the slicing, the
verdicts and the evidence are the real ones."""
from __future__ import annotations

import builtins
import io
import os
import time
from pathlib import Path

import pytest

from zerodrop.load.runner import LoadResult
from zerodrop.records.events import EventLog, EventName
from zerodrop.records.ledger import LedgerRecord, write_records
from zerodrop.records.results import Cutover, DataCheck
from zerodrop.reports.verdict import PASS, Judge, Policy
from zerodrop.scenarios import proof
from zerodrop.scenarios.proof import ProofSettings, Slice, prove_sequence, read_slices
from zerodrop.scenarios.steps import Context, Scenario, Step


class StandInLoad:
    """Takes LoadRun's place: the scenario steps make the requests (``request``); ``stop``
    writes them as the merged ledger and hands back the result."""

    def __init__(self) -> None:
        self.records: list[LedgerRecord] = []
        self.plan = None

    def __call__(self, plan, progress=None) -> "StandInLoad":
        self.plan = plan
        return self

    def __enter__(self) -> "StandInLoad":
        return self

    def __exit__(self, *exc) -> None:
        return None

    def start(self) -> "StandInLoad":
        return self

    def request(self, version: str, payment: str = "") -> None:
        t = time.time()
        self.records.append(LedgerRecord(
            t, t + 0.001, "POST" if payment else "GET", "/api/payments", 201, "ok",
            version=version, payment_id=payment, amount="12.30" if payment else "",
            idempotency_key=f"key-{payment}" if payment else ""))

    def stop(self) -> LoadResult:
        path = Path(self.plan.ledger_dir) / "ledger.jsonl"
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(path, "w", encoding="utf-8") as out:
            write_records(out, sorted(self.records, key=lambda r: r.t_start))
        return LoadResult(path, len(self.records), 0, 1.0, self.plan.rate, self.plan.rate,
                          False, 0, [])


class StandInPlatform:
    service_url = "http://127.0.0.1:9"  # never asked: the lookups are stood in too

    def __init__(self, load: StandInLoad) -> None:
        self.events = EventLog()
        self._load = load

    def drain_window_s(self) -> float | None:
        return None

    def load_generator(self) -> StandInLoad:
        return self._load


def switch_builder(load: StandInLoad, i: int):
    """Switch i: v{i} -> v{i+1}, one request and one payment before, one during, one after."""
    old, new = f"v{i}", f"v{i + 1}"

    def run(ctx: Context) -> None:
        ctx.begin_cutover("blue" if i % 2 else "green", "green" if i % 2 else "blue", old, new)
        load.request(old)
        load.request(old, payment=f"pay-{i}")
        ctx.switched(time.time())
        load.request(new)
        ctx.drained(time.time())
        load.request(new)

    return lambda platform: (Scenario(f"switch-{i}", (Step(f"switch to {new}", run),)),
                             Context(platform))


@pytest.fixture
def ledger_reads(monkeypatch):
    """How often each file is opened for reading, by any code (open, io.open, Path.open)."""
    reads: list[Path] = []
    real_open = builtins.open

    def counting_open(file, mode="r", *args, **kwargs):
        if isinstance(file, (str, os.PathLike)) and not set(mode) & set("wax+"):
            reads.append(Path(file))
        return real_open(file, mode, *args, **kwargs)

    monkeypatch.setattr(builtins, "open", counting_open)
    monkeypatch.setattr(io, "open", counting_open)
    return reads


def test_a_proof_of_three_slices_opens_the_merged_ledger_once(tmp_path, monkeypatch, ledger_reads):
    looked_up = []

    def lookup(base_url, token, acks, *args, **kwargs):
        looked_up.append(dict(acks.acked))
        return DataCheck(acknowledged=len(acks.acked))

    monkeypatch.setattr(proof, "lookup_payments", lookup)
    load = StandInLoad()
    platform = StandInPlatform(load)
    # no money accounts: the stand-in Service has no balances to read
    settings = ProofSettings(baseline_s=0, tail_s=0, show_progress=False, money_accounts=(),
                             policy=Policy(min_requests_in_window=1))
    proofs = prove_sequence(platform, [switch_builder(load, i) for i in range(3)], settings,
                            tmp_path / "out", tmp_path / "ledger")
    ledger = tmp_path / "ledger" / "ledger.jsonl"
    assert ledger_reads.count(ledger) == 1
    assert [p.verdict.verdict for p in proofs] == [PASS] * 3, [p.explain() for p in proofs]
    assert [p.verdict.requests_total for p in proofs] == [4, 4, 4]
    assert looked_up == [{"pay-0": "12.30"}, {"pay-1": "12.30"}, {"pay-2": "12.30"}]
    assert [p.verdict.switch["t_switch"] is not None for p in proofs] == [True] * 3
    assert [e.name for e in platform.events.snapshot()
            if e.source == "load"] == [EventName.LOAD_STARTED, EventName.LOAD_STOPPING]


def test_read_slices_hands_each_record_to_the_slice_it_started_in(tmp_path, ledger_reads):
    ledger = tmp_path / "ledger.jsonl"
    times = [1.0, 5.0, 9.99, 10.0, 15.0, 20.0, 99.0]
    with open(ledger, "w", encoding="utf-8") as out:
        write_records(out, (LedgerRecord(t, t + 0.01, "GET", "/health", 200, "ok", version="v1")
                            for t in times))
    slices = [Slice(f"s{k}", None, start, Judge(Cutover("v1", "v2", None, None)))
              for k, start in enumerate((float("-inf"), 10.0, 20.0))]
    assert read_slices(ledger, slices) == len(times)
    assert [s.judge.tally.total for s in slices] == [3, 2, 2]  # 10.0 opens the second slice
    assert ledger_reads.count(ledger) == 1
