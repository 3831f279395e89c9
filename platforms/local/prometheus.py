"""A real Prometheus on 127.0.0.1 that scrapes the local platform's replicas.

``LocalPrometheus`` runs Debian's ``prometheus`` binary as a child process with its own temporary
data directory and a generated configuration: a short scrape interval (1 s by default, so that a
canary stage of seconds has samples), a ``file_sd_configs`` targets file that the caller keeps
current with ``set_targets`` (written atomically; Prometheus watches its directory), and the rule
files it is given. ``query`` asks ``/api/v1/query`` and answers a ``QueryResult`` with one of three
outcomes: ``data``; ``no_data`` (an empty result, or only NaN: never 0.0, never a pass); ``error``
(Prometheus' own error text, or why it could not be asked).

Target labels: the payment-service's metrics already carry ``service``, ``version`` (the colour
when one is set), ``route`` and ``status``. A target label of the same name would not override them:
Prometheus keeps the scraped one and renames the target's to ``exported_<name>``, so the PromQL
``version="green"`` would silently match something else. The targets file therefore adds only
``color`` (and extra labels the caller names, which must not collide with those).

Timing (measured with Debian's 2.42 on this machine): ready ~0.5 s after start, but a target
reaches the scrapers only on discovery's 5 s tick, so the first scrape of a new target (a replica
started or restarted on a fresh port) comes ~5-6 s after ``set_targets``; ``wait_scraped`` waits
for it. ``rate()`` needs two samples of a series: a burst of requests that falls between two
scrapes of a series that did not exist before is invisible (the series appears at its final
value and never moves). Until then a query is ``no_data``, which is why that is never a pass.

The child runs in its own session and is told by the kernel to die with the thread that started
it (PR_SET_PDEATHSIG, as the replicas are), so a harness killed with SIGKILL leaves no Prometheus;
start it from a thread that lives as long as it should (the main thread, or the supervisor's).
"""
from __future__ import annotations

import json
import math
import os
import re
import shutil
import signal
import subprocess
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Iterable, Mapping

import requests

from zerodrop.platforms.base import PlatformError
from zerodrop.platforms.local.replica import _die_with_parent, free_port

__all__ = ["LocalPrometheus", "PrometheusError", "QueryResult", "Sample", "query_prometheus",
           "DATA", "NO_DATA", "ERROR", "INSTALL_HINT"]

DATA, NO_DATA, ERROR = "data", "no_data", "error"
INSTALL_HINT = "apt-get update && apt-get install -y prometheus"
# labels the payment-service's own series carry (payment_service/metrics.py), plus the ones
# Prometheus and histograms own: a target label of one of these names would be renamed
RESERVED_LABELS = frozenset({"service", "version", "route", "status", "type", "le", "job",
                             "instance", "__name__"})


class PrometheusError(PlatformError):
    """Prometheus could not be started or used; one line, with the fix."""


@dataclass(frozen=True)
class Sample:
    labels: dict[str, str]
    value: float


@dataclass(frozen=True)
class QueryResult:
    """One instant query's answer. ``outcome`` is ``data``, ``no_data`` or ``error``; NaN samples
    (0/0, a quantile of no observations) are dropped and counted in ``nan_dropped``, so ``data``
    always has at least one real number."""

    query: str
    outcome: str
    samples: tuple[Sample, ...] = ()
    error: str = ""                 # Prometheus' error text, or why it could not be asked
    error_type: str = ""            # Prometheus' errorType, or "unreachable" / "timeout" / "protocol"
    nan_dropped: int = 0
    warnings: tuple[str, ...] = ()

    @property
    def has_data(self) -> bool:
        return self.outcome == DATA

    def where(self, **labels: str) -> "QueryResult":
        """The same answer narrowed to the samples carrying these label values; ``no_data`` when
        none does (a version that got no traffic is no data, not 0)."""
        if self.outcome != DATA:
            return self
        kept = tuple(s for s in self.samples
                     if all(s.labels.get(k) == v for k, v in labels.items()))
        return QueryResult(self.query, DATA if kept else NO_DATA, kept, warnings=self.warnings)

    def by(self, label: str) -> dict[str, float]:
        """label value -> sample value, for the samples that carry ``label``."""
        return {s.labels[label]: s.value for s in self.samples if label in s.labels}

    @property
    def value(self) -> float:
        """The one value of a single-sample answer; a ``no_data``/``error`` answer or several
        samples raise, so an absent number can never be read as 0."""
        if self.outcome != DATA:
            raise PrometheusError(f"no value: query {_short(self.query)!r} answered {self.describe()}")
        if len(self.samples) != 1:
            raise PrometheusError(f"query {_short(self.query)!r} answered {len(self.samples)} "
                                  f"samples, expected one (narrow it with where(...))")
        return self.samples[0].value

    def describe(self) -> str:
        if self.outcome == ERROR:
            return f"error ({self.error_type}): {self.error}"
        if self.outcome == NO_DATA:
            return "no data" + (f" ({self.nan_dropped} NaN)" if self.nan_dropped else "")
        return f"{len(self.samples)} sample(s)"


