"""The package's structure, checked by parsing its source.

Layers import downward only (``LAYERS`` below, from ``DESIGN.md``), no two
modules import each other even indirectly, no module imports another
module's private name (except from the private ``sourceclf.utils._*``
modules, which exist to be shared), internal imports sit at module top
(a few function-local ones are allowed for the torch-heavy parts), and no
module grows past ``MAX_LINES``.
"""

import ast
import pathlib

import pytest

PACKAGE = pathlib.Path(__file__).resolve().parent.parent / "sourceclf"

#: Layer of each top-level module or subpackage; a module may import from its
#: own layer (when that makes no cycle) or from lower ones, never from higher.
LAYERS = {
    # leaves: errors, private helpers, constants
    "_version": 0, "exceptions": 0, "utils": 0, "bands": 0, "progress": 0, "device": 0,
    "catalog_units": 0, "magnitudes": 0,
    # tables and their columns
    "columns": 1, "features": 1, "cutouts": 1, "tableio": 1, "inputs": 1, "psf": 1,
    "crowding": 1, "photometry": 1, "neighbour_fits": 1, "sky": 1, "field_psf": 1,
    "saturation": 1, "elongation": 1, "registration": 1,
    "frames": 1, "stamp_psf": 1, "stamp_columns": 1, "profile_fits": 1, "unmodelled_light": 1,
    "stamp_neighbours": 1,
    # data: simulation, SDSS tables and queries
    "simulate": 2, "datasets": 2, "augment": 2,
    # runtime models (lazy __init__)
    "models": 3,
    # what is built on models
    "conformal": 4, "training": 4,
    # table in, table out
    "classification": 5, "model_choice": 5, "calibration": 5, "evaluation": 5, "plotting": 5,
    # large catalogs and the bundled demo
    "streaming": 6, "dask": 6, "demo": 6,
    # recipes and the command line
    "recipes": 7, "experiments": 7, "train_recipes": 7, "image_recipes": 7, "cli": 7,
    "injection_check": 7,
}

#: Function-local imports of sourceclf modules allowed in the whole package
#: (lazy imports of the torch-heavy parts).
MAX_LOCAL_IMPORTS = 40

#: Longest module, in lines.
MAX_LINES = 700


def _modules():
    mods = {}
    for path in sorted(PACKAGE.rglob("*.py")):
        parts = list(path.relative_to(PACKAGE.parent).with_suffix("").parts)
        is_package = parts[-1] == "__init__"
        if is_package:
            parts = parts[:-1]
        mods[".".join(parts)] = (path, is_package)
    return mods


MODULES = _modules()


def _owner(name):
    """The longest module of the package that ``name`` starts with."""
    while name and name not in MODULES:
        name = name.rpartition(".")[0]
    return name or None


def _imports():
    """Yield (importer, imported module, imported name or None, is_local, lineno)."""
    for module, (path, is_package) in MODULES.items():
        tree = ast.parse(path.read_text(), filename=str(path))
        local_nodes = set()
        for node in ast.walk(tree):
            if isinstance(node, (ast.FunctionDef, ast.AsyncFunctionDef)):
                local_nodes.update(id(n) for n in ast.walk(node) if n is not node)
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                for alias in node.names:
                    if alias.name.split(".")[0] == "sourceclf":
                        yield module, _owner(alias.name), None, id(node) in local_nodes, node.lineno
            elif isinstance(node, ast.ImportFrom):
                if node.level:
                    base = module.split(".")
                    if not is_package:
                        base = base[:-1]
                    base = base[:len(base) - (node.level - 1)]
                    target = ".".join(base + ([node.module] if node.module else []))
                else:
                    target = node.module or ""
                if target.split(".")[0] != "sourceclf":
                    continue
                for alias in node.names:
                    full = f"{target}.{alias.name}"
                    if full in MODULES:
                        yield module, full, None, id(node) in local_nodes, node.lineno
                    else:
                        yield (module, _owner(target), alias.name, id(node) in local_nodes,
                               node.lineno)


IMPORTS = list(_imports())


def _top(module):
    parts = module.split(".")
    return parts[1] if len(parts) > 1 else ""


def test_every_module_has_a_layer():
    unknown = sorted({_top(m) for m in MODULES if _top(m) and _top(m) not in LAYERS})
    assert not unknown, f"give these modules a layer in LAYERS: {unknown}"


def test_layers_import_downward_only():
    upward = [f"{a} (layer {LAYERS[_top(a)]}) imports {b} (layer {LAYERS[_top(b)]}), line {line}"
              for a, b, _, _, line in IMPORTS
              if _top(a) and _top(b) and _top(a) in LAYERS and _top(b) in LAYERS
              and LAYERS[_top(b)] > LAYERS[_top(a)]]
    assert not upward, "\n".join(upward)


def test_models_are_runtime_only():
    bad = [f"{a} imports {b}" for a, b, _, _, _ in IMPORTS
           if _top(a) == "models" and _top(b) in {
               "training", "conformal", "classification", "calibration", "evaluation",
               "recipes"}]
    assert not bad, "\n".join(bad)


def test_no_import_cycles():
    edges = {}
    for a, b, _, _, _ in IMPORTS:
        if b and a != b and not a.startswith(b + ".") and b != "sourceclf":
            edges.setdefault(a, set()).add(b)
    # Tarjan's strongly connected components.
    index, low, stack, on_stack, cycles = {}, {}, [], set(), []
    counter = [0]

    def visit(v):
        index[v] = low[v] = counter[0]
        counter[0] += 1
        stack.append(v)
        on_stack.add(v)
        for w in edges.get(v, ()):
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
                cycles.append(sorted(component))

    for v in sorted(MODULES):
        if v not in index:
            visit(v)
    assert not cycles, f"import cycles: {cycles}"


def test_no_private_names_across_modules():
    bad = [f"{a} imports {name} from {b}, line {line}" for a, b, name, _, line in IMPORTS
           if name and name.startswith("_") and not name.startswith("__") and b != a
           and not b.startswith("sourceclf.utils") and name != "__version__"]
    assert not bad, "\n".join(bad)


def test_few_function_local_imports():
    local = [f"{a}:{line} imports {b}" for a, b, _, is_local, line in IMPORTS if is_local]
    assert len(local) <= MAX_LOCAL_IMPORTS, (
        f"{len(local)} function-local internal imports (at most {MAX_LOCAL_IMPORTS}):\n"
        + "\n".join(local))


@pytest.mark.parametrize("module", sorted(MODULES))
def test_module_length(module):
    path, _ = MODULES[module]
    n = len(path.read_text().splitlines())
    assert n <= MAX_LINES, f"{path.name}: {n} lines (at most {MAX_LINES})"
