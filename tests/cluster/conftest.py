"""Tests of the Kubernetes provider and platform against a REAL kind cluster.

They need one: ``ZD_KIND_CLUSTER=<name>`` names an existing kind cluster (``.ci/run`` creates
one with infra/cluster/up.sh and sets it). Without it these tests are deselected, and the
run says so in its summary: never a silent skip.
"""
from __future__ import annotations

import os
from pathlib import Path
from typing import Iterator

import pytest

from zerodrop.platforms.kubernetes.providers.base import Cluster, finish
from zerodrop.platforms.kubernetes.providers.kind import KindOptions, acquire_kind
from zerodrop.platforms.provider import new_run_id
from zerodrop.plugin.core import deselect

HERE = Path(__file__).resolve().parent
CLUSTER = os.environ.get("ZD_KIND_CLUSTER", "")
deselected_key = pytest.StashKey[int]()
# the images up.sh builds and loads into the cluster, one per line
IMAGES = (
    "zerodrop/payment-service:dev",
    "zerodrop/postgres:15",
    "zerodrop/harness:dev",
    "zerodrop-example/todo:dev",
    "zerodrop/traefik:v3.7.10",
    "zerodrop/prometheus:dev",
    "zerodrop/kube-state-metrics:v2.20.0",
)


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    if CLUSTER:
        return
    config.stash[deselected_key] = deselect(
        config, items, lambda i: HERE in Path(str(i.path)).resolve().parents)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    n = config.stash.get(deselected_key, 0)
    if n:
        terminalreporter.write_line(
            f"zerodrop: {n} cluster test(s) not run: set ZD_KIND_CLUSTER to a kind cluster "
            f"(.ci/run builds one offline with infra/cluster/up.sh)", yellow=True)


@pytest.fixture(scope="session")
def run_id() -> str:
    return new_run_id()


@pytest.fixture(scope="session")
def cluster(run_id: str, tmp_path_factory) -> Iterator[Cluster]:
    """The named kind cluster (kept: this session did not create it); every namespace this
    session labelled with its run id is deleted at the end, and the test checks that."""
    c = acquire_kind(KindOptions(name=CLUSTER, keep=True,
                                 kubeconfig_dir=tmp_path_factory.mktemp("kube"),
                                 images=IMAGES))
    yield c
    finish(c, run_id)
