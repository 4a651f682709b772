"""The package's structure: layers imported only downwards, no cycles, no giant modules.

Decision 0006 sets the layers. This reads every import in ``src/`` (at module
level, inside functions and under ``TYPE_CHECKING`` alike) with :mod:`ast`.
"""

from __future__ import annotations

import ast
from pathlib import Path

PKG = Path(__file__).resolve().parents[1] / "src" / "disclosure_ledger"
# A module may import a module of a strictly lower layer, or of its own layer
# package (without cycles). Layers 4 are siblings: neither imports the other.
LAYERS: dict[str, float] = {
    "errors": 0,
    "_fsutil": 0,
    "_netutil": 0,
    "_core": 1,
    "keys": 1.5,
    "_store": 2,
    "_log": 3,
    "_verify": 4,
    "_witness": 4,
    "_cli": 5,
    "__main__": 6,
    "__init__": 6,
}
MAX_MODULE_LINES = 800
MAX_CLASS_LINES = 400
# Still over the limits, each capped at its size today so it can only shrink
# (none now). Remove an entry when it fits.
OVERSIZE: dict[str, int] = {}


def _modules() -> dict[str, Path]:
    out = {}
    for path in sorted(PKG.rglob("*.py")):
        parts = path.relative_to(PKG).with_suffix("").parts
        if parts[-1] == "__init__" and len(parts) > 1:
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def _type_only(tree: ast.AST) -> set[ast.AST]:
    """The import nodes under ``if TYPE_CHECKING:``: they run only for the type checker."""
    out: set[ast.AST] = set()
    for node in ast.walk(tree):
        test = node.test if isinstance(node, ast.If) else None
        if isinstance(test, ast.Name) and test.id == "TYPE_CHECKING":
            for stmt in node.body:  # type: ignore[attr-defined]  # an ast.If, checked above
                out.update(ast.walk(stmt))
    return out


def _imports(name: str, path: Path, known: set[str], *, runtime_only: bool = False) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"))
    is_package = path.name == "__init__.py"
    base = name.split(".") if is_package else name.split(".")[:-1]
    found: set[str] = set()
    skip = _type_only(tree) if runtime_only else set()
    for node in ast.walk(tree):
        if node in skip:
            continue
        targets: list[str] = []
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                anchor = base[: len(base) - node.level + 1] if node.level > 1 else base
                mod = ".".join([*anchor, node.module] if node.module else anchor)
            else:
                mod = node.module or ""
            targets = [mod] + [f"{mod}.{a.name}" for a in node.names]
        for target in targets:
            t = target.removeprefix("disclosure_ledger.").removeprefix("disclosure_ledger")
            if t in known and t != name:
                found.add(t)
    return found


def _layer(module: str) -> float:
    top = module.split(".", maxsplit=1)[0] if module else "__init__"
    return LAYERS[top]


def _graph(*, runtime_only: bool = False) -> dict[str, set[str]]:
    mods = _modules()
    known = set(mods)
    return {
        name: _imports(name, path, known, runtime_only=runtime_only) for name, path in mods.items()
    }


def test_every_module_has_a_layer() -> None:
    for name in _modules():
        assert name.split(".")[0] in LAYERS, f"{name} belongs to no layer (decision 0006)"


def _upward(graph: dict[str, set[str]]) -> list[str]:
    """Imports of a layer at or above the importer's, outside its own layer package."""
    bad = []
    for src, targets in graph.items():
        for dst in targets:
            same_package = src.split(".")[0] == dst.split(".")[0]
            if not same_package and _layer(dst) >= _layer(src):
                bad.append(f"{src} -> {dst}")
    return bad


