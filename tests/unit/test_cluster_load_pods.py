"""The pure parts of the in-cluster load with workers (platforms/kubernetes/load_job.py): which
pods a plan runs, how each pod's ledger lands here (its own file name, its own clock offset
taken off), how a lost worker marks the result, and the CPU fit check's one-line refusal."""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from zerodrop.load.ledger import merge_ledgers
from zerodrop.load.runner import LoadError, LoadResult
from zerodrop.platforms.kubernetes.load_job import (MASTER_CPU_M, SENDER_CPU_M, LoadPod, check_fits,
                                                    clock_offset, collect_ledger, cpu_millis,
                                                    expected_pods, local_ledger_name,
                                                    node_offsets, with_lost)
from zerodrop.records.ledger import LedgerRecord
from zerodrop.records.progress import ProcessProgress


def test_a_plan_runs_one_standalone_pod_or_a_master_and_its_workers():
    assert [p.tag for p in expected_pods(0)] == ["standalone"]
    assert [p.tag for p in expected_pods(3)] == ["master", "worker-0", "worker-1", "worker-2"]


def dumped(*records: LedgerRecord, name: str = "ledger-worker-7.jsonl") -> str:
    """What ``python -m zerodrop.load.pod dump`` prints for one ledger file."""
    return "\n".join([f"### {name}", *(r.to_json() for r in records), '{"t_start": 1'])  # torn tail


def rec(t: float, rid: str) -> LedgerRecord:
    return LedgerRecord(t_start=t, t_end=t + 0.01, method="GET", route="/health", status=200,
                        outcome="ok", request_id=rid)


def test_each_workers_ledger_keeps_its_own_file_and_lands_on_this_machines_clock(tmp_path: Path):
    """Two worker pods whose Locust has the same pid (each pod has its own PID namespace) and
    whose clocks run 2 s ahead and 1.5 s behind: two files, every record shifted by its own
    pod's offset, and the merge keeps all of them on one clock."""
    ahead, behind = LoadPod("worker", 0, offset=2.0), LoadPod("worker", 1, offset=-1.5)
    collect_ledger(dumped(rec(102.0, "a1"), rec(103.0, "a2")), ahead, tmp_path)
    collect_ledger(dumped(rec(98.5, "b1")), behind, tmp_path)
    names = sorted(p.name for p in tmp_path.glob("ledger-*.jsonl"))
    assert names == ["ledger-worker-0.worker-7.jsonl", "ledger-worker-1.worker-7.jsonl"]
    merged = merge_ledgers(tmp_path)
    assert merged.requests == 3 and merged.dropped_lines == 0
    with open(merged.path) as f:
        lines = [json.loads(line) for line in f]
    assert [(r["request_id"], r["t_start"]) for r in lines] == [("a1", 100.0), ("b1", 100.0), ("a2", 101.0)]


def test_a_standalone_pods_ledger_keeps_its_name():
    """--load-workers 0 stays today's single pod, file names included."""
    assert local_ledger_name("ledger-standalone-7.jsonl", LoadPod("standalone")) == "ledger-standalone-7.jsonl"
    assert local_ledger_name("ledger-master-7.jsonl", LoadPod("master")) == "ledger-master.master-7.jsonl"


def result(**changes) -> LoadResult:
    base = dict(ledger_path=Path("ledger.jsonl"), requests=100, failures=0, duration_s=1.0,
                achieved_rps=100.0, target_rps=100.0, saturated=False, locust_exit_code=0,
                log_tail=[])
    return LoadResult(**{**base, **changes})


def test_a_lost_worker_marks_the_result_and_names_what_went_with_it():
    ok = result()
    assert with_lost(ok, []) is ok
    gone = LoadPod("worker", 1, name="zd-load-1-workers-1-abcde", lost="its pod was deleted",
                   last=(ProcessProgress("worker", 7, 0.0, 0.0, requests=1234).to_json(),))
    marked = with_lost(ok, [gone])
    assert marked.saturated and marked.shortfall == "lost"
    assert marked.detail == ("lost load worker worker-1 (pod zd-load-1-workers-1-abcde: its pod was "
                             "deleted; the records of its ~1,234 requests are gone with it): the "
                             "ledger is incomplete")
    assert marked.load_target().saturated and marked.load_target().shortfall == "lost"
    # a limit already named stays first; the loss is added to the detail
    busy = with_lost(result(saturated=True, shortfall="cpu", detail="Locust reported CPU usage above 90%"),
                     [gone, LoadPod("worker", 2, lost="its pod is Failed")])
    assert busy.shortfall == "cpu" and busy.detail.startswith("Locust reported CPU usage above 90%; lost "
                                                              "load workers worker-1 (pod")
    assert "worker-2 (pod ?: its pod is Failed; the records of its ~0 requests" in busy.detail
    ended = LoadPod("worker", 0, name="w0", lost="its Locust exited with -9 while the run went on",
                    collected=True)
    assert with_lost(ok, [ended]).detail == ("lost load worker worker-0 (pod w0: its Locust exited "
                                             "with -9 while the run went on; its ledger came back "
                                             "only up to then): the ledger is incomplete")


@pytest.mark.parametrize("quantity, millis", [("250m", 250), ("2", 2000), ("0.5", 500),
                                              ("1500000n", 2), ("7500u", 8)])
def test_cpu_quantities_in_millicores(quantity, millis):
    assert cpu_millis(quantity) == millis


def test_workers_that_do_not_fit_the_free_cpu_are_refused_in_one_line():
    check_fits(2, 2 * SENDER_CPU_M + MASTER_CPU_M)  # a master and two workers fit exactly
    check_fits(0, SENDER_CPU_M)                       # one standalone pod, no master
    with pytest.raises(LoadError) as err:
        check_fits(3, 2 * SENDER_CPU_M + MASTER_CPU_M)
    assert str(err.value) == ("load workers: 3 worker(s) and a master need 320m CPU (3 x 100m + "
                              "20m) but the cluster's schedulable nodes have only 220m unrequested; "
                              "use --load-workers 2 or fewer")
    with pytest.raises(LoadError, match="only 30m unrequested; free CPU on the nodes$"):
        check_fits(1, 30)


def test_a_clock_offset_comes_from_the_shortest_round_trip_and_is_zero_within_it():
    """Samples (t0, pod clock, t1). On one clock the exec's set-up delays the pod's reading,
    so the midpoint is biased (here +60 ms of a 150 ms round trip): 0 lies within +-rtt/2,
    the offset is 0. A pod 5 s ahead is shifted by what the shortest round trip says."""
    same = [(100.0, 100.135, 100.150), (200.0, 200.180, 200.200)]
    assert clock_offset(same) == (0.0, pytest.approx(0.150))
    ahead = [(100.0, 105.2, 100.4), (200.0, 205.06, 200.1)]
    offset, rtt = clock_offset(ahead)
    assert offset == pytest.approx(5.01) and rtt == pytest.approx(0.1)
    assert clock_offset([]) == (0.0, 0.0)


def test_pods_on_one_node_share_its_offset():
    """Two workers on node a measured 40 ms apart (the exec's noise, not their clocks) get the
    one from the shorter round trip; the pod on node b keeps its own."""
    pods = [LoadPod("master", node="a", name="m"), LoadPod("worker", 0, node="a", name="w0"),
            LoadPod("worker", 1, node="b", name="w1")]
    assert node_offsets(pods, [(1.00, 0.2), (1.04, 0.1), (-3.0, 0.3)]) == [1.04, 1.04, -3.0]
