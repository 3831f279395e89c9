"""Render the kustomize manifests (payment_service/manifests) into object dicts for one namespace.

``kubectl kustomize`` does the rendering (the same output a user gets with ``kubectl apply -k``);
``customize`` then makes the objects this run's own, in code that a test can read: namespace,
run labels, the image, each colour's version and replicas, the tokens, and NodePorts left for
the platform to allocate from the pool the cluster publishes.
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

MANIFESTS = Path(_service.__file__).resolve().parent / "manifests"
DEFAULT_OVERLAY = MANIFESTS / "overlays" / "kind"
APP = "payment-service"
CONTAINER = "payment-service"


def kubectl_binary() -> str:
    found = os.environ.get("ZD_KUBECTL") or shutil.which("kubectl")
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


def customize(objects: list[dict[str, Any]], *, namespace: str, labels: dict[str, str],
              image: str | None, versions: dict[str, str], replicas: dict[str, int],
              token: str, admin_token: str, faults: dict[str, dict],
              env: dict[str, str] | None = None,
              prestop_seconds: float | None = None) -> list[dict[str, Any]]:
    """Copies of ``objects`` for one namespace. ``env`` overrides app variables on both colours;
    ``prestop_seconds`` 0 removes the preStop hook (a broken manifest, for negative controls)."""
    out = []
    for original in objects:
        o = copy.deepcopy(original)
        meta = o.setdefault("metadata", {})
        meta["namespace"] = namespace
        meta.setdefault("labels", {}).update(labels)
        kind, name = o.get("kind"), meta.get("name")
        if kind == "Secret" and name == APP:
            data = o.setdefault("stringData", {})
            data.update({"auth-token": token, "admin-token": admin_token})
        elif kind == "Deployment" and meta.get("labels", {}).get("app") == APP:
            color = meta["labels"].get("version")
            spec = o["spec"]
            spec["replicas"] = replicas.get(color, spec.get("replicas", 1))
            pod = spec["template"]["spec"]
            for c in pod["containers"]:
                if c.get("name") != CONTAINER:
                    continue
                if image:
                    c["image"] = image
                extra = {"APP_VERSION": versions.get(color, ""),
                         "FAULTS": json.dumps(faults.get(color, {}), sort_keys=True),
                         **(env or {})}
                c["env"] = [e for e in c.get("env", []) if e.get("name") not in extra]
                c["env"] += [{"name": k, "value": v} for k, v in extra.items()]
                if prestop_seconds is not None:
                    if prestop_seconds <= 0:
                        c.get("lifecycle", {}).pop("preStop", None)
                    else:
                        c.setdefault("lifecycle", {})["preStop"] = {
                            "exec": {"command": ["sleep", f"{prestop_seconds:g}"]}}
        elif kind == "Job" and image:
            for c in o["spec"]["template"]["spec"]["containers"]:
                c["image"] = image
        out.append(o)
    return out

