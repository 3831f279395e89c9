"""The no-mesh canary: traffic split by replica counts behind one Service that selects both
colours.

What it does: ``install`` adds a NodePort Service ``<service>-split`` that selects the app's
labels WITHOUT the colour label, and clients come in through it (``entry_service``). kube-proxy
spreads new connections over every ready pod it lists, so a colour's share of connections is
its share of the ready replicas. ``set_weights`` turns percents into replica counts out of a
fixed total (the platform's replicas x 2, between 2 and 10), scales both Deployments (the
growing colour first, so capacity never dips), waits until both are ready, the split's
EndpointSlices list exactly those pods and fresh connections through it have reached every one
of them (kube-proxy lags the EndpointSlices: on this machine 200 of 200 answers came from blue
right after the slices listed blue and green), and emits "selector patched" with the asked AND
the effective weights: 10 % asked of 4 pods is 1 pod, 25 % effective, and the timeline says so.
``route_to`` is the same with the whole total on one colour and the other at 0.

What it cannot do: exact percents (only multiples of 1/total; a colour with a weight keeps at
least one pod, so a small canary gets MORE than asked, never nothing), a share per request
(kube-proxy balances connections: a keep-alive client stays on its pod), a header rule
(asked for one, it says on the timeline that it is not kept), or a drain window of its own: ``route_to`` scales the old colour to 0 at
once, so zero downtime rests on the pods' preStop and graceful shutdown. Any ready pod of
either colour serves through the split, so an idle colour that is scaled up (a preview) takes
traffic too: stand up with the idle colour at 0 replicas.
"""
from __future__ import annotations

import time
from typing import Any

import requests

from zerodrop.platforms.base import COLORS, PlatformError
from zerodrop.platforms.kubernetes.layout import Layout
from zerodrop.platforms.kubernetes.routing import Router
from zerodrop.platforms.kubernetes.watch import pod_ready, ready_endpoints
from zerodrop.records.events import EventLog, EventName, Source

MIN_TOTAL, MAX_TOTAL = 2, 10  # both colours can hold a pod; bounded for a small cluster
SPLIT_ROLE = {"zerodrop.io/role": "split"}


# ---- pure: the arithmetic and the object -------------------------------------------------------
def split_total(replicas: int) -> int:
    """How many pods the two colours share: the platform's replicas x 2, within 2..10."""
    return max(MIN_TOTAL, min(MAX_TOTAL, 2 * replicas))


def replica_counts(weights: dict[str, int], total: int) -> dict[str, int]:
    """Pods per colour out of ``total`` whose ratio is closest to ``weights`` (checked percents
    summing to 100), except that a colour with any weight keeps at least one pod: a canary
    asked for 10 % of 4 pods gets 1 (25 %), not 0 (which would silently be no canary)."""
    if total < MIN_TOTAL:
        raise PlatformError(f"a replica split needs at least {MIN_TOTAL} pods, got {total}")
    w = {c: weights.get(c, 0) for c in COLORS}
    small, big = sorted(COLORS, key=lambda c: (w[c], c))  # big has >= 50 %
    n = (total * w[small] + 50) // 100  # nearest, halves up; integers, no float rounding
    if w[small] > 0:
        n = min(max(n, 1), total - 1)
    return {small: n, big: total - n}


def effective_weights(counts: dict[str, int]) -> dict[str, float]:
    """The percent of pods (so of new connections) each colour gets, to one decimal."""
    total = sum(counts.values())
    return {c: round(100 * counts.get(c, 0) / total, 1) for c in COLORS}


def split_name(layout: Layout) -> str:
    return f"{layout.service}-split"[:63]


def split_service(layout: Layout, main: dict[str, Any], labels: dict[str, str]) -> dict[str, Any]:
    """The split Service: the Service's ports (no NodePort: one is allocated), selecting every
    colour's pods."""
    ports = [{k: v for k, v in p.items() if k != "nodePort" and v is not None}
             for p in (main.get("spec") or {}).get("ports") or []]
    if not ports:
        raise PlatformError(f"Service {layout.service} has no ports to copy to "
                            f"{split_name(layout)}")
    return {"apiVersion": "v1", "kind": "Service",
            "metadata": {"name": split_name(layout), "labels": {**labels, **SPLIT_ROLE}},
            "spec": {"type": "NodePort", "selector": layout.selector(None), "ports": ports}}


# ---- the router -------------------------------------------------------------------------------
def header_note(canary: str | None) -> dict[str, str]:
    """What the timeline says of a header rule this router was asked for and cannot keep."""
    if canary is None:
        return {}
    return {"canary_header": f"not routed to {canary}: kube-proxy sees no headers (use --router "
                             f"gateway or istio for the seed's canary: true rule)"}


