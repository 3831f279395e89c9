"""The timeline's names come from one catalogue, ``zerodrop.records.events.EventName``.

Read from the source (AST) of every mapped folder:

- every ``.emit(...)`` call names its event with a member of ``EventName`` (``EventName.X``,
  an alias of it such as ``E.X``, or ``events.EventName.X``), the second positional argument
  (or ``name=``); the one exception are the scenario steps of ``zerodrop.scenarios.steps``
  (``Context.emit(step_name, ...)`` and the call inside ``Context.emit`` that forwards it as a
  ``Source.SCENARIO`` event), whose names are the steps' own. A helper that takes an
  ``EventName``-annotated parameter and passes it to ``.emit`` (``def _emit(self, name:
  EventName, **detail)``) is a typed forwarder: its calls in the same module are checked
  instead, with the same rule;
- every member is emitted somewhere (no stale entry in the catalogue);
- every member has a description in ``CATALOGUE``.

Each rule has a negative control on a fake tree written to tmp_path.
"""
from __future__ import annotations

import ast
from dataclasses import dataclass, field

import pytest

from tests.source_tree import Module, SourceTree, absolute, write_tree


@dataclass
class Catalogue:
    members: dict[str, str]  # member -> value, e.g. DEPLOYED -> "deployed"
    described: set[str]  # members with a non-empty CATALOGUE text
    where: str


@dataclass
class Findings:
    bad_emits: list[str] = field(default_factory=list)
    emitted: set[str] = field(default_factory=set)  # members some emit names
    sites: int = 0  # .emit calls and forwarder calls checked


def events_module(tree: SourceTree) -> Module:
    return tree.modules[f"{tree.top}.records.events"]


def read_catalogue(tree: SourceTree) -> Catalogue:
    module = events_module(tree)
    members: dict[str, str] = {}
    described: set[str] = set()
    for node in module.tree.body:
        if isinstance(node, ast.ClassDef) and node.name == "EventName":
            for stmt in node.body:
                if isinstance(stmt, ast.Assign) and len(stmt.targets) == 1 \
                        and isinstance(stmt.targets[0], ast.Name) \
                        and isinstance(stmt.value, ast.Constant):
                    members[stmt.targets[0].id] = stmt.value.value
        target = node.target if isinstance(node, ast.AnnAssign) else \
            node.targets[0] if isinstance(node, ast.Assign) and len(node.targets) == 1 else None
        if isinstance(target, ast.Name) and target.id == "CATALOGUE" \
                and isinstance(node.value, ast.Dict):
            for key, value in zip(node.value.keys, node.value.values):
                if isinstance(key, ast.Attribute) and isinstance(key.value, ast.Name) \
                        and key.value.id == "EventName" and isinstance(value, ast.Constant) \
                        and isinstance(value.value, str) and value.value.strip():
                    described.add(key.attr)
    return Catalogue(members, described, str(module.path.relative_to(tree.root.resolve())))


def _dotted(node: ast.AST) -> str | None:
    if isinstance(node, ast.Name):
        return node.id
    if isinstance(node, ast.Attribute):
        base = _dotted(node.value)
        return f"{base}.{node.attr}" if base else None
    return None


def enum_spellings(tree: SourceTree, module: Module) -> set[str]:
    """How ``module`` may spell the EventName class: ``EventName``, ``E``, ``events.EventName``,
    ``zerodrop.records.events.EventName``."""
    events = events_module(tree).name
    spellings = {"EventName"} if module.name == events else set()
    for node in ast.walk(module.tree):
        if isinstance(node, ast.ImportFrom):
            base = absolute(module, node)
            for alias in node.names:
                if base == events and alias.name == "EventName":
                    spellings.add(alias.asname or alias.name)
                elif f"{base}.{alias.name}" == events:
                    spellings.add(f"{alias.asname or alias.name}.EventName")
        elif isinstance(node, ast.Import):
            for alias in node.names:
                if alias.name == events:
                    spellings.add(f"{alias.asname or alias.name}.EventName")
    return spellings


