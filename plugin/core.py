"""The zerodrop pytest plugin: options, the target a suite runs against, and its wiring.

Registered by the root conftest.py. Options live in one named group; session-wide state in
typed StashKeys; only the controller (never an xdist worker) owns session artefacts and the
shared local platform.
"""
from __future__ import annotations

import dataclasses
import json
import os
import shutil
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator

import pytest

from zerodrop.checks.api import Api
from zerodrop.fixtures import cluster as kube
from zerodrop.platforms.kubernetes.providers import Cluster, ProviderError
from zerodrop.platforms.base import COLORS, PlatformError, Target
from zerodrop.fixtures.targets import (TARGETS, LocalOptions, TargetError, acquire_local, release_local, url_target)
from zerodrop.checks.checkfile import Check, CheckFileError, load_checks

import zerodrop.suites as _suites

SUITES = Path(_suites.__file__).resolve().parent
DEFAULT_CHECKS = SUITES / "custom" / "payment-service.checks.toml"
OUT_DIR = Path("reports") / "out"  # under the directory pytest runs from (its rootdir)


@dataclass(frozen=True)
class Settings:
    """The suite-facing knobs, read once from the command line."""

    min_success_rate: float
    brief_load_requests: int
    brief_load_concurrency: int
    concurrent_requests: int
    concurrent_workers: int
    payment_timeout: float
    request_timeout: float


shared_dir_key = pytest.StashKey[Path]()
owns_shared_key = pytest.StashKey[bool]()
checks_key = pytest.StashKey[list[Check]]()
target_key = pytest.StashKey[Target]()
run_id_key = pytest.StashKey[str]()
cluster_key = pytest.StashKey[Cluster]()
session_platform_key = pytest.StashKey[object]()


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("zerodrop", "zerodrop: where the suites run and how hard they check")
    g.addoption("--target", choices=TARGETS, default="local",
                help="where the suites run: local (default: blue and green stood up as real "
                     "processes on this machine), url (a running deployment, with --base-url), "
                     "kind (a kind cluster on this machine) or kubeconfig (an existing cluster, "
                     "with --kubeconfig and --allow-context)")
    g.addoption("--base-url", default=os.environ.get("ZERODROP_BASE_URL", ""),
                help="--target url: the Service address, e.g. http://127.0.0.1:8080 "
                     "[env ZERODROP_BASE_URL]")
    g.addoption("--token", default=os.environ.get("ZERODROP_TOKEN", "test-token"),
                help="API bearer token (default test-token, the seed's) [env ZERODROP_TOKEN]")
    g.addoption("--preview-url", action="append", default=[], metavar="COLOR=URL",
                help="--target url: the address of one colour only (repeatable), for --preview")
    g.addoption("--preview", choices=COLORS, default=None, dest="zd_preview",
                help="aim the suites at one colour's preview address instead of the Service "
                     "(test the idle colour before a switch, as the seed's smoke-tests.sh does)")
    g.addoption("--replicas", type=int, default=2,
                help="local/kind/kubeconfig: replicas per colour (default 2)")
    g.addoption("--service-port", type=int, default=0,
                help="--target local: Service port on 127.0.0.1 (default: a free port)")
    g.addoption("--local-faults", default="{}", metavar="JSON",
                help='local/kind/kubeconfig: start with fault knobs on, per colour, e.g. '
                     '\'{"blue": {"error_rate": 0.1}}\' (negative controls, game days)')
    g.addoption("--ready-timeout", type=float, default=60.0,
                help="local/kind/kubeconfig: seconds a platform may take to become ready "
                     "(default 60)")
    g.addoption("--checks", type=Path, default=None,
                help=f"extra checks file (TOML/JSON) for suites/custom; default: "
                     f"the payment-service checks shipped in suites/custom")
    g.addoption("--min-success-rate", type=float, default=95.0,
                help="brief load and concurrency checks: minimum %% of 2xx answers (default 95, "
                     "the seed's)")
    g.addoption("--brief-load-requests", type=int, default=100,
                help="smoke brief load: requests (default 100, as the seed's ab -n 100)")
    g.addoption("--brief-load-concurrency", type=int, default=10,
                help="smoke brief load: concurrency (default 10, as ab -c 10)")
    g.addoption("--concurrent-requests", type=int, default=50,
                help="post_deploy concurrency: requests (default 50)")
    g.addoption("--concurrent-workers", type=int, default=10,
                help="post_deploy concurrency: workers (default 10)")
    g.addoption("--payment-timeout", type=float, default=60.0,
                help="seconds a payment may stay pending before the flow check fails (default 60)")
    g.addoption("--request-timeout", type=float, default=10.0,
                help="seconds one HTTP request may take (default 10)")
    kube.add_options(g)


