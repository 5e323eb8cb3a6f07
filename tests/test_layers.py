"""The import layers of docs/architecture.md, checked on the source: no module imports a higher layer, and the
import graph has no cycle. Every import counts: module level, inside functions, under TYPE_CHECKING."""

from __future__ import annotations

import ast
import graphlib
from pathlib import Path

import pytest

SRC = Path(__file__).resolve().parents[1] / "src"

# Lowest first. A module may import its own layer and the layers below it; a module belongs to the layer of its
# longest listed prefix, and a module no layer lists fails the test (a new module gets a place on purpose).
LAYERS: tuple[tuple[str, tuple[str, ...]], ...] = (
    (
        "core",
        (
            "toedit._version",
            "toedit.options",
            "toedit.optional",
            "toedit.config",
            "toedit.rng",
            "toedit.probs",
            "toedit.divergence",
            "toedit.rule",
            "toedit.io",
            "toedit.prior",
            "toedit.compiling",
            "toedit.lmhead",
            "toedit.scoring",
            "toedit.editing",
            "toedit.calibrate",
            "toedit.pipeline",
            "toedit.agreement",
            "toedit.corpora",
            "toedit.verdicts",
        ),
    ),
    ("runs", ("toedit.runs",)),
    (
        "capabilities",
        ("toedit.audit", "toedit.sweep", "toedit.analysis", "toedit.integrations", "toedit.theory"),
    ),
    ("experiments", ("toedit.experiments",)),
    ("interface", ("toedit.cli", "toedit")),  # "toedit": the package root, the public API
)

# Known violations that are being fixed now (each in its own issue); the lead empties this list at merge. An
# entry that no longer occurs fails the test, so the list cannot go stale.
ALLOWED: dict[tuple[str, str], str] = {}


def module_names(src: Path) -> dict[str, Path]:
    """{dotted module name: file} of every module under `src` (packages by their __init__)."""
    out = {}
    for path in sorted(src.rglob("*.py")):
        parts = list(path.relative_to(src).with_suffix("").parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        out[".".join(parts)] = path
    return out


def imports_of(name: str, path: Path, known: set[str]) -> set[str]:
    """The modules of `known` that module `name` imports anywhere in its file (relative imports resolved;
    `from pkg import sub` counts as importing `pkg.sub` when that is a module, else `pkg`)."""
    package = name if path.name == "__init__.py" else name.rpartition(".")[0]
    found: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"), str(path))):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")[: len(package.split(".")) - node.level + 1]
                base_name = ".".join(base + ([node.module] if node.module else []))
            else:
                base_name = node.module or ""
            for alias in node.names:
                sub = f"{base_name}.{alias.name}"
                found.add(sub if sub in known else base_name)
    return (found & known) - {name}


def import_graph(src: Path) -> dict[str, set[str]]:
    names = module_names(src)
    known = set(names)
    return {name: imports_of(name, path, known) for name, path in names.items()}


def layer_of(module: str) -> int:
    best, rank = -1, -1
    for i, (_, prefixes) in enumerate(LAYERS):
        for prefix in prefixes:
            if (module == prefix or module.startswith(prefix + ".")) and len(prefix) > best:
                best, rank = len(prefix), i
    if rank < 0:
        raise LookupError(f"{module} is in no layer: add it to LAYERS (and docs/architecture.md)")
    return rank


def upward_imports(graph: dict[str, set[str]]) -> list[tuple[str, str]]:
    return sorted((a, b) for a, deps in graph.items() for b in deps if layer_of(b) > layer_of(a))


def find_cycle(graph: dict[str, set[str]]) -> list[str] | None:
    try:
        graphlib.TopologicalSorter(graph).prepare()
    except graphlib.CycleError as exc:
        return list(exc.args[1])
    return None


def without_allowed(graph: dict[str, set[str]]) -> dict[str, set[str]]:
    return {a: {b for b in deps if (a, b) not in ALLOWED} for a, deps in graph.items()}


@pytest.fixture(scope="module")
def graph() -> dict[str, set[str]]:
    return import_graph(SRC)


def test_every_module_has_a_layer(graph):
    for module in graph:
        layer_of(module)


def test_no_module_imports_a_higher_layer(graph):
    bad = [
        f"{a} ({LAYERS[layer_of(a)][0]}) imports {b} ({LAYERS[layer_of(b)][0]})"
        for a, b in upward_imports(without_allowed(graph))
    ]
    assert not bad, "imports against the layers of docs/architecture.md:\n" + "\n".join(bad)


def test_the_import_graph_has_no_cycle(graph):
    cycle = find_cycle(without_allowed(graph))
    assert cycle is None, "import cycle: " + " -> ".join(cycle or [])


def test_allowed_violations_still_exist(graph):
    stale = [edge for edge in ALLOWED if edge[1] not in graph.get(edge[0], set())]
    assert not stale, f"these ALLOWED entries are fixed: remove them from tests/test_layers.py: {stale}"


def test_the_checker_sees_function_level_relative_and_type_only_imports(tmp_path):
    pkg = tmp_path / "toedit"
    (pkg / "runs").mkdir(parents=True)
    (pkg / "__init__.py").write_text("from .rule import x as x\n")
    (pkg / "rule.py").write_text("def f():\n    from .runs import run\n")  # core -> runs, in a function
    (pkg / "runs" / "__init__.py").write_text("")
    (pkg / "runs" / "run.py").write_text(
        "from typing import TYPE_CHECKING\nif TYPE_CHECKING:\n    from ..cli import main\nfrom . import shard\n"
    )
    (pkg / "runs" / "shard.py").write_text("import toedit.rule\n")
    (pkg / "cli.py").write_text("import json\n")
    g = import_graph(tmp_path)
    assert g["toedit.rule"] == {"toedit.runs.run"}
    assert g["toedit.runs.run"] == {"toedit.cli", "toedit.runs.shard"}
    assert g["toedit.runs.shard"] == {"toedit.rule"}
    assert upward_imports(g) == [("toedit.rule", "toedit.runs.run"), ("toedit.runs.run", "toedit.cli")]
    cycle = find_cycle(g)
    assert cycle is not None and set(cycle) == {"toedit.rule", "toedit.runs.run", "toedit.runs.shard"}
    with pytest.raises(LookupError, match="no layer"):
        layer_of("elsewhere.module")