def _scopes(tree: ast.Module) -> dict[int, tuple[str, ast.AST | None]]:
    """id(node) -> (qualified name, node) of the innermost def it is in (``Context.emit``)."""
    inside: dict[int, tuple[str, ast.AST | None]] = {}

    def visit(node: ast.AST, qual: str, func: ast.AST | None) -> None:
        for child in ast.iter_child_nodes(node):
            inside[id(child)] = (qual, func)
            if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef, ast.ClassDef)):
                is_def = not isinstance(child, ast.ClassDef)
                visit(child, f"{qual}.{child.name}" if qual else child.name,
                      child if is_def else func)
            else:
                visit(child, qual, func)

    visit(tree, "", None)
    return inside


@dataclass(frozen=True)
class Forwarder:
    """A helper such as ``def _emit(self, name: EventName, **detail)`` that hands its
    EventName-typed parameter to ``.emit``: its calls in the module are checked instead."""
    index: int  # positional index of the parameter at a call (self/cls not counted)
    param: str


def _event_params(func, spellings: set[str]) -> dict[str, int]:
    """The parameters of ``func`` annotated as EventName -> their positional index."""
    params = [*func.args.posonlyargs, *func.args.args]
    skip = 1 if params and params[0].arg in ("self", "cls") else 0
    found = {}
    for i, a in enumerate(params):
        note = a.annotation
        text = note.value if isinstance(note, ast.Constant) and isinstance(note.value, str) \
            else _dotted(note) if note is not None else None
        if text in spellings and i >= skip:
            found[a.arg] = i - skip
    return found


def _calls(module: Module):
    for node in ast.walk(module.tree):
        if isinstance(node, ast.Call):
            f = node.func
            name = f.attr if isinstance(f, ast.Attribute) else \
                f.id if isinstance(f, ast.Name) else ""
            yield node, name


def _emit_name(call: ast.Call):
    """The event-name argument of ``x.emit(source, name, **detail)``."""
    return call.args[1] if len(call.args) >= 2 else next(
        (k.value for k in call.keywords if k.arg == "name"), None)


def check_emits(tree: SourceTree) -> Findings:
    catalogue = read_catalogue(tree)
    by_value = {v: k for k, v in catalogue.members.items()}
    steps_module = f"{tree.top}.scenarios.steps"
    found = Findings()
    for module in tree.modules.values():
        spellings = enum_spellings(tree, module)
        scopes = _scopes(module.tree)
        # pass 1: the typed forwarders of this module, and the .emit calls inside them
        forwarders: dict[str, Forwarder] = {}
        forwarding: set[int] = set()
        for call, name in _calls(module):
            qual, func = scopes.get(id(call), ("", None))
            arg = _emit_name(call)
            if name == "emit" and func is not None and isinstance(arg, ast.Name):
                params = _event_params(func, spellings)
                if arg.id in params:
                    forwarders[func.name] = Forwarder(params[arg.id], arg.id)
                    forwarding.add(id(call))
        # pass 2: every .emit call and every call of a forwarder names a catalogue member
        for call, name in _calls(module):
            if name in forwarders and name != "emit":
                fw = forwarders[name]
                arg = call.args[fw.index] if len(call.args) > fw.index else next(
                    (k.value for k in call.keywords if k.arg == fw.param), None)
            elif name == "emit":
                qual = scopes.get(id(call), ("", None))[0]
                if id(call) in forwarding or module.name == steps_module and (
                        len(call.args) == 1  # Context.emit(step name, **detail)
                        or (qual == "Context.emit" and call.args
                            and _dotted(call.args[0]) == "Source.SCENARIO")):
                    continue
                arg = _emit_name(call)
            else:
                continue
            found.sites += 1
            options = [arg.body, arg.orelse] if isinstance(arg, ast.IfExp) else [arg]
            for option in options:
                member = _member(option, spellings, catalogue)
                if member:
                    found.emitted.add(member)
                    continue
                if isinstance(option, ast.Constant) and option.value in by_value:
                    found.emitted.add(by_value[option.value])  # emitted, if as a raw string
                said = "no event name" if option is None else f"`{ast.unparse(option)}`"
                found.bad_emits.append(f"{tree.where(module, call)}: {module.name} emits "
                                       f"{said} in `{ast.unparse(call)[:100]}`; "
                                       f"use EventName.<MEMBER>")
    found.bad_emits.sort(key=lambda s: (s.split(":")[0], int(s.split(":")[1])))
    return found