def _runs_suites(config: pytest.Config) -> bool:
    """Allure evidence by default for the verification suites, not for the harness's tests."""
    suites = SUITES
    for arg in config.args:
        path = Path(arg.split("::")[0]).resolve()
        if path == suites or suites in path.parents or path in suites.parents:
            return True
    return False


def require_at_least(opts, **lows: int) -> None:
    """A usage error, in one line, for the first option below its minimum."""
    for name, low in lows.items():
        if getattr(opts, name) < low:
            raise pytest.UsageError(f"--{name.replace('_', '-')} must be >= {low}, "
                                    f"got {getattr(opts, name)}")


def deselect(config: pytest.Config, items: list[pytest.Item], drop) -> int:
    """Deselect (never skip) the items ``drop`` picks, reported as deselected; how many."""
    dropped = [i for i in items if drop(i)]
    if dropped:
        config.hook.pytest_deselected(items=dropped)
        items[:] = [i for i in items if not drop(i)]
    return len(dropped)


def is_worker(config: pytest.Config) -> bool:
    return hasattr(config, "workerinput")


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    if getattr(config.option, "allure_report_dir", "missing") is None and _runs_suites(config):
        config.option.allure_report_dir = str(config.rootpath / OUT_DIR / "allure-results")
    opts = config.option
    require_at_least(opts, replicas=1, brief_load_requests=1, brief_load_concurrency=1,
                     concurrent_requests=1, concurrent_workers=1)
    if not 0 <= opts.min_success_rate <= 100:
        raise pytest.UsageError(f"--min-success-rate must be 0..100, got {opts.min_success_rate}")
    if not 0 <= opts.service_port <= 65535:
        raise pytest.UsageError(f"--service-port must be 0..65535, got {opts.service_port}")
    try:
        faults = json.loads(opts.local_faults)
    except ValueError as exc:
        raise pytest.UsageError(f"--local-faults is not valid JSON: {exc}") from None
    if not isinstance(faults, dict) or not set(faults) <= set(COLORS) or not all(
            isinstance(v, dict) for v in faults.values()):
        raise pytest.UsageError('--local-faults takes {"blue"|"green": {knob: value}}, '
                                f"got {opts.local_faults}")
    for item in opts.preview_url:
        if "=" not in item:
            raise pytest.UsageError(f"--preview-url takes COLOR=URL, got {item!r}")
    kube.usage_check(opts)
    try:
        config.stash[checks_key] = load_checks(opts.checks or DEFAULT_CHECKS)
    except CheckFileError as exc:
        raise pytest.UsageError(str(exc)) from None
    if is_worker(config):
        config.stash[shared_dir_key] = Path(config.workerinput["zerodrop_shared"])
        config.stash[owns_shared_key] = False
        config.stash[run_id_key] = config.workerinput["zerodrop_run_id"]
        if "zerodrop_cluster" in config.workerinput:
            config.stash[cluster_key] = Cluster(**config.workerinput["zerodrop_cluster"])
    else:
        config.stash[shared_dir_key] = Path(tempfile.mkdtemp(prefix="zerodrop-session-"))
        config.stash[owns_shared_key] = True
        config.stash[run_id_key] = kube.new_run_id()


