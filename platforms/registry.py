"""Where ``--target`` is resolved: one line per target, naming the module of its provider.

A module is imported the first time its provider is asked for, and exposes ``PROVIDER`` (a
``platforms.provider.Provider``). Adding a target is one new provider module and one line
here; the plugin, the option's choices and its help follow from this table.
"""
from __future__ import annotations

import importlib

from zerodrop.platforms.provider import Provider, TargetError

DEFAULT = "local"
PROVIDERS: dict[str, str] = {
    "local": "zerodrop.platforms.local.provider",
    "url": "zerodrop.platforms.url",
    "kind": "zerodrop.platforms.kubernetes.providers.kind",
    "kubeconfig": "zerodrop.platforms.kubernetes.providers.kubeconfig",
}
_loaded: dict[str, Provider] = {}


def names() -> tuple[str, ...]:
    return tuple(PROVIDERS)


def get(name: str) -> Provider:
    """The provider of ``--target name``, its module imported on first use."""
    if name not in PROVIDERS:
        raise TargetError(f"unknown target {name!r}; known: {', '.join(PROVIDERS)}")
    if name not in _loaded:
        provider = importlib.import_module(PROVIDERS[name]).PROVIDER
        if provider.name != name:
            raise TargetError(f"{PROVIDERS[name]} provides {provider.name!r}, not {name!r}")
        _loaded[name] = provider
    return _loaded[name]


def register(name: str, module: str) -> None:
    """Add a target from outside this table (a plugin loaded with ``-p`` before zerodrop's
    options are added, as the harness's own tests do with a stand-in)."""
    PROVIDERS[name] = module
    _loaded.pop(name, None)


def switchable() -> list[str]:
    """The targets a zero-downtime proof can run on."""
    return [n for n in PROVIDERS if get(n).can_switch]


def target_help() -> str:
    listed = "; ".join(f"{n}{' (default)' if n == DEFAULT else ''}: {get(n).summary}"
                       for n in PROVIDERS)
    return f"where the suites run: {listed}"


def add_options(group) -> None:
    """Every provider's own options, in the table's order."""
    for name in PROVIDERS:
        get(name).add_options(group)


def add_once(group, *names: str, **kwargs) -> None:
    """``group.addoption`` for an option several providers share (the first one adds it)."""
    taken = {n for option in getattr(group, "options", []) for n in option.names()}
    if not taken.intersection(names):
        group.addoption(*names, **kwargs)
