"""The Provider seam: what ``--target`` names. One interface, small implementations, all
registered in ``platforms.registry`` (kind's ``pkg/cluster/internal/providers`` is the model).

A provider turns the command line into (1) a session, acquired once per run by the pytest
controller and handed to xdist workers as a plain dict, (2) the ``Target`` the verification
suites share, and (3) a fresh ``Platform`` for each zero-downtime proof. The pytest plugin
talks to providers only through this interface; it never asks which one it holds.
"""
from __future__ import annotations

import abc
import secrets
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path
from typing import Any, Callable

from zerodrop.platforms.base import Platform, Target

Say = Callable[[str], None]


class TargetError(Exception):
    """The target cannot be used; one line for a person, with the fix."""


@dataclass(frozen=True)
class Run:
    """What every provider is told about the run: its id (names and labels what it creates),
    a directory of its own (removed at the end) and the pid of the pytest controller."""

    run_id: str
    workdir: Path
    owner_pid: int


def new_run_id() -> str:
    """A run's id: when it started (UTC, to the second) and 4 random hex digits."""
    return datetime.now(timezone.utc).strftime("%m%d%H%M%S") + secrets.token_hex(2)


class Provider(abc.ABC):
    """One ``--target``. Each method has a one-line contract; errors are one line."""

    name: str = ""
    summary: str = ""          # one line for ``--target``'s help
    can_switch: bool = True    # zero-downtime proofs can run on it (it gives a Platform)
    outside_commands: bool = False  # a deploy command of the user's own can switch its platform

    def add_options(self, group: Any) -> None:
        """Add this target's own options to the "zerodrop" group (``group.addoption``)."""

    def check_options(self, options: Any, parallel: bool = False) -> None:
        """Refuse a bad combination of options before anything starts: ValueError, one line.
        ``parallel``: the run has pytest-xdist workers."""

    def describe(self, options: Any) -> str:
        """Where the suites run, for the report header (no secrets)."""
        return self.name

    def network_faults_missing(self, options: Any) -> str:
        """Why this target's platforms cannot delay or drop a replica's packets (one line),
        or "" when they can (``Platform.network_fault``)."""
        return "this target gives no way into a replica's network namespace"

    @abc.abstractmethod
    def acquire(self, options: Any, run: Run, say: Say = print) -> Any:
        """The run's session (a cluster, a shared directory, nothing): once, in the pytest
        controller, before any worker starts; TargetError when the target cannot be used."""

    @abc.abstractmethod
    def session_to_worker(self, session: Any) -> dict:
        """The session as a JSON-safe dict for an xdist worker (``workerinput``)."""

    @abc.abstractmethod
    def session_from_worker(self, data: dict) -> Any:
        """The session again, in a worker, from ``session_to_worker``'s dict."""

    @abc.abstractmethod
    def target(self, session: Any, options: Any) -> Target:
        """The deployment the suites share; resolved once and cached in the session, resolved
        again when it was released (a proof took its port)."""

    @abc.abstractmethod
    def platform(self, session: Any, options: Any, name: str, **stand_up: Any) -> Platform:
        """A fresh platform for one proof, named ``name`` within the run; ``stand_up`` are
        ``stand_up()``'s keywords (faults, idle_replicas, versions, active), and
        ``canary=True`` for a canary's platform: one that splits traffic by weight and has a
        Prometheus scraping its replicas (``metrics_url``)."""

    @abc.abstractmethod
    def release(self, session: Any, say: Say = print) -> None:
        """Stop whatever ``acquire`` and ``target`` started; safe to call twice."""

    def environment(self, session: Any, options: Any) -> dict[str, str]:
        """Names (never secrets) for the evidence's environment."""
        return {}