def pytest_sessionstart(session: pytest.Session) -> None:
    """Resolve the target once, in the controller, before any xdist worker starts: a target
    that cannot be used stops the run here with one line, and every worker gets the same
    deployment (no worker stands up a platform of its own)."""
    config = session.config
    if not is_worker(config) and _runs_suites(config):
        try:
            if config.option.target in kube.KUBE_TARGETS:
                _acquire_cluster(config)
            config.stash[target_key] = _resolve(config)
        except (TargetError, PlatformError, ProviderError) as exc:
            pytest.exit(f"zerodrop: {exc}", returncode=3)


def _acquire_cluster(config: pytest.Config) -> None:
    """The cluster, once per run, in the controller; leftovers of dead runs are swept."""
    reporter = config.pluginmanager.get_plugin("terminalreporter")
    say = reporter.write_line if reporter else print
    cluster = kube.acquire(config.option, config.stash[shared_dir_key])
    config.stash[cluster_key] = cluster
    what = "created" if cluster.created else "reusing"
    say(f"zerodrop: {what} {cluster.kind} cluster {cluster.name}; run {config.stash[run_id_key]}")
    swept = kube.sweep(cluster, config.stash[run_id_key])
    if swept:
        say(f"zerodrop: swept {len(swept)} namespace(s) of earlier runs: {', '.join(swept)}")


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:  # xdist controller: hand the target to each worker
    node.workerinput["zerodrop_shared"] = str(node.config.stash[shared_dir_key])
    node.workerinput["zerodrop_owner_pid"] = os.getpid()
    node.workerinput["zerodrop_run_id"] = node.config.stash[run_id_key]
    cluster = node.config.stash.get(cluster_key, None)
    if cluster is not None:
        node.workerinput["zerodrop_cluster"] = dataclasses.asdict(cluster)
    resolved = node.config.stash.get(target_key, None)
    if resolved is not None:
        node.workerinput["zerodrop_target"] = dataclasses.asdict(resolved)


def pytest_sessionfinish(session: pytest.Session) -> None:
    """The controller writes the Allure environment and categories (never a worker)."""
    config = session.config
    results = getattr(config.option, "allure_report_dir", None)
    if is_worker(config) or not results:
        return
    from zerodrop.reports.allure_evidence import write_categories, write_environment
    import platform as host
    o = config.option
    resolved = config.stash.get(target_key, None)
    props = {"zerodrop.target": o.target,
             "zerodrop.base_url": resolved.base_url if resolved else (o.base_url or "per test"),
             "zerodrop.preview": o.zd_preview or "", "zerodrop.replicas": o.replicas,
             "load.users": o.load_users, "load.rate": o.load_rate,
             "load.workers": o.load_workers, "python": host.python_version(),
             "machine": f"{host.system()} {host.machine()}, {os.cpu_count()} cores"}
    cluster = config.stash.get(cluster_key, None)
    if cluster is not None:  # never the kubeconfig's contents: names only
        props["zerodrop.cluster"] = f"{cluster.kind} {cluster.name} (context {cluster.context})"
        props["zerodrop.run"] = config.stash[run_id_key]
        props["load.from"] = o.load_from
    write_environment(Path(results), props)
    write_categories(Path(results))


def pytest_unconfigure(config: pytest.Config) -> None:
    if config.stash.get(owns_shared_key, False):
        platform = config.stash.get(session_platform_key, None)
        if platform is not None:
            platform.teardown()
        cluster = config.stash.get(cluster_key, None)
        if cluster is not None:
            kube.finish(cluster, config.stash[run_id_key])
        shared = config.stash[shared_dir_key]
        release_local(shared)
        shutil.rmtree(shared, ignore_errors=True)


