"""No import cycle between upcall's files, imports inside functions included.

``make lint``'s acyclic_siblings contract (.importlinter) finds cycles between the modules and
subpackages of each package; it does not see one through a package's own ``__init__`` (a package
importing its submodule, which imports the package). This looks at the whole file graph (grimp,
the graph import-linter uses): every strongly connected component must be one module.
"""

from __future__ import annotations

import grimp


def cycles(graph: grimp.ImportGraph) -> list[list[str]]:
    """The sets of modules that import each other, directly or through others (Tarjan)."""
    index: dict[str, int] = {}
    low: dict[str, int] = {}
    stack: list[str] = []
    on_stack: set[str] = set()
    found: list[list[str]] = []

    def visit(start: str) -> None:  # iterative: no recursion limit on long chains
        work = [(start, iter(sorted(graph.find_modules_directly_imported_by(start))))]
        index[start] = low[start] = len(index)
        stack.append(start)
        on_stack.add(start)
        while work:
            module, imported = work[-1]
            for other in imported:
                if other not in index:
                    index[other] = low[other] = len(index)
                    stack.append(other)
                    on_stack.add(other)
                    work.append(
                        (other, iter(sorted(graph.find_modules_directly_imported_by(other))))
                    )
                    break
                if other in on_stack:
                    low[module] = min(low[module], index[other])
            else:
                work.pop()
                if work:
                    parent = work[-1][0]
                    low[parent] = min(low[parent], low[module])
                if low[module] == index[module]:
                    component = []
                    while True:
                        member = stack.pop()
                        on_stack.discard(member)
                        component.append(member)
                        if member == module:
                            break
                    if len(component) > 1:
                        found.append(sorted(component))

    for module in sorted(graph.modules):
        if module not in index:
            visit(module)
    return found


def test_cycles_finds_a_cycle_through_a_package():
    graph = grimp.ImportGraph()
    for module in ("pk", "pk.sub", "pk.sub.a", "pk.b"):
        graph.add_module(module)
    graph.add_import(importer="pk", imported="pk.sub.a")
    graph.add_import(importer="pk.sub.a", imported="pk")
    graph.add_import(importer="pk.b", imported="pk.sub")
    assert cycles(graph) == [["pk", "pk.sub.a"]]


def test_no_import_cycles():
    graph = grimp.build_graph("upcall", cache_dir=None)
    found = cycles(graph)
    assert not found, "modules importing each other:\n" + "\n".join(", ".join(c) for c in found)
