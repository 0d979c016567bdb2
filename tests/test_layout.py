"""The package's folders follow the pipeline, and no module imports from a later stage ("upwards")."""
from __future__ import annotations

import ast
from pathlib import Path

PACKAGE = Path(__file__).resolve().parents[1] / "centerface_flow"
#: Lowest first. A unit (top-level module or subpackage) may import from its own layer and the ones before it.
LAYERS = [
    {"errors", "__version__"},
    {"io"},
    {"_kernels", "ops", "runtime"},  # native operators and the process set-up they need
    {"nets"},  # trainable cells
    {"checkpoint", "fused"},  # weights on disk; BatchNorm folding and inference-only cells
    {"convert", "data"},  # starting weights; data sets and training targets
    {"training"},
    {"inference"},
    {"postprocess"},
    {"evaluation"},
    {"export"},
    {"settings", "config"},  # the config.yaml sections, defined by the dataclasses of the stages
    {"workflow"},
    {"commands", "cli"},
]


def _unit(dotted: str) -> str:
    parts = dotted.split(".")
    return parts[1] if len(parts) > 1 else parts[0]


def _imports(path: Path) -> set[str]:
    found = set()
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.ImportFrom) and node.module and node.module.split(".")[0] == "centerface_flow":
            if node.module == "centerface_flow":
                found |= {a.name for a in node.names}
            else:
                found.add(_unit(node.module))
        elif isinstance(node, ast.Import):
            found |= {_unit(a.name) for a in node.names if a.name.startswith("centerface_flow.")}
    return found


def test_every_unit_has_a_layer_and_imports_only_downwards():
    layer = {unit: i for i, units in enumerate(LAYERS) for unit in units}
    problems = []
    for path in sorted(PACKAGE.rglob("*.py")):
        rel = path.relative_to(PACKAGE.parent).with_suffix("")
        unit = _unit(".".join(rel.parts)) if len(rel.parts) > 1 else rel.parts[0]
        if unit == "__init__":
            continue
        if unit not in layer:
            problems.append(f"{rel}: unit {unit!r} has no layer in tests/test_layout.py")
            continue
        for target in _imports(path) - {unit}:
            if layer.get(target, -1) > layer[unit]:
                problems.append(f"{rel} imports {target} (a later stage)")
    assert not problems, "\n".join(problems)


def test_top_level_stays_small():
    modules = sorted(p.stem for p in PACKAGE.glob("*.py") if p.stem != "__init__")
    assert len(modules) <= 10, modules
