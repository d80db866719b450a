"""No import circle among the project's modules, counting every import (a lazy one inside a
function closes a circle too, it only hides it until that function runs), and no module inside
a package importing a name from that package's ``__init__``, which imports the module back."""
import ast

from flightdelay.config import REPO_ROOT

PACKAGES = ("flightdelay", "webapp", "spark_jobs", "training", "dags", "infra", "harness", "bench")


def module_files() -> dict[str, object]:
    found = {}
    for package in PACKAGES:
        for path in (REPO_ROOT / package).rglob("*.py"):
            name = ".".join(path.relative_to(REPO_ROOT).with_suffix("").parts)
            found[name.removesuffix(".__init__")] = path
    return found


def imported_modules(tree: ast.AST, known) -> set[str]:
    """The project modules a module needs: ``from pkg import mod`` needs ``pkg.mod``;
    ``from pkg import name`` needs ``pkg`` itself."""
    needed = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            needed.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            submodules = {f"{node.module}.{alias.name}" for alias in node.names}
            needed.update(submodules & known)
            if submodules - known:
                needed.add(node.module)
    return needed & known


def import_graph() -> dict[str, set[str]]:
    files = module_files()
    return {name: imported_modules(ast.parse(path.read_text()), files.keys()) - {name}
            for name, path in files.items()}


def circles(graph: dict[str, set[str]]) -> list[list[str]]:
    """The strongly connected groups of more than one module (Tarjan)."""
    index, low, stack, on_stack, found = {}, {}, [], set(), []

    def visit(node):
        index[node] = low[node] = len(index)
        stack.append(node)
        on_stack.add(node)
        for dep in graph[node]:
            if dep not in index:
                visit(dep)
                low[node] = min(low[node], low[dep])
            elif dep in on_stack:
                low[node] = min(low[node], index[dep])
        if low[node] == index[node]:
            group = []
            while not group or group[-1] != node:
                group.append(stack.pop())
                on_stack.discard(group[-1])
            if len(group) > 1:
                found.append(sorted(group))

    for node in graph:
        if node not in index:
            visit(node)
    return found


def test_no_import_circle_in_the_project():
    graph = import_graph()
    assert {"flightdelay.registry", "flightdelay.serving", "webapp.predictions"} <= graph.keys()
    assert circles(graph) == []


def test_the_circle_finder_finds_a_circle():
    assert circles({"a": {"b"}, "b": {"c"}, "c": {"a"}, "d": {"a"}}) == [["a", "b", "c"]]
    tree = ast.parse("def late():\n    from webapp import socketio\n")
    assert imported_modules(tree, {"webapp", "webapp.sockets"}) == {"webapp"}  # a name from the package
    assert imported_modules(ast.parse("from webapp import parts"), {"webapp", "webapp.parts"}) == {"webapp.parts"}
