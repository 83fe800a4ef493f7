"""The package structure, computed from the code: no import cycle between the subpackages of ``agent``,
pipelines that do not import each other, and ``drivers`` / ``models`` that never import ``agent``.

Every import counts, including those inside functions and under ``TYPE_CHECKING``: a cycle hidden in a
function is still a cycle a reader has to untangle.
"""

from __future__ import annotations

import ast
import subprocess
import sys
from collections import defaultdict
from collections.abc import Iterator
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
#: Modules of agent/pipelines that every pipeline may use: the plugin contract and what pipelines share.
PIPELINE_COMMONS = {"base", "stage", "shared", "tracks", "registry"}


def imports(path: Path) -> Iterator[str]:
    """Every absolute module name ``path`` imports (``from a.b import c`` yields ``a.b`` and ``a.b.c``)."""
    for node in ast.walk(ast.parse(path.read_text(encoding="utf-8"))):
        if isinstance(node, ast.Import):
            yield from (alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            yield node.module
            yield from (f"{node.module}.{alias.name}" for alias in node.names)


def module_name(path: Path) -> str:
    parts = path.relative_to(REPO).with_suffix("").parts
    return ".".join(parts[:-1] if parts[-1] == "__init__" else parts)


def unit(module: str, depth: int) -> str | None:
    """``agent.pipelines.face.stage`` at depth 2 -> ``agent.pipelines``; None when it is not that deep."""
    parts = module.split(".")
    return ".".join(parts[:depth]) if len(parts) >= depth else None


def exists(module: str) -> bool:
    """Whether ``module`` is a package or module of this repository (not a name imported from one)."""
    path = REPO.joinpath(*module.split("."))
    return path.is_dir() or path.with_suffix(".py").is_file()


def graph(package: str, depth: int) -> dict[str, set[str]]:
    """Edges between the units (subpackages or modules ``depth`` levels down) of ``package``."""
    edges: dict[str, set[str]] = defaultdict(set)
    prefix = package + "."
    for path in (REPO / package.replace(".", "/")).rglob("*.py"):
        source = unit(module_name(path), depth)
        if source is None:
            continue
        for target in imports(path):
            if not target.startswith(prefix):
                continue
            dest = unit(target, depth)
            if dest is not None and dest != source and exists(dest):
                edges[source].add(dest)
    return edges


def cycles(edges: dict[str, set[str]]) -> list[list[str]]:
    """Strongly connected components with more than one member (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(v: str) -> None:
        index[v] = low[v] = len(index)
        stack.append(v)
        on_stack.add(v)
        for w in sorted(edges.get(v, ())):
            if w not in index:
                visit(w)
                low[v] = min(low[v], low[w])
            elif w in on_stack:
                low[v] = min(low[v], index[w])
        if low[v] == index[v]:
            component = []
            while True:
                w = stack.pop()
                on_stack.discard(w)
                component.append(w)
                if w == v:
                    break
            if len(component) > 1:
                found.append(sorted(component))

    for vertex in sorted(edges):
        if vertex not in index:
            visit(vertex)
    return found


def test_no_import_cycle_between_the_subpackages_of_agent() -> None:
    edges = graph("agent", 2)
    assert {"agent.config", "agent.pipelines", "agent.runtime", "agent.delivery"} <= set(edges)
    assert cycles(edges) == []


def test_the_layers_point_one_way() -> None:
    edges = graph("agent", 2)
    assert "agent.config" not in edges["agent.pipelines"], "pipelines get what they need through Shared"
    assert "agent.runtime" not in edges["agent.delivery"], "delivery knows nothing of the runtime"
    assert "agent.runtime" not in edges["agent.commands"], "commands reach the daemon through CommandHost"


def test_pipelines_do_not_import_each_other() -> None:
    edges = graph("agent.pipelines", 3)
    features = {e for e in edges if e.rsplit(".", 1)[1] not in PIPELINE_COMMONS}
    assert {"agent.pipelines.face", "agent.pipelines.people", "agent.pipelines.product"} <= features
    for feature in sorted(features):
        others = sorted(d for d in edges[feature] if d in features)
        assert others == [], f"{feature} imports {others}: share through agent.pipelines.shared instead"


def test_drivers_and_models_never_import_agent() -> None:
    for package in ("drivers", "models"):
        for path in (REPO / package).rglob("*.py"):
            bad = sorted(t for t in imports(path) if t == "agent" or t.startswith("agent."))
            assert bad == [], f"{path.relative_to(REPO)} imports {bad}"


def test_validating_a_config_imports_no_driver_and_no_heavy_library() -> None:
    """The registries promise lazy imports: a config validates on any machine, without OpenCV or a model."""
    code = (
        "import sys; from pathlib import Path; from agent.config.loader import load_config; "
        "load_config(Path('config/store-example.yaml')); "
        "heavy = sorted({m.split('.')[0] for m in sys.modules} & {'cv2', 'onnxruntime', 'scipy', 'sounddevice', "
        "'serial', 'faster_whisper', 'vosk', 'faiss'}); "
        "drivers = sorted(m for m in sys.modules if m.startswith('drivers.camera.') "
        "and m != 'drivers.camera.options'); "
        "print(heavy, drivers)"
    )
    out = subprocess.run([sys.executable, "-c", code], cwd=REPO, capture_output=True, text=True, check=True).stdout
    assert out.strip() == "[] []"
