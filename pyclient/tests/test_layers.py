"""The package's layers: every import of a quiver module points down the table below (imports
inside functions included), no imports form a cycle, and the worker reaches no driver code.

Read from the source with ast, so it runs without a node."""

from __future__ import annotations

import ast
import os
import pathlib
import subprocess
import sys

import pytest

import quiver

PACKAGE = pathlib.Path(quiver.__file__).parent

# Top first. A module may import modules of its own layer or of any layer below
# it, never above. Entries are module names; "x.*" covers a package's modules.
LAYERS = [
    ("facade", ["quiver", "quiver._cli"]),
    ("spark helpers", ["quiver.spark", "quiver.spark.*"]),
    ("accelerate", ["quiver._accel.decorator"]),
    ("accelerate parts", ["quiver._accel.nodes", "quiver._accel.infer", "quiver._accel.mapform",
                          "quiver._accel.rows", "quiver._accel.switches"]),
    ("accelerate forms", ["quiver._accel.forms", "quiver._accel.pickled", "quiver._accel.frames"]),
    ("accelerate policy", ["quiver._accel", "quiver._accel.policy"]),
    ("client", ["quiver.client"]),
    ("lineage", ["quiver.lineage"]),
    ("task map", ["quiver._taskmap"]),
    ("tasks", ["quiver.tasks", "quiver._taskfuture"]),
    ("objects, registration and leases", ["quiver.objects", "quiver._registry", "quiver._leases"]),
    ("wire", ["quiver._wire", "quiver._wire.*"]),
    ("worker", ["quiver.worker", "quiver.worker.*"]),
    ("spark rows", ["quiver._rows", "quiver._rows.*"]),
    ("task rows", ["quiver._taskrows"]),
    ("task context", ["quiver._taskcontext"]),
    ("conversion", ["quiver._convert"]),
    ("types", ["quiver.types"]),
    ("helpers", ["quiver._util", "quiver._options", "quiver._retry", "quiver._concurrent", "quiver._valuecache"]),
    ("errors", ["quiver.errors"]),
]

# What the worker may reach: its own package and the leaves below it.
WORKER = "worker"
WORKER_MAY_REACH = {"worker", "spark rows", "task rows", "task context", "conversion", "types", "helpers",
                    "errors"}


def module_name(path: pathlib.Path) -> str:
    rel = path.relative_to(PACKAGE.parent).with_suffix("")
    parts = list(rel.parts)
    if parts[-1] == "__init__":
        parts.pop()
    return ".".join(parts)


def modules() -> dict[str, pathlib.Path]:
    return {module_name(p): p for p in sorted(PACKAGE.rglob("*.py")) if "_bin" not in p.parts}


def is_package(name: str, mods: dict) -> bool:
    return mods[name].name == "__init__.py"


def imports(name: str, mods: dict) -> list[tuple[str, int]]:
    """(quiver module imported, line) for every import statement in module name."""
    tree = ast.parse(mods[name].read_text(), filename=str(mods[name]))
    package = name if is_package(name, mods) else name.rpartition(".")[0]
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            targets = [a.name for a in node.names]
        elif isinstance(node, ast.ImportFrom):
            if node.level:
                base = package.split(".")
                base = base[:len(base) - (node.level - 1)]
                source = ".".join(base + ([node.module] if node.module else []))
            else:
                source = node.module or ""
            # "from x import y" imports module x.y when there is one, else names of x.
            targets = [f"{source}.{a.name}" if f"{source}.{a.name}" in mods else source
                       for a in node.names]
        else:
            continue
        for t in targets:
            if t == "quiver" or t.startswith("quiver."):
                while t not in mods:  # import a.b.c of a name: the module that has it
                    t = t.rpartition(".")[0]
                out.append((t, node.lineno))
    return out


def layer_of(name: str) -> int:
    for i, (_, entries) in enumerate(LAYERS):
        for e in entries:
            if name == e or (e.endswith(".*") and name.startswith(e[:-1])):
                return i
    raise LookupError(name)


def graph() -> dict[str, list[tuple[str, int]]]:
    mods = modules()
    return {m: [(t, line) for t, line in imports(m, mods) if t != m] for m in mods}


def test_every_module_has_a_layer():
    missing = []
    for m in modules():
        try:
            layer_of(m)
        except LookupError:
            missing.append(m)
    assert not missing, f"modules without a layer in test_layers.LAYERS: {missing}; add them"


def test_imports_point_down():
    bad = []
    for m, deps in graph().items():
        for t, line in deps:
            if layer_of(t) < layer_of(m):
                bad.append(f"{m} (layer {LAYERS[layer_of(m)][0]!r}) imports {t} "
                           f"(layer {LAYERS[layer_of(t)][0]!r}) at line {line}: an upward import")
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    g = {m: sorted({t for t, _ in deps}) for m, deps in graph().items()}
    state: dict[str, int] = {}  # 1: on the current path, 2: done
    path: list[str] = []
    cycles = []

    def visit(m: str) -> None:
        state[m] = 1
        path.append(m)
        for t in g.get(m, ()):
            if state.get(t) == 1:
                cycles.append(" -> ".join(path[path.index(t):] + [t]))
            elif t not in state:
                visit(t)
        path.pop()
        state[m] = 2

    for m in sorted(g):
        if m not in state:
            visit(m)
    assert not cycles, "import cycles:\n" + "\n".join(cycles)


def test_worker_reaches_no_driver_code():
    g = graph()
    allowed = {i for i, (label, _) in enumerate(LAYERS) if label in WORKER_MAY_REACH}
    start = [m for m in g if layer_of(m) == [label for label, _ in LAYERS].index(WORKER)]
    seen, todo, bad = set(start), [(m, [m]) for m in start], []
    while todo:
        m, via = todo.pop()
        for t, line in g[m]:
            if layer_of(t) not in allowed:
                bad.append(f"{' -> '.join(via)} imports {t} (layer {LAYERS[layer_of(t)][0]!r}) "
                           f"at line {line} of {m}")
            elif t not in seen:
                seen.add(t)
                todo.append((t, via + [t]))
    assert not bad, "the worker reaches driver code:\n" + "\n".join(bad)


def test_python_m_quiver_worker_loads_no_driver_module():
    """What the layers promise, at run time: importing the worker (and with it the
    package's lazy __init__) loads only the worker's layers."""
    code = ("import sys, quiver.worker; "
            "print('\\n'.join(m for m in sys.modules if m == 'quiver' or m.startswith('quiver.')))")
    env = {k: v for k, v in os.environ.items() if k != "PYTHONSTARTUP"}
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, env=env,
                         cwd=PACKAGE.parent, timeout=60)
    assert out.returncode == 0, out.stderr
    allowed = {i for i, (label, _) in enumerate(LAYERS) if label in WORKER_MAY_REACH}
    loaded = [m for m in out.stdout.split() if m != "quiver"]
    assert loaded, out.stdout
    driver = [m for m in loaded if layer_of(m) not in allowed]
    assert not driver, f"python -m quiver.worker loads driver modules: {driver}"


@pytest.mark.parametrize("name", quiver.__all__)
def test_public_names_resolve(name):
    assert getattr(quiver, name) is not None
