"""``python -m zerodrop.load.pod stop --grace G``: a worker pod's Locust is given G seconds to
end by itself (its master's quit message) before it gets SIGTERM."""
from __future__ import annotations

import signal
import subprocess
import threading
from pathlib import Path

from zerodrop.load import pod


def locust_standin(directory: Path) -> subprocess.Popen:
    """A process in Locust's place (its pid in locust.pid) and its exit code written 0.5 s
    later, as ``pod run`` does when Locust ends by itself."""
    directory.mkdir()
    proc = subprocess.Popen(["sleep", "30"])
    (directory / "locust.pid").write_text(str(proc.pid))
    threading.Timer(0.5, lambda: (directory / "exit").write_text("0")).start()
    return proc


def test_within_the_grace_locust_ends_by_itself_and_gets_no_signal(tmp_path: Path):
    proc = locust_standin(tmp_path / "d")
    try:
        assert pod.stop(tmp_path / "d", timeout=5, grace=5) == "0"
        assert proc.poll() is None  # never signalled
    finally:
        proc.kill()
        proc.wait()


def test_without_a_grace_locust_gets_sigterm_at_once(tmp_path: Path):
    """Control: the same stand-in, no grace: SIGTERM first, as before."""
    proc = locust_standin(tmp_path / "d")
    try:
        assert pod.stop(tmp_path / "d", timeout=5) == "0"
        assert proc.wait(timeout=5) == -signal.SIGTERM
    finally:
        proc.kill()
        proc.wait()
