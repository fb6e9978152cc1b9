"""The first-party modules import each other one way only: no import circle, at module level or inside a function.

A circle means a helper lives in the wrong module; it also makes the import order matter (a module half-initialised
when the other side asks it for a name). Function-local imports count too: the code base imports lazily to keep
light commands off torch, and a lazy import still ties the two modules together.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent
PACKAGES = ("k3dn", "baselines")


def module_files() -> dict[str, Path]:
    """Dotted module name -> file, for every module of the first-party packages (a package is its ``__init__``)."""
    out = {}
    for pkg in PACKAGES:
        for path in sorted((ROOT / pkg).rglob("*.py")):
            parts = path.relative_to(ROOT).with_suffix("").parts
            if parts[-1] == "__init__":
                parts = parts[:-1]
            out[".".join(parts)] = path
    return out


def _known(name: str, modules) -> str | None:
    """``name`` or its longest prefix that is a first-party module (``k3dn.x.attr`` -> ``k3dn.x``)."""
    parts = name.split(".")
    if parts[0] not in PACKAGES:
        return None
    for n in range(len(parts), 0, -1):
        cand = ".".join(parts[:n])
        if cand in modules:
            return cand
    return None


def _package_of(module: str, path: Path) -> str:
    return module if path.name == "__init__.py" else module.rpartition(".")[0]


def _resolve_relative(name: str, level: int, package: str) -> str:
    base = package.split(".")
    if level > 1:
        base = base[: len(base) - (level - 1)]
    return ".".join([*base, name] if name else base)


def _literal_import(node: ast.Call) -> str | None:
    """The module of ``importlib.import_module("literal")`` (relative with a literal ``package``) or
    ``__import__("literal")``; None for any other call, and for a computed name, which cannot be followed here."""
    f = node.func
    name = f.attr if isinstance(f, ast.Attribute) else f.id if isinstance(f, ast.Name) else None
    if name not in ("import_module", "__import__") or not node.args:
        return None
    args = {**dict(enumerate(node.args)), **{k.arg: k.value for k in node.keywords}}
    target, package = args[0], args.get(1, args.get("package"))
    if not (isinstance(target, ast.Constant) and isinstance(target.value, str)):
        return None
    if not target.value.startswith("."):
        return target.value
    if name != "import_module" or not (isinstance(package, ast.Constant) and isinstance(package.value, str)):
        return None
    level = len(target.value) - len(target.value.lstrip("."))
    return _resolve_relative(target.value.lstrip("."), level, package.value)


def import_edges(module: str, path: Path, modules) -> list[tuple[str, int]]:
    """``(imported first-party module, line)`` for every import in ``path``, wherever it sits."""
    package = _package_of(module, path)
    edges = []
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), filename=str(path))):
        targets = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = _resolve_relative(node.module or "", node.level, package) if node.level else node.module
            for a in node.names:
                sub = f"{base}.{a.name}"
                # `from pkg import sub` imports the submodule; `from mod import name` imports mod
                targets.append(sub if a.name != "*" and sub in modules else base)
        elif isinstance(node, ast.Call):
            t = _literal_import(node)
            targets = [t] if t else []
        for t in targets:
            known = _known(t, modules)
            if known is not None and known != module:
                edges.append((known, node.lineno))
    return edges


def import_graph() -> tuple[dict[str, set[str]], dict[tuple[str, str], list[str]]]:
    """The module graph and, per edge, where its imports are (``file:line``)."""
    modules = module_files()
    graph: dict[str, set[str]] = {m: set() for m in modules}
    where: dict[tuple[str, str], list[str]] = {}
    for m, path in modules.items():
        for target, line in import_edges(m, path, modules):
            graph[m].add(target)
            where.setdefault((m, target), []).append(f"{path.relative_to(ROOT)}:{line}")
    return graph, where


def strongly_connected(graph: dict[str, set[str]]) -> list[list[str]]:
    """Tarjan's components of more than one module (iterative, so a long import chain cannot hit the recursion
    limit)."""
    index, low, on_stack, stack, out = {}, {}, set(), [], []
    counter = 0
    for root in sorted(graph):
        if root in index:
            continue
        work = [(root, iter(sorted(graph[root])))]
        index[root] = low[root] = counter
        counter += 1
        stack.append(root)
        on_stack.add(root)
        while work:
            v, it = work[-1]
            w = next(it, None)
            if w is not None:
                if w not in index:
                    index[w] = low[w] = counter
                    counter += 1
                    stack.append(w)
                    on_stack.add(w)
                    work.append((w, iter(sorted(graph[w]))))
                elif w in on_stack:
                    low[v] = min(low[v], index[w])
                continue
            work.pop()
            if work:
                low[work[-1][0]] = min(low[work[-1][0]], low[v])
            if low[v] == index[v]:
                comp = []
                while True:
                    w = stack.pop()
                    on_stack.discard(w)
                    comp.append(w)
                    if w == v:
                        break
                if len(comp) > 1:
                    out.append(sorted(comp))
    return sorted(out)


def shortest_cycle(graph: dict[str, set[str]], start: str, members: set[str]) -> list[str]:
    """The shortest import chain from ``start`` back to itself, inside one component."""
    prev, frontier = {start: None}, [start]
    while frontier:
        nxt = []
        for v in frontier:
            for w in sorted(graph[v] & members):
                if w == start:
                    chain = [v]
                    while prev[chain[-1]] is not None:
                        chain.append(prev[chain[-1]])
                    return [*reversed(chain), start]
                if w not in prev:
                    prev[w] = v
                    nxt.append(w)
        frontier = nxt
    raise AssertionError(f"{start} is in a component but on no cycle")


def find_cycles(graph: dict[str, set[str]]) -> list[list[str]]:
    """Per component, the shortest cycle through each module that no cycle listed before passes through."""
    cycles = []
    for comp in strongly_connected(graph):
        covered: set[str] = set()
        for m in comp:
            if m not in covered:
                c = shortest_cycle(graph, m, set(comp))
                covered.update(c)
                cycles.append(c)
    return cycles


def describe(cycle: list[str], where) -> str:
    steps = "\n".join(f"    {a} -> {b}  ({', '.join(dict.fromkeys(where[a, b]))})" for a, b in zip(cycle, cycle[1:]))
    return " -> ".join(cycle) + "\n" + steps


def test_graph_sees_lazy_and_relative_imports(tmp_path):
    """The parser itself: a function-local, a relative and a literal ``importlib`` import are all edges; a computed
    name is not followed."""
    pkg = tmp_path / "k3dn"
    (pkg / "sub").mkdir(parents=True)
    files = {
        "k3dn/__init__.py": "",
        "k3dn/a.py": "def f():\n    from k3dn.sub import b\n",
        "k3dn/sub/__init__.py": "from . import b\n",
        "k3dn/sub/b.py": (
            "from ..a import f\nimport importlib\nimportlib.import_module('.c', package='k3dn.sub')\n"
            "def g(name):\n    return importlib.import_module(name)\n"
        ),
        "k3dn/sub/c.py": "from .b import x\n",
    }
    for rel, text in files.items():
        (tmp_path / rel).write_text(text)
    mods = {
        "k3dn": pkg / "__init__.py",
        "k3dn.a": pkg / "a.py",
        "k3dn.sub": pkg / "sub" / "__init__.py",
        "k3dn.sub.b": pkg / "sub" / "b.py",
        "k3dn.sub.c": pkg / "sub" / "c.py",
    }
    graph = {m: {t for t, _ in import_edges(m, p, mods)} for m, p in mods.items()}
    assert graph == {
        "k3dn": set(),
        "k3dn.a": {"k3dn.sub.b"},
        "k3dn.sub": {"k3dn.sub.b"},
        "k3dn.sub.b": {"k3dn.a", "k3dn.sub.c"},
        "k3dn.sub.c": {"k3dn.sub.b"},
    }
    assert find_cycles(graph) == [["k3dn.a", "k3dn.sub.b", "k3dn.a"], ["k3dn.sub.c", "k3dn.sub.b", "k3dn.sub.c"]]


def test_first_party_imports_have_no_cycle():
    graph, where = import_graph()
    assert len(graph) > 50, "the module scan found too few modules"
    cycles = find_cycles(graph)
    if cycles:
        pytest.fail(f"{len(cycles)} import cycle(s):\n" + "\n".join(describe(c, where) for c in cycles), pytrace=False)
