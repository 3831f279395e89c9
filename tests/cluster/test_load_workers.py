"""``--load-from cluster --load-workers N`` on a real kind cluster: a Locust master pod and N
worker pods in the platform's namespace. Every worker's ledger comes back on this machine's
clock and nothing of the load stays behind; a worker pod lost mid-run is named in the result
and keeps the verdict from PASS; a worker count the cluster cannot hold is one line."""
from __future__ import annotations

import json
import re
import time
from collections import Counter
from dataclasses import replace
from pathlib import Path

import pytest

from zerodrop.load.runner import LoadError, LoadPlan
from zerodrop.platforms.kubernetes.load_job import LOAD_LABEL, ClusterLoadRun
from zerodrop.platforms.kubernetes.platform import KubeConfig, new_namespace, stand_up
from zerodrop.reports.verdict import judge
from tests.procs import wait_until
from tests.reports.builders import clean, cutover, good_data, good_load, timeline

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def platform(cluster, run_id):
    """One platform for the module: every test here starts its own load run in it."""
    p = stand_up(cluster, KubeConfig(replicas=1, run_id=run_id, ready_timeout=120,
                                     load_from="cluster"),
                 new_namespace(run_id, "lw"), idle_replicas=0)
    try:
        yield p
    finally:
        p.teardown()


def plan(platform, ledger_dir: Path, workers: int) -> LoadPlan:
    return LoadPlan(host=platform.service_url, users=4, rate=60.0, max_duration=60,
                    workers=workers, idle_clients=2, idle_period_s=1.0, ledger_dir=ledger_dir)


def load_objects(platform, job: str) -> list[str]:
    """Every Job, pod and Service of one load run still in the namespace (being deleted too)."""
    selector = f"{LOAD_LABEL}={job}"
    found = [("job", x) for x in platform.batch.list_namespaced_job(
        platform.namespace, label_selector=selector).items]
    found += [("pod", x) for x in platform.core.list_namespaced_pod(
        platform.namespace, label_selector=selector).items]
    found += [("service", x) for x in platform.core.list_namespaced_service(
        platform.namespace, label_selector=selector).items]
    return [f"{kind} {x.metadata.name}" for kind, x in found]


def nothing_left(platform, job: str) -> None:
    wait_until(lambda: not load_objects(platform, job), 60,
               f"the load run {job}'s Jobs, pods and Service to be deleted", interval=1.0)


def per_worker(ledger_dir: Path) -> Counter:
    """Records in each worker's own ledger file (named by its tag)."""
    counts: Counter = Counter()
    for path in ledger_dir.glob("ledger-worker-*.jsonl"):
        tag = re.match(r"ledger-(worker-\d+)\.", path.name).group(1)
        counts[tag] += sum(1 for line in open(path) if line.strip())
    return counts


def test_two_worker_pods_merge_their_ledgers_on_this_machines_clock(platform, tmp_path):
    """Positive control: a master pod and two worker pods; both workers' ledgers come back
    (distinct files even though their Locust processes may share a pid), add up to the merged
    total, every record lies within this run's wall-clock window here, and the run leaves no
    Job, pod or Service behind."""
    ledger = tmp_path / "ledger"
    t_before = time.time()
    with ClusterLoadRun(platform, plan(platform, ledger, workers=2),
                        image=platform.config.harness_image) as run:
        run.start()
        assert [p.tag for p in run.pods] == ["master", "worker-0", "worker-1"]
        assert len({p.name for p in run.pods}) == 3 and all(p.name for p in run.pods)
        assert all(abs(p.offset) < 2.0 for p in run.pods), [p.offset for p in run.pods]
        time.sleep(3)
        live = run.progress()
        assert live.requests >= sum(p.requests() for p in run.workers) > 0
        result = run.stop()
    t_after = time.time()

    counts = per_worker(ledger)
    assert set(counts) == {"worker-0", "worker-1"} and min(counts.values()) > 0, counts
    assert sum(counts.values()) == result.requests, (counts, result.requests)
    with open(result.ledger_path) as f:
        starts = [json.loads(line)["t_start"] for line in f]
    assert len(starts) == result.requests
    assert t_before <= min(starts) and max(starts) <= t_after, (t_before, min(starts), max(starts), t_after)
    assert "lost" not in result.detail and result.shortfall != "lost", result.detail
    assert any(line.startswith("[master]") for line in result.log_tail), result.log_tail[:5]
    nothing_left(platform, run.job)


