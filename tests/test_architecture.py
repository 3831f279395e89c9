"""The import rules of the package, checked on the source (AST), one test per rule.

Every .py file of the folders that pyproject.toml's package-dir table maps into ``zerodrop``
is read; every import counts (module level, inside functions, ``pytest_plugins`` strings,
``importlib.import_module("...")`` literals), relative imports resolved. Each failure names
the file:line and the import. Each rule has a negative control: the same checker on a small
fake tree (its own mapping) with one violation, which it must report.
"""
from __future__ import annotations

import pytest

from tests.source_tree import Import, SourceTree, within, write_tree

P = "zerodrop"


# -- the checkers -------------------------------------------------------------------------------
def imports_from(tree: SourceTree, package: str) -> list[Import]:
    return [i for i in tree.imports if within(i.importer, package)]


def only(tree: SourceTree, package: str, allowed: list[str]) -> list[str]:
    """``package`` imports nothing of the top package outside ``allowed`` (and itself)."""
    keep = [package, *allowed]
    return [str(i) for i in imports_from(tree, package)
            if within(i.target, tree.top) and not any(within(i.target, a) for a in keep)]


def never(tree: SourceTree, package: str, forbidden: list[str]) -> list[str]:
    """``package`` imports nothing from any of ``forbidden``."""
    return [str(i) for i in imports_from(tree, package)
            if any(within(i.target, f) for f in forbidden)]


def platforms_only_through_base(tree: SourceTree) -> list[str]:
    scenarios, platforms = f"{P}.scenarios", f"{P}.platforms"
    return [str(i) for i in imports_from(tree, scenarios)
            if within(i.target, platforms) and not within(i.target, f"{platforms}.base")]


def bare_folder_imports(tree: SourceTree) -> list[str]:
    """Imports of a mapped folder by its folder name (``from load import x``), anywhere."""
    bare = tree.bare_names()
    return [f"{i.where}: {i.importer} imports the bare folder name {i.written} "
            f"(`{i.text}`); use {tree.top}.*"
            for i in tree.imports if not i.relative and i.written.split(".")[0] in bare]


def graph(tree: SourceTree) -> dict[str, dict[str, Import]]:
    """module -> {module it imports: the first import that says so}; type-only imports
    (``if TYPE_CHECKING:``) never run, so they make no edge."""
    edges: dict[str, dict[str, Import]] = {m: {} for m in tree.modules}
    for i in tree.imports:
        target = tree.resolve(i.target)
        if target is not None and target != i.importer and not i.type_only:
            edges[i.importer].setdefault(target, i)
    return edges


