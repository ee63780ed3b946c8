"""The layering of ARCHITECTURE.md holds in the source: read with `ast`, never imported.

Every import counts: module level, inside functions (lazy imports), and under
`if TYPE_CHECKING:`. The rules:

- no package but `agent` imports `agent`;
- each package imports only what its row of ARCHITECTURE.md's layout table allows
  (`swarm_vectordb`, `chain` and `prompts`: nothing of ours; `tools`: `chain` and
  `swarm_vectordb`; `trainer`: `chain` and `swarm_vectordb.bee`);
- the imports among the `agent.cli` modules form a DAG, and so do those among all
  `agent` modules.

The self-tests at the bottom plant a bad import and a cycle in a package built in
`tmp_path` and check that the same checker reports them.
"""

from __future__ import annotations

import ast
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
PACKAGES = ("agent", "tools", "swarm_vectordb", "chain", "trainer", "prompts")

# What each package may import of ours besides itself (module-name prefixes).
ALLOWED: dict[str, tuple[str, ...]] = {
    "swarm_vectordb": (),
    "chain": (),
    "prompts": (),
    "tools": ("chain", "swarm_vectordb"),
    "trainer": ("chain", "swarm_vectordb.bee"),
    "agent": ("tools", "swarm_vectordb", "chain", "trainer", "prompts"),
}


@dataclass(frozen=True)
class Import:
    """`importer` imports `target` at `path:line`."""

    importer: str
    target: str
    path: Path
    line: int

    def __str__(self) -> str:
        return f"{self.importer} imports {self.target} ({self.path.name}:{self.line})"


