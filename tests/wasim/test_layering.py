"""wasim's import structure, read from the source (no imports run): the server's parts form no
cycle, type-only imports included; the protocol and Signal code never reach into the server;
wasim never imports the product."""

from __future__ import annotations

import ast
from pathlib import Path

SRC = Path(__file__).resolve().parents[2] / "src"


def _module_name(path: Path) -> str:
    parts = list(path.relative_to(SRC).with_suffix("").parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def _modules(package: str) -> dict[str, Path]:
    root = SRC / package.replace(".", "/")
    return {_module_name(p): p for p in root.rglob("*.py")}


def _imports(name: str, path: Path, known: set[str]) -> set[str]:
    """Every module `path` imports, at any depth (under TYPE_CHECKING and in functions too).
    `from pkg import sub` counts as importing `pkg.sub` when that is a module."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.split(".")[: len(package.split(".")) - node.level + 1]
                base = ".".join([*anchor, base] if base else anchor)
            for alias in node.names:
                sub = f"{base}.{alias.name}"
                found.add(sub if sub in known else base)
    return found


def _graph(package: str) -> dict[str, set[str]]:
    modules = _modules(package)
    known = set(modules)
    return {name: _imports(name, path, known) & known for name, path in modules.items()}


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle in `graph` (as a path that ends where it starts), or None."""
    done: set[str] = set()
    stack: list[str] = []
    on_stack: set[str] = set()

    def visit(name: str) -> list[str] | None:
        stack.append(name)
        on_stack.add(name)
        for dep in sorted(graph[name]):
            if dep in on_stack:
                return [*stack[stack.index(dep) :], dep]
            if dep not in done:
                found = visit(dep)
                if found:
                    return found
        stack.pop()
        on_stack.discard(name)
        done.add(name)
        return None

    for name in sorted(graph):
        if name not in done:
            found = visit(name)
            if found:
                return found
    return None


def test_the_cycle_finder_finds_a_cycle_and_accepts_a_tree() -> None:
    assert _cycle({"a": {"b"}, "b": {"c"}, "c": {"a"}}) == ["a", "b", "c", "a"]
    assert _cycle({"a": {"b", "c"}, "b": {"c"}, "c": set()}) is None


def test_the_server_parts_import_each_other_without_a_cycle() -> None:
    graph = _graph("wasim.server")
    assert len(graph) > 10, "the server's modules were found"
    cycle = _cycle(graph)
    assert cycle is None, "import cycle in wasim.server: " + " -> ".join(cycle or [])


def test_no_part_of_the_server_imports_the_composition_root() -> None:
    graph = _graph("wasim.server")
    importers = sorted(name for name, deps in graph.items() if "wasim.server.app" in deps)
    assert importers == ["wasim.server"], "only the package re-exports Wasim"


def test_protocol_and_signal_never_import_the_server() -> None:
    known = set(_modules("wasim"))
    for package in ("wasim.protocol", "wasim.signal"):
        for name, path in _modules(package).items():
            server = sorted(m for m in _imports(name, path, known) if m.split(".")[:2] == ["wasim", "server"])
            assert not server, f"{name} imports {server}"


def test_wasim_never_imports_the_product() -> None:
    for name, path in _modules("wasim").items():
        product = sorted(m for m in _imports(name, path, set()) if m.split(".")[0] == "cortask")
        assert not product, f"{name} imports {product}"
