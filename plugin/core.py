"""The zerodrop pytest plugin: its options and the session hooks of a run.

Options live in one named group, "zerodrop"; each target's own options come from its provider
(``platforms.registry``). The run's target is resolved through the registry only: the
controller acquires it before any xdist worker starts, and a target that cannot be used stops
the run with one line and exit 3, before any test. Session state lives in typed StashKeys;
only the controller (never a worker) owns session artefacts.
"""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from zerodrop.checks.checkfile import Check, CheckFileError, load_checks
from zerodrop.fixtures.proofs import OUT_DIR
from zerodrop.fixtures.session import (end_run, is_worker, provider_of, session_key, session_of,
                                       start_run, worker_input)
from zerodrop.fixtures.targets import resolve_target
from zerodrop.platforms import registry
from zerodrop.platforms.base import COLORS, PlatformError, Target
from zerodrop.platforms.provider import TargetError
from zerodrop.profiles import profile as profiles
from zerodrop.profiles.profile import Profile, ProfileError

import zerodrop.suites as _suites

SUITES = Path(_suites.__file__).resolve().parent
SUITES_MODULE = _suites.__name__
# the suites' markers, registered here so that an installed zerodrop runs with --strict-markers
MARKERS = (
    "smoke: the seed's smoke-tests.sh checks",
    "post_deploy: the seed's post-deployment-tests.py checks",
    "custom: checks a team lists in a --checks file",
    "zero_downtime: a switch or rollback under load, judged request by request",
    "canary: a canary under load, promoted or rolled back by its analysis",
    "gameday: a game-day experiment (suites/chaos), run only with --experiment",
    "profile_needs(what): runs only when the service profile describes what it checks",
    "watched_deploy: the proof of a deploy command of the user's own (--deploy-cmd)",
)
DEFAULT_CHECKS = SUITES / "custom" / "payment-service.checks.toml"
TARGET_UNUSABLE = 3  # exit status: the target cannot be used (usage errors are pytest's 4)

checks_key = pytest.StashKey[list[Check]]()
profile_key = pytest.StashKey[Profile]()
not_applicable_key = pytest.StashKey[dict[str, int]]()  # why -> how many suite tests deselected
target_key = pytest.StashKey[Target]()      # as resolved before the tests, for the evidence
failure_key = pytest.StashKey[str]()        # why the target cannot be used: the run stops


def pytest_addoption(parser: pytest.Parser) -> None:
    g = parser.getgroup("zerodrop", "zerodrop: where the suites run and how hard they check")
    g.addoption("--target", choices=registry.names(), default=registry.DEFAULT,
                help=registry.target_help())
    g.addoption("--token", default=os.environ.get("ZERODROP_TOKEN", "test-token"),
                help="API bearer token (default test-token, the seed's) [env ZERODROP_TOKEN]")
    g.addoption("--preview", choices=COLORS, default=None, dest="zd_preview",
                help="aim the suites at one colour's preview address instead of the Service "
                     "(test the idle colour before a switch, as the seed's smoke-tests.sh does)")
    g.addoption("--replicas", type=int, default=2,
                help="local/kind/kubeconfig: replicas per colour (default 2)")
    g.addoption("--local-faults", default="{}", metavar="JSON",
                help='local/kind/kubeconfig: start with fault knobs on, per colour, e.g. '
                     '\'{"blue": {"error_rate": 0.1}}\' (negative controls, game days)')
    g.addoption("--ready-timeout", type=float, default=60.0,
                help="local/kind/kubeconfig: seconds a platform may take to become ready "
                     "(default 60)")
    g.addoption("--profile", type=Path, default=None, dest="zd_profile",
                help="the service profile (TOML): probes, version header, the load's requests, "
                     "how writes are read back, money invariants, the local app command "
                     "(default: the reference payment-service's, profiles/payment-service.toml)")
    g.addoption("--checks", type=Path, default=None,
                help="extra checks file (TOML/JSON) for suites/custom; default: "
                     "the payment-service checks shipped in suites/custom (with the default "
                     "profile only)")
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
    registry.add_options(g)


