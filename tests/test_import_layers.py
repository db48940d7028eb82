"""The import graph of ``kexue_ref``: no circle, and lower layers that import nothing above them.

Every module of ``kexue_ref/`` (packages too: the module name comes from the file's path,
``kexue_ref/on_lstm/cell.py`` is ``kexue_ref.on_lstm.cell``, an ``__init__.py`` is its
package) is parsed with :mod:`ast`; every ``import`` and ``from … import`` counts, absolute
or relative, at the top of the module or inside a function (a lazy import is still an edge:
it runs, and a circle through it is still a circle, only a later one). ``from P import n``
is an edge to the module ``P.n`` when ``n`` is a submodule, else to ``P``. Imports made by
``importlib.import_module`` with a computed name are not seen (they are the lazy attribute
loaders of ``kexue_ref/__init__.py``, the adapter table of ``kexue_ref.testing.adapters``
and the case tables of ``registry.all_ops``).

The rules:

1. **No cycle** among the modules of ``kexue_ref``: the graph is a DAG, and a failure names
   the circle, e.g. ``kexue_ref.testing._check -> kexue_ref.testing.adapters ->
   kexue_ref.testing._check``.
2. **Lower layers import nothing above them.** They may import the standard library, numpy,
   autograd and scipy, and of our modules only the following:

   * ``kexue_ref._validate``: none (the argument checks everything else uses);
   * ``kexue_ref._numerics``, ``kexue_ref._masks``: ``kexue_ref._validate`` only;
   * ``kexue_ref.registry``: none, except ``kexue_ref.cases`` imported *inside*
     ``all_ops()``. That one edge points down by design: the registry is the plugin
     host and the case tables are its plugins. ``all_ops`` loads them on the first query,
     when ``registry`` is fully initialised, and each table imports ``registry`` to build
     its rows. The edge is the only one allowed, it is exempt from rule 1 (which it would
     otherwise close into the circle registry -> cases -> registry), and an import of
     ``kexue_ref.cases`` anywhere else in ``registry`` (at the top, in another function) is
     reported.

The checker itself is tested on a small synthetic package with one circle and one upward
import (``test_the_checker_reports_a_cycle_and_an_upward_import``).
"""
import ast
import pathlib
import sys

import pytest

ROOT = pathlib.Path(__file__).resolve().parents[1] / "kexue_ref"

#: third-party packages the lower layers may import, besides the standard library
LOWER_EXTERNAL = ("numpy", "autograd", "scipy")

#: lower-layer module -> the modules of ours it may import
LOWER = {
    "kexue_ref._validate": (),
    "kexue_ref._numerics": ("kexue_ref._validate",),
    "kexue_ref._masks": ("kexue_ref._validate",),
    "kexue_ref.registry": (),
}

#: (importer, imported, function) edges allowed although they point up (see rule 2)
PLUGIN_EDGES = {("kexue_ref.registry", "kexue_ref.cases", "all_ops")}


# ---------------------------------------------------------------------------
# The checker
# ---------------------------------------------------------------------------

def module_files(root):
    """{module name: path} for every ``.py`` file under the package directory ``root``."""
    root = pathlib.Path(root)
    out = {}
    for path in sorted(root.rglob("*.py")):
        rel = path.relative_to(root.parent).with_suffix("")
        parts = list(rel.parts)
        if parts[-1] == "__init__":
            parts = parts[:-1]
        if any(not p.isidentifier() for p in parts):
            continue  # not importable (a script with a dash, say)
        out[".".join(parts)] = path
    return out


def _scopes(tree):
    """(node, enclosing function name or None) for every import node of a module."""
    out = []

    def visit(node, func):
        for child in ast.iter_child_nodes(node):
            if isinstance(child, (ast.Import, ast.ImportFrom)):
                out.append((child, func))
            inner = child.name if isinstance(child, (ast.FunctionDef, ast.AsyncFunctionDef)) else func
            visit(child, inner)

    visit(tree, None)
    return out


def _resolve(name, modules):
    """The longest prefix of ``name`` that is one of ``modules`` (or None)."""
    parts = name.split(".")
    for n in range(len(parts), 0, -1):
        candidate = ".".join(parts[:n])
        if candidate in modules:
            return candidate
    return None


