"""Load from inside the cluster: Locust in a Job of the platform's namespace, aimed at the
Service's cluster DNS name, for clusters whose NodePorts this machine cannot reach (staging)
and, optionally, for kind (``--load-from cluster``).

Same contract as ``load.runner.LoadRun`` (start, progress, stop -> LoadResult, a context
manager that leaves nothing behind): the pod runs ``python -m zerodrop.load.pod run`` from the harness
image (infra/cluster/build-harness-image.sh), and the harness talks to it through exec only:
progress files while it runs, SIGTERM to stop, the ledger files at the end. The ledger's
timestamps are the pod's clock; the offset to this machine's clock is measured at the start
(the smallest round trip of a few samples) and taken off every record, so that ledger and
platform events share one clock even on a remote cluster.
"""
from __future__ import annotations

import math
import time
from dataclasses import replace
from pathlib import Path
from typing import Callable

from zerodrop.load.ledger import merge_ledgers
from zerodrop.load.runner import (LOCUSTFILE, GeneratorRun, LoadError, LoadPlan, LoadResult,
                                  _result, begin_run, locust_args, locust_env)
from zerodrop.records.ledger import LedgerRecord
from zerodrop.records.progress import Progress, parse_many

HARNESS_IMAGE = "zerodrop/harness:dev"
POD_DIR = "/ledger"
POD_LOCUSTFILE = f"/harness/zerodrop/load/{LOCUSTFILE.name}"
CONTAINER = "locust"


