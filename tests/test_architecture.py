"""The module map in the README is the import graph: imports point down, never up, with no cycles,
the Ray-free modules stay Ray-free, and no module grows past about 400 lines without saying why."""

from __future__ import annotations

import ast
import re
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
PACKAGE = REPO / "sessrec"

# Layers, lowest first: a module may import its own layer's modules and any below, never above.
# The README's Design section shows the same map.
LAYERS: list[tuple[str, ...]] = [
    ("errors", "memory", "core", "specs", "sweep"),  # pure; `specs` holds YAML data, `sweep` a docstring
    ("storage", "yaml_text"),  # bytes in one root, local or S3; one YAML reader
    ("layout", "outputs", "settings", "spec", "domains", "recommender_space"),  # paths; settings; the one spec schema
    ("formats",),  # each stored record's bytes
    ("pipeline", "recommenders_store"),  # the commands' work: core + storage
    (
        "sweep.records",
        "sweep.trials",
        "sweep.checkpoints",
        "sweep.estimate",
        "sweep.request",
        "sweep.scoring",
        "sweep.best_scoring",
    ),  # no Ray
    (
        "sweep.ray_start",
        "sweep.cluster",
        "sweep.search",
        "sweep.progress",
        "sweep.budget",
        "sweep.trial",
        "sweep.driver",
    ),  # Ray Tune
    # The edges; `report` is a package (readings, pairs, parameters, curves, page), one unit.
    ("report", "results", "promotion", "jobs_client", "k8s", "serving", "tracking"),
    ("cli", "__main__"),  # thin Typer app
]
# Imported by a sweep's records and readers, which must load without Ray.
RAY_FREE = (
    "sweep.records",
    "sweep.trials",
    "sweep.checkpoints",
    "sweep.estimate",
    "sweep.request",
    "sweep.scoring",
    "sweep.best_scoring",
    "results",
    "promotion",
    "report",
    "jobs_client",
    "serving",
    "cli",
)
MAX_LINES = 400
# A module over MAX_LINES says why in its docstring with a sentence containing this phrase.
LONG_REASON = re.compile(r"\b400 lines\b", re.IGNORECASE)


def _modules() -> dict[str, Path]:
    found = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE).with_suffix("").parts
        if parts[-1] == "__init__":
            parts = parts[:-1]
        found[".".join(parts)] = path
    return found


MODULES = _modules()


def _unit(module: str) -> str:
    """The layer entry a module belongs to: the longest that names it or a package above it."""
    units = [unit for layer in LAYERS for unit in layer if module == unit or module.startswith(unit + ".")]
    if not units:
        raise AssertionError(f"sessrec.{module} is in no layer of tests/test_architecture.py (and the README's map)")
    return max(units, key=len)


def _layer(module: str) -> int:
    unit = _unit(module)
    return next(index for index, layer in enumerate(LAYERS) if unit in layer)


def _imports(module: str) -> set[str]:
    """The sessrec modules that ``module`` imports (at any depth of its code), relative names."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    found: set[str] = set()
    for node in ast.walk(tree):
        names: list[str] = []
        if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("sessrec"):
            base = node.module.removeprefix("sessrec").lstrip(".")
            names = [f"{base}.{alias.name}".lstrip(".") for alias in node.names] + ([base] if base else [])
        elif isinstance(node, ast.Import):
            names = [
                alias.name.removeprefix("sessrec").lstrip(".")
                for alias in node.names
                if alias.name.startswith("sessrec")
            ]
        found.update(name for name in names if name in MODULES and name)
    return found - {module}


@pytest.mark.parametrize("module", sorted(MODULES))
def test_imports_are_absolute(module: str) -> None:
    """``_imports`` reads absolute imports only: a relative one (``from .x import y``) would pass
    the layer checks unseen."""
    tree = ast.parse(MODULES[module].read_text(encoding="utf-8"))
    relative = [node.lineno for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.level]
    assert not relative, f"sessrec.{module or '__init__'} has relative imports at lines {relative}"


@pytest.mark.parametrize("module", sorted(m for m in MODULES if m))
def test_imports_point_down(module: str) -> None:
    upward = sorted(name for name in _imports(module) if _layer(name) > _layer(module))
    assert not upward, f"sessrec.{module} imports from a higher layer: {upward}"


def test_no_import_cycles_between_units() -> None:
    graph: dict[str, set[str]] = {}
    for module in MODULES:
        if module:
            graph.setdefault(_unit(module), set()).update(
                _unit(name) for name in _imports(module) if _unit(name) != _unit(module)
            )
    visiting: list[str] = []
    done: set[str] = set()

    def visit(unit: str) -> None:
        if unit in done:
            return
        assert unit not in visiting, f"import cycle: {' -> '.join(visiting[visiting.index(unit) :] + [unit])}"
        visiting.append(unit)
        for nxt in sorted(graph.get(unit, ())):
            visit(nxt)
        visiting.pop()
        done.add(unit)

    for unit in sorted(graph):
        visit(unit)


def test_the_pure_core_imports_no_edge_library() -> None:
    edge = {"ray", "boto3", "botocore", "typer", "click", "rich", "matplotlib", "mlflow", "fastapi", "starlette"}
    for module, path in MODULES.items():
        if module == "core" or module.startswith("core."):
            tree = ast.parse(path.read_text(encoding="utf-8"))
            roots = {
                alias.name.split(".")[0]
                for node in ast.walk(tree)
                if isinstance(node, ast.Import)
                for alias in node.names
            }
            roots |= {
                node.module.split(".")[0] for node in ast.walk(tree) if isinstance(node, ast.ImportFrom) and node.module
            }
            assert not roots & edge, f"sessrec.{module} imports {sorted(roots & edge)}"


def test_ray_free_modules_load_without_ray() -> None:
    names = [f"sessrec.{m}" for m in sorted(MODULES) if any(m == u or m.startswith(u + ".") for u in RAY_FREE)]
    code = "import sys\n" + "".join(f"import {name}\n" for name in names) + "print('ray' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, cwd=REPO, check=True)
    assert out.stdout.strip() == "False", f"importing {names} loaded Ray"


@pytest.mark.parametrize("module", sorted(MODULES))
def test_modules_stay_small_or_say_why(module: str) -> None:
    text = MODULES[module].read_text(encoding="utf-8")
    lines = len(text.splitlines())
    if lines > MAX_LINES:
        docstring = ast.get_docstring(ast.parse(text)) or ""
        assert LONG_REASON.search(docstring), (
            f"sessrec.{module} has {lines} lines: split it, or say at its top why it is over 400 lines"
        )
