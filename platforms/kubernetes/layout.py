"""Where the service lives in a manifest set: the Service clients use, the selector label whose
value (``blue`` or ``green``) is the colour, the two Deployments, the app's container and the
preview Services. Found in the rendered objects, never assumed, so that a team's own kustomize
overlay works as the bundled one does.

Pure: ``discover`` reads object dicts (``render.render``'s output) and returns a ``Layout``, or a
``PlatformError`` in one line that says what the manifests lack and how to name it in the
profile's ``[kubernetes]`` section. Nothing is created before it has answered.
"""
from __future__ import annotations

import copy
from dataclasses import dataclass
from typing import Any, Iterable

from zerodrop.platforms.base import COLORS, PlatformError

DEFAULT_PORT = 8080


@dataclass(frozen=True)
class Layout:
    service: str                    # the Service clients use (its selector is switched)
    label: str                      # the selector label whose value is the colour
    app_labels: tuple[tuple[str, str], ...]  # the rest of the Service's selector
    deployments: tuple[tuple[str, str], ...]  # (colour, Deployment name)
    previews: tuple[tuple[str, str], ...]     # (colour, preview Service name)
    made_previews: tuple[str, ...]  # preview Services the manifests lack (zerodrop adds them)
    container: str                  # the app's container in both Deployments
    port: int = DEFAULT_PORT        # its container port: a replica's own address

    def selector(self, color: str | None = None) -> dict[str, str]:
        """The Service selector for ``color`` (None: every colour's pods)."""
        return {**dict(self.app_labels), **({self.label: color} if color else {})}

    def label_selector(self, color: str | None = None) -> str:
        return ",".join(f"{k}={v}" for k, v in sorted(self.selector(color).items()))

    def deployment(self, color: str) -> str:
        return dict(self.deployments)[color]

    def preview(self, color: str) -> str:
        return dict(self.previews)[color]

    @property
    def services(self) -> tuple[str, ...]:
        """The Services the switch is about: the one clients use and the previews."""
        return (self.service, *(name for _, name in self.previews))

    def color_of(self, labels: dict[str, str] | None) -> str | None:
        """The colour of a pod with these labels, or None when it is not one of the app's."""
        labels = labels or {}
        color = labels.get(self.label)
        if color not in COLORS or any(labels.get(k) != v for k, v in self.app_labels):
            return None
        return color

    def color_of_deployment(self, name: str) -> str | None:
        return next((c for c, n in self.deployments if n == name), None)

    def preview_objects(self, objects: Iterable[dict[str, Any]]) -> list[dict[str, Any]]:
        """The preview Services the manifests lack: copies of the Service, one per colour."""
        main = next(o for o in objects if _is(o, "Service", self.service))
        out = []
        for color, name in self.previews:
            if name not in self.made_previews:
                continue
            svc = copy.deepcopy(main)
            svc["metadata"] = {"name": name, "labels": {**(main["metadata"].get("labels") or {}),
                                                        "zerodrop.io/role": "preview"}}
            svc["spec"] = {"selector": self.selector(color),
                           "ports": [{k: v for k, v in p.items() if k != "nodePort"}
                                     for p in main["spec"].get("ports", [])]}
            out.append(svc)
        return out


def discover(objects: list[dict[str, Any]], service: str, label: str = "version",
             container: str = "", where: str = "the manifests") -> Layout:
    """The layout of ``objects``; ``service``, ``label`` and ``container`` as the profile names
    them (``container`` empty: the only one, or the one named as the Service)."""
    services = [o for o in objects if o.get("kind") == "Service"]
    main = next((o for o in services if _name(o) == service), None)
    if main is None:
        raise PlatformError(f"{where}: no Service named {service} (Services there: "
                            f"{', '.join(sorted(map(_name, services))) or 'none'}); name yours in "
                            f"the profile's [kubernetes] service")
    selector = dict((main.get("spec") or {}).get("selector") or {})
    if label not in selector:
        raise PlatformError(f"{where}: Service {service} selects {_fmt(selector)}, without the "
                            f"label {label!r} that a switch would set to blue or green; name the "
                            f"label that does in the profile's [kubernetes] color_label")
    app = {k: v for k, v in selector.items() if k != label}
    deployments, containers = [], []
    for color in COLORS:
        found = [o for o in objects if o.get("kind") == "Deployment"
                 and _pod_labels(o).get(label) == color
                 and all(_pod_labels(o).get(k) == v for k, v in app.items())]
        want = _fmt({**app, label: color})
        if not found:
            raise PlatformError(f"{where}: no Deployment whose pods are labelled {want} (the "
                                f"{color} colour of Service {service})")
        if len(found) > 1:
            raise PlatformError(f"{where}: {len(found)} Deployments have pods labelled {want} "
                                f"({', '.join(map(_name, found))}); a colour must be one Deployment")
        deployments.append((color, _name(found[0])))
        containers.append(_container(found[0], container, service, where))
    names = {c.get("name") for c in containers}
    if len(names) != 1:
        raise PlatformError(f"{where}: the blue and green Deployments run different containers "
                            f"({', '.join(sorted(map(str, names)))}); name the app's in the profile's "
                            f"[kubernetes] container")
    previews, made = [], []
    for color in COLORS:
        name = f"{service}-{color}"[:63]
        existing = next((o for o in services if _name(o) == name), None)
        if existing is None:
            made.append(name)
        elif dict((existing.get("spec") or {}).get("selector") or {}) != {**app, label: color}:
            raise PlatformError(f"{where}: Service {name} is not the {color} preview of {service}: "
                                f"it selects {_fmt(existing['spec'].get('selector') or {})}, not "
                                f"{_fmt({**app, label: color})}")
        previews.append((color, name))
    ports = containers[0].get("ports") or []
    return Layout(service=service, label=label, app_labels=tuple(sorted(app.items())),
                  deployments=tuple(deployments), previews=tuple(previews),
                  made_previews=tuple(made), container=str(containers[0]["name"]),
                  port=int(ports[0].get("containerPort", DEFAULT_PORT)) if ports else DEFAULT_PORT)


def _container(deployment: dict, wanted: str, service: str, where: str) -> dict:
    containers = ((deployment.get("spec") or {}).get("template", {}).get("spec") or {}).get(
        "containers") or []
    by_name = {c.get("name"): c for c in containers}
    if wanted:
        if wanted not in by_name:
            raise PlatformError(f"{where}: Deployment {_name(deployment)} has no container "
                                f"{wanted} (it has {', '.join(sorted(map(str, by_name))) or 'none'})")
        return by_name[wanted]
    if len(containers) == 1:
        return containers[0]
    if service in by_name:
        return by_name[service]
    raise PlatformError(f"{where}: Deployment {_name(deployment)} has containers "
                        f"{', '.join(sorted(map(str, by_name)))}; name the app's in the profile's "
                        f"[kubernetes] container")


def _is(o: dict, kind: str, name: str) -> bool:
    return o.get("kind") == kind and _name(o) == name


def _name(o: dict) -> str:
    return str((o.get("metadata") or {}).get("name", "?"))


def _pod_labels(o: dict) -> dict[str, str]:
    return ((o.get("spec") or {}).get("template", {}).get("metadata") or {}).get("labels") or {}


def _fmt(labels: dict[str, Any]) -> str:
    return ",".join(f"{k}={v}" for k, v in sorted(labels.items())) or "(nothing)"