def _member(node, spellings: set[str], catalogue: Catalogue) -> str | None:
    if isinstance(node, ast.Attribute) and _dotted(node.value) in spellings \
            and node.attr in catalogue.members:
        return node.attr
    return None


def stale_members(tree: SourceTree) -> list[str]:
    return sorted(set(read_catalogue(tree).members) - check_emits(tree).emitted)


def undescribed_members(tree: SourceTree) -> list[str]:
    catalogue = read_catalogue(tree)
    return sorted(set(catalogue.members) - catalogue.described)


# -- the repository ------------------------------------------------------------------------------
@pytest.fixture(scope="module")
def repo() -> SourceTree:
    return SourceTree.load()


def test_the_ast_reads_the_catalogue_python_sees(repo):
    from zerodrop.records.events import CATALOGUE, EventName
    catalogue = read_catalogue(repo)
    assert catalogue.members == {m.name: m.value for m in EventName}
    assert catalogue.described == {m.name for m, text in CATALOGUE.items() if text.strip()}
    found = check_emits(repo)
    assert found.sites >= 10 and len(found.emitted) >= 10, found  # the walk reaches emitters


def test_every_emit_names_a_catalogue_event(repo):
    bad = check_emits(repo).bad_emits
    assert not bad, f"{len(bad)} emit(s) without an EventName member:\n" + "\n".join(bad)


def test_every_catalogue_event_is_emitted_somewhere(repo):
    stale = stale_members(repo)
    assert not stale, f"{read_catalogue(repo).where}: EventName members no code emits: {stale}"


def test_every_catalogue_event_has_a_description(repo):
    missing = undescribed_members(repo)
    assert not missing, (f"{read_catalogue(repo).where}: EventName members without CATALOGUE "
                         f"text: {missing}")


# -- negative controls on a fake tree -------------------------------------------------------------
DIRS = {"zerodrop": "zd", "zerodrop.records": "rec", "zerodrop.scenarios": "scen",
        "zerodrop.platforms": "plat"}
EVENTS = '''
import enum
class EventName(str, enum.Enum):
    DEPLOYED = "deployed"
    SCALED = "scaled"
    SWITCHED = "switched"
CATALOGUE = {
    EventName.DEPLOYED: "a colour got a new template",
    EventName.SCALED: "replicas changed",
    EventName.SWITCHED: "the selector moved",
}
class EventLog:
    def emit(self, source, name, **detail): ...
'''
STEPS = '''
from zerodrop.records.events import Source
class Context:
    def emit(self, name, **detail):
        return self.platform.events.emit(Source.SCENARIO, name, **detail).t
def run(ctx, step):
    ctx.emit(step.name, step="start")
    ctx.emit(f"{step.name} done", step="done")
'''
FORWARDER = """from zerodrop.records.events import EventName, Source
class Watch:
    def _emit(self, name: EventName, **detail):
        self.events.emit(Source.PLATFORM, name, **detail)
    def seen(self):
        self._emit(EventName.SWITCHED, color='green')
"""
GOOD = {
    "rec/events.py": EVENTS,
    "scen/steps.py": STEPS,
    "plat/local.py": "from zerodrop.records.events import EventName\n"
                     "def deploy(events):\n"
                     "    events.emit('platform', EventName.DEPLOYED, color='green')\n",
    "plat/kube.py": "from ..records.events import EventName as E\n"
                    "from zerodrop.records import events as ev\n"
                    "import zerodrop.records.events\n"
                    "def scale(log, up):\n"
                    "    log.emit('platform', E.SCALED if up else ev.EventName.SCALED)\n"
                    "    log.emit(source='platform', name=zerodrop.records.events.EventName"
                    ".SWITCHED)\n",
    "plat/watch.py": FORWARDER,
}


