"""A Service taken as it is, READ-ONLY: what a nightly run loads (suites/nightly).

``ReadOnlyPlatform`` is the Platform interface over a Service's address alone: the load reaches
it, and every method that would change something (deploy, scale, route_to, set_weights,
kill_replica, apply_fault, delete_replica, network_fault, migrate) asks its ``WriteGuard``
first, which refuses in one line unless the run allows changes. It serves any target (the
suites' Service of ``--target url``, ``local``, ``kind`` or ``kubeconfig``); on a cluster,
``platforms/kubernetes/attach.py`` extends it with reads through the API and a guarded client.
"""
from __future__ import annotations

from zerodrop.platforms.base import Platform, PlatformError, ReplicaInfo, Target
from zerodrop.records.events import EventLog

FIX = ("a nightly run is read-only: it creates, patches, scales and deletes nothing; pass "
       "--nightly-allow-deploy to let it change the cluster")


class ReadOnlyError(PlatformError):
    """A change refused by a read-only run."""


class WriteGuard:
    """Whether this run may change anything; what it refused (for the tests and the report)."""

    def __init__(self, allow: bool = False) -> None:
        self.allow = allow
        self.refused: list[str] = []

    def check(self, what: str) -> None:
        """Return when writes are allowed; else record ``what`` and raise ReadOnlyError."""
        if self.allow:
            return
        self.refused.append(what)
        raise ReadOnlyError(f"refused to {what}: {FIX}")


class ReadOnlyPlatform(Platform):
    """The Service at ``url``, as it is. Changes go through ``guard`` first; even allowed, this
    platform makes none itself (a subclass that can, on a cluster, does)."""

    def __init__(self, url: str, guard: WriteGuard, *, kind: str = "attached",
                 token: str = "test-token", events: EventLog | None = None) -> None:
        self.url, self.guard, self.kind, self.token = url.rstrip("/"), guard, kind, token
        self.events = events or EventLog()
        self._closed = False

    # ---- what it reads ------------------------------------------------------------------------
    @property
    def service_url(self) -> str:
        return self.url

    def preview_url(self, color: str) -> str:
        raise PlatformError("an attached Service has no preview address of one colour")

    @property
    def propagation_hint(self) -> float:
        return 2.0

    def active_color(self) -> str | None:
        return None  # a URL does not say which colour it selects

    def replicas(self, color: str) -> list[ReplicaInfo]:
        return []

    def deployed_version(self, color: str) -> str | None:
        return None  # an attached Service's template is not ours to read into

    def wait_ready(self, color: str, timeout: float | None = None) -> None:
        """Read-only: the Service is taken as it is (the probe's verdict says how it answers)."""

    def wait_routed(self, color: str | None = None, timeout: float | None = None) -> None:
        """Read-only: as ``wait_ready``."""

    def target(self) -> Target:
        return Target(self.kind, self.url, self.token, {}, None, None)

    def teardown(self) -> None:
        """Nothing was created, so nothing is removed; safe to call twice."""
        self._closed = True

    # ---- what it would change: the guard first --------------------------------------------------
    def deploy(self, color: str, version: str, *, faults: dict | None = None) -> None:
        self.guard.check(f"deploy {version} to {color}")
        raise self._not_here("deploy")

    def scale(self, color: str, replicas: int) -> None:
        self.guard.check(f"scale {color} to {replicas}")
        raise self._not_here("scale")

    def route_to(self, color: str) -> None:
        self.guard.check(f"switch Service {self.url} to {color}")
        raise self._not_here("route_to")

    def set_weights(self, weights: dict[str, int], canary: str | None = None) -> None:
        self.guard.check(f"split traffic {weights}")
        raise self._not_here("set_weights")

    def kill_replica(self, color: str, sig: int, index: int = 0) -> ReplicaInfo:
        self.guard.check(f"kill a replica of {color}")
        raise self._not_here("kill_replica")

    def apply_fault(self, color: str, faults: dict, index: int | None = None) -> None:
        self.guard.check(f"apply faults {faults} to {color}")
        raise self._not_here("apply_fault")

    def delete_replica(self, color: str, index: int = 0) -> ReplicaInfo:
        self.guard.check(f"delete a replica of {color}")
        raise self._not_here("delete_replica")

    def network_fault(self, color: str, delay_ms: int = 0, loss_pct: int = 0) -> None:
        self.guard.check(f"add network delay/loss to {color}")
        raise self._not_here("network_fault")

    def migrate(self, version: str, env: dict[str, str] | None = None) -> None:
        self.guard.check(f"run the migration of {version}")
        raise self._not_here("migrate")

    def _not_here(self, what: str) -> PlatformError:
        return PlatformError(f"{what}: an attached Service offers only reads (and, on a cluster, "
                             f"a selector switch); a proof that deploys runs on a platform of its "
                             f"own (--nightly-allow-deploy)")