class ReplicaRatioRouter(Router):
    """Weights as replica counts behind ``<service>-split``; see the module docstring for what
    that can and cannot promise."""

    def __init__(self, api, layout: Layout, events: EventLog | None = None) -> None:
        self.api, self.layout, self.events = api, layout, events
        self.split = split_name(layout)
        self.platform = None  # install's: it scales and waits on the Deployments
        self.total = MIN_TOTAL

    def install(self, platform) -> None:
        self.platform = platform
        self.total = split_total(platform.config.replicas)
        main = self.api.call(f"read Service {self.layout.service}",
                             self.api.core.read_namespaced_service, self.layout.service,
                             self.api.namespace)
        platform.create_node_port_service(
            split_service(self.layout, self.api.serialize(main), platform.labels()))

    def entry_service(self) -> str | None:
        return self.split

    def wait_entry(self, platform, timeout: float) -> None:
        """The split's EndpointSlices list every ready pod, and fresh connections reach each."""
        deadline = time.monotonic() + timeout
        want = platform._wait_slices(self.split, deadline, timeout)
        self._wait_answers(platform, want, deadline, timeout)

    def route_to(self, color: str) -> None:
        other = next(c for c in COLORS if c != color)
        self._apply({color: 100}, {color: self.total, other: 0}, {})

    def set_weights(self, weights: dict[str, int], canary: str | None = None) -> None:
        """The weights as replica counts; a header rule (``canary``) cannot be kept here
        (kube-proxy sees no headers), and the timeline says so rather than a canary failing."""
        self._apply(weights, replica_counts(weights, self.total), header_note(canary))

    def active_color(self) -> str | None:
        """The one colour whose ready pods the split's EndpointSlices list, or None."""
        behind = self._slice_pods()
        pods = self._pods()
        colors = {self.layout.color_of(p.metadata.labels) for p in pods
                  if p.metadata.name in behind}
        colors.discard(None)
        return colors.pop() if len(colors) == 1 else None

    # ---- internals ----------------------------------------------------------------------------
    def _apply(self, asked: dict[str, int], counts: dict[str, int], note: dict[str, str]) -> None:
        platform = self._platform()
        timeout = platform.config.ready_timeout
        current = {c: self._desired(c) for c in COLORS}
        # the growing colour first and ready before the other shrinks: capacity never dips
        for color in sorted(COLORS, key=lambda c: counts[c] <= current[c]):
            if counts[color] != current[color]:
                platform.scale(color, counts[color])
            platform.wait_ready(color, timeout)
        deadline = time.monotonic() + timeout
        self._wait_answers(platform, self._wait_split(counts, deadline, timeout), deadline,
                           timeout)
        if self.events is not None:
            self.events.emit(Source.PLATFORM, EventName.SELECTOR_PATCHED, service=self.split,
                             selector=self.layout.selector(None), asked=dict(asked),
                             effective=effective_weights(counts), replicas=dict(counts),
                             total=sum(counts.values()), **note)

    def _platform(self):
        if self.platform is None:
            raise PlatformError("the replica-ratio router is not installed (no platform yet)")
        return self.platform

    def _desired(self, color: str) -> int:
        d = self.api.call(f"read Deployment {self.layout.deployment(color)}",
                          self.api.apps.read_namespaced_deployment,
                          self.layout.deployment(color), self.api.namespace)
        return d.spec.replicas or 0

    def _pods(self) -> list:
        return self.api.call("list pods", self.api.core.list_namespaced_pod, self.api.namespace,
                             label_selector=self.layout.label_selector(None)).items

    def _slice_pods(self) -> set[str]:
        slices = self.api.call("list EndpointSlices",
                               self.api.discovery.list_namespaced_endpoint_slice,
                               self.api.namespace,
                               label_selector=f"kubernetes.io/service-name={self.split}").items
        return {name for s in slices for name in ready_endpoints(s)}

    def _wait_split(self, counts: dict[str, int], deadline: float,
                    timeout: float) -> dict[str, str]:
        """Until the split's EndpointSlices list exactly the ready pods, ``counts`` of each;
        those pods and their colours."""
        while True:
            ready = {p.metadata.name: self.layout.color_of(p.metadata.labels)
                     for p in self._pods()
                     if pod_ready(p) and not p.metadata.deletion_timestamp}
            have = {c: sum(1 for v in ready.values() if v == c) for c in COLORS}
            got = self._slice_pods()
            if have == counts and got == set(ready):
                return ready
            if time.monotonic() > deadline:
                raise PlatformError(
                    f"Service {self.split} in {self.api.namespace} does not list "
                    f"{', '.join(f'{n} {c}' for c, n in counts.items())} ready pods after "
                    f"{timeout:g} s: ready {have}, EndpointSlices list {sorted(got) or 'nothing'}")
            time.sleep(0.2)

    def _wait_answers(self, platform, want, deadline: float, timeout: float) -> None:
        """Until fresh connections through the split have reached EVERY pod in ``want`` (pod
        names, or a dict of pod name -> colour) and the last few answers in a row came only
        from them. A listed EndpointSlice is not yet a kube-proxy rule: with a lagging proxy
        every answer could still come from the pods of before, and any-of-them (the platform's
        check) would pass a split that does not exist yet. Pods are told apart by the
        profile's replica header, else colours by its colour header; a service with neither
        is only asked to answer."""
        colors = dict(want) if isinstance(want, dict) else {}
        profile = platform.profile
        if profile.replica_header:
            header, expect = profile.replica_header, set(want)
        elif profile.color_header and colors:
            header, expect = profile.color_header, set(colors.values())
        else:
            header, expect = "", {"a ready pod"}
        url, seen, in_a_row, last = platform.service_url, set(), 0, "nothing"
        while not (seen == expect and in_a_row >= platform.config.route_answers):
            if time.monotonic() > deadline:
                raise PlatformError(
                    f"Service {self.split} in {self.api.namespace}: fresh connections reached "
                    f"{sorted(seen) or 'none'} of {sorted(expect)} after {timeout:g} s (last "
                    f"answer from {last}; kube-proxy behind?)")
            try:
                resp = requests.get(f"{url}{profile.liveness}", timeout=2,
                                    headers={"Connection": "close"})
                last = (resp.headers.get(header, f"an answer without {header}") if header
                        else ("a ready pod" if resp.ok else f"HTTP {resp.status_code}"))
            except requests.RequestException as exc:
                last = f"no answer ({type(exc).__name__})"
            if last in expect:
                seen.add(last)
                in_a_row += 1
            else:
                in_a_row = 0
                time.sleep(0.1)
