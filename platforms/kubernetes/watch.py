"""What the cluster does, onto the platform's timeline: a watch of the namespace's pods
(replica started/ready/unready/terminating/terminated) and one of its EndpointSlices
(endpoints changed), each event stamped when this process saw it.

Each watch resumes from the resourceVersion where the last one ended, so that no change
falls in the gap between two watch calls; one that cannot resume (410 Gone) lists afresh,
and the handlers diff against what they saw, so the repeated ADDED events are harmless.
"""
from __future__ import annotations

import threading
from typing import Any, Callable

from zerodrop.platforms.kubernetes.layout import Layout
from zerodrop.records.events import EventLog, EventName, Source


def pod_ready(pod: Any) -> bool:
    return any(c.type == "Ready" and c.status == "True" for c in pod.status.conditions or [])


class Watcher:
    """The two watch threads of one platform; ``stop()`` ends them."""

    def __init__(self, api, layout: Layout, events: EventLog) -> None:
        self.api, self.layout, self.events = api, layout, events
        self._stop = threading.Event()
        self._threads: list[threading.Thread] = []
        self._pods: dict[str, tuple[bool, bool]] = {}   # name -> (ready, terminating)
        self._slices: dict[str, tuple[str, tuple[str, ...]]] = {}  # slice -> (Service, ready pods)

    def start(self) -> None:
        for fn, handler in ((self.api.core.list_namespaced_pod, self.on_pod),
                            (self.api.discovery.list_namespaced_endpoint_slice, self.on_slice)):
            t = threading.Thread(target=self._loop, args=(fn, handler), daemon=True,
                                 name=f"zd-watch-{handler.__name__}")
            t.start()
            self._threads.append(t)

    def stop(self, timeout: float = 1.0) -> None:
        self._stop.set()
        for t in self._threads:
            t.join(timeout=timeout)

    def _loop(self, list_fn: Callable, handler: Callable) -> None:
        version = None
        while not self._stop.is_set():
            try:
                version = self._watch_once(list_fn, handler, version)
            except Exception:  # 410 Gone, a dropped connection: start over with a list
                version = None
                self._stop.wait(0.2)

    def _watch_once(self, list_fn: Callable, handler: Callable, version: str | None):
        """One watch call from ``version``; the version to resume from."""
        from kubernetes import watch
        w = watch.Watch()
        kwargs = {"resource_version": version} if version else {}
        for ev in w.stream(list_fn, self.api.namespace, timeout_seconds=2, _request_timeout=10,
                           **kwargs):
            if self._stop.is_set():
                w.stop()
                break
            if ev["type"] == "ERROR":
                version = None
                continue
            handler(ev["type"], ev["object"])
        return w.resource_version or version

    # ---- pods -----------------------------------------------------------------------------------
    def on_pod(self, kind: str, pod: Any) -> None:
        color = self.layout.color_of(pod.metadata.labels)
        if color is None:
            return
        name = pod.metadata.name
        if kind == "DELETED":
            if self._pods.pop(name, None) is not None:
                self._emit(EventName.REPLICA_TERMINATED, color=color, replica=name,
                           reason="pod deleted")
            return
        now = (pod_ready(pod), bool(pod.metadata.deletion_timestamp))
        before = self._pods.get(name)
        self._pods[name] = now
        if before is None:
            self._emit(EventName.REPLICA_STARTED, color=color, replica=name)
            before = (False, False)
        self._pod_changed(color, name, before, now)

    def _pod_changed(self, color: str, name: str, before: tuple[bool, bool],
                     now: tuple[bool, bool]) -> None:
        (was_ready, was_going), (ready, going) = before, now
        if going and not was_going:
            self._emit(EventName.REPLICA_TERMINATING, color=color, replica=name)
        if ready and not was_ready:
            self._emit(EventName.REPLICA_READY, color=color, replica=name)
        elif was_ready and not ready:
            self._emit(EventName.REPLICA_UNREADY, color=color, replica=name,
                       reason="terminating" if going else "readiness failed")

    # ---- EndpointSlices -------------------------------------------------------------------------
    def on_slice(self, kind: str, eps: Any) -> None:
        service = (eps.metadata.labels or {}).get("kubernetes.io/service-name") or ""
        if service not in self.layout.services:
            return  # the database's and the canary's endpoints are not the switch's
        before = self.routed(service)
        if kind == "DELETED":
            self._slices.pop(eps.metadata.name, None)
        else:  # a Service may have several slices: the endpoints are their union
            self._slices[eps.metadata.name] = (service, tuple(sorted(ready_endpoints(eps))))
        now = self.routed(service)
        if now != before:
            self._emit(EventName.ENDPOINTS_CHANGED, front=service, endpoints=sorted(now),
                       slice=eps.metadata.name)

    def routed(self, service: str) -> set[str]:
        return {name for svc, names in self._slices.values() if svc == service for name in names}

    def _emit(self, name: EventName, **detail: Any) -> None:
        self.events.emit(Source.PLATFORM, name, **detail)


def ready_endpoints(eps: Any) -> set[str]:
    """The pod names an EndpointSlice lists as ready."""
    return {e.target_ref.name for e in (eps.endpoints or [])
            if e.target_ref and e.conditions and e.conditions.ready}