def classify(query: str, body: Mapping) -> QueryResult:
    """Turn a /api/v1/query JSON body into a QueryResult (pure)."""
    if body.get("status") != "success":
        return QueryResult(query, ERROR, error=str(body.get("error") or "status is not success"),
                           error_type=str(body.get("errorType") or "unknown"))
    data = body.get("data") or {}
    kind, raw = data.get("resultType"), data.get("result")
    warnings = tuple(body.get("warnings") or ())
    if kind == "scalar" or kind == "string":
        rows = [({}, raw[1])]
    elif kind == "vector":
        rows = [(r.get("metric", {}), r["value"][1]) for r in raw]
    elif kind == "matrix":  # a range selector: its newest value stands for it
        rows = [(r.get("metric", {}), r["values"][-1][1]) for r in raw if r.get("values")]
    else:
        return QueryResult(query, ERROR, error=f"unknown resultType {kind!r}", error_type="protocol")
    samples, nan = [], 0
    for labels, text in rows:
        try:
            v = float(text)
        except (TypeError, ValueError):
            return QueryResult(query, ERROR, error=f"not a number: {text!r}", error_type="protocol")
        if math.isnan(v):
            nan += 1
        else:
            samples.append(Sample(dict(labels), v))
    return QueryResult(query, DATA if samples else NO_DATA, tuple(samples), nan_dropped=nan,
                       warnings=warnings)


def query_prometheus(url: str, promql: str, *, at: float | None = None,
                     timeout: float = 10.0) -> QueryResult:
    """An instant query against any Prometheus (this one, or a user's ``--prometheus-url``).
    A failure to ask is an ``error`` outcome too: the caller cannot measure, so it cannot pass."""
    params = {"query": promql}
    if at is not None:
        params["time"] = f"{at:.3f}"
    try:
        r = requests.post(f"{url.rstrip('/')}/api/v1/query", data=params, timeout=timeout)
    except requests.Timeout:
        return QueryResult(promql, ERROR, error=f"{url} did not answer within {timeout:g} s",
                           error_type="timeout")
    except requests.RequestException as exc:
        return QueryResult(promql, ERROR, error=f"cannot reach Prometheus at {url}: "
                           f"{type(exc).__name__}", error_type="unreachable")
    try:
        body = r.json()
    except ValueError:
        return QueryResult(promql, ERROR, error=f"HTTP {r.status_code}, not JSON: {r.text[:200]!r}",
                           error_type="protocol")
    return classify(promql, body)


def _logfmt_summary(line: str) -> str:
    """'msg: err' of one of Prometheus' logfmt lines (the line itself when it is not logfmt)."""
    fields = dict(re.findall(r'(\w+)=("(?:[^"\\]|\\.)*"|\S+)', line))
    msg, err = (fields.get(k, "").strip('"').replace('\\"', '"') for k in ("msg", "err"))
    return ": ".join(x for x in (msg, err) if x) or line


def _short(text: str, n: int = 80) -> str:
    one = " ".join(text.split())
    return one if len(one) <= n else one[: n - 3] + "..."


def _duration(seconds: float) -> str:
    return f"{max(1, round(seconds * 1000))}ms"