def test_workers_lost_mid_run_are_named_and_keep_the_verdict_from_pass(platform, tmp_path):
    """Negative control: of three workers, worker-1's pod is deleted at once (grace 0) and
    worker-2's Locust is SIGKILLed inside its pod while the load runs. The result names both
    (one took its ledger with it, the other's came back only up to its end) and says the
    ledger is incomplete, so a verdict on otherwise clean records is INCONCLUSIVE for that
    reason (the same records with a clean load PASS)."""
    with ClusterLoadRun(platform, plan(platform, tmp_path / "ledger", workers=3),
                        image=platform.config.harness_image) as run:
        run.start()
        time.sleep(1.5)
        deleted, killed = run.workers[1], run.workers[2]
        platform.core.delete_namespaced_pod(deleted.name, platform.namespace, grace_period_seconds=0)
        run._exec_text(killed, "sh", "-c", "kill -9 $(cat /ledger/locust.pid)")
        time.sleep(1.5)
        result = run.stop()
    # "lost" unless the busy machine made the generator late too ("cpu" is then named first)
    assert result.saturated and result.shortfall in ("lost", "cpu"), result
    assert f"lost load workers worker-1 (pod {deleted.name}: its pod " in result.detail, result.detail
    assert "requests are gone with it)" in result.detail
    assert (f"worker-2 (pod {killed.name}: its Locust exited with -9 while the run went on; its "
            f"ledger came back only up to then)") in result.detail, result.detail
    assert set(per_worker(tmp_path / "ledger")) == {"worker-0", "worker-2"}

    assert judge(clean(), timeline(), cutover(), good_data(), good_load()).verdict == "PASS"
    # the run's own load target, on a rate that alone would pass: only the lost workers speak
    lost = replace(good_load(), saturated=result.saturated, shortfall=result.shortfall,
                   detail=result.detail)
    verdict = judge(clean(), timeline(), cutover(), good_data(), lost)
    assert verdict.verdict == "INCONCLUSIVE", verdict.reasons
    assert any("lost load workers worker-1" in r for r in verdict.reasons), verdict.reasons
    nothing_left(platform, run.job)


def test_more_workers_than_the_cluster_can_hold_is_one_line_and_creates_nothing(platform, tmp_path):
    """Bad input: 500 worker pods of 100m CPU each do not fit a 2-core kind node; the run
    refuses before it creates anything, in one line that names the fix."""
    with pytest.raises(LoadError) as err:
        with ClusterLoadRun(platform, plan(platform, tmp_path / "ledger", workers=500),
                            image=platform.config.harness_image) as run:
            run.start()
    message = str(err.value)
    assert "\n" not in message and "use --load-workers" in message, message
    assert re.search(r"500 worker\(s\) and a master need 50020m CPU", message), message
    assert not load_objects(platform, run.job)


def test_a_missing_image_with_workers_is_one_line_and_leaves_nothing(platform, tmp_path):
    """Startup error with workers: the master's and workers' image is missing; one line, and
    the master's Job, its Service and the workers' Job are gone."""
    with pytest.raises(LoadError) as err:
        with ClusterLoadRun(platform, plan(platform, tmp_path / "ledger", workers=2),
                            image="zerodrop/harness:no-such-tag") as run:
            run.start(ready_timeout=60)
    assert "cannot get image zerodrop/harness:no-such-tag" in str(err.value)
    assert "\n" not in str(err.value)
    nothing_left(platform, run.job)


def test_a_switch_judged_from_two_worker_pods_passes(cluster, run_id, tmp_path):
    """The whole proof with --load-from cluster --load-workers 2: the switch's verdict PASSes
    on the merged ledger of both workers, which saw both versions."""
    from zerodrop.scenarios.blue_green import SwitchSettings, switch
    from zerodrop.scenarios.proof import ProofSettings, prove
    from zerodrop.scenarios.steps import Context

    p = stand_up(cluster, KubeConfig(replicas=1, run_id=run_id, ready_timeout=120, load_from="cluster"),
                 new_namespace(run_id, "lw-switch"), idle_replicas=0)
    try:
        proof = prove(p, switch(p, "v2.0.0", SwitchSettings(replicas=1, post_deploy=False,
                                                            verify_timeout=10, ready_timeout=120),
                                name="k8s-workers"),
                      Context(p), ProofSettings(users=10, rate=60.0, workers=2, baseline_s=1.0,
                                                tail_s=2.0, show_progress=False),
                      tmp_path / "out", tmp_path / "ledger")
    finally:
        p.teardown()
    assert proof.scenario.ok and proof.verdict.verdict == "PASS", proof.explain()
    assert set(per_worker(tmp_path / "ledger")) == {"worker-0", "worker-1"}
    served = proof.verdict.to_dict()["served_by_version"]
    assert served.get("v1.0.0", 0) > 0 and served.get("v2.0.0", 0) > 0, served
