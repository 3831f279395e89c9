"""Load from inside the cluster: Locust in the platform's namespace, aimed at the Service's
cluster DNS name, for clusters whose NodePorts this machine cannot reach (staging) and,
optionally, for kind (``--load-from cluster``).

Same contract as ``load.runner.LoadRun`` (start, progress, stop -> LoadResult, a context
manager that leaves nothing behind), and the same process model:

- ``workers == 0``: one standalone Locust in one Job's pod;
- ``workers == N``: a Locust master in a Job's pod behind a Service (its port 5557), and N
  worker pods of one Indexed Job (``batch.kubernetes.io/job-completion-index`` is the
  worker's index for ``locust_env``), each worker with its own ledger.

Every pod runs ``python -m zerodrop.load.pod run`` from the harness image
(infra/cluster/build-harness-image.sh), and the harness talks to each through exec only:
progress files while it runs, SIGTERM to stop (to the master: Locust then stops its workers),
the ledger files at the end. A pod's ledger timestamps are its own clock; each pod's offset to
this machine's clock is measured at the start (the smallest round trip of a few samples; one
offset per node, whose pods share its clock; 0 when the clocks agree within the round trip,
see ``clock_offset``) and taken off that pod's records, so that every worker's ledger and the
platform's events share one clock even on a remote cluster.

A worker pod that stops answering (deleted, evicted, its container gone) took the records of
its requests with it: the result names it and is marked as not kept (``shortfall`` "lost"), so
the verdict is INCONCLUSIVE, never a silent PASS on an incomplete ledger.
"""
from __future__ import annotations

import math
import time
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Callable, Iterable, TypeVar

from zerodrop.load.ledger import merge_ledgers
from zerodrop.load.runner import (LOCUSTFILE, LOG_TAIL_LINES, GeneratorRun, LoadError, LoadPlan,
                                  LoadResult, _result, begin_run, locust_args, locust_env)
from zerodrop.records.ledger import LedgerRecord
from zerodrop.records.progress import Progress, parse_many

HARNESS_IMAGE = "zerodrop/harness:dev"
POD_DIR = "/ledger"
POD_LOCUSTFILE = f"/harness/zerodrop/load/{LOCUSTFILE.name}"
CONTAINER = "locust"
MASTER_PORT = 5557
# CPU requested per load pod, in millicores. A pod that sends requests asks for a share that
# keeps its schedule when the node is busy (its CPU weight follows its request: at 20m a busy
# 2-core node starved the generator, and its own lag showed as a p99 "latency regression");
# the master sends nothing and asks for little. Four workers and a master fit a 2-core kind node.
SENDER_CPU_M = 100
MASTER_CPU_M = 20
LINGER_S = 300
EXPECT_WORKERS_S = 30  # the master gives up (and exits) when its workers have not all joined
LOAD_LABEL = "zerodrop.io/load"        # the run's name, on every object of one load run
ROLE_LABEL = "zerodrop.io/load-role"   # standalone | master | worker
INDEX_ANNOTATION = "batch.kubernetes.io/job-completion-index"
IMAGE_ERRORS = ("ErrImageNeverPull", "ImagePullBackOff", "ErrImagePull", "InvalidImageName")
# the progress files, one JSON line each, read with the shell: a Python process per pod every
# half second would cost the node's CPU what the load needs (each file is replaced atomically,
# so cat reads a whole one; a torn read is skipped by parse_many like `pod progress` does)
READ_PROGRESS = ("sh", "-c", f'for f in {POD_DIR}/progress-*.json; do [ -f "$f" ] && cat "$f" && echo; done; true')
UNSCHEDULABLE_S = 10.0  # a load pod the scheduler cannot place this long is a startup error

T = TypeVar("T")


@dataclass
class LoadPod:
    """One pod of the run as the harness sees it."""

    role: str             # standalone | master | worker
    index: int = 0        # a worker's index (its completion index)
    name: str = ""        # the pod, once it runs
    node: str = ""        # the node it runs on (its pods share one clock)
    offset: float = 0.0   # its clock - this machine's clock
    last: tuple[str, ...] = ()  # its last progress lines, kept when it stops answering
    lost: str = ""        # why it stopped sending before the stop; "" while it sends
    collected: bool = False  # its ledger came back

    @property
    def tag(self) -> str:
        return f"worker-{self.index}" if self.role == "worker" else self.role

    def requests(self) -> int:
        return sum(p.requests for p in parse_many(self.last))