def _module_name(root: Path, path: Path) -> str:
    parts = list(path.relative_to(root).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def find_modules(root: Path, packages: Iterable[str]) -> dict[str, Path]:
    """Every module of `packages` under `root`, by dotted name."""
    found: dict[str, Path] = {}
    for package in packages:
        for path in sorted((root / package).rglob("*.py")):
            if "node_modules" in path.parts or "__pycache__" in path.parts:
                continue
            found[_module_name(root, path)] = path
    return found


def imports_of(name: str, path: Path, modules: Mapping[str, Path]) -> list[Import]:
    """Every import statement anywhere in the module, resolved to module names.

    `from X import Y` counts as importing `X.Y` when that is a module, else `X`;
    relative imports are resolved against the module's package.
    """
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: list[Import] = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found += [Import(name, alias.name, path, node.lineno) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            for alias in node.names:
                sub = f"{source}.{alias.name}"
                target = sub if sub in modules else source
                found.append(Import(name, target, path, node.lineno))
    return list(dict.fromkeys(found))  # `from x import a, b`: one edge per module and line


def all_imports(root: Path, packages: Iterable[str]) -> tuple[dict[str, Path], list[Import]]:
    modules = find_modules(root, packages)
    edges = [i for name, path in modules.items() for i in imports_of(name, path, modules)]
    return modules, edges


def _top(module: str) -> str:
    return module.split(".")[0]


def _under(module: str, prefix: str) -> bool:
    return module == prefix or module.startswith(prefix + ".")


def layering_violations(
    edges: Iterable[Import], allowed: Mapping[str, tuple[str, ...]]
) -> list[Import]:
    """Imports of one of our packages that the importer's row does not allow."""
    ours = set(allowed)
    bad = []
    for edge in edges:
        source, target = _top(edge.importer), _top(edge.target)
        if target not in ours or target == source:
            continue
        if not any(_under(edge.target, prefix) for prefix in allowed[source]):
            bad.append(edge)
    return bad


def cycles(edges: Iterable[Import], within: str) -> list[list[Import]]:
    """The import cycles among modules under `within`: for each strongly connected
    component of more than one module, the imports inside it."""
    graph: dict[str, list[Import]] = {}
    for edge in edges:
        if edge.importer == edge.target:  # `from pkg import name` inside pkg itself
            continue
        if _under(edge.importer, within) and _under(edge.target, within):
            graph.setdefault(edge.importer, []).append(edge)
            graph.setdefault(edge.target, [])
    # Tarjan's algorithm, iteratively (no recursion limit to worry about).
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    components: list[set[str]] = []
    for start in sorted(graph):
        if start in index:
            continue
        work: list[tuple[str, int]] = [(start, 0)]
        while work:
            node, i = work.pop()
            if i == 0:
                index[node] = low[node] = len(index)
                stack.append(node)
                on_stack.add(node)
            out = graph[node]
            if i < len(out):
                work.append((node, i + 1))
                nxt = out[i].target
                if nxt not in index:
                    work.append((nxt, 0))
                elif nxt in on_stack:
                    low[node] = min(low[node], index[nxt])
                continue
            if low[node] == index[node]:
                component = set()
                while True:
                    member = stack.pop()
                    on_stack.discard(member)
                    component.add(member)
                    if member == node:
                        break
                components.append(component)
            if work:
                parent = work[-1][0]
                low[parent] = min(low[parent], low[node])
    found = []
    for component in components:
        if len(component) > 1:
            found.append([e for m in sorted(component) for e in graph[m] if e.target in component])
    return found


def _describe(edges: Iterable[Import]) -> str:
    return "\n  ".join(str(e) for e in edges)


# ---------------------------------------------------------------- the project


@pytest.fixture(scope="module")
def project() -> tuple[dict[str, Path], list[Import]]:
    return all_imports(ROOT, PACKAGES)


def test_the_checker_sees_the_project(project: tuple[dict[str, Path], list[Import]]) -> None:
    modules, edges = project
    assert {"agent.cli", "agent.cli.common", "tools", "trainer.dataset"} <= set(modules)
    # lazy imports count: `with_client` imports the chain client inside the function
    assert any(e.importer == "agent.cli.common" and e.target == "chain.client" for e in edges)


def test_no_package_but_agent_imports_agent(
    project: tuple[dict[str, Path], list[Import]],
) -> None:
    _, edges = project
    bad = [e for e in edges if _top(e.target) == "agent" and _top(e.importer) != "agent"]
    assert not bad, "only `agent` may import `agent`:\n  " + _describe(bad)


def test_packages_import_only_what_architecture_allows(
    project: tuple[dict[str, Path], list[Import]],
) -> None:
    _, edges = project
    bad = layering_violations(edges, ALLOWED)
    assert not bad, "imports against ARCHITECTURE.md's layout table:\n  " + _describe(bad)


def test_cli_modules_form_a_dag(project: tuple[dict[str, Path], list[Import]]) -> None:
    _, edges = project
    found = cycles(edges, "agent.cli")
    assert not found, "import cycles among agent.cli modules:\n  " + "\n  ".join(
        _describe(c) for c in found
    )


def test_cli_command_modules_import_only_common(
    project: tuple[dict[str, Path], list[Import]],
) -> None:
    _, edges = project
    bad = [
        e
        for e in edges
        if _under(e.importer, "agent.cli")
        and e.importer not in ("agent.cli", "agent.cli.common")
        and _under(e.target, "agent.cli")
        and e.target != "agent.cli.common"
    ]
    assert not bad, "a CLI command module imports the CLI beyond common:\n  " + _describe(bad)


def test_agent_modules_form_a_dag(project: tuple[dict[str, Path], list[Import]]) -> None:
    _, edges = project
    found = cycles(edges, "agent")
    assert not found, "import cycles among agent modules:\n  " + "\n  ".join(
        _describe(c) for c in found
    )


# ---------------------------------------------------------------- the checker itself


def _plant(root: Path, files: dict[str, str]) -> None:
    for name, text in files.items():
        path = root / name
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text)


def test_checker_reports_a_planted_lazy_upward_import(tmp_path: Path) -> None:
    _plant(
        tmp_path,
        {
            "low/__init__.py": "",
            "low/a.py": "def f():\n    from high import b\n    return b\n",
            "high/__init__.py": "",
            "high/b.py": "import low.a\n",
        },
    )
    _, edges = all_imports(tmp_path, ["low", "high"])
    bad = layering_violations(edges, {"low": (), "high": ("low",)})
    assert [(e.importer, e.target, e.line) for e in bad] == [("low.a", "high.b", 2)]
    assert "low.a imports high.b (a.py:2)" in _describe(bad)


def test_checker_reports_a_type_checking_import_and_respects_prefixes(tmp_path: Path) -> None:
    _plant(
        tmp_path,
        {
            "base/__init__.py": "",
            "base/bee/__init__.py": "",
            "base/index.py": "",
            "user/__init__.py": "from base.bee import x\n",
            "user/m.py": (
                "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from base import index\n"
            ),
        },
    )
    _, edges = all_imports(tmp_path, ["base", "user"])
    bad = layering_violations(edges, {"base": (), "user": ("base.bee",)})
    assert [(e.importer, e.target) for e in bad] == [("user.m", "base.index")]


def test_checker_finds_a_planted_cycle_through_relative_and_lazy_imports(
    tmp_path: Path,
) -> None:
    _plant(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg import a\n",
            "pkg/a.py": "from . import b\n",
            "pkg/b.py": "from .c import thing\n",
            "pkg/c.py": "def thing():\n    from pkg.a import x\n",
            "pkg/d.py": "import pkg.c\n",
        },
    )
    _, edges = all_imports(tmp_path, ["pkg"])
    found = cycles(edges, "pkg")
    assert len(found) == 1
    assert sorted((e.importer, e.target) for e in found[0]) == [
        ("pkg.a", "pkg.b"),
        ("pkg.b", "pkg.c"),
        ("pkg.c", "pkg.a"),
    ]


def test_checker_passes_a_dag(tmp_path: Path) -> None:
    _plant(
        tmp_path,
        {
            "pkg/__init__.py": "from pkg import a, b\n",
            "pkg/a.py": "from pkg import common\n",
            "pkg/b.py": "import pkg.common\nfrom pkg.a import x\n",
            "pkg/common.py": "import os\n",
        },
    )
    _, edges = all_imports(tmp_path, ["pkg"])
    assert cycles(edges, "pkg") == []
