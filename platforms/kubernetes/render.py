"""Render a kustomize overlay (by default the reference service's, payment_service/manifests)
into object dicts for one namespace.

``kubectl kustomize`` does the rendering (the same output a user gets with ``kubectl apply -k``);
``customize`` then makes the objects this run's own, in code that a test can read: namespace,
run labels, the image, each colour's version and replicas, the tokens, and NodePorts left for
the platform to allocate from the pool the cluster publishes. Which objects are the service's
Deployments and Services is the ``Layout``'s to say (layout.py), never a name assumed here.
"""
from __future__ import annotations

import copy
import glob
import json
import os
import shutil
import subprocess
from functools import lru_cache
from pathlib import Path
from typing import Any

import yaml

from zerodrop.platforms.base import PlatformError

import zerodrop.payment_service as _service
from zerodrop.platforms.kubernetes.layout import Layout

MANIFESTS = Path(_service.__file__).resolve().parent / "manifests"
DEFAULT_OVERLAY = MANIFESTS / "overlays" / "kind"
REFERENCE_SECRET = "payment-service"  # the reference service's own Secret (its tokens)
TOKEN_SECRET = "zerodrop-token"        # the run's token, for any service and the load pods


def kubectl_binary() -> str:
    given = os.environ.get("ZD_KUBECTL")
    if given and not shutil.which(given):
        raise PlatformError(f"ZD_KUBECTL={given}: no such program")
    found = given or shutil.which("kubectl")
    if not found:  # the offline cluster build (infra/cluster/build-k8s.sh) keeps one here
        cache = os.environ.get("ZD_CLUSTER_CACHE", "/var/cache/zerodrop-cluster")
        built = sorted(glob.glob(f"{cache}/k8s/*/bin/kubectl"))
        found = built[-1] if built else None
    if not found:
        raise PlatformError("kubectl is not installed (it renders the kustomize manifests); "
                            "install it or set ZD_KUBECTL")
    return found


@lru_cache(maxsize=8)
def _rendered(overlay: str) -> str:
    done = subprocess.run([kubectl_binary(), "kustomize", overlay], capture_output=True,
                          text=True, timeout=60, stdin=subprocess.DEVNULL)
    if done.returncode != 0:
        lines = done.stderr.strip().splitlines() or ["no output"]
        raise PlatformError(f"kubectl kustomize {overlay} failed: {lines[-1][:300]}")
    return done.stdout


def render(overlay: Path = DEFAULT_OVERLAY) -> list[dict[str, Any]]:
    if not (Path(overlay) / "kustomization.yaml").is_file():
        raise PlatformError(f"--manifests {overlay}: no kustomization.yaml there")
    return [o for o in yaml.safe_load_all(_rendered(str(overlay))) if isinstance(o, dict)]


def images_of(objects: list[dict[str, Any]], layout: Layout, image: str | None) -> list[str]:
    """The images the customized objects run (``image`` in place of the app's and the Jobs',
    as ``customize`` does), each once, in order."""
    out: list[str] = []
    for o in objects:
        spec = (o.get("spec") or {}).get("template", {}).get("spec") or {}
        for c in [*spec.get("initContainers", []), *spec.get("containers", [])]:
            app = (o.get("kind") == "Deployment" and c.get("name") == layout.container
                   and layout.color_of_deployment(o["metadata"].get("name")) is not None)
            name = image if image and (app or o.get("kind") == "Job") else c.get("image")
            if name and name not in out:
                out.append(name)
    return out


def customize(objects: list[dict[str, Any]], *, layout: Layout, namespace: str,
              labels: dict[str, str], image: str | None, versions: dict[str, str],
              replicas: dict[str, int], token: str, admin_token: str, faults: dict[str, dict],
              env: dict[str, str] | None = None, prestop_seconds: float | None = None,
              reference: bool = True) -> list[dict[str, Any]]:
    """Copies of ``objects`` (plus the preview Services ``layout`` says the manifests lack, and
    the run's token Secret) for one namespace.

    The app's container in each colour gets what the local platform also hands every replica:
    APP_VERSION, ZD_COLOR and ZD_TOKEN (from the Secret ``TOKEN_SECRET``, never in the pod spec);
    the reference service (``reference``) also FAULTS and its own Secret's tokens. ``env``
    overrides app variables on both colours; ``prestop_seconds`` 0 removes the preStop hook (a
    broken manifest, for negative controls)."""
    out = [_token_secret(token)]
    for original in [*objects, *layout.preview_objects(objects)]:
        o = copy.deepcopy(original)
        meta = o.setdefault("metadata", {})
        meta["namespace"] = namespace
        meta.setdefault("labels", {}).update(labels)
        kind, name = o.get("kind"), meta.get("name")
        color = layout.color_of_deployment(name) if kind == "Deployment" else None
        if kind == "Secret" and name == REFERENCE_SECRET and reference:
            data = o.setdefault("stringData", {})
            data.update({"auth-token": token, "admin-token": admin_token})
        elif color is not None:
            spec = o["spec"]
            spec["replicas"] = replicas.get(color, spec.get("replicas", 1))
            for c in spec["template"]["spec"]["containers"]:
                if c.get("name") == layout.container:
                    _app_container(c, color, versions.get(color, ""), image,
                                   faults=faults.get(color, {}) if reference else None,
                                   env=env, prestop_seconds=prestop_seconds)
        elif kind == "Job" and image:
            for c in o["spec"]["template"]["spec"]["containers"]:
                c["image"] = image
        out.append(o)
    return out


def _app_container(c: dict, color: str, version: str, image: str | None, *,
                   faults: dict | None, env: dict[str, str] | None,
                   prestop_seconds: float | None) -> None:
    if image:
        c["image"] = image
    extra: dict[str, Any] = {"APP_VERSION": version, "ZD_COLOR": color}
    if faults is not None:
        extra["FAULTS"] = json.dumps(faults, sort_keys=True)
    extra.update(env or {})
    extra["ZD_TOKEN"] = {"secretKeyRef": {"name": TOKEN_SECRET, "key": "token"}}
    c["env"] = [e for e in c.get("env", []) if e.get("name") not in extra]
    c["env"] += [{"name": k, "valueFrom": v} if isinstance(v, dict) else {"name": k, "value": v}
                 for k, v in extra.items()]
    if prestop_seconds is not None:
        if prestop_seconds <= 0:
            c.get("lifecycle", {}).pop("preStop", None)
        else:
            c.setdefault("lifecycle", {})["preStop"] = {
                "exec": {"command": ["sleep", f"{prestop_seconds:g}"]}}


def _token_secret(token: str) -> dict[str, Any]:
    """The run's token for the app (ZD_TOKEN) and the in-cluster load; a Secret so that it is
    in no pod spec."""
    return {"apiVersion": "v1", "kind": "Secret", "type": "Opaque",
            "metadata": {"name": TOKEN_SECRET}, "stringData": {"token": token}}