def _cycle(graph: dict[str, set[str]]) -> list[str] | None:
    """One import cycle in ``graph``, or None."""
    state: dict[str, int] = {}
    stack: list[str] = []

    def visit(node: str) -> list[str] | None:
        state[node] = 1
        stack.append(node)
        for nxt in sorted(graph.get(node, ())):
            if nxt.startswith(node + "."):
                continue  # a package importing its own modules
            if state.get(nxt) == 1:
                return [*stack[stack.index(nxt) :], nxt]
            if state.get(nxt) is None and (found := visit(nxt)) is not None:
                return found
        stack.pop()
        state[node] = 2
        return None

    for node in sorted(graph):
        if state.get(node) is None and (found := visit(node)) is not None:
            return found
    return None


def test_imports_only_go_down() -> None:
    bad = _upward(_graph())
    assert not bad, "imports of a layer at or above the importer's: " + ", ".join(bad)


def test_no_import_cycles() -> None:
    # Type-only imports (under TYPE_CHECKING) may point back within a layer: a
    # module that takes a Ledger to check names its type, and runs nothing of it.
    cycle = _cycle(_graph(runtime_only=True))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_no_giant_modules_or_classes() -> None:
    too_big = []
    for name, path in _modules().items():
        text = path.read_text(encoding="utf-8")
        lines = text.count("\n")
        what = f"module {name}"
        if lines > OVERSIZE.get(what, MAX_MODULE_LINES):
            too_big.append(f"{what}: {lines} lines")
        for node in ast.walk(ast.parse(text)):
            if isinstance(node, ast.ClassDef) and node.end_lineno is not None:
                size = node.end_lineno - node.lineno + 1
                what = f"class {name}.{node.name}"
                if size > OVERSIZE.get(what, MAX_CLASS_LINES):
                    too_big.append(f"{what}: {size} lines")
    assert not too_big, ", ".join(too_big)


def test_the_checker_sees_a_planted_cycle_and_an_upward_import(tmp_path: Path) -> None:
    # The checks above must be able to fail: run the graph code on a made-up package.
    pkg = tmp_path / "p"
    (pkg / "_core").mkdir(parents=True)
    (pkg / "_core" / "__init__.py").write_text("")
    (pkg / "_core" / "a.py").write_text("from disclosure_ledger._core import b\n")
    (pkg / "_core" / "b.py").write_text("from disclosure_ledger._log.x import y\n")
    (pkg / "_log").mkdir()
    (pkg / "_log" / "__init__.py").write_text("")
    (pkg / "_log" / "x.py").write_text("from disclosure_ledger._core.a import z\n")
    mods = {
        "_core": pkg / "_core" / "__init__.py",
        "_core.a": pkg / "_core" / "a.py",
        "_core.b": pkg / "_core" / "b.py",
        "_log": pkg / "_log" / "__init__.py",
        "_log.x": pkg / "_log" / "x.py",
    }
    graph = {n: _imports(n, p, set(mods)) for n, p in mods.items()}
    assert graph["_core.a"] == {"_core.b", "_core"}
    assert _upward(graph) == ["_core.b -> _log.x"]
    assert _cycle(graph) == ["_core.a", "_core.b", "_log.x", "_core.a"]
    # A type-only import back is no cycle, but still an upward import.
    (pkg / "_core" / "b.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n"
        "    from disclosure_ledger._log.x import y\n"
    )
    runtime = {n: _imports(n, p, set(mods), runtime_only=True) for n, p in mods.items()}
    assert _cycle(runtime) is None
    typed = {n: _imports(n, p, set(mods)) for n, p in mods.items()}
    assert _upward(typed) == ["_core.b -> _log.x"]


def test_the_public_surface_is_whole_and_the_guides_use_only_it() -> None:
    import disclosure_ledger

    for name in disclosure_ledger.__all__:
        assert hasattr(disclosure_ledger, name), name
    root = PKG.parents[1]
    for guide in ("README.md", "docs/owners.md", "docs/writers.md", "docs/witnesses.md"):
        text = (root / guide).read_text(encoding="utf-8")
        assert "disclosure_ledger._" not in text, f"{guide} imports a private module"
