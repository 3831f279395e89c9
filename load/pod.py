"""The load generator's side inside a Kubernetes pod (the harness image runs this module).

The harness cannot reach a pod's files, only run commands in it (exec), so the pod keeps the
ledger in a directory and answers these commands::

    python -m zerodrop.load.pod run --dir D --linger S -- <locust args>   # the container's command
    python -m zerodrop.load.pod progress --dir D    # the progress files, one JSON line each
    python -m zerodrop.load.pod stop --dir D [--timeout T] [--grace G]   # SIGTERM Locust, wait; its exit code
    python -m zerodrop.load.pod dump --dir D        # every ledger file, each after a '### name' line
    python -m zerodrop.load.pod clock               # time.time() here (the harness measures the offset)

``run`` first waits (bounded) for the target to answer GET /health with 2xx, then starts
Locust, records its exit code in D/exit, and then lingers until the harness has dumped the
ledger (D/collected) or ``--linger`` seconds have passed, so the pod does not take the ledger
with it when it ends.

``stop --grace G`` first waits up to G seconds for Locust to end by itself: a distributed
run's worker pod ends when its master's quit message arrives, after its requests in flight
ended; only one that missed it gets SIGTERM (as ``load.runner.LoadRun.stop`` does locally).
"""
from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from zerodrop.load.ledger import read_progress
from zerodrop.records.progress import ProcessProgress

PREFLIGHT_S = 30.0


def run(directory: Path, linger: float, host: str, locust_args: list[str]) -> int:
    directory.mkdir(parents=True, exist_ok=True)
    reason = _wait_healthy(host, PREFLIGHT_S)
    if reason:
        (directory / "error").write_text(reason)
        (directory / "exit").write_text("3")
    else:
        proc = subprocess.Popen([sys.executable, "-m", "locust", *locust_args],
                                stdin=subprocess.DEVNULL)
        (directory / "locust.pid").write_text(str(proc.pid))
        signal.signal(signal.SIGTERM, lambda *_: proc.send_signal(signal.SIGTERM))
        code = proc.wait()
        (directory / "exit").write_text(str(code))
    deadline = time.monotonic() + linger
    while not (directory / "collected").exists() and time.monotonic() < deadline:
        time.sleep(0.2)
    return 0


def _wait_healthy(host: str, timeout: float) -> str:
    from zerodrop.load.arrivals import ENV_PROFILE
    from zerodrop.profiles import profile as profiles

    text = os.environ.get(ENV_PROFILE, "")
    path = (profiles.from_text(text) if text else profiles.load()).health
    deadline, last = time.monotonic() + timeout, "no answer"
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(host.rstrip("/") + path, timeout=3) as resp:
                if 200 <= resp.status < 300:
                    return ""
                last = f"HTTP {resp.status}"
        except urllib.error.HTTPError as exc:
            last = f"HTTP {exc.code}"
        except (OSError, ValueError) as exc:
            last = type(exc).__name__
        time.sleep(0.5)
    return f"load target {host} does not answer GET {path} from inside the cluster ({last})"


def progress(directory: Path) -> list[ProcessProgress]:
    """The progress files here, read with records.progress (one replaced under us is skipped);
    the ``progress`` command prints each with its own writer, one per line."""
    return read_progress(directory)


def stop(directory: Path, timeout: float, grace: float = 0.0) -> str:
    """Locust's exit code once it ended: after ``grace`` s of waiting for it to end by
    itself, SIGTERM, then up to ``timeout`` s more; "-9" when it had to be killed."""
    pid_file = directory / "locust.pid"
    grace_end = time.monotonic() + grace
    while not (directory / "exit").exists() and time.monotonic() < grace_end:
        time.sleep(0.1)
    if pid_file.exists() and not (directory / "exit").exists():
        try:
            os.kill(int(pid_file.read_text()), signal.SIGTERM)
        except (ProcessLookupError, ValueError):
            pass
    deadline = time.monotonic() + timeout
    while not (directory / "exit").exists():
        if time.monotonic() > deadline:
            try:
                os.kill(int(pid_file.read_text()), signal.SIGKILL)
            except (OSError, ValueError):
                pass
            return "-9"
        time.sleep(0.1)
    return (directory / "exit").read_text().strip()


def dump(directory: Path, out) -> None:
    for path in sorted(directory.glob("ledger-*.jsonl")):
        out.write(f"### {path.name}\n")
        with open(path, encoding="utf-8") as f:
            for line in f:
                out.write(line if line.endswith("\n") else line + "\n")
    out.flush()
    (directory / "collected").write_text("1")


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m zerodrop.load.pod")
    sub = parser.add_subparsers(dest="cmd", required=True)
    r = sub.add_parser("run")
    r.add_argument("--dir", type=Path, required=True)
    r.add_argument("--linger", type=float, default=600.0)
    r.add_argument("--host", required=True)
    r.add_argument("locust", nargs=argparse.REMAINDER)
    for name in ("progress", "stop", "dump"):
        p = sub.add_parser(name)
        p.add_argument("--dir", type=Path, required=True)
        if name == "stop":
            p.add_argument("--timeout", type=float, default=20.0)
            p.add_argument("--grace", type=float, default=0.0)
    sub.add_parser("clock")
    a = parser.parse_args(argv)
    if a.cmd == "run":
        args = a.locust[1:] if a.locust[:1] == ["--"] else a.locust
        return run(a.dir, a.linger, a.host, args)
    if a.cmd == "progress":
        for p in progress(a.dir):
            print(p.to_json())
    elif a.cmd == "stop":
        print(stop(a.dir, a.timeout, a.grace))
    elif a.cmd == "dump":
        dump(a.dir, sys.stdout)
    else:
        print(repr(time.time()))
    return 0


if __name__ == "__main__":
    sys.exit(main())