@dataclass
class LocalPrometheus:
    """Prometheus as a child process; use as a context manager (started and ready inside
    ``with``, stopped with its data directory removed on every way out)."""

    scrape_interval: float = 1.0
    rule_files: Iterable[str | os.PathLike] = ()
    evaluation_interval: float | None = None   # default: the scrape interval
    port: int = 0                              # 0 = a free port; once started, the bound one
    job: str = "payment-service"
    targets: Mapping[str, Iterable[str]] | None = None   # the first set_targets, before it starts
    binary: str = "prometheus"
    ready_timeout: float = 30.0
    stop_grace: float = 10.0
    url: str = field(init=False, default="")
    workdir: Path | None = field(init=False, default=None)
    _proc: subprocess.Popen | None = field(init=False, default=None, repr=False)

    # ---- lifecycle -------------------------------------------------------------------------
    def __enter__(self) -> "LocalPrometheus":
        try:
            self.start()
            self.wait_ready()
        except BaseException:
            self.stop()
            raise
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    @property
    def pid(self) -> int | None:
        return self._proc.pid if self._proc else None

    @property
    def targets_file(self) -> Path:
        return self._dir() / "targets.json"

    @property
    def log_path(self) -> Path:
        return self._dir() / "prometheus.log"

    def start(self) -> "LocalPrometheus":
        if self._proc is not None or self.url:
            raise PrometheusError("this LocalPrometheus was already started; make a new one")
        exe = shutil.which(self.binary)
        if exe is None:
            raise PrometheusError(f"{self.binary!r} is not installed (Prometheus scrapes the replicas); "
                                  f"install it with: {INSTALL_HINT}")
        if self.scrape_interval <= 0:
            raise PrometheusError(f"scrape interval must be > 0 s, got {self.scrape_interval}")
        rules = [Path(p).resolve() for p in self.rule_files]
        for p in rules:
            if not p.is_file():
                raise PrometheusError(f"rule file {p} does not exist")
        self.workdir = Path(tempfile.mkdtemp(prefix="zerodrop-prometheus-"))
        try:
            self.set_targets(self.targets or {})
            (self._dir() / "prometheus.yml").write_text(json.dumps(self._config(rules), indent=1))
            fixed = self.port != 0
            for _attempt in range(1 if fixed else 3):
                port = self.port or free_port()
                self._spawn(exe, port)
                problem = self._exited_early()
                if problem is None:
                    self.port, self.url = port, f"http://127.0.0.1:{port}"
                    return self
                if "address already in use" in problem and not fixed:
                    continue  # someone took the free port between our check and its bind
                break
            if "address already in use" in problem:
                raise PrometheusError(f"port {port} on 127.0.0.1 is already in use; free it or "
                                      f"use port=0 (a free one)")
            raise PrometheusError(f"prometheus exited at once {problem}")
        except BaseException:
            self.stop()
            raise

    def _dir(self) -> Path:
        if self.workdir is None:
            raise PrometheusError("LocalPrometheus is not started (use it as a context manager)")
        return self.workdir

    def _config(self, rules: list[Path]) -> dict:
        interval = _duration(self.scrape_interval)
        return {  # JSON is YAML: no YAML writer needed
            "global": {"scrape_interval": interval,
                       "scrape_timeout": _duration(min(self.scrape_interval, 10.0)),
                       "evaluation_interval": _duration(self.evaluation_interval
                                                        or self.scrape_interval)},
            "rule_files": [str(p) for p in rules],
            "scrape_configs": [{
                "job_name": self.job,
                "metrics_path": "/metrics",
                # a change is seen at once (inotify; the refresh is the fallback) and handed to
                # the scrapers on discovery's next 5 s tick
                "file_sd_configs": [{"files": [str(self.targets_file)],
                                     "refresh_interval": _duration(max(5.0, self.scrape_interval))}],
            }],
        }

    def _spawn(self, exe: str, port: int) -> None:
        d = self._dir()
        argv = [exe, f"--config.file={d / 'prometheus.yml'}", f"--storage.tsdb.path={d / 'data'}",
                f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1d"]
        with open(self.log_path, "ab") as log:
            self._proc = subprocess.Popen(argv, cwd=d, stdin=subprocess.DEVNULL, stdout=log,
                                          stderr=subprocess.STDOUT, start_new_session=True,
                                          preexec_fn=_die_with_parent)

    def _exited_early(self, watch: float = 0.5) -> str | None:
        """Its last log lines if it exits within ``watch`` seconds (bad config, port taken)."""
        try:
            self._proc.wait(watch)
        except subprocess.TimeoutExpired:
            return None
        return f"with code {self._proc.returncode}: {self.log_tail()}"

    def log_tail(self, lines: int = 3) -> str:
        """Its last log lines (errors first), joined on one line."""
        try:
            text = self.log_path.read_text(errors="replace").strip().splitlines()
        except (OSError, PrometheusError):
            return "no log"
        errors = [_logfmt_summary(t) for t in text if "level=error" in t or "err=" in t]
        return " | ".join((errors or text)[-lines:]) or "no output"

    def wait_ready(self, timeout: float | None = None) -> None:
        """Until GET /-/ready answers 200 (its TSDB is open and it serves queries)."""
        timeout = self.ready_timeout if timeout is None else timeout
        deadline = time.monotonic() + timeout
        last = "no answer"
        while True:
            if self._proc is None or self._proc.poll() is not None:
                code = None if self._proc is None else self._proc.returncode
                raise PrometheusError(f"prometheus exited (code {code}) before it was ready: "
                                      f"{self.log_tail()}")
            try:
                r = requests.get(f"{self.url}/-/ready", timeout=2)
                if r.status_code == 200:
                    return
                last = f"HTTP {r.status_code}"
            except requests.RequestException as exc:
                last = type(exc).__name__
            if time.monotonic() >= deadline:
                raise PrometheusError(f"prometheus at {self.url} not ready after {timeout:g} s "
                                      f"(last: {last}); its log: {self.log_tail()}")
            time.sleep(0.1)

    def stop(self) -> None:
        """SIGTERM, wait, SIGKILL to its group if it lingers; its data directory removed."""
        proc, self._proc = self._proc, None
        if proc is not None:
            if proc.poll() is None:
                try:
                    proc.send_signal(signal.SIGTERM)
                    proc.wait(self.stop_grace)
                except subprocess.TimeoutExpired:
                    try:
                        os.killpg(proc.pid, signal.SIGKILL)
                    except ProcessLookupError:
                        pass
                    proc.wait(5)
            else:
                proc.wait()
        if self.workdir is not None:
            shutil.rmtree(self.workdir, ignore_errors=True)
            self.workdir = None

    # ---- targets -----------------------------------------------------------------------------
    def set_targets(self, targets: Mapping[str, Iterable[str]],
                    labels: Mapping[str, Mapping[str, str]] | None = None) -> None:
        """Replace the scrape targets: colour -> ["host:port", ...] (an ``http://`` prefix is
        accepted and dropped). Each group gets the label ``color`` and any extra ``labels[colour]``
        (never one the service's metrics carry: see the module doc). Written atomically."""
        labels = labels or {}
        groups = []
        for color, addresses in targets.items():
            extra = dict(labels.get(color, {}))
            clash = sorted(set(extra) & RESERVED_LABELS)
            if clash:
                raise PrometheusError(f"target label(s) {', '.join(clash)} would clash with the "
                                      f"service's own labels; choose other names")
            hosts = [a.split("://", 1)[-1].rstrip("/") for a in addresses]
            if hosts:
                groups.append({"targets": hosts, "labels": {**extra, "color": color}})
        path = self.targets_file
        tmp = path.with_name(f".{path.name}.tmp")
        tmp.write_text(json.dumps(groups, indent=1))
        os.replace(tmp, path)  # Prometheus never reads a half-written file

    def api(self, path: str, **params: str) -> dict:
        """The ``data`` of a GET on its HTTP API (``targets``, ``rules``, ``alerts``, ...)."""
        try:
            r = requests.get(f"{self.url}/api/v1/{path}", params=params, timeout=5)
            body = r.json()
        except (requests.RequestException, ValueError) as exc:
            raise PrometheusError(f"GET /api/v1/{path} on {self.url} failed: {exc}") from None
        if body.get("status") != "success":
            raise PrometheusError(f"GET /api/v1/{path} on {self.url}: {body.get('error')}")
        return body["data"]

    def active_targets(self) -> list[dict]:
        return self.api("targets", state="active")["activeTargets"]

    def wait_scraped(self, addresses: Iterable[str], timeout: float = 15.0) -> None:
        """Until each of these ``host:port`` targets has been scraped successfully once."""
        want = {a.split("://", 1)[-1].rstrip("/") for a in addresses}
        deadline = time.monotonic() + timeout
        while True:
            up = {t["labels"].get("instance") for t in self.active_targets()
                  if t.get("health") == "up"}
            if want <= up:
                return
            if time.monotonic() >= deadline:
                raise PrometheusError(f"targets {sorted(want - up)} not scraped after {timeout:g} s "
                                      f"(up: {sorted(x for x in up if x)})")
            time.sleep(0.2)

    # ---- queries -----------------------------------------------------------------------------
    def query(self, promql: str, *, at: float | None = None, timeout: float = 10.0) -> QueryResult:
        if not self.url:
            return QueryResult(promql, ERROR, error="LocalPrometheus is not started",
                               error_type="unreachable")
        return query_prometheus(self.url, promql, at=at, timeout=timeout)

    def wait_for_data(self, promql: str, timeout: float = 15.0,
                      interval: float | None = None) -> QueryResult:
        """Poll until the query has data (a fresh Prometheus has none for a few scrapes) and
        return it; an error answer ends the wait at once; the timeout names the query."""
        deadline = time.monotonic() + timeout
        while True:
            result = self.query(promql)
            if result.outcome != NO_DATA:
                return result
            if time.monotonic() >= deadline:
                raise PrometheusError(f"no data after {timeout:g} s for {_short(promql)!r}")
            time.sleep(interval or min(0.5, self.scrape_interval))