def test_the_fake_tree_passes(tmp_path):
    tree = write_tree(tmp_path, DIRS, GOOD)
    found = check_emits(tree)
    assert found.bad_emits == []
    assert found.emitted == {"DEPLOYED", "SCALED", "SWITCHED"}
    assert stale_members(tree) == [] and undescribed_members(tree) == []


@pytest.mark.parametrize("path, source, expected", [
    ("plat/raw.py", "def f(events):\n    events.emit('platform', 'deployed', color='g')\n",
     "plat/raw.py:2: zerodrop.platforms.raw emits `'deployed'`"),
    ("plat/unknown.py", "from zerodrop.records.events import EventName\n"
                        "def f(e):\n    e.emit('platform', EventName.EXPLODED)\n",
     "plat/unknown.py:3: zerodrop.platforms.unknown emits `EventName.EXPLODED`"),
    ("plat/other.py", "class EventName: X = 'x'\n"
                      "def f(e):\n    e.emit('fault', EventName.DEPLOYED)\n",
     "plat/other.py:3: zerodrop.platforms.other emits `EventName.DEPLOYED`"),
    ("plat/name.py", "def f(e, n):\n    e.emit('fault', n)\n",
     "plat/name.py:2: zerodrop.platforms.name emits `n`"),
    ("plat/one.py", "def f(e):\n    e.emit('deployed')\n",
     "plat/one.py:2: zerodrop.platforms.one emits no event name"),
    ("scen/blue_green.py", "def f(ctx):\n    ctx.emit('switch now')\n",
     "scen/blue_green.py:2: zerodrop.scenarios.blue_green emits no event name"),
    ("plat/fwd.py", FORWARDER + "    def kill(self):\n        self._emit('deployed', color='g')\n",
     "plat/fwd.py:8: zerodrop.platforms.fwd emits `'deployed'`"),
    ("plat/untyped.py", FORWARDER.replace("name: EventName", "name: str"),
     "plat/untyped.py:4: zerodrop.platforms.untyped emits `name`"),
    ("scen/steps.py", STEPS + "def g(log):\n    log.emit('scenario', 'free text')\n",
     "scen/steps.py:10: zerodrop.scenarios.steps emits `'free text'`"),
])
def test_negative_control_an_emit_outside_the_catalogue_is_reported(tmp_path, path, source,
                                                                   expected):
    tree = write_tree(tmp_path, DIRS, {**GOOD, path: source})
    bad = check_emits(tree).bad_emits
    assert len(bad) == 1 and bad[0].startswith(expected), bad


def test_a_typed_forwarders_calls_count_as_emits(tmp_path):
    kube = GOOD["plat/kube.py"].split("    log.emit(source=")[0]
    tree = write_tree(tmp_path, DIRS, {**GOOD, "plat/kube.py": kube})
    assert check_emits(tree).bad_emits == [] and stale_members(tree) == []  # via Watch._emit
    (tmp_path / "plat" / "watch.py").write_text(FORWARDER.replace("EventName.SWITCHED",
                                                                  "'switched'"))
    tree = SourceTree.load(tmp_path)
    assert [b.split(" in ")[0] for b in check_emits(tree).bad_emits] == [
        "plat/watch.py:6: zerodrop.platforms.watch emits `'switched'`"]


def test_negative_control_a_stale_catalogue_entry_is_reported(tmp_path):
    events = EVENTS.replace('    SWITCHED = "switched"\n',
                            '    SWITCHED = "switched"\n    DRAINED = "drained"\n')
    tree = write_tree(tmp_path, DIRS, {**GOOD, "rec/events.py": events})
    assert stale_members(tree) == ["DRAINED"]


def test_negative_control_a_member_without_a_description_is_reported(tmp_path):
    events = EVENTS.replace('    EventName.SCALED: "replicas changed",\n',
                            '    EventName.SCALED: "  ",\n')
    tree = write_tree(tmp_path, DIRS, {**GOOD, "rec/events.py": events})
    assert undescribed_members(tree) == ["SCALED"]
