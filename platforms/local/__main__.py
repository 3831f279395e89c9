"""Run the local platform as its own process.

    python -m zerodrop.platforms.local up      [options]   # stand up, print the addresses, Ctrl-C stops
    python -m zerodrop.platforms.local serve   --state-file F --owner-pid PID [options]

``serve`` is what the pytest plugin uses to share one platform between pytest-xdist workers:
it writes the addresses (or the reason it could not start) to the state file and tears
everything down on SIGTERM/SIGINT or as soon as the owner process is gone.
"""
from __future__ import annotations

import argparse
import json
import os
import signal
import sys
import threading
from pathlib import Path

from zerodrop.platforms.local.command import DEFAULT_APP_CMD, DEFAULT_MIGRATE_CMD
from zerodrop.platforms.local.platform import LocalConfig, stand_up
from zerodrop.platforms.local.replica import pid_alive
from zerodrop.platforms.base import PlatformError


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m zerodrop.platforms.local",
                                description="blue and green payment-service on this machine")
    p.add_argument("command", choices=["up", "serve"])
    p.add_argument("--replicas", type=int, default=2, help="replicas per colour (default 2)")
    p.add_argument("--service-port", type=int, default=0,
                   help="port of the Service front on 127.0.0.1 (default: a free one)")
    p.add_argument("--active", choices=["blue", "green"], default="blue")
    p.add_argument("--token", default="test-token", help="API bearer token (default test-token)")
    p.add_argument("--propagation-delay", type=float, default=LocalConfig.propagation_delay)
    p.add_argument("--drain-seconds", type=float, default=LocalConfig.drain_seconds)
    p.add_argument("--ready-timeout", type=float, default=LocalConfig.ready_timeout)
    p.add_argument("--database-url", default=None,
                   help="default: a fresh SQLite file shared by blue and green")
    p.add_argument("--faults", default="{}", metavar="JSON",
                   help='fault knobs per colour at start, e.g. \'{"green": {"latency_ms": 50}}\'')
    p.add_argument("--app-cmd", default=DEFAULT_APP_CMD,
                   help="the command that starts one replica ({port}, {version}, {color}, {replica}, "
                        "{python}; default: the reference payment-service)")
    p.add_argument("--migrate-cmd", default=DEFAULT_MIGRATE_CMD,
                   help="run once before any replica starts (default: the payment-service's migrations)")
    p.add_argument("--readiness-path", default=LocalConfig.readiness_path,
                   help="the readiness probe's path (default /health/ready)")
    p.add_argument("--service-name", default=LocalConfig.service_name,
                   help="replicas are named <service>-<colour>-<n> (default payment-service)")
    p.add_argument("--state-file", type=Path, help="serve: where to write the addresses")
    p.add_argument("--owner-pid", type=int, help="serve: stop when this process is gone")
    return p


def _write_state(path: Path, state: dict) -> None:
    tmp = path.with_suffix(".tmp")
    fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)  # holds the admin token
    with os.fdopen(fd, "w") as f:
        json.dump(state, f)
    os.replace(tmp, path)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    if args.command == "serve" and (args.state_file is None or args.owner_pid is None):
        print("zerodrop.platforms.local serve: --state-file and --owner-pid are required", file=sys.stderr)
        return 2
    try:
        faults = json.loads(args.faults)
        if not isinstance(faults, dict):
            raise ValueError("not an object")
    except ValueError as exc:
        print(f"zerodrop.platforms.local: --faults is not a JSON object: {exc}", file=sys.stderr)
        return 2
    stop = threading.Event()

    def interrupt(*_: object) -> None:  # during stand-up: unwind, stand_up tears down
        raise KeyboardInterrupt

    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, interrupt)
    config = LocalConfig(replicas=args.replicas, service_port=args.service_port,
                         token=args.token, propagation_delay=args.propagation_delay,
                         drain_seconds=args.drain_seconds, ready_timeout=args.ready_timeout,
                         database_url=args.database_url, app_cmd=args.app_cmd,
                         migrate_cmd=args.migrate_cmd, readiness_path=args.readiness_path,
                         service_name=args.service_name)
    try:
        platform = stand_up(config, active=args.active, faults=faults)
    except PlatformError as exc:
        if args.state_file:
            _write_state(args.state_file, {"error": str(exc)})
        print(f"zerodrop local platform: {exc}", file=sys.stderr)
        return 1
    except KeyboardInterrupt:
        return 130
    for sig in (signal.SIGTERM, signal.SIGINT):
        signal.signal(sig, lambda *_: stop.set())
    try:
        target = platform.target()
        state = {"pid": os.getpid(), "base_url": target.base_url, "token": target.token,
                 "preview_urls": target.preview_urls, "admin_token": target.admin_token,
                 "active_color": target.active_color, "workdir": str(platform.workdir)}
        if args.command == "serve":
            _write_state(args.state_file, state)
        else:
            print(f"Service (active {target.active_color}): {target.base_url}")
            for color, url in target.preview_urls.items():
                print(f"Preview {color}: {url}")
            print(f"Workdir: {platform.workdir}")
            print(f"Token: {target.token}   Ctrl-C stops everything.", flush=True)
        while not stop.wait(0.5):
            if args.owner_pid and not pid_alive(args.owner_pid):
                break
    finally:
        platform.teardown()
    return 0


if __name__ == "__main__":
    sys.exit(main())