def _runs_suites(config: pytest.Config) -> bool:
    """Whether this run holds the verification suites (by path, or as ``--pyargs
    zerodrop.suites[.x]`` the way ``zerodrop verify`` names them): they get Allure evidence by
    default and a target resolved up front; the harness's own tests get neither."""
    for arg in config.args:
        name = arg.split("::")[0]
        if config.option.pyargs and (name == SUITES_MODULE or
                                     name.startswith(SUITES_MODULE + ".")):
            return True
        path = Path(name).resolve()
        if path == SUITES or SUITES in path.parents or path in SUITES.parents:
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


def parallel(config: pytest.Config) -> bool:
    """The run has pytest-xdist workers (or is one)."""
    o = config.option
    return is_worker(config) or (getattr(o, "dist", "no") != "no" and bool(getattr(o, "tx", None)))


def check_faults(text: str, profile: Profile | None = None) -> None:
    """--local-faults: JSON, per colour, knobs the reference service knows, before anything
    starts (a misspelt knob would otherwise crash every replica until the ready timeout)."""
    try:
        faults = json.loads(text)
    except ValueError as exc:
        raise pytest.UsageError(f"--local-faults is not valid JSON: {exc}") from None
    if faults and profile is not None and not profile.is_default:
        raise pytest.UsageError(f"--local-faults sets knobs of the reference payment-service; the "
                                f"profile {profile.name} describes another service: break it "
                                "through its own --app-cmd instead")
    if not isinstance(faults, dict) or not set(faults) <= set(COLORS) or not all(
            isinstance(v, dict) for v in faults.values()):
        raise pytest.UsageError('--local-faults takes {"blue"|"green": {knob: value}}, '
                                f"got {text}")
    from zerodrop.payment_service.faults import FaultError, validate
    for color, knobs in faults.items():
        try:
            validate(knobs)
        except FaultError as exc:
            raise pytest.UsageError(f"--local-faults {color}: {exc}") from None


@pytest.hookimpl(tryfirst=True)
def pytest_configure(config: pytest.Config) -> None:
    for marker in MARKERS:
        config.addinivalue_line("markers", marker)
    if getattr(config.option, "allure_report_dir", "missing") is None and _runs_suites(config):
        config.option.allure_report_dir = str(config.rootpath / OUT_DIR / "allure-results")
    opts = config.option
    require_at_least(opts, replicas=1, brief_load_requests=1, brief_load_concurrency=1,
                     concurrent_requests=1, concurrent_workers=1)
    if not 0 <= opts.min_success_rate <= 100:
        raise pytest.UsageError(f"--min-success-rate must be 0..100, got {opts.min_success_rate}")
    try:
        profile = profiles.load(opts.zd_profile)
    except ProfileError as exc:
        raise pytest.UsageError(str(exc)) from None
    config.stash[profile_key] = profile
    opts.service_profile = profile  # the providers read the profile from the options
    check_faults(opts.local_faults, profile)
    try:
        provider_of(config).check_options(opts, parallel=parallel(config))
    except ValueError as exc:
        raise pytest.UsageError(str(exc)) from None
    try:
        config.stash[checks_key] = load_checks(opts.checks) if opts.checks else \
            load_checks(DEFAULT_CHECKS) if profile.is_default else []
    except CheckFileError as exc:
        raise pytest.UsageError(str(exc)) from None
    start_run(config)


def pytest_sessionstart(session: pytest.Session) -> None:
    """Acquire the target once, in the controller, before any xdist worker starts, and
    resolve the suites' deployment up front: every worker gets the same one. A target that
    cannot be used is remembered here and stops the run before collection (see below)."""
    config = session.config
    if is_worker(config):
        return
    try:
        session_of(config)
        if _runs_suites(config):
            config.stash[target_key] = resolve_target(config)
    except (TargetError, PlatformError) as exc:
        config.stash[failure_key] = f"zerodrop: {exc}"


# A target that cannot be used: said once, and no test runs. pytest.exit() from
# pytest_sessionstart would say it twice (pytest writes "Exit: ..." to stderr and the terminal
# reporter repeats it in its closing "!!! ... !!!" line), so the run stops here instead, and
# the exit status is set where pytest reads it last.
@pytest.hookimpl(tryfirst=True)
def pytest_collection(session: pytest.Session) -> bool | None:
    failure = session.config.stash.get(failure_key, None)
    if failure is None:
        return None
    reporter = session.config.pluginmanager.get_plugin("terminalreporter")
    if reporter is not None:
        reporter.write_line(failure, red=True)
    else:
        print(failure)
    session.items = []
    return True


