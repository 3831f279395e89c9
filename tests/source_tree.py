"""The source of the mapped folders, read as Python's AST: which file is which module, and what
each module imports. Shared by tests/test_architecture.py and tests/test_events_catalogue.py.

The file-to-module map comes from ``[tool.setuptools.package-dir]`` of a pyproject.toml (read
with tomllib), so the tests follow the table: the repository's own, or a fake tree's that a
negative control writes to tmp_path.
"""
from __future__ import annotations

import ast
import tomllib
from dataclasses import dataclass, field
from functools import cached_property
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


@dataclass(frozen=True)
class Module:
    name: str  # dotted import name, e.g. zerodrop.load.runner
    path: Path
    is_package: bool  # an __init__.py

    @property
    def package(self) -> str:
        """The package its relative imports start from."""
        return self.name if self.is_package else self.name.rpartition(".")[0]

    @cached_property
    def tree(self) -> ast.Module:
        return ast.parse(self.path.read_text(encoding="utf-8"), filename=str(self.path))


@dataclass(frozen=True)
class Import:
    importer: str  # the importing module
    where: str  # file:line, relative to the tree's root
    target: str  # the absolute name imported: a module where one matches, else its package
    written: str  # the absolute module name as written (relative imports resolved)
    relative: bool
    text: str  # the statement as written
    type_only: bool = False  # under ``if TYPE_CHECKING:``

    def __str__(self) -> str:
        return f"{self.where}: {self.importer} imports {self.target} (`{self.text}`)"


@dataclass
class SourceTree:
    root: Path
    package_dir: dict[str, str]
    modules: dict[str, Module] = field(default_factory=dict)

    @classmethod
    def load(cls, root: Path = ROOT) -> "SourceTree":
        with open(root / "pyproject.toml", "rb") as f:
            table = tomllib.load(f)["tool"]["setuptools"]["package-dir"]
        tree = cls(root, dict(table))
        tree.modules = tree._find_modules()
        return tree

    @property
    def top(self) -> str:
        """The one top-level package every mapped folder belongs to."""
        tops = {name.split(".")[0] for name in self.package_dir if name}
        assert len(tops) == 1, f"package-dir maps more than one top-level package: {tops}"
        return tops.pop()

    def bare_names(self) -> set[str]:
        """First components of mapped folders that are not their own import names (records,
        load, ...): importing one of them would load a module a second time, under another
        name."""
        return {Path(folder).parts[0] for name, folder in self.package_dir.items()
                if folder and Path(folder).parts[0] != name.split(".")[0]}

    def _find_modules(self) -> dict[str, Module]:
        owner: dict[Path, tuple[str, Path]] = {}
        # the deepest mapped folder owns a file (a mapping may sit inside another's folder)
        for name, folder in sorted(self.package_dir.items(), key=lambda kv: len(kv[1])):
            base = (self.root / folder).resolve()
            for path in base.rglob("*.py"):
                if "__pycache__" not in path.parts:
                    owner[path] = (name, base)
        found = {}
        for path, (name, base) in sorted(owner.items()):
            parts = list(path.relative_to(base).with_suffix("").parts)
            is_package = parts[-1] == "__init__"
            if is_package:
                parts.pop()
            dotted = ".".join(p for p in [name, *parts] if p)
            found[dotted] = Module(dotted, path, is_package)
        return found

    def where(self, module: Module, node: ast.AST) -> str:
        return f"{module.path.relative_to(self.root.resolve())}:{node.lineno}"

    def resolve(self, name: str) -> str | None:
        """The module of this tree that importing ``name`` loads last (the longest prefix)."""
        while name:
            if name in self.modules:
                return name
            name = name.rpartition(".")[0]
        return None

    @cached_property
    def imports(self) -> list[Import]:
        found: list[Import] = []
        for module in self.modules.values():
            found.extend(self._imports_of(module))
        return found

    def _imports_of(self, module: Module) -> list[Import]:
        type_only_nodes = _type_checking_nodes(module.tree)
        out = []

        def add(node, written, target, relative=False):
            out.append(Import(module.name, self.where(module, node), target, written, relative,
                              ast.unparse(node), id(node) in type_only_nodes))

        for node in ast.walk(module.tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    add(node, alias.name, alias.name)
            elif isinstance(node, ast.ImportFrom):
                written = absolute(module, node)
                for alias in node.names:
                    sub = f"{written}.{alias.name}"
                    target = sub if alias.name != "*" and sub in self.modules else written
                    add(node, written, target, relative=bool(node.level))
            elif isinstance(node, ast.Call) and _is_import_module_call(node):
                arg = node.args[0]
                if isinstance(arg, ast.Constant) and isinstance(arg.value, str) \
                        and not arg.value.startswith("."):
                    add(node, arg.value, arg.value)
            elif isinstance(node, ast.Assign) and any(
                    isinstance(t, ast.Name) and t.id == "pytest_plugins" for t in node.targets):
                values = node.value.elts if isinstance(node.value, (ast.List, ast.Tuple)) \
                    else [node.value]
                for v in values:
                    if isinstance(v, ast.Constant) and isinstance(v.value, str):
                        add(node, v.value, v.value)
        return out


def absolute(module: Module, node: ast.ImportFrom) -> str:
    """The absolute module name a ``from ... import`` statement of ``module`` reads from."""
    if not node.level:
        return node.module or ""
    base = module.package
    for _ in range(node.level - 1):
        base = base.rpartition(".")[0]
    return ".".join(p for p in (base, node.module) if p)


def _is_import_module_call(node: ast.Call) -> bool:
    f = node.func
    name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else ""
    return name in ("import_module", "__import__") and bool(node.args)


def _type_checking_nodes(tree: ast.Module) -> set[int]:
    """ids of the nodes under ``if TYPE_CHECKING:`` / ``if typing.TYPE_CHECKING:``."""
    ids: set[int] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.If):
            test = node.test
            name = test.attr if isinstance(test, ast.Attribute) else \
                test.id if isinstance(test, ast.Name) else ""
            if name == "TYPE_CHECKING":
                for stmt in node.body:
                    ids.update(id(n) for n in ast.walk(stmt))
    return ids


def within(name: str, package: str) -> bool:
    return name == package or name.startswith(package + ".")


def write_tree(root: Path, package_dir: dict[str, str], files: dict[str, str]) -> SourceTree:
    """A fake tree for negative controls: a pyproject.toml with this package-dir table, and
    ``files`` (path relative to root -> source); every folder of it gets an __init__.py."""
    lines = ["[tool.setuptools.package-dir]"]
    lines += [f'"{name}" = "{folder}"' for name, folder in package_dir.items()]
    (root / "pyproject.toml").write_text("\n".join(lines) + "\n")
    for folder in package_dir.values():
        (root / folder).mkdir(parents=True, exist_ok=True)
        (root / folder / "__init__.py").touch()
    for rel, source in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        init = path.parent / "__init__.py"
        if not init.exists():
            init.touch()
        path.write_text(source)
    return SourceTree.load(root)