def pytest_report_header(config: pytest.Config) -> list[str]:
    o = config.option
    where = {"url": o.base_url, "local": f"local platform, {o.replicas} replicas/colour",
             "kind": f"kind cluster {o.kind_cluster}, {o.replicas} replicas/colour",
             "kubeconfig": f"{o.kubeconfig} context {o.context or '(current)'}"}[o.target]
    aim = f", aimed at {o.zd_preview}" if o.zd_preview else ""
    return [f"zerodrop: target {o.target} ({where}{aim})"]


def _settings(config: pytest.Config) -> Settings:
    o = config.option
    return Settings(o.min_success_rate, o.brief_load_requests, o.brief_load_concurrency,
                    o.concurrent_requests, o.concurrent_workers, o.payment_timeout,
                    o.request_timeout)


@pytest.fixture(scope="session")
def zd_settings(pytestconfig: pytest.Config) -> Settings:
    return _settings(pytestconfig)


def _resolve(config: pytest.Config) -> Target:
    o = config.option
    if o.target == "local":
        owner = config.workerinput["zerodrop_owner_pid"] if is_worker(config) else os.getpid()
        t = acquire_local(config.stash[shared_dir_key], owner,
                          LocalOptions(o.replicas, o.service_port, o.token, o.ready_timeout,
                                       o.local_faults))
    elif o.target in kube.KUBE_TARGETS:
        if is_worker(config) or cluster_key not in config.stash:
            raise TargetError(f"--target {o.target}: the cluster is acquired by the pytest "
                              f"controller before the suites run; run them from suites/")
        from zerodrop.platforms.kubernetes.platform import new_namespace, stand_up
        platform = stand_up(config.stash[cluster_key], kube_config(config),
                            new_namespace(config.stash[run_id_key], "s"),
                            faults=json.loads(o.local_faults))
        config.stash[session_platform_key] = platform
        t = platform.target()
    else:
        previews = dict(item.split("=", 1) for item in o.preview_url)
        t = url_target(o.base_url, o.token, previews, timeout=o.request_timeout)
    return t.aimed_at(o.zd_preview) if o.zd_preview else t


def kube_config(config: pytest.Config, **overrides):
    """The KubeConfig of a platform of this run (kind/kubeconfig targets)."""
    from zerodrop.platforms.kubernetes.platform import KubeConfig
    o = config.option
    return KubeConfig(replicas=o.replicas, token=o.token, ready_timeout=o.ready_timeout,
                      image=o.image, overlay=o.manifests, run_id=config.stash[run_id_key],
                      load_from=o.load_from, harness_image=o.harness_image, **overrides)


@pytest.fixture(scope="session")
def target(pytestconfig: pytest.Config) -> Target:
    """The deployment under test, as --target/--preview say; resolved once per session."""
    if is_worker(pytestconfig) and "zerodrop_target" in pytestconfig.workerinput:
        return Target(**pytestconfig.workerinput["zerodrop_target"])
    if target_key in pytestconfig.stash:
        return pytestconfig.stash[target_key]
    # not resolved up front (the suites were reached in a way _runs_suites did not foresee)
    try:
        resolved = _resolve(pytestconfig)
    except (TargetError, PlatformError) as exc:
        if is_worker(pytestconfig):  # pytest.exit inside an xdist worker crashes it
            pytest.fail(f"zerodrop: {exc}", pytrace=False)
        pytest.exit(f"zerodrop: {exc}", returncode=3)
    pytestconfig.stash[target_key] = resolved
    return resolved


@pytest.fixture
def api(target: Target, zd_settings: Settings, record_property) -> Iterator[Api]:
    """A client of the target's base URL with the token; closed after the test."""
    record_property("zerodrop_target", target.base_url)  # JUnit evidence: one target per run
    client = Api(target.base_url, target.token, zd_settings.request_timeout)
    yield client
    client.close()


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "check" in metafunc.fixturenames:
        checks = metafunc.config.stash[checks_key]
        metafunc.parametrize("check", checks, ids=[c.name for c in checks])
