"""The Platform seam: the one interface scenarios and suites talk to.

Implementations: ``platforms.local`` (real processes on this machine behind a kube-proxy-like
front) and ``platforms.kubernetes`` (a real cluster through the official client), chosen by
``--target`` through ``platforms.registry``. Scenarios import this module only, never an
implementation.

Everything here shares one clock: ``time.time()`` (wall seconds with microseconds), so that a
ledger record and a platform event can be subtracted.
"""
from __future__ import annotations

import abc
from dataclasses import dataclass, field
from typing import Any

from zerodrop.records.events import EventLog

COLORS = ("blue", "green")


def check_weights(weights: dict[str, int], canary: str | None = None) -> dict[str, int]:
    """A canary split as every platform takes it: known colours, whole percents in 0..100 that
    sum to 100; a copy, or PlatformError in one line (before any traffic moves)."""
    for c, w in weights.items():
        if c not in COLORS:
            raise PlatformError(f"unknown colour {c!r} in weights; use {' and '.join(COLORS)}")
        if not isinstance(w, int) or isinstance(w, bool) or not 0 <= w <= 100:
            raise PlatformError(f"weight of {c} must be a whole percent in 0..100, got {w!r}")
    if sum(weights.values()) != 100:
        raise PlatformError(f"weights must sum to 100, got {sum(weights.values())}")
    if canary is not None and canary not in COLORS:
        raise PlatformError(f"unknown canary colour {canary!r}; use {' or '.join(COLORS)}")
    return dict(weights)


class PlatformError(RuntimeError):
    """A platform operation failed; the message is one line for a person, with the fix."""


@dataclass(frozen=True)
class ReplicaInfo:
    name: str
    color: str
    version: str
    url: str
    pid: int | None
    ready: bool
    terminating: bool
    restarts: int


@dataclass(frozen=True)
class Target:
    """What a verification suite needs to reach one deployment: addresses and credentials.

    ``preview_urls`` maps a colour to its own address (the seed's payment-service-blue/-green
    Services) where the platform offers one; ``admin_token`` reaches the fault API of the
    reference service and is None for a deployment zerodrop did not start.
    """

    kind: str
    base_url: str
    token: str
    preview_urls: dict[str, str] = field(default_factory=dict)
    admin_token: str | None = None
    active_color: str | None = None

    def aimed_at(self, color: str) -> "Target":
        """The same target with its base URL moved to one colour's preview address."""
        if color not in self.preview_urls:
            raise PlatformError(
                f"no preview address for colour {color!r} on target {self.kind!r}; "
                f"known: {', '.join(sorted(self.preview_urls)) or 'none'}"
            )
        return Target(self.kind, self.preview_urls[color], self.token, self.preview_urls,
                      self.admin_token, color)

    def redacted(self) -> dict[str, Any]:
        """For reports: never the secrets."""
        return {"kind": self.kind, "base_url": self.base_url, "preview_urls": self.preview_urls,
                "active_color": self.active_color}