class ClusterLoadRun(GeneratorRun):
    def __init__(self, platform, plan: LoadPlan,
                 progress: Callable[[Progress], None] | None = None,
                 image: str = HARNESS_IMAGE) -> None:
        from zerodrop.platforms.kubernetes.render import APP
        self.platform = platform
        self.namespace = platform.namespace
        service = f"{APP}.{self.namespace}.svc.cluster.local"
        # the Service's in-cluster name: a target this run created, so allowed as a load host
        self.plan = replace(plan, host=f"http://{service}", allow_hosts=(service,), workers=0)
        self.on_progress = progress
        self.image = image
        self.ledger_dir = Path(plan.ledger_dir) if plan.ledger_dir else None
        self.job = f"zd-load-{int(time.time() * 1000) % 10**8}"
        self.pod: str | None = None
        self.offset = 0.0  # pod clock - this machine's clock
        self._t0: float | None = None
        self._monitor = None
        self._created = False
        self.result: LoadResult | None = None
        from kubernetes import client
        self._api = platform.cluster.api_client()
        self.core = client.CoreV1Api(self._api)
        self.batch = client.BatchV1Api(self._api)

    def _running(self) -> bool:
        return self._created and self.result is None

    def _cleanup(self) -> None:
        self._delete()
        self._api.close()

    # -- start ------------------------------------------------------------------------------------
    def start(self, ready_timeout: float = 120.0, preflight: bool = True) -> "ClusterLoadRun":
        if self._created:
            raise LoadError("this load run is already started; use a new one for another run")

        def launch(directory: Path) -> None:
            self.ledger_dir = directory
            self._create_job()
            self.pod = self._wait_running(ready_timeout)
            self.offset = self._clock_offset()
            self._t0 = time.time()
            self._wait_flowing(ready_timeout)

        self.ledger_dir, self._monitor = begin_run(self.plan, self.ledger_dir, launch,
                                                   self._delete, self.progress, self.on_progress)
        return self

    def _create_job(self) -> None:
        from kubernetes.client.rest import ApiException
        from zerodrop.platforms.kubernetes.render import APP
        env = [{"name": k, "value": v} for k, v in locust_env(self.plan, POD_DIR, "standalone").items()
               if k != "ZERODROP_TOKEN"]
        env.append({"name": "ZERODROP_TOKEN", "valueFrom": {"secretKeyRef": {
            "name": APP, "key": "auth-token"}}})  # the token stays in the Secret
        linger = 300
        args = ["run", "--dir", POD_DIR, "--linger", str(linger), "--host", self.plan.host, "--",
                "-f", POD_LOCUSTFILE, "--logfile", f"{POD_DIR}/locust.log", "--loglevel", "INFO",
                *locust_args(self.plan)]
        labels = {"app": "zerodrop-load", **self.platform.labels()}
        job = {
            "apiVersion": "batch/v1", "kind": "Job",
            "metadata": {"name": self.job, "labels": labels},
            "spec": {
                "backoffLimit": 0,
                "activeDeadlineSeconds": int(math.ceil(self.plan.max_duration)) + linger + 120,
                "template": {
                    "metadata": {"labels": labels},
                    "spec": {
                        "restartPolicy": "Never",
                        "terminationGracePeriodSeconds": 5,
                        "containers": [{
                            "name": CONTAINER, "image": self.image,
                            "imagePullPolicy": "IfNotPresent",
                            "command": ["python", "-m", "zerodrop.load.pod"], "args": args, "env": env,
                            "volumeMounts": [{"name": "ledger", "mountPath": POD_DIR}],
                            "resources": {"requests": {"cpu": "100m", "memory": "128Mi"}},
                        }],
                        "volumes": [{"name": "ledger", "emptyDir": {}}],
                    },
                },
            },
        }
        try:
            self.batch.create_namespaced_job(self.namespace, job, _request_timeout=30)
        except ApiException as exc:
            raise LoadError(f"cannot create the load Job in {self.namespace}: HTTP {exc.status} "
                            f"{exc.reason}") from None
        self._created = True

    def _wait_running(self, timeout: float) -> str:
        deadline = time.monotonic() + timeout
        why = "no pod yet"
        while time.monotonic() < deadline:
            pods = self.core.list_namespaced_pod(self.namespace, label_selector=f"job-name={self.job}",
                                                 _request_timeout=30).items
            for pod in pods:
                if pod.status.phase == "Running":
                    return pod.metadata.name
                if pod.status.phase in ("Failed", "Succeeded"):
                    raise LoadError(f"the load pod {pod.metadata.name} ended at once "
                                    f"({pod.status.phase}): {self._pod_log(pod.metadata.name)}")
                for s in pod.status.container_statuses or []:
                    waiting = s.state.waiting
                    if waiting and waiting.reason in ("ErrImageNeverPull", "ImagePullBackOff",
                                                      "ErrImagePull", "InvalidImageName"):
                        raise LoadError(f"the load pod cannot get image {self.image} "
                                        f"({waiting.reason}); build it with "
                                        f"infra/cluster/build-harness-image.sh and load it")
                    if waiting:
                        why = waiting.reason or why
            time.sleep(0.3)
        raise LoadError(f"the load pod did not start within {timeout:g} s ({why})")

    def _clock_offset(self, samples: int = 5) -> float:
        best = None
        for _ in range(samples):
            t0 = time.time()
            pod_now = float(self._exec(["clock"]).strip())
            t1 = time.time()
            if best is None or t1 - t0 < best[0]:
                best = (t1 - t0, pod_now - (t0 + t1) / 2)
        return best[1] if best else 0.0

    def _wait_flowing(self, timeout: float) -> None:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.progress().requests > 0:
                return
            code = self._exec_text("cat", f"{POD_DIR}/exit").strip()
            if code:
                error = self._exec_text("cat", f"{POD_DIR}/error").strip()
                raise LoadError(error or f"Locust in the load pod exited with {code} before "
                                         f"requests flowed: {self._pod_log(self.pod)}")
            time.sleep(0.5)
        raise LoadError(f"no request completed within {timeout:.0f}s of starting the load pod; "
                        f"{self._pod_log(self.pod)}")

    # -- running ------------------------------------------------------------------------------------
    def progress(self) -> Progress:
        """The pod's progress files (one JSON line each), summed; none while exec fails."""
        try:
            lines = self._exec(["progress", "--dir", POD_DIR]).splitlines()
        except LoadError:
            lines = []
        elapsed = time.time() - self._t0 if self._t0 else 0.0
        return Progress.summed(parse_many(lines), elapsed, float(self.plan.max_duration))

    def log_tail(self, lines: int = 30) -> list[str]:
        return [f"[pod] {ln}" for ln in self._exec_text("tail", "-n", str(lines),
                                                         f"{POD_DIR}/locust.log").splitlines()]

    # -- stop ------------------------------------------------------------------------------------------
    def stop(self, timeout: float = 20.0) -> LoadResult:
        if self._monitor is not None:
            self._monitor.stop()
            self._monitor = None
        if self.result is not None:
            return self.result
        if not self._created or self.pod is None:
            raise LoadError("stop() called before start()")
        code = self._exec(["stop", "--dir", POD_DIR, "--timeout", str(timeout)]).strip()
        log_tail = self.log_tail()
        last = self.progress()
        assert self.ledger_dir is not None
        self._collect(self._exec(["dump", "--dir", POD_DIR]))
        ledger_path = merge_ledgers(self.ledger_dir)
        exit_code = int(code) if code.lstrip("-").isdigit() else -9
        cpu_warning = any("CPU usage above" in line for line in log_tail)
        self.result = _result(ledger_path, self.plan, exit_code, log_tail,
                              ["pod locust"] if exit_code == -9 else [], cpu_warning, None, last)
        self._delete()
        return self.result

    def _collect(self, dumped: str) -> None:
        """Write the pod's ledger files here, each record moved onto this machine's clock."""
        out = None
        try:
            for line in dumped.splitlines():
                if line.startswith("### "):
                    if out:
                        out.close()
                    out = open(self.ledger_dir / Path(line[4:].strip()).name, "w",
                               encoding="utf-8")
                    continue
                if out is None or not line.strip():
                    continue
                try:
                    rec = LedgerRecord.from_json(line)
                except (ValueError, TypeError):
                    continue  # a torn last line: merge_ledgers would drop it too
                out.write(rec.shifted(-self.offset).to_json() + "\n")
        finally:
            if out:
                out.close()

    # -- plumbing ------------------------------------------------------------------------------------
    def _exec(self, args: list[str]) -> str:
        return self._exec_text("python", "-m", "zerodrop.load.pod", *args)

    def _exec_text(self, *command: str) -> str:
        from kubernetes import client
        from kubernetes.stream import stream
        api = client.CoreV1Api(self.platform.cluster.api_client())  # stream() patches its client
        try:
            return stream(api.connect_get_namespaced_pod_exec, self.pod, self.namespace,
                          container=CONTAINER, command=list(command), stderr=False, stdout=True,
                          stdin=False, tty=False)
        except Exception as exc:  # the pod is gone, or the API server is
            raise LoadError(f"exec in the load pod failed: {type(exc).__name__}: "
                            f"{str(exc)[:200]}") from None
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
        if not self._created:
            return
        self._created = False
        try:
            self.batch.delete_namespaced_job(self.job, self.namespace,
                                             propagation_policy="Foreground",
                                             grace_period_seconds=0, _request_timeout=30)
        except Exception:
            pass  # the namespace goes at the end of the platform anyway