def cycles(tree: SourceTree) -> list[str]:
    """One cycle per strongly connected group of modules, each edge with its file:line."""
    edges = graph(tree)
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    groups: list[list[str]] = []

    def connect(v: str) -> None:  # Tarjan's algorithm
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges[v]):
            if w not in index:
                connect(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            group = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                group.append(w)
                if w == v:
                    break
            if len(group) > 1:
                groups.append(sorted(group))

    for v in sorted(edges):
        if v not in index:
            connect(v)
    found = []
    for group in groups:
        path = _shortest_cycle(edges, group[0], set(group))
        steps = [f"{a} -> {b} ({edges[a][b].where}: `{edges[a][b].text}`)"
                 for a, b in zip(path, path[1:])]
        found.append("import cycle: " + "; ".join(steps))
    return found


def _shortest_cycle(edges, start: str, group: set[str]) -> list[str]:
    """start -> ... -> start, by breadth-first search inside its group."""
    came_from: dict[str, str] = {}
    frontier = [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(edges[v]):
                if w == start:
                    path = [v]
                    while path[-1] != start:
                        path.append(came_from[path[-1]])
                    return [start, *reversed(path[:-1]), start] if v != start else [start, start]
                if w in group and w not in came_from:
                    came_from[w] = v
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"{start} is in a cycle but none was found")


RULES = {
    "records imports nothing of zerodrop": lambda t: only(t, f"{P}.records", []),
    "reports imports no platforms, load, scenarios, fixtures, plugin, checks": lambda t: never(
        t, f"{P}.reports", [f"{P}.{x}" for x in
                            ("platforms", "load", "scenarios", "fixtures", "plugin", "checks")]),
    "scenarios imports no suites": lambda t: never(t, f"{P}.scenarios", [f"{P}.suites"]),
    "scenarios imports platforms only through platforms.base": platforms_only_through_base,
    "profiles imports nothing of zerodrop": lambda t: only(t, f"{P}.profiles", []),
    "load imports only records and profiles": lambda t: only(t, f"{P}.load", [f"{P}.records", f"{P}.profiles"]),
    "checks imports only records and profiles": lambda t: only(t, f"{P}.checks", [f"{P}.records", f"{P}.profiles"]),
    "payment_service imports nothing of zerodrop": lambda t: only(t, f"{P}.payment_service", []),
    "no bare folder-name imports": bare_folder_imports,
    "no import cycles": cycles,
}


# -- the rules on the repository ----------------------------------------------------------------
@pytest.fixture(scope="module")
def repo() -> SourceTree:
    return SourceTree.load()


def test_the_walk_sees_every_mapped_folder_and_resolves_imports(repo):
    """The checker reads what the rules are about; otherwise every rule would pass vacuously."""
    for name in repo.package_dir:
        assert name in repo.modules, f"package-dir maps {name} but no {name}/__init__.py found"
    assert "zerodrop.load.runner" in repo.modules
    assert "zerodrop.platforms.local.platform" in repo.modules
    assert any(i.importer == "zerodrop.scenarios.steps" and
               i.target == "zerodrop.platforms.base" for i in repo.imports)
    assert len(repo.imports) > 100, len(repo.imports)


@pytest.mark.parametrize("rule", list(RULES))
def test_import_rule(repo, rule):
    found = RULES[rule](repo)
    assert not found, f"{rule}: {len(found)} violation(s):\n" + "\n".join(found)


# -- negative controls: each rule reports a violation in a fake tree ---------------------------
FAKE_DIRS = {"zerodrop": "zd", "zerodrop.records": "rec", "zerodrop.platforms": "plat",
             "zerodrop.load": "ld", "zerodrop.reports": "rep", "zerodrop.scenarios": "scen",
             "zerodrop.checks": "chk", "zerodrop.fixtures": "fix", "zerodrop.plugin": "plug",
             "zerodrop.suites": "ste", "zerodrop.payment_service": "svc", "zerodrop.profiles": "prof"}
CLEAN = {
    "rec/events.py": "import json\nfrom .ledger import Record\n",
    "rec/ledger.py": "class Record: ...\n",
    "plat/base.py": "from zerodrop.records.events import Record\n",
    "plat/local/platform.py": "from ..base import Record\n",
    "ld/runner.py": "from zerodrop.records import ledger\nfrom . import progress\n",
    "ld/progress.py": "def monitor():\n    from zerodrop.records.ledger import Record\n",
    "rep/verdict.py": "from zerodrop.records.ledger import Record\nimport requests\n",
    "scen/steps.py": "from zerodrop.platforms.base import Record\n"
                     "from zerodrop.platforms import base\nfrom zerodrop.records import events\n",
    "chk/api.py": "from zerodrop.records import ledger\n",
    "chk/service.py": "from zerodrop.profiles.profile import Profile\n",
    "ld/arrivals.py": "from zerodrop.profiles import profile\n",
    "prof/profile.py": "import jq\n",
    "svc/app.py": "from .money import cents\n",
    "svc/money.py": "def cents(): ...\n",
    "plug/__init__.py": "pytest_plugins = ['zerodrop.plugin.core']\n",
    "plug/core.py": "from zerodrop.scenarios import steps\nfrom zerodrop.platforms.local import platform\n",
    "fix/targets.py": "from zerodrop.platforms.local.platform import Record\n",
    "ste/test_x.py": "from zerodrop.checks.api import *\n",
}
VIOLATIONS = {
    "records imports nothing of zerodrop":
        ("rec/results.py", "def f():\n    from zerodrop.load import runner\n",
         "rec/results.py:2: zerodrop.records.results imports zerodrop.load.runner"),
    "reports imports no platforms, load, scenarios, fixtures, plugin, checks":
        ("rep/evidence.py", "from ..scenarios.steps import x\n",
         "rep/evidence.py:1: zerodrop.reports.evidence imports zerodrop.scenarios.steps"),
    "scenarios imports no suites":
        ("scen/proof.py", "import zerodrop.suites.test_x\n",
         "scen/proof.py:1: zerodrop.scenarios.proof imports zerodrop.suites.test_x"),
    "scenarios imports platforms only through platforms.base":
        ("scen/blue_green.py", "from zerodrop.platforms.local import platform\n",
         "scen/blue_green.py:1: zerodrop.scenarios.blue_green imports "
         "zerodrop.platforms.local.platform"),
    "profiles imports nothing of zerodrop":
        ("prof/profile.py", "import jq\nfrom zerodrop.checks.expect import compile\n",
         "prof/profile.py:2: zerodrop.profiles.profile imports zerodrop.checks.expect"),
    "load imports only records and profiles":
        ("ld/pod.py", "import os\n\nfrom zerodrop import checks\n",
         "ld/pod.py:3: zerodrop.load.pod imports zerodrop.checks"),
    "checks imports only records and profiles":
        ("chk/seed.py", "from zerodrop.reports.verdict import judge\n",
         "chk/seed.py:1: zerodrop.checks.seed imports zerodrop.reports.verdict"),
    "payment_service imports nothing of zerodrop":
        ("svc/server.py", "import zerodrop\n", "svc/server.py:1: zerodrop.payment_service.server "
                                               "imports zerodrop"),
    "no bare folder-name imports":
        ("fix/cluster.py", "def f():\n    from ld.runner import run\n",
         "fix/cluster.py:2: zerodrop.fixtures.cluster imports the bare folder name ld.runner"),
    "no import cycles":
        ("ld/ledger.py", "import zerodrop.load.runner\n",
         "import cycle: zerodrop.load.ledger -> zerodrop.load.runner (ld/ledger.py:1: "
         "`import zerodrop.load.runner`); zerodrop.load.runner -> zerodrop.load.ledger "
         "(ld/runner.py:1: `from .ledger import merge`)"),
}


def test_the_fake_tree_is_clean(tmp_path):
    """The controls' base breaks no rule, so each control's finding is its one violation."""
    tree = write_tree(tmp_path, FAKE_DIRS, CLEAN)
    assert {r: RULES[r](tree) for r in RULES} == {r: [] for r in RULES}


@pytest.mark.parametrize("rule", list(VIOLATIONS))
def test_negative_control(tmp_path, rule):
    path, source, expected = VIOLATIONS[rule]
    extra = {path: source}
    if rule == "no import cycles":  # ledger imports runner; make runner import ledger back
        extra["ld/runner.py"] = "from .ledger import merge\n" + CLEAN["ld/runner.py"]
    tree = write_tree(tmp_path, FAKE_DIRS, {**CLEAN, **extra})
    found = RULES[rule](tree)
    assert len(found) == 1 and found[0].startswith(expected), found


def test_a_cycle_through_a_function_level_import_is_found_and_type_only_ones_are_not(tmp_path):
    tree = write_tree(tmp_path, FAKE_DIRS, {
        "ld/a.py": "from zerodrop.load import b\n",
        "ld/b.py": "def f():\n    from . import c\n",
        "ld/c.py": "import zerodrop.load.a\n",
        "rec/x.py": "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from . import y\n",
        "rec/y.py": "from . import x\n",
    })
    found = cycles(tree)
    assert found == ["import cycle: "
                     "zerodrop.load.a -> zerodrop.load.b (ld/a.py:1: "
                     "`from zerodrop.load import b`); "
                     "zerodrop.load.b -> zerodrop.load.c (ld/b.py:2: `from . import c`); "
                     "zerodrop.load.c -> zerodrop.load.a (ld/c.py:1: "
                     "`import zerodrop.load.a`)"], found


def test_relative_imports_resolve_from_packages_and_modules(tmp_path):
    tree = write_tree(tmp_path, FAKE_DIRS, {
        **CLEAN,
        "plat/local/__init__.py": "from .platform import Local\nfrom .. import base\n",
        "plat/local/platform.py": "from ..base import Platform\nfrom ...records import ledger\n",
    })
    got = {(i.importer, i.target) for i in tree.imports}
    assert {("zerodrop.platforms.local", "zerodrop.platforms.local.platform"),
            ("zerodrop.platforms.local", "zerodrop.platforms.base"),
            ("zerodrop.platforms.local.platform", "zerodrop.platforms.base"),
            ("zerodrop.platforms.local.platform", "zerodrop.records.ledger")} <= got, got