class Platform(abc.ABC):
    """Where blue and green run side by side behind one Service. One-line contracts."""

    events: EventLog

    @property
    @abc.abstractmethod
    def service_url(self) -> str:
        """The Service address all clients use; follows the selector."""

    @abc.abstractmethod
    def preview_url(self, color: str) -> str:
        """An address that reaches only ``color`` (for testing the idle colour)."""

    @property
    def metrics_url(self) -> str | None:
        """A Prometheus that scrapes this platform's replicas (every replica's ``/metrics``),
        or None when there is none."""
        return None

    def query_metrics(self, promql: str) -> Any:
        """An instant query to that Prometheus: a ``QueryResult`` (platforms/local/prometheus.py)
        whose ``outcome`` is data, no_data (empty or NaN: never 0) or error."""
        raise PlatformError("no Prometheus scrapes this platform")

    def wait_scraped(self, color: str, timeout: float | None = None) -> None:
        """Until that Prometheus has scraped every ready replica of ``color`` (a new replica
        has no series yet: a canary judged before then reads "no data")."""
        raise PlatformError("no Prometheus scrapes this platform")

    @abc.abstractmethod
    def deploy(self, color: str, version: str, *, faults: dict | None = None) -> None:
        """Give ``color`` a new template (version, fault knobs); running replicas are replaced."""

    @abc.abstractmethod
    def scale(self, color: str, replicas: int) -> None:
        """Set the desired replica count of ``color``; returns at once (see wait_ready)."""

    @abc.abstractmethod
    def wait_ready(self, color: str, timeout: float | None = None) -> None:
        """Block until every desired replica of ``color`` runs the current template and is
        ready, or raise PlatformError naming what is not ready and why."""

    @abc.abstractmethod
    def wait_routed(self, color: str | None = None, timeout: float | None = None) -> None:
        """Block until the Service (``color`` None) or ``color``'s preview address sends new
        connections to exactly the ready replicas it selects: ready is not yet routed."""

    @abc.abstractmethod
    def deployed_version(self, color: str) -> str | None:
        """The version in ``color``'s template (None if never deployed), even at 0 replicas."""

    @property
    @abc.abstractmethod
    def propagation_hint(self) -> float:
        """Seconds an endpoint change may take to reach every proxy (the drain must cover it)."""

    @abc.abstractmethod
    def active_color(self) -> str | None:
        """The colour the Service selects (None when it selects by weights or nothing)."""

    @abc.abstractmethod
    def route_to(self, color: str) -> None:
        """Replace the Service selector with ``color`` (a replace, never a merge)."""

    @abc.abstractmethod
    def set_weights(self, weights: dict[str, int], canary: str | None = None) -> None:
        """Split traffic between colours by percent (canary); must sum to 100. With ``canary``,
        requests carrying the header ``canary: true`` go to that colour whatever the weights
        (the seed's VirtualService match)."""

    @abc.abstractmethod
    def replicas(self, color: str) -> list[ReplicaInfo]:
        """The replicas of ``color`` as the platform sees them now."""

    @abc.abstractmethod
    def kill_replica(self, color: str, sig: int, index: int = 0) -> ReplicaInfo:
        """Send ``sig`` to one replica of ``color`` on purpose (chaos, negative controls)."""

    @abc.abstractmethod
    def apply_fault(self, color: str, faults: dict, index: int | None = None) -> None:
        """Change fault knobs on every running replica of ``color`` at run time (later ones
        start with them too), or on its running replica ``index`` alone."""

    def delete_replica(self, color: str, index: int = 0) -> ReplicaInfo:
        """Delete one replica of ``color`` as a pod deletion does (out of the endpoints, SIGTERM,
        SIGKILL after the grace period); its controller starts a replacement."""
        raise PlatformError(f"{type(self).__name__} cannot delete a replica")

    @property
    def network_faults(self) -> bool:
        """Whether ``network_fault`` can work here (a replica's own network namespace)."""
        return False

    def network_fault(self, color: str, delay_ms: int = 0, loss_pct: int = 0) -> None:
        """Delay and/or drop the packets of every running replica of ``color`` (tc netem in its
        network namespace); PlatformError saying why where the platform cannot."""
        raise PlatformError(f"{type(self).__name__} cannot add network delay or loss")

    def clear_network_fault(self, color: str) -> None:
        """Remove what ``network_fault`` added to ``color``'s replicas; safe to call twice."""

    def readiness_findings(self, color: str) -> list[str]:
        """Zero-downtime readiness problems of the live objects before traffic moves to
        ``color`` (each also emitted as a "readiness finding" event); none by default."""
        return []

    def drain_window_s(self) -> float | None:
        """How long a replica told to stop keeps serving before it closes (the service's own
        drain, e.g. DRAIN_SECONDS), when the platform knows it; None (the default) when not.
        The proof sets its idle clients' period above it."""
        return None

    def migrate(self, version: str, env: dict[str, str] | None = None) -> None:
        """Run ``version``'s schema migration (with ``env``, e.g. MIGRATE_RELEASE) against the
        shared database while the replicas keep serving; PlatformError with its output's tail."""
        raise PlatformError(f"this platform cannot run a migration (of {version}) while it serves")

    def command_env(self) -> dict[str, str] | None:
        """The environment an outside deploy command needs to act on this platform (on a
        cluster: KUBECONFIG, NAMESPACE, SERVICE_NAME), or None (the default) when no outside
        command can switch it. Secrets stay in files; the values are safe to log."""
        return None

    def load_generator(self) -> Any:
        """A factory ``(plan, progress=...) -> run`` with ``zerodrop.load.runner.LoadRun``'s
        contract when this platform runs the load itself (inside a cluster); None (the
        default): the proof runs Locust on this machine."""
        return None

    @abc.abstractmethod
    def target(self) -> Target:
        """Addresses and credentials for the verification suites."""

    @abc.abstractmethod
    def teardown(self) -> None:
        """Stop everything this platform started; safe to call twice."""

    def __enter__(self) -> "Platform":
        return self

    def __exit__(self, *exc: object) -> None:
        self.teardown()