def import_edges(files):
    """Every import of every module, as ``(importer, target, lineno, function, internal)``.

    ``target`` is one of our modules when ``internal`` is True, else the top-level name of
    the external package (``numpy``, ``os``); ``function`` is the enclosing function's name,
    None at module level.
    """
    modules = set(files)
    edges = []
    for mod, path in files.items():
        is_pkg = path.name == "__init__.py"
        tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
        for node, func in _scopes(tree):
            if isinstance(node, ast.Import):
                names = [(alias.name, None) for alias in node.names]
            else:
                if node.level:
                    # a relative import: up from the module's own package
                    package = mod.split(".") if is_pkg else mod.split(".")[:-1]
                    keep = len(package) - (node.level - 1)
                    if keep <= 0:
                        raise ImportError(f"{path}:{node.lineno}: relative import beyond the top")
                    base = ".".join(package[:keep] + ([node.module] if node.module else []))
                else:
                    base = node.module
                names = [(base, alias.name) for alias in node.names]
            for base, attr in names:
                full = f"{base}.{attr}" if attr and attr != "*" else base
                target = full if full in modules else _resolve(base, modules)
                if target is not None:
                    edges.append((mod, target, node.lineno, func, True))
                else:
                    edges.append((mod, base.split(".")[0], node.lineno, func, False))
    return edges


def _exempt(edge):
    importer, target, _, func, internal = edge
    return internal and (importer, target, func) in PLUGIN_EDGES


def find_cycles(edges):
    """The circles of the internal import graph (self-imports and plugin edges left out):
    one list ``[m0, m1, …, m0]`` per strongly connected component that has one."""
    graph = {}
    for edge in edges:
        importer, target, _, _, internal = edge
        graph.setdefault(importer, set())
        if internal and importer != target and not _exempt(edge):
            graph[importer].add(target)
            graph.setdefault(target, set())
    # Tarjan's strongly connected components (iterative: no recursion limit)
    index, low, on_stack, stack, sccs, counter = {}, {}, set(), [], [], [0]
    for start in sorted(graph):
        if start in index:
            continue
        work = [(start, iter(sorted(graph[start])))]
        index[start] = low[start] = counter[0]
        counter[0] += 1
        stack.append(start)
        on_stack.add(start)
        while work:
            node, children = work[-1]
            child = next(children, None)
            if child is None:
                work.pop()
                if work:
                    low[work[-1][0]] = min(low[work[-1][0]], low[node])
                if low[node] == index[node]:
                    comp = []
                    while True:
                        m = stack.pop()
                        on_stack.discard(m)
                        comp.append(m)
                        if m == node:
                            break
                    sccs.append(comp)
            elif child not in index:
                index[child] = low[child] = counter[0]
                counter[0] += 1
                stack.append(child)
                on_stack.add(child)
                work.append((child, iter(sorted(graph[child]))))
            elif child in on_stack:
                low[node] = min(low[node], index[child])
    cycles = []
    for comp in sccs:
        if len(comp) < 2:
            continue
        members = set(comp)
        # one concrete circle: a shortest path back to the smallest member (breadth first)
        first = min(comp)
        prev, frontier, found = {first: None}, [first], None
        while frontier and found is None:
            nxt = []
            for m in frontier:
                for c in sorted(graph[m] & members):
                    if c == first:
                        found = m
                        break
                    if c not in prev:
                        prev[c] = m
                        nxt.append(c)
                if found is not None:
                    break
            frontier = nxt
        # walk back from the last member before ``first`` to ``first`` itself
        back = [found]
        while back[-1] != first:
            back.append(prev[back[-1]])
        cycles.append(back[::-1] + [first])
    return cycles


def _is_stdlib(name):
    return name in sys.stdlib_module_names or name == "__future__"


def layer_violations(edges, lower=LOWER, external=LOWER_EXTERNAL):
    """Imports of a lower-layer module that its rule does not allow, one line each."""
    out = []
    for importer, target, lineno, func, internal in edges:
        if importer not in lower:
            continue
        where = f"{importer} line {lineno}" + (f" (in {func}())" if func else "")
        if internal:
            if target in lower[importer] or _exempt((importer, target, lineno, func, internal)):
                continue
            out.append(f"{where} imports {target}: a lower layer imports only "
                       f"{', '.join(lower[importer]) or 'no module of ours'}")
        elif not (_is_stdlib(target) or target in external):
            out.append(f"{where} imports {target}: a lower layer imports only the standard "
                       f"library, {', '.join(external)}")
    return out


# ---------------------------------------------------------------------------
# The tests
# ---------------------------------------------------------------------------