def expected_pods(workers: int) -> list[LoadPod]:
    """The pods a plan runs: one standalone, or a master and ``workers`` workers."""
    if workers == 0:
        return [LoadPod("standalone")]
    return [LoadPod("master"), *(LoadPod("worker", i) for i in range(workers))]


def clock_offset(samples: Iterable[tuple[float, float, float]]) -> tuple[float, float]:
    """(offset, round trip) from samples ``(t0, pod_now, t1)``: this machine's clock before
    and after the exec that read the pod's clock. The shortest round trip bounds the offset
    best: it is ``pod_now - (t0 + t1) / 2`` within +-rtt/2. When 0 lies within that bound the
    clocks agree as far as an exec can tell, and the offset is 0: the exec's set-up takes most
    of a round trip before the pod reads its clock, so the midpoint is biased by tens of
    milliseconds, and applied per worker that bias would order two workers' requests wrongly
    (a kind cluster's pods share this machine's clock exactly)."""
    best = min(samples, key=lambda s: s[2] - s[0], default=None)
    if best is None:
        return 0.0, 0.0
    t0, pod_now, t1 = best
    rtt, offset = t1 - t0, pod_now - (t0 + t1) / 2
    return (0.0 if abs(offset) <= rtt / 2 else offset), rtt


def node_offsets(pods: Iterable[LoadPod], measured: Iterable[tuple[float, float]]) -> list[float]:
    """Each pod's offset: its node's, from the measurement with the shortest round trip among
    the pods on that node (pods of one node share its clock, so one node gets one offset)."""
    pods, measured = list(pods), list(measured)
    best: dict[str, tuple[float, float]] = {}
    for pod, (offset, rtt) in zip(pods, measured):
        key = pod.node or pod.name
        if key not in best or rtt < best[key][1]:
            best[key] = (offset, rtt)
    return [best[pod.node or pod.name][0] for pod in pods]


def local_ledger_name(remote: str, pod: LoadPod) -> str:
    """Where a pod's ledger file goes here. Pods of a run may share process ids (each has its
    own PID namespace), so a worker's files carry its tag: ``ledger-worker-1.worker-7.jsonl``;
    a standalone pod's keep their name. Every name still matches ``merge_ledgers``'s
    ``ledger-*.jsonl``."""
    name = Path(remote).name
    if pod.role == "standalone":
        return name
    return f"ledger-{pod.tag}.{name.removeprefix('ledger-')}"


def collect_ledger(dumped: str, pod: LoadPod, directory: Path) -> None:
    """Write a pod's dumped ledger files (each after a ``### name`` line) into ``directory``,
    every record moved onto this machine's clock (the pod's offset taken off)."""
    out = None
    try:
        for line in dumped.splitlines():
            if line.startswith("### "):
                if out:
                    out.close()
                out = open(directory / local_ledger_name(line[4:].strip(), pod), "w",
                           encoding="utf-8")
                continue
            if out is None or not line.strip():
                continue
            try:
                rec = LedgerRecord.from_json(line)
            except (ValueError, TypeError):
                continue  # a torn last line: merge_ledgers would drop it too
            out.write(rec.shifted(-pod.offset).to_json() + "\n")
    finally:
        if out:
            out.close()


def with_lost(result: LoadResult, lost: list[LoadPod]) -> LoadResult:
    """The result of a run that lost worker pods (gone, or their Locust ended before the
    stop): their share of the schedule stopped with them and the records of their last
    requests, or all of them, are gone, so the ledger is incomplete and the generator did not
    keep its schedule (``saturated``, shortfall "lost" unless another limit already explains
    it); the detail names each lost pod."""
    if not lost:
        return result

    def gone(p: LoadPod) -> str:
        if p.collected:
            return "its ledger came back only up to then"
        return f"the records of its ~{p.requests():,} requests are gone with it"
    named = "; ".join(f"{p.tag} (pod {p.name or '?'}: {p.lost}; {gone(p)})" for p in lost)
    why = f"lost load worker{'s' if len(lost) > 1 else ''} {named}: the ledger is incomplete"
    return replace(result, saturated=True, shortfall=result.shortfall or "lost",
                   detail="; ".join(x for x in (result.detail, why) if x))


