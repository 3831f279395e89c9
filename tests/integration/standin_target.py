"""A test-only stand-in target, ``--target fake``: registered from outside the registry's
table by a plugin loaded with ``-p tests.integration.standin_target`` (before zerodrop adds its
options), to show that a target is one provider module plus one registry entry.

It stands nothing up: its Target points nowhere and its "platform" is a record of what was
asked. Every call is appended to the file named by ZD_STANDIN_LOG, so the test can see who
called what, in which process, in which order.
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from typing import Any

from zerodrop.platforms import registry
from zerodrop.platforms.base import Target
from zerodrop.platforms.provider import Provider, Run, Say

registry.register("fake", __name__)


def log(what: str) -> None:
    with open(os.environ["ZD_STANDIN_LOG"], "a") as f:
        f.write(f"{what} {os.getpid()}\n")


@dataclass
class StandinPlatform:
    """Not a Platform: what zd_platform needs of one (a Service address, a teardown)."""

    name: str
    service_url: str

    def teardown(self) -> None:
        log(f"teardown {self.name}")


class StandinProvider(Provider):
    name = "fake"
    summary = "a test-only stand-in target"

    def add_options(self, group: Any) -> None:
        group.addoption("--fake-answer", default="42", help="--target fake: what it answers")

    def check_options(self, options: Any, parallel: bool = False) -> None:
        if options.fake_answer == "bad":
            raise ValueError("--fake-answer bad: the stand-in refuses it")

    def acquire(self, options: Any, run: Run, say: Say = print) -> dict:
        log("acquire")
        return {"answer": options.fake_answer, "run": run.run_id}

    def session_to_worker(self, session: dict) -> dict:
        return dict(session)

    def session_from_worker(self, data: dict) -> dict:
        log("from_worker")
        return dict(data)

    def target(self, session: dict, options: Any) -> Target:
        return Target("fake", f"http://fake.invalid/{session['answer']}", options.token)

    def platform(self, session: dict, options: Any, name: str, **stand_up: Any):
        log(f"platform {name} idle_replicas={stand_up.get('idle_replicas')}")
        return StandinPlatform(name, f"http://fake.invalid/{name}")

    def release(self, session: dict, say: Say = print) -> None:
        log("release")


PROVIDER = StandinProvider()