@pytest.fixture(scope="module")
def edges():
    return import_edges(module_files(ROOT))


def test_the_modules_are_found_with_packages_named_from_their_paths():
    files = module_files(ROOT)
    assert "kexue_ref" in files and "kexue_ref.registry" in files
    assert "kexue_ref.testing" in files and "kexue_ref.testing._check" in files
    assert "kexue_ref.dgcnn" in files and files["kexue_ref.dgcnn"].name == "__init__.py"
    for name in LOWER:
        assert name in files, f"lower layer {name} not found"


def test_there_is_no_import_cycle(edges):
    cycles = find_cycles(edges)
    assert not cycles, "import cycles:\n" + "\n".join(" -> ".join(c) for c in cycles)


def test_lower_layers_import_nothing_above_them(edges):
    bad = layer_violations(edges)
    assert not bad, "\n".join(bad)


def test_the_registry_plugin_load_is_the_one_allowed_downward_edge(edges):
    # if registry stops loading the case tables this way, the exemption must go too
    plugin = [e for e in edges if e[0] == "kexue_ref.registry" and e[4]]
    assert plugin, "registry imports no module of ours: drop PLUGIN_EDGES"
    assert all(_exempt(e) for e in plugin), plugin


def test_the_checking_package_shares_its_oracle_from_below(edges):
    # the former circle _check <-> adapters <-> lowprec: both now import the oracle module
    targets = {(i, t) for i, t, _, _, internal in edges if internal}
    for importer in ("kexue_ref.testing.adapters", "kexue_ref.testing.lowprec",
                     "kexue_ref.testing.localise", "kexue_ref.testing.diagnose"):
        assert (importer, "kexue_ref.testing._check") not in targets, importer


def _write(root, files):
    for rel, text in files.items():
        path = root / rel
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")


def test_the_checker_reports_a_cycle_and_an_upward_import(tmp_path):
    """Judge the judge: a tiny package with one circle (through a relative import inside a
    function, across a subpackage) and one upward import from a lower layer."""
    pkg = tmp_path / "kexue_ref"
    _write(pkg, {
        "__init__.py": "import importlib\n",
        "_validate.py": "import numbers\nimport numpy as onp\n",
        "_numerics.py": "from kexue_ref._validate import check\n",
        # an upward import, lazily, from a lower layer
        "_masks.py": "def mask():\n    from kexue_ref.post import helper\n    return helper\n",
        "registry.py": ("import zlib\n\ndef all_ops():\n    from kexue_ref.cases import TOPICS\n"
                        "    return TOPICS\n"),
        "cases/__init__.py": "from kexue_ref import registry\nTOPICS = ()\n",
        # a circle: post (package) -> post.cell -> post.layer -> post.cell
        "post/__init__.py": "from .cell import helper\n",
        "post/cell.py": "def helper():\n    from . import layer\n    return layer\n",
        "post/layer.py": "from kexue_ref.post.cell import helper\n",
    })
    files = module_files(pkg)
    assert set(files) == {"kexue_ref", "kexue_ref._validate", "kexue_ref._numerics",
                          "kexue_ref._masks", "kexue_ref.registry", "kexue_ref.cases",
                          "kexue_ref.post", "kexue_ref.post.cell", "kexue_ref.post.layer"}
    e = import_edges(files)
    assert ("kexue_ref.post.cell", "kexue_ref.post.layer", 2, "helper", True) in e
    cycles = find_cycles(e)
    # the registry <-> cases plugin load is exempt; the post circle is found and named
    assert cycles == [["kexue_ref.post.cell", "kexue_ref.post.layer", "kexue_ref.post.cell"]]
    bad = layer_violations(e)
    assert len(bad) == 1 and bad[0].startswith("kexue_ref._masks line 2 (in mask()) imports "
                                                "kexue_ref.post"), bad

    # the same plugin import at the top of registry is no longer the allowed one
    _write(pkg, {"registry.py": "from kexue_ref.cases import TOPICS\n"})
    e = import_edges(module_files(pkg))
    assert any("registry" in " ".join(c) for c in find_cycles(e))
    assert any(b.startswith("kexue_ref.registry line 1 imports kexue_ref.cases") for b in layer_violations(e))

    # a third-party package other than numpy, autograd, scipy in a lower layer is reported
    _write(pkg, {"_validate.py": "import torch\n"})
    assert any("imports torch" in b for b in layer_violations(import_edges(module_files(pkg))))