def cpu_millis(quantity: str) -> int:
    """A Kubernetes CPU quantity in millicores ("250m", "2", "0.5", "1500000n")."""
    q = str(quantity).strip()
    for suffix, per_milli in (("n", 1e6), ("u", 1e3), ("m", 1.0)):
        if q.endswith(suffix):
            return int(math.ceil(float(q[:-1]) / per_milli))
    return int(math.ceil(float(q) * 1000))


def check_fits(workers: int, free_m: int) -> None:
    """One line when the run's pods cannot all be placed: ``free_m`` millicores of CPU are
    unrequested on the nodes the load pods may run on."""
    need = workers * SENDER_CPU_M + MASTER_CPU_M if workers else SENDER_CPU_M
    if need <= free_m:
        return
    most = (free_m - MASTER_CPU_M) // SENDER_CPU_M
    fix = f"use --load-workers {most} or fewer" if most >= 1 else "free CPU on the nodes"
    raise LoadError(f"load workers: {workers} worker(s) and a master need {need}m CPU "
                    f"({workers} x {SENDER_CPU_M}m + {MASTER_CPU_M}m) but the cluster's "
                    f"schedulable nodes have only {free_m}m unrequested; {fix}")


class ClusterLoadRun(GeneratorRun):
    def __init__(self, platform, plan: LoadPlan,
                 progress: Callable[[Progress], None] | None = None,
                 image: str = HARNESS_IMAGE) -> None:
        self.platform = platform
        self.namespace = platform.namespace
        service = f"{platform.layout.service}.{self.namespace}.svc.cluster.local"
        # the Service's in-cluster name: a target this run created, so allowed as a load host
        self.plan = replace(plan, host=f"http://{service}", allow_hosts=(service,))
        self.on_progress = progress
        self.image = image
        self.ledger_dir = Path(plan.ledger_dir) if plan.ledger_dir else None
        self.job = f"zd-load-{int(time.time() * 1000) % 10**8}"  # also the master's Service
        self.pods = expected_pods(plan.workers if isinstance(plan.workers, int) else 0)
        self._made: list[tuple[str, str]] = []  # (kind, name) of what this run created
        self._t0: float | None = None
        self._monitor = None
        self._stopping = False
        self.result: LoadResult | None = None
        from kubernetes import client
        self._api = platform.cluster.api_client()
        self.core = client.CoreV1Api(self._api)
        self.batch = client.BatchV1Api(self._api)

    @property
    def pod(self) -> str | None:
        """The pod that heads the run (the standalone or the master)."""
        return self.pods[0].name or None

    @property
    def workers(self) -> list[LoadPod]:
        return [p for p in self.pods if p.role == "worker"]

    @property
    def _created(self) -> bool:
        return bool(self._made)

    def _running(self) -> bool:
        return self._created and self.result is None and not self._stopping

    def _cleanup(self) -> None:
        self._delete()
        self._api.close()

    # -- start ------------------------------------------------------------------------------------
    def start(self, ready_timeout: float = 120.0, preflight: bool = True) -> "ClusterLoadRun":
        if self._created or self._stopping:
            raise LoadError("this load run is already started; use a new one for another run")

        def launch(directory: Path) -> None:
            self.ledger_dir = directory
            if self.workers:
                self._check_capacity()
            self._create()
            self._wait_running(ready_timeout)
            offsets = node_offsets(self.pods, _each(self._clock_offset, self.pods))
            for pod, offset in zip(self.pods, offsets):
                pod.offset = offset
            self._t0 = time.time()
            self._wait_flowing(ready_timeout)

        self.ledger_dir, self._monitor = begin_run(self.plan, self.ledger_dir, launch,
                                                   self._delete, self.progress, self.on_progress)
        return self

    def _check_capacity(self) -> None:
        """Refuse at once, creating nothing, when the pods' CPU requests cannot fit the nodes
        they may run on. Credentials that may not list nodes and pods skip this check (the
        scheduler's answer is then waited for in ``_wait_running``)."""
        try:
            nodes = self.core.list_node(_request_timeout=30).items
            busy = self.core.list_pod_for_all_namespaces(
                field_selector="status.phase!=Succeeded,status.phase!=Failed",
                _request_timeout=30).items
        except Exception:
            return
        usable = {n.metadata.name: n for n in nodes if not n.spec.unschedulable and not any(
            t.effect in ("NoSchedule", "NoExecute") for t in n.spec.taints or [])}
        free = sum(cpu_millis((n.status.allocatable or {}).get("cpu", "0")) for n in usable.values())
        for pod in busy:
            if pod.spec.node_name in usable:
                free -= sum(cpu_millis((c.resources.requests or {}).get("cpu", "0"))
                            for c in pod.spec.containers if c.resources)
        check_fits(len(self.workers), free)

    def _create(self) -> None:
        """The standalone Job; or the master's Job and Service, then the workers' Indexed Job."""
        head = self.pods[0]
        locust = ["-f", POD_LOCUSTFILE, "--logfile", f"{POD_DIR}/locust.log", "--loglevel", "INFO"]
        if head.role == "standalone":
            self._create_job(self.job, head.role, [*locust, *locust_args(self.plan)])
            return
        n = len(self.workers)
        self._create_job(f"{self.job}-master", head.role, [
            *locust, *locust_args(self.plan), "--master", "--expect-workers", str(n),
            "--expect-workers-max-wait", str(EXPECT_WORKERS_S), "--master-bind-port", str(MASTER_PORT)])
        self._create_service()
        self._create_job(f"{self.job}-workers", "worker", [
            *locust, "--worker", "--master-host", self.job, "--master-port", str(MASTER_PORT)],
            {"completionMode": "Indexed", "completions": n, "parallelism": n,
             # a lost worker is not replaced (its ledger is gone either way) and does not end
             # the others: its index alone fails
             "backoffLimitPerIndex": 0, "backoffLimit": n})

    def _labels(self, role: str) -> dict[str, str]:
        return {"app": "zerodrop-load", LOAD_LABEL: self.job, ROLE_LABEL: role,
                **self.platform.labels()}

    def _env(self, role: str) -> list[dict]:
        from zerodrop.platforms.kubernetes.render import TOKEN_SECRET
        env = [{"name": k, "value": v} for k, v in locust_env(self.plan, POD_DIR, role).items()
               if k not in ("ZERODROP_TOKEN", "ZERODROP_PROCESS_INDEX")]
        env.append({"name": "ZERODROP_TOKEN", "valueFrom": {"secretKeyRef": {
            "name": TOKEN_SECRET, "key": "token"}}})  # the run's token stays in its Secret
        if role == "worker":  # its share of the idle clients: the same value as JOB_COMPLETION_INDEX
            env.append({"name": "ZERODROP_PROCESS_INDEX", "valueFrom": {"fieldRef": {
                "fieldPath": f"metadata.annotations['{INDEX_ANNOTATION}']"}}})
        else:
            env.append({"name": "ZERODROP_PROCESS_INDEX", "value": "0"})
        return env

    def _create_job(self, name: str, role: str, locust: list[str], spec: dict | None = None) -> None:
        args = ["run", "--dir", POD_DIR, "--linger", str(LINGER_S), "--host", self.plan.host,
                "--", *locust]
        labels = self._labels(role)
        cpu_m = MASTER_CPU_M if role == "master" else SENDER_CPU_M
        job = {
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": name, "labels": labels},
            "spec": {
                "backoffLimit": 0,
                **(spec or {}),
                "activeDeadlineSeconds": int(math.ceil(self.plan.max_duration)) + LINGER_S + 120,
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "restartPolicy": "Never",
                        "terminationGracePeriodSeconds": 5,
                        "containers": [{
                            "name": CONTAINER, "image": self.image,
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["python", "-m", "zerodrop.load.pod"], "args": args,
                            "env": self._env(role),
                            "ports": [{"containerPort": MASTER_PORT}] if role == "master" else [],
                            "volumeMounts": [{"name": "ledger", "mountPath": POD_DIR}],
                            "resources": {"requests": {"cpu": f"{cpu_m}m",
                                                       "memory": "128Mi"}},
                        }],
                        "volumes": [{"name": "ledger", "emptyDir": {}}],
                    },
                },
            },
        }
        self._api_call(f"create the load Job {name}", self.batch.create_namespaced_job,
                       self.namespace, job)
        self._made.append(("job", name))

    def _create_service(self) -> None:
        service = {
            "apiVersion": "v1", "kind": "Service",
            "metadata": {"name": self.job, "labels": self._labels("master")},
            "spec": {"selector": {LOAD_LABEL: self.job, ROLE_LABEL: "master"},
                     "ports": [{"name": "locust", "port": MASTER_PORT, "targetPort": MASTER_PORT}]},
        }
        self._api_call(f"create the load master's Service {self.job}",
                       self.core.create_namespaced_service, self.namespace, service)
        self._made.append(("service", self.job))

    def _api_call(self, what: str, fn, *args) -> None:
        from kubernetes.client.rest import ApiException
        try:
            fn(*args, _request_timeout=30)
        except ApiException as exc:
            raise LoadError(f"cannot {what} in {self.namespace}: HTTP {exc.status} "
                            f"{exc.reason}") from None

    def _wait_running(self, timeout: float) -> None:
        """Every expected pod Running (each named); one line for a pod that ended at once,
        cannot get its image, or cannot be scheduled."""
        deadline = time.monotonic() + timeout
        why, unschedulable_since = "no pod yet", None
        while time.monotonic() < deadline:
            running: dict[tuple[str, int], str] = {}
            nodes: dict[str, str] = {}
            unschedulable = ""
            pods = self.core.list_namespaced_pod(self.namespace, label_selector=f"{LOAD_LABEL}={self.job}",
                                                 _request_timeout=30).items
            for pod in pods:
                if pod.metadata.deletion_timestamp:
                    continue
                role = pod.metadata.labels.get(ROLE_LABEL, "standalone")
                index = int((pod.metadata.annotations or {}).get(INDEX_ANNOTATION, 0))
                name = pod.metadata.name
                if pod.status.phase == "Running":
                    running[(role, index)] = name
                    nodes[name] = pod.spec.node_name or ""
                if pod.status.phase in ("Failed", "Succeeded"):
                    raise LoadError(f"the load pod {name} ended at once "
                                    f"({pod.status.phase}): {self._pod_log(name)}")
                for s in pod.status.container_statuses or []:
                    waiting = s.state.waiting
                    if waiting and waiting.reason in IMAGE_ERRORS:
                        raise LoadError(f"the load pod cannot get image {self.image} "
                                        f"({waiting.reason}); build it with "
                                        f"infra/cluster/build-harness-image.sh and load it")
                    if waiting:
                        why = waiting.reason or why
                for c in pod.status.conditions or []:
                    if c.type == "PodScheduled" and c.status == "False" and c.reason == "Unschedulable":
                        unschedulable = f"{name}: {c.message or c.reason}"
            if all((p.role, p.index) in running for p in self.pods):
                for p in self.pods:
                    p.name = running[(p.role, p.index)]
                    p.node = nodes[p.name]
                return
            if unschedulable:
                unschedulable_since = unschedulable_since or time.monotonic()
                why = f"unschedulable, {unschedulable}"
                if time.monotonic() - unschedulable_since > UNSCHEDULABLE_S:
                    raise LoadError(f"the load pods cannot be scheduled ({unschedulable.strip()}); "
                                    f"each that sends asks for {SENDER_CPU_M}m CPU: free CPU on the nodes"
                                    + (" or use fewer --load-workers" if self.workers else ""))
            else:
                unschedulable_since = None
            time.sleep(0.3)
        waited = f"{len(self.pods)} load pods" if self.workers else "the load pod"
        raise LoadError(f"{waited} did not start within {timeout:g} s ({why})")

    def _clock_offset(self, pod: LoadPod, samples: int = 5) -> tuple[float, float]:
        """The pod's (offset, round trip), see ``clock_offset``."""
        taken = []
        for _ in range(samples):
            t0 = time.time()
            pod_now = float(self._exec(pod, ["clock"]).strip())
            taken.append((t0, pod_now, time.time()))
        return clock_offset(taken)

    def _wait_flowing(self, timeout: float) -> None:
        """Every pod that sends (the standalone, or each worker) has completed a request; a
        Locust that exited before is an error with its own reason (the master's, when a worker
        never joined it)."""
        senders = self.workers or self.pods
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            self._poll()
            if all(p.requests() > 0 for p in senders):
                return
            for pod, code in zip(self.pods, _each(self._exit_code, self.pods)):
                if code:
                    error = self._exec_text(pod, "cat", f"{POD_DIR}/error").strip()
                    raise LoadError(error or f"Locust in the load pod {pod.name} ({pod.tag}) exited "
                                             f"with {code} before requests flowed: {self._why(pod)}")
            time.sleep(0.5)
        idle = ", ".join(p.tag for p in senders if p.requests() == 0)
        raise LoadError(f"no request completed within {timeout:.0f}s of starting the load pods "
                        f"({idle}); {self._why(self.pods[0])}")

    def _exit_code(self, pod: LoadPod) -> str:
        try:
            return self._exec_text(pod, "cat", f"{POD_DIR}/exit").strip()
        except LoadError:
            return ""

    def _why(self, pod: LoadPod) -> str:
        """The last lines of a pod's Locust log, or of its container's log, as one line."""
        try:
            lines = self._exec_text(pod, "tail", "-n", "5", f"{POD_DIR}/locust.log").splitlines()
        except LoadError:
            lines = []
        text = " | ".join(ln.strip() for ln in lines if ln.strip())[-400:]
        return text or self._pod_log(pod.name)

    # -- running ------------------------------------------------------------------------------------
    def progress(self) -> Progress:
        """Every pod's progress files (one JSON line each), summed; a pod that does not answer
        counts with the last lines it gave."""
        self._poll()
        elapsed = time.time() - self._t0 if self._t0 else 0.0
        lines = [line for p in self.pods for line in p.last]
        return Progress.summed(parse_many(lines), elapsed, float(self.plan.max_duration))

    def _poll(self) -> None:
        def read(pod: LoadPod) -> None:
            if pod.name:
                try:
                    pod.last = tuple(self._exec_text(pod, *READ_PROGRESS).splitlines())
                except LoadError:
                    pass
        _each(read, self.pods)

    def log_tail(self, lines: int = LOG_TAIL_LINES) -> list[str]:
        """The last lines of every pod's Locust log (the head's first)."""
        def tail(pod: LoadPod) -> list[str]:
            if not pod.name:
                return []
            try:
                text = self._exec_text(pod, "tail", "-n", str(lines), f"{POD_DIR}/locust.log")
            except LoadError:
                return []
            prefix = "pod" if pod.role == "standalone" else pod.tag
            return [f"[{prefix}] {ln}" for ln in text.splitlines()]
        return [line for part in _each(tail, self.pods) for line in part]

    # -- stop ------------------------------------------------------------------------------------------
    def stop(self, timeout: float = 20.0) -> LoadResult:
        """SIGTERM the standalone/master Locust (a master then tells its workers to quit), wait
        for every worker (``request_timeout`` + 3 s for the quit message, then SIGTERM, then up
        to ``timeout``), collect every pod's ledger onto this machine's clock, merge, delete
        everything. A worker pod that no longer answers is named in the result (``with_lost``)."""
        if self._monitor is not None:
            self._monitor.stop()
            self._monitor = None
        if self.result is not None:
            return self.result
        head = self.pods[0]
        if not self._created or not head.name:
            raise LoadError("stop() called before start()")
        self._stopping = True
        self._find_early_exits()
        try:
            code = self._exec(head, ["stop", "--dir", POD_DIR, "--timeout", str(timeout)]).strip()
        except LoadError as exc:
            raise LoadError(f"the load's {head.tag} pod {head.name} no longer answers, so the run "
                            f"cannot be stopped and collected: {exc}") from None
        grace = self.plan.request_timeout + 3.0
        codes = _each(lambda p: self._stop_worker(p, timeout, grace), self.workers)
        killed = [p.tag for p, c in zip(self.pods, [code, *codes]) if c == "-9"]
        log_tail = self.log_tail()
        last = self.progress()
        assert self.ledger_dir is not None
        for pod in self.pods:
            try:
                collect_ledger(self._exec(pod, ["dump", "--dir", POD_DIR]), pod, self.ledger_dir)
                pod.collected = True
            except LoadError as exc:
                if pod is head:
                    raise LoadError(f"the ledger of the load's {head.tag} pod {head.name} could "
                                    f"not be read: {exc}") from None
                pod.lost = pod.lost or f"its ledger could not be read ({exc})"
        ledger_path = merge_ledgers(self.ledger_dir)
        exit_code = int(code) if code.lstrip("-").isdigit() else -9
        cpu_warning = any("CPU usage above" in line for line in log_tail) or last.saturated
        result = _result(ledger_path, self.plan, exit_code, log_tail, killed, cpu_warning, None, last)
        self.result = with_lost(result, [p for p in self.workers if p.lost])
        self._delete()
        return self.result

    def _find_early_exits(self) -> None:
        """Mark the workers whose Locust ended while their master still ran (a crash, a kill):
        their share of the schedule stopped there. A master that reached its --run-time quits
        its workers first and then itself, hence the second look at the master."""
        codes = _each(self._exit_code, self.pods)
        ended = [(p, c) for p, c in zip(self.pods, codes) if c and p.role == "worker"]
        if not ended or codes[0]:
            return
        time.sleep(1.0)
        if self._exit_code(self.pods[0]):
            return
        for pod, code in ended:
            pod.lost = f"its Locust exited with {code} while the run went on"

    def _stop_worker(self, pod: LoadPod, timeout: float, grace: float) -> str:
        """The worker's exit code; "" and ``pod.lost`` set when its pod no longer answers."""
        try:
            return self._exec(pod, ["stop", "--dir", POD_DIR, "--timeout", str(timeout),
                                    "--grace", str(grace)]).strip()
        except LoadError as exc:
            pod.lost = self._gone(pod) or str(exc)
            return ""

    def _gone(self, pod: LoadPod) -> str:
        """What happened to a pod that no longer answers, as the cluster tells it."""
        from kubernetes.client.rest import ApiException
        try:
            p = self.core.read_namespaced_pod(pod.name, self.namespace, _request_timeout=30)
        except ApiException as exc:
            return "its pod was deleted" if exc.status == 404 else ""
        except Exception:
            return ""
        if p.metadata.deletion_timestamp:
            return "its pod is being deleted"
        for s in p.status.container_statuses or []:
            if s.state.terminated:
                return f"its container ended ({s.state.terminated.reason}, exit {s.state.terminated.exit_code})"
        return f"its pod is {p.status.phase}" if p.status.phase != "Running" else ""

    # -- plumbing ------------------------------------------------------------------------------------
    def _exec(self, pod: LoadPod, args: list[str]) -> str:
        return self._exec_text(pod, "python", "-m", "zerodrop.load.pod", *args)

    def _exec_text(self, pod: LoadPod, *command: str) -> str:
        from kubernetes import client
        from kubernetes.stream import stream
        api = client.CoreV1Api(self.platform.cluster.api_client())  # stream() patches its client
        try:
            return stream(api.connect_get_namespaced_pod_exec, pod.name, self.namespace,
                          container=CONTAINER, command=list(command), stderr=False, stdout=True,
                          stdin=False, tty=False)
        except Exception as exc:  # the pod is gone, or the API server is
            raise LoadError(f"exec in the load pod {pod.name} failed: {type(exc).__name__}: "
                            f"{' '.join(str(exc).split())[:200]}") from None
        finally:
            api.api_client.close()

    def _pod_log(self, pod: str | None) -> str:
        if not pod:
            return "no pod"
        try:
            log = self.core.read_namespaced_pod_log(pod, self.namespace, tail_lines=5,
                                                    _request_timeout=30)
        except Exception:
            return "no log"
        return " | ".join(ln.strip() for ln in log.splitlines() if ln.strip())[-400:] or "empty log"

    def _delete(self) -> None:
        """Delete every object of the run (each attempted, whatever the others do) and its
        pods at once; the namespace goes at the end of the platform anyway."""
        made, self._made = self._made, []
        for kind, name in made:
            try:
                if kind == "job":
                    self.batch.delete_namespaced_job(name, self.namespace,
                                                     propagation_policy="Foreground",
                                                     grace_period_seconds=0, _request_timeout=30)
                else:
                    self.core.delete_namespaced_service(name, self.namespace, _request_timeout=30)
            except Exception:
                pass
        if made:
            try:
                self.core.delete_collection_namespaced_pod(
                    self.namespace, label_selector=f"{LOAD_LABEL}={self.job}",
                    grace_period_seconds=0, _request_timeout=30)
            except Exception:
                pass


def _each(fn: Callable[[LoadPod], T], pods: Iterable[LoadPod]) -> list[T]:
    """``fn`` over the pods at once (each call is an exec round trip), results in order."""
    pods = list(pods)
    if len(pods) <= 1:
        return [fn(p) for p in pods]
    pool = ThreadPoolExecutor(max_workers=len(pods))
    try:
        return list(pool.map(fn, pods))
    finally:  # on Ctrl-C the clean-up must not wait for a stop's exec to end
        pool.shutdown(wait=False, cancel_futures=True)
