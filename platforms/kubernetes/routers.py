"""The routers by name (``--router``, ``KubeConfig.router``): a factory apart from routing.py,
so that the weighted routers (gateway.py, istio.py, ratio.py) can build on routing.py's
``Router`` without an import cycle."""
from __future__ import annotations

from zerodrop.platforms.kubernetes.gateway import GatewayRouter
from zerodrop.platforms.kubernetes.istio import IstioRouter
from zerodrop.platforms.kubernetes.layout import Layout
from zerodrop.platforms.kubernetes.ratio import ReplicaRatioRouter
from zerodrop.platforms.kubernetes.routing import Router, SelectorRouter
from zerodrop.records.events import EventLog



ROUTERS: dict[str, type[Router]] = {"selector": SelectorRouter, "gateway": GatewayRouter,
                                    "istio": IstioRouter, "replicas": ReplicaRatioRouter}


def make_router(name: str, api, layout: Layout, events: EventLog | None = None) -> Router:
    """The router called ``name`` (``--router``): the Service selector (the seed's switch), a
    Gateway API HTTPRoute through Traefik, the seed's Istio VirtualService, or the replica-ratio
    fallback through a Service over both colours. ValueError (one line) for an unknown name."""
    if name not in ROUTERS:
        raise ValueError(f"unknown router {name!r}; choose one of {', '.join(ROUTERS)}")
    return ROUTERS[name](api, layout, events)
