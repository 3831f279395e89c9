"""The zero-downtime part of the zerodrop plugin: load options, a platform per proof, the live
progress line, and the deselection of proofs for targets that cannot switch.

Registered by the root conftest.py next to fixtures/plugin.py.
"""
from __future__ import annotations

import contextlib
import itertools
import json
import sys
from pathlib import Path
from typing import IO, Iterator

import pytest

from zerodrop.platforms.local.platform import LocalConfig, stand_up
from zerodrop.platforms.base import Platform, PlatformError
from zerodrop.plugin.core import (OUT_DIR, cluster_key, deselect, is_worker, kube_config, require_at_least, run_id_key)

MIN_SCENARIO_S = 10.0  # the quickest local switch: ready, smoke, verify, drain, stop
deselected_key = pytest.StashKey[int]()


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("zerodrop")
    g.addoption("--load-users", type=int, default=20,
                help="zero_downtime: simulated users (default 20)")
    g.addoption("--load-rate", type=float, default=100.0,
                help="zero_downtime: total requests/s the load must hold through the switch "
                     "(default 100); below 90%% of it the verdict is INCONCLUSIVE")
    g.addoption("--load-workers", type=int, default=0,
                help="zero_downtime: Locust worker processes (default 0: one process)")
    g.addoption("--baseline", type=float, default=2.0,
                help="zero_downtime: seconds of load before the switch starts (default 2)")
    g.addoption("--tail", type=float, default=2.0,
                help="zero_downtime: seconds of load after the switch ends (default 2)")
    g.addoption("--load-max-duration", type=float, default=120.0,
                help="zero_downtime: hard cap on one load run in seconds (default 120); it must "
                     "cover the baseline, the whole scenario and the tail")
    g.addoption("--evidence-dir", type=Path, default=None,
                help="zero_downtime: where <scenario>.json/.html/.png go (default reports/out)")


def pytest_configure(config: pytest.Config) -> None:
    opts = config.option
    require_at_least(opts, load_users=1, load_workers=0)
    if opts.load_rate <= 0:
        raise pytest.UsageError(f"--load-rate must be > 0 requests/s, got {opts.load_rate:g}")
    if opts.baseline < 0 or opts.tail < 0:
        raise pytest.UsageError("--baseline and --tail must be >= 0 seconds")
    shortest = opts.baseline + opts.tail + MIN_SCENARIO_S
    if opts.load_max_duration < shortest:
        raise pytest.UsageError(
            f"--load-max-duration {opts.load_max_duration:g} s is shorter than the scenario: "
            f"baseline {opts.baseline:g} s + a switch (at least {MIN_SCENARIO_S:g} s) + tail "
            f"{opts.tail:g} s = {shortest:g} s")


_platforms = itertools.count(1)


@pytest.fixture
def zd_platform(pytestconfig: pytest.Config) -> Iterator[Platform]:
    """A platform of this test's own: a switch changes it, so it is never shared. Blue
    (v1.0.0) active with --replicas replicas, green deployed (v1.1.0) but scaled to 0. On a
    cluster: a namespace of its own, labelled with the run id."""
    o = pytestconfig.option
    faults = json.loads(o.local_faults)
    try:
        if o.target in ("kind", "kubeconfig"):
            from zerodrop.platforms.kubernetes import platform as kube
            worker = pytestconfig.workerinput["workerid"] if is_worker(pytestconfig) else "c"
            namespace = kube.new_namespace(pytestconfig.stash[run_id_key],
                                           f"{worker}-{next(_platforms)}")
            platform = kube.stand_up(pytestconfig.stash[cluster_key], kube_config(pytestconfig),
                                     namespace, faults=faults, idle_replicas=0)
        else:
            config = LocalConfig(replicas=o.replicas, ready_timeout=o.ready_timeout,
                                 token=o.token)
            platform = stand_up(config, faults=faults, idle_replicas=0)
    except PlatformError as exc:
        pytest.fail(f"zerodrop: {exc}", pytrace=False)
    try:
        yield platform
    finally:
        platform.teardown()


@pytest.fixture(scope="session")
def zd_proof_settings(pytestconfig: pytest.Config):
    """How hard the load pushes during a proof (scenarios.proof.ProofSettings)."""
    from zerodrop.scenarios.proof import ProofSettings  # the load/verdict stack, only for proofs
    o = pytestconfig.option
    return ProofSettings(users=o.load_users, rate=o.load_rate, workers=o.load_workers,
                         request_timeout=o.request_timeout, baseline_s=o.baseline,
                         tail_s=o.tail, token=o.token, max_duration=o.load_max_duration)


@pytest.fixture
def zd_terminal(pytestconfig: pytest.Config, request: pytest.FixtureRequest):
    """``with zd_terminal() as stream:`` the real terminal for a live progress line, with
    capture off inside the block (``\\r``-updated on a TTY, a line every 5 s in CI logs).
    The stream is None in an xdist worker, whose output nobody sees."""
    @contextlib.contextmanager
    def terminal() -> Iterator[IO[str] | None]:
        if is_worker(pytestconfig):
            yield None
        elif pytestconfig.option.capture == "no":
            yield sys.__stderr__
        else:  # capture is per phase: it can only be lifted from inside the test's call
            with request.getfixturevalue("capsys").disabled():
                yield sys.__stderr__
    return terminal


@pytest.fixture(scope="session")
def zd_evidence_dir(pytestconfig: pytest.Config) -> Path:
    path: Path = pytestconfig.option.evidence_dir or pytestconfig.rootpath / OUT_DIR
    path.mkdir(parents=True, exist_ok=True)
    return path


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A zero-downtime proof needs a platform zerodrop can switch; --target url has none."""
    if config.option.target != "url":
        return
    config.stash[deselected_key] = deselect(
        config, items, lambda i: i.get_closest_marker("zero_downtime") is not None)


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    n = config.stash.get(deselected_key, 0)
    if n:
        terminalreporter.write_line(
            f"zerodrop: {n} zero-downtime test(s) not run: --target url gives no platform to "
            f"switch; use --target local, kind or kubeconfig", yellow=True)