@pytest.hookimpl(tryfirst=True)
def pytest_runtestloop(session: pytest.Session) -> bool | None:
    return True if failure_key in session.config.stash else None


@pytest.hookimpl(optionalhook=True)
def pytest_configure_node(node) -> None:  # xdist controller: hand the run to each worker
    node.workerinput.update(worker_input(node.config))


def pytest_sessionfinish(session: pytest.Session) -> None:
    config = session.config
    if failure_key in config.stash:
        session.exitstatus = TARGET_UNUSABLE
        return
    _write_environment(config)


def _write_environment(config: pytest.Config) -> None:
    """The controller writes the Allure environment and categories (never a worker)."""
    results = getattr(config.option, "allure_report_dir", None)
    if is_worker(config) or not results:
        return
    from zerodrop.reports.allure_evidence import write_categories, write_environment
    import platform as host
    o = config.option
    resolved = config.stash.get(target_key, None)
    props = {"zerodrop.target": o.target,
             "zerodrop.base_url": resolved.base_url if resolved else "per test",
             "zerodrop.preview": o.zd_preview or "", "zerodrop.replicas": o.replicas,
             "load.users": o.load_users, "load.rate": o.load_rate,
             "load.workers": o.load_workers, "python": host.python_version(),
             "machine": f"{host.system()} {host.machine()}, {os.cpu_count()} cores"}
    if session_key in config.stash:
        props.update(provider_of(config).environment(config.stash[session_key], o))
    write_environment(Path(results), props)
    write_categories(Path(results))


def pytest_unconfigure(config: pytest.Config) -> None:
    end_run(config)


def pytest_report_header(config: pytest.Config) -> list[str]:
    o = config.option
    aim = f", aimed at {o.zd_preview}" if o.zd_preview else ""
    return [f"zerodrop: target {o.target} ({provider_of(config).describe(o)}{aim})"]


def pytest_generate_tests(metafunc: pytest.Metafunc) -> None:
    if "check" in metafunc.fixturenames:
        checks = metafunc.config.stash[checks_key]
        metafunc.parametrize("check", checks, ids=[c.name for c in checks])
    if "invalid" in metafunc.fixturenames:
        invalid = metafunc.config.stash[profile_key].invalid
        metafunc.parametrize("invalid", invalid, ids=[i.name for i in invalid])


@pytest.fixture(scope="session")
def zd_profile(pytestconfig: pytest.Config) -> Profile:
    """The service profile (--profile; the payment-service's by default)."""
    return pytestconfig.stash[profile_key]


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """A suite test the profile gives nothing to look at is deselected, never skipped or
    passed; the closing summary says which and why (``profile_needs`` marks)."""
    from zerodrop.checks.service import applicable
    missing = applicable(config.stash[profile_key])
    counts: dict[str, int] = {}

    def reason_of(item: pytest.Item) -> str | None:
        mark = item.get_closest_marker("profile_needs")
        reason = missing.get(mark.args[0]) if mark is not None else None
        if reason is None and item.get_closest_marker("custom") is not None and not config.stash[checks_key]:
            reason = "no --checks file was given for this profile"
        return reason

    reasons = {item.nodeid: reason_of(item) for item in items}
    for reason in reasons.values():
        if reason is not None:
            counts[reason] = counts.get(reason, 0) + 1
    deselect(config, items, lambda i: reasons.get(i.nodeid) is not None)
    config.stash[not_applicable_key] = counts


def pytest_terminal_summary(terminalreporter, exitstatus: int, config: pytest.Config) -> None:
    profile = config.stash.get(profile_key, None)
    for reason, n in config.stash.get(not_applicable_key, {}).items():
        terminalreporter.write_line(f"zerodrop: {n} suite test(s) not run for the profile "
                                    f"{profile.name if profile else '?'}: {reason}", yellow=True)
