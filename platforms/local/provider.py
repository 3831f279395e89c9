"""``--target local``: blue and green stood up as real processes on this machine.

The suites share one local platform per run (shared.py: a process of its own, so that every
xdist worker reaches the same one); each proof gets a fresh ``LocalPlatform`` in-process. A
fixed ``--service-port`` is held by the shared platform, so a proof that needs the port has it
released first (the next suite test starts it again); with xdist workers the two would
compete for the port, so that combination is refused up front.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

from zerodrop.platforms.base import Platform, PlatformError, Target
from zerodrop.platforms.local import command
from zerodrop.platforms.local.command import DEFAULT_APP_CMD, DEFAULT_MIGRATE_CMD
from zerodrop.platforms.local.shared import LocalOptions, acquire_local, release_local
from zerodrop.platforms.provider import Provider, Run, Say


@dataclass(frozen=True)
class LocalSession:
    shared_dir: Path   # the state file and lock of the shared platform
    owner_pid: int     # the shared platform stops when this process is gone


class LocalProvider(Provider):
    name = "local"
    summary = "blue and green stood up as real processes on this machine"

    def network_faults_missing(self, options: Any) -> str:
        return ("the local platform cannot do it: its replicas share this machine's loopback, "
                "with no network namespace of their own for tc netem; use --target kind")

    def add_options(self, group: Any) -> None:
        group.addoption("--service-port", type=int, default=0,
                        help="--target local: Service port on 127.0.0.1 (default: a free port)")
        group.addoption("--app-cmd", default=None, metavar="CMD",
                        help="--target local: the command that starts one replica, with "
                             "{port}, {version}, {color}, {replica}, {python}; it also gets PORT, "
                             "APP_VERSION, ZD_COLOR, REPLICA_NAME and DATABASE_URL (default: the "
                             "profile's [local] app_cmd, else the reference payment-service)")
        group.addoption("--migrate-cmd", default=None, metavar="CMD",
                        help="--target local: run once, with DATABASE_URL, before any replica "
                             "starts (default: the profile's [local] migrate_cmd, else the "
                             "payment-service's migrations)")

    def check_options(self, options: Any, parallel: bool = False) -> None:
        try:
            options.app_cmd, options.migrate_cmd = commands_of(options)
            command.check(options.app_cmd, "--app-cmd")
            command.check(options.migrate_cmd, "--migrate-cmd", command.MIGRATE_PLACEHOLDERS)
        except PlatformError as exc:
            raise ValueError(str(exc)) from None
        port = options.service_port
        if not 0 <= port <= 65535:
            raise ValueError(f"--service-port must be 0..65535, got {port}")
        if port and parallel:
            raise ValueError(f"--service-port {port} cannot be combined with pytest-xdist "
                             f"(-n): the workers' platforms would all need that one port; "
                             f"drop one of the two")

    def describe(self, options: Any) -> str:
        return f"local platform, {options.replicas} replicas/colour"

    def acquire(self, options: Any, run: Run, say: Say = print) -> LocalSession:
        return LocalSession(run.workdir, run.owner_pid)  # started when first needed

    def session_to_worker(self, session: LocalSession) -> dict:
        return {"shared_dir": str(session.shared_dir), "owner_pid": session.owner_pid}

    def session_from_worker(self, data: dict) -> LocalSession:
        return LocalSession(Path(data["shared_dir"]), int(data["owner_pid"]))

    def target(self, session: LocalSession, options: Any) -> Target:
        return acquire_local(session.shared_dir, session.owner_pid, LocalOptions(
            options.replicas, options.service_port, options.token, options.ready_timeout,
            options.local_faults, options.app_cmd, options.migrate_cmd, _readiness(options),
            _service_name(options)))

    def platform(self, session: LocalSession, options: Any, name: str,
                 **stand_up: Any) -> Platform:
        from zerodrop.platforms.local import platform as local
        if options.service_port:  # the shared platform holds it: the next suite test restarts it
            release_local(session.shared_dir)
        config = local.LocalConfig(replicas=options.replicas, ready_timeout=options.ready_timeout,
                                   token=options.token, service_port=options.service_port,
                                   app_cmd=options.app_cmd, migrate_cmd=options.migrate_cmd,
                                   readiness_path=_readiness(options),
                                   service_name=_service_name(options),
                                   prometheus=stand_up.pop("canary", False))
        return local.stand_up(config, **stand_up)

    def release(self, session: LocalSession, say: Say = print) -> None:
        release_local(session.shared_dir)


def commands_of(options: Any) -> tuple[str, str]:
    """--app-cmd and --migrate-cmd as given, else the profile's [local] commands, else the
    reference service's; {profile_dir} (the profile file's folder) is filled in either way."""
    profile = getattr(options, "service_profile", None)
    app, migrate = options.app_cmd, options.migrate_cmd
    if profile is not None and profile.app_cmd:
        if app is None:
            app = profile.app_cmd
        if migrate is None:  # the service's own migration, also when its app command is given
            migrate = profile.migrate_cmd or "true"
    if profile is not None:  # {profile_dir} also in commands given on the command line
        app, migrate = (c.replace("{profile_dir}", profile.profile_dir) if c else c for c in (app, migrate))
    return app or DEFAULT_APP_CMD, migrate or DEFAULT_MIGRATE_CMD


def _service_name(options: Any) -> str:
    profile = getattr(options, "service_profile", None)
    name = profile.name if profile is not None else "payment-service"
    return "".join(c if c.isalnum() or c == "-" else "-" for c in name.lower()) or "service"


def _readiness(options: Any) -> str:
    profile = getattr(options, "service_profile", None)
    return profile.readiness if profile is not None else "/health/ready"


PROVIDER = LocalProvider()
