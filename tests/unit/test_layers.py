"""The import graph of ftx/ and hydra_plugins/, read with `ast` (no module is imported): layers import only
downward, there is no import cycle, ftx-internal imports sit at module level (a short, shrinking
allow-list says where not and why), and the CLI starts without torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from tests.helpers import ROOT, ftx_env

PACKAGES = ("ftx", "hydra_plugins")

# Module name prefix → layer; the longest matching prefix wins. A module may import its own layer or lower.
LAYERS = {
    "ftx": 0, "ftx.errors": 0, "ftx.runs": 0, "ftx.secrets": 0, "ftx.precision": 0,
    "ftx.spec": 1,
    "ftx.data": 2, "ftx.engine": 2, "ftx.eval": 2, "ftx.track": 2,
    "hydra_plugins.ftx_searchpath": 0,  # imports nothing of ftx: it reads $FTX_CONF_LAYER only
    "ftx.pipeline": 3, "hydra_plugins.ftx_sweeper": 3,
    "ftx.record": 4,
    "ftx.cli": 5, "ftx.__main__": 5,
}

# Libraries that are slow to import: these may be (and usually should be) imported inside functions.
HEAVY = {"torch", "transformers", "peft", "deepspeed", "bitsandbytes", "accelerate", "wandb", "datasets",
         "sentence_transformers", "optuna", "gguf", "matplotlib", "plotly", "numpy", "scipy", "datasketch",
         "safetensors", "hydra", "omegaconf"}

# ftx-internal imports inside functions, (importer, imported) → why it cannot sit at module level.
# This list must only shrink: when an entry's reason goes away, move the import up and delete the entry
# (the test fails on entries that no longer match an import, so they cannot linger).
LAZY_ALLOWED = {
    ("ftx.cli.curate", "ftx.cli.label"): "pulls omegaconf (via ftx.data.sources) into CLI startup",
    ("ftx.cli.curate", "ftx.data.curate.pipeline"): "pulls datasets/numpy/omegaconf into CLI startup",
    ("ftx.cli.curate", "ftx.data.sources"): "pulls omegaconf into CLI startup",
    ("ftx.cli.curate", "ftx.spec.run"): "pulls omegaconf into CLI startup",
    ("ftx.cli.curate", "ftx.spec.tree"): "pulls omegaconf into CLI startup",
    ("ftx.cli.spec", "ftx.data.build"): "pulls datasets/numpy into CLI startup",
    ("ftx.cli.train", "ftx.pipeline"): "pulls datasets/numpy into CLI startup",
    ("ftx.engine.build", "ftx.engine.mixout"): "ftx.engine.mixout imports torch at module level",
    ("ftx.eval.generate", "ftx.data.format"): "pulls omegaconf into ftx.eval.generate's import",
    ("ftx.eval.generate", "ftx.data.sources"): "pulls omegaconf into ftx.eval.generate's import",
    ("ftx.eval.suite", "ftx.data.format"): "pulls omegaconf into ftx.eval.suite's import",
    ("ftx.record.rundir", "ftx.spec.run"): "pulls omegaconf into ftx.record.rundir's import (CLI: report, compare)",
    ("ftx.record.rundir", "ftx.spec.tree"): "pulls omegaconf into ftx.record.rundir's import (CLI: report, compare)",
    ("ftx.record.rerun", "ftx.data.build"): "pulls datasets/numpy/omegaconf into CLI startup (ftx eval)",
    ("ftx.record.rerun", "ftx.data.format"): "pulls omegaconf into CLI startup (ftx eval)",
    ("ftx.record.review", "ftx.data.curate.agreement"): "pulls datasets into CLI startup (ftx review export/--help)",
    ("ftx.track.tracker", "ftx.spec.run"): "pulls omegaconf into ftx.track.tracker's import",
    ("hydra_plugins.ftx_sweeper._space", "ftx.spec.run"): "pulls omegaconf into the sweep-space helpers",
}


@dataclass(frozen=True)
class Edge:
    src: str
    dst: str
    line: int
    in_function: bool

    def __str__(self) -> str:
        return f"{self.src} imports {self.dst} (line {self.line}{', in a function' if self.in_function else ''})"


def modules(root: Path = ROOT) -> dict[str, tuple[Path, bool]]:
    """Dotted name → (file, is a package __init__) for every module under PACKAGES."""
    out = {}
    for pkg in PACKAGES:
        for path in sorted((root / pkg).rglob("*.py")):
            parts = list(path.relative_to(root).with_suffix("").parts)
            is_pkg = parts[-1] == "__init__"
            out[".".join(parts[:-1] if is_pkg else parts)] = (path, is_pkg)
    return out


def _absolute(module: str | None, importer: str, level: int, is_pkg: bool) -> str:
    if level == 0:
        return module or ""
    base = importer.split(".") if is_pkg else importer.split(".")[:-1]
    base = base[: len(base) - (level - 1)]
    return ".".join(base + ([module] if module else []))


def _known(name: str, mods: dict) -> str:
    """The longest prefix of `name` that is one of our modules (ftx.runs.write_json → ftx.runs)."""
    while name not in mods and "." in name:
        name = name.rsplit(".", 1)[0]
    return name


def import_graph(root: Path = ROOT) -> tuple[list[Edge], dict[str, set[str]]]:
    """Internal import edges (every depth, relative imports resolved; `from ftx.engine import lora` is an edge
    to ftx.engine.lora) and, per module, the external top-level packages it imports at module level."""
    mods = modules(root)
    edges: list[Edge] = []
    external: dict[str, set[str]] = {m: set() for m in mods}
    for name, (path, is_pkg) in mods.items():
        def visit(node: ast.AST, in_function: bool) -> None:
            for child in ast.iter_child_nodes(node):
                if isinstance(child, ast.Import):
                    targets = [a.name for a in child.names]
                elif isinstance(child, ast.ImportFrom):
                    base = _absolute(child.module, name, child.level, is_pkg)
                    targets = [f"{base}.{a.name}" if f"{base}.{a.name}" in mods else base for a in child.names]
                else:
                    visit(child, in_function or isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef,
                                                                     ast.Lambda)))
                    continue
                for t in targets:
                    if t.split(".")[0] in PACKAGES:
                        dst = _known(t, mods)
                        if dst != name:
                            edges.append(Edge(name, dst, child.lineno, in_function))
                    elif not in_function:
                        external[name].add(t.split(".")[0])

        visit(ast.parse(path.read_text(encoding="utf-8"), str(path)), False)
    return edges, external


def layer(module: str) -> int | None:
    best = max((p for p in LAYERS if module == p or module.startswith(p + ".")), key=len, default=None)
    return None if best is None else LAYERS[best]


def find_cycle(edges: list[Edge]) -> list[str] | None:
    """One import cycle among the edges, as [a, b, …, a], or None."""
    graph: dict[str, set[str]] = {}
    for e in edges:
        graph.setdefault(e.src, set()).add(e.dst)
    state: dict[str, int] = {}  # 1 = on the current path, 2 = done
    path: list[str] = []

    def dfs(node: str) -> list[str] | None:
        state[node] = 1
        path.append(node)
        for nxt in sorted(graph.get(node, ())):
            if state.get(nxt) == 1:
                return path[path.index(nxt):] + [nxt]
            if nxt not in state and (found := dfs(nxt)):
                return found
        path.pop()
        state[node] = 2
        return None

    for start in sorted(graph):
        if start not in state and (found := dfs(start)):
            return found
    return None


def layer_violations(edges: list[Edge]) -> list[str]:
    return sorted({f"{e.src} (layer {layer(e.src)}) imports {e.dst} (layer {layer(e.dst)})"
                   for e in edges if layer(e.dst) > layer(e.src)})


def lazy_imports(edges: list[Edge]) -> set[tuple[str, str]]:
    return {(e.src, e.dst) for e in edges if e.in_function}


@pytest.fixture(scope="module")
def graph():
    return import_graph()


def test_the_parser_sees_the_code_base(graph):
    edges, external = graph
    pairs = {(e.src, e.dst) for e in edges}
    assert len(modules()) > 50 and len(pairs) > 100
    assert ("ftx.spec.run", "ftx.spec.cpt") in pairs  # a plain module-level `from ftx.spec.cpt import …`
    assert "torch" in external["ftx.engine.mixout"]


def test_every_module_has_a_layer():
    assert [m for m in modules() if layer(m) is None] == [], "add these modules to LAYERS"


def test_no_import_cycle(graph):
    edges, _ = graph
    cycle = find_cycle(edges)
    assert cycle is None, "import cycle: " + " -> ".join(cycle)


def test_layers_import_only_downward(graph):
    edges, _ = graph
    bad = layer_violations(edges)
    assert bad == [], "imports against the layering:\n" + "\n".join(bad)


def test_internal_imports_sit_at_module_level(graph):
    edges, _ = graph
    lazy = lazy_imports(edges)
    unexplained = sorted(lazy - LAZY_ALLOWED.keys())
    assert unexplained == [], (
        "ftx-internal imports inside functions (move them to module level, or add them to LAZY_ALLOWED "
        f"with the reason): {unexplained}")
    stale = sorted(LAZY_ALLOWED.keys() - lazy)
    assert stale == [], f"LAZY_ALLOWED entries that no longer match a function-level import (delete them): {stale}"


def test_allowed_lazy_imports_still_avoid_a_heavy_import(graph):
    """Each allow-list entry is justified: the imported module pulls in, at import time, a heavy library
    the importer itself does not (or it would close a cycle)."""
    edges, external = graph
    eager: dict[str, set[str]] = {}
    for e in edges:
        if not e.in_function:
            eager.setdefault(e.src, set()).add(e.dst)

    def heavy(m: str) -> set[str]:
        seen, todo = {m}, [m]
        while todo:
            for n in eager.get(todo.pop(), ()):
                if n not in seen:
                    seen.add(n)
                    todo.append(n)
        return set().union(*(external[n] for n in seen)) & HEAVY

    unjustified = [pair for pair in LAZY_ALLOWED
                   if not heavy(pair[1]) - heavy(pair[0]) and find_cycle(edges + [Edge(*pair, 0, False)]) is None]
    assert unjustified == [], f"these could be module-level imports now (move them, shrink LAZY_ALLOWED): {unjustified}"


def test_the_checks_catch_a_bad_import(tmp_path):
    """The checks on a crafted tree: an upward import, a cycle and a lazy internal import are all reported."""
    for rel, text in {
        "ftx/__init__.py": "",
        "ftx/runs.py": "from ftx.cli import main\n",                       # layer 0 → layer 5
        "ftx/cli/__init__.py": "",
        "ftx/cli/main.py": "from .. import runs\n",                          # relative, closes the cycle
        "ftx/engine/__init__.py": "",
        "ftx/engine/lora.py": "def f():\n    from ftx.engine import model\n",  # lazy, `from pkg import mod`
        "ftx/engine/model.py": "import torch\n",
        "hydra_plugins/ftx_sweeper/__init__.py": "",
    }.items():
        (tmp_path / rel).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / rel).write_text(text)
    edges, external = import_graph(tmp_path)
    assert layer_violations(edges) == ["ftx.runs (layer 0) imports ftx.cli.main (layer 5)"]
    assert find_cycle(edges) in (["ftx.cli.main", "ftx.runs", "ftx.cli.main"], ["ftx.runs", "ftx.cli.main", "ftx.runs"])
    assert lazy_imports(edges) == {("ftx.engine.lora", "ftx.engine.model")}
    assert external["ftx.engine.model"] == {"torch"}


@pytest.mark.parametrize("code", [
    "import ftx.cli.main, sys; print('torch' in sys.modules)",
    "import sys, runpy; sys.argv = ['ftx', '--help']\n"
    "try:\n    runpy.run_module('ftx', run_name='__main__')\nexcept SystemExit:\n    pass\n"
    "print('torch' in sys.modules)",
], ids=["import ftx.cli.main", "python -m ftx --help"])
def test_cli_starts_without_torch(code):
    r = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120,
                       env=ftx_env())
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip().splitlines()[-1] == "False", "torch was imported at CLI startup"
