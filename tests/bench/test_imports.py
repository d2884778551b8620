"""The benchmarks share code only through ``bench.shared`` (and the data sets), never by
importing one another."""

from __future__ import annotations

import ast
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench"
# Commands that run a benchmark (``python -m bench.<name>``).
BENCHMARKS = frozenset(
    {
        "ingest",
        "latency",
        "pdu_sweep",
        "memory",
        "worklist",
        "alerts",
        "retrieve",
        "qido",
        "profile_api",
        "hl7",
        "stats",
        "page_db",
    }
)
# Programs a benchmark starts as a process of their own (never imported).
PROGRAMS = frozenset({"floor_scp", "alert_receiver", "loadgen"})
# Data sets: importable, and ``python -m`` builds them alone.
DATA_SETS = frozenset({"dataset", "retrieve_data", "load_studies", "qido_data"})


def _modules() -> dict[str, tuple[str, ast.Module]]:
    """Every bench module: its package and its syntax tree."""
    modules: dict[str, tuple[str, ast.Module]] = {}
    for path in BENCH.rglob("*.py"):
        parts = path.relative_to(BENCH.parent).with_suffix("").parts
        package = ".".join(parts[:-1])
        name = package if parts[-1] == "__init__" else ".".join(parts)
        modules[name] = (package, ast.parse(path.read_text(), str(path)))
    return modules


def _imported(package: str, tree: ast.Module) -> set[str]:
    """Every ``bench`` module a module imports, anywhere in its code."""
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:
                anchor = package.rsplit(".", node.level - 1)[0] if node.level > 1 else package
                base = f"{anchor}.{base}" if base else anchor
            names.add(base)
            names.update(f"{base}.{alias.name}" for alias in node.names)
    return {name for name in names if name == "bench" or name.startswith("bench.")}


def _short(module: str) -> str:
    return module.removeprefix("bench.")


def _graph() -> dict[str, set[str]]:
    modules = _modules()
    return {
        name: _imported(package, tree) & modules.keys() for name, (package, tree) in modules.items()
    }


def _has_main_guard(tree: ast.Module) -> bool:
    for node in tree.body:
        if isinstance(node, ast.If) and isinstance(node.test, ast.Compare):
            left = node.test.left
            if isinstance(left, ast.Name) and left.id == "__name__":
                return True
    return False


def test_every_command_module_is_a_benchmark_a_program_or_a_data_set() -> None:
    commands = {_short(name) for name, (_, tree) in _modules().items() if _has_main_guard(tree)}
    assert commands - (BENCHMARKS | PROGRAMS | DATA_SETS) == set()
    assert commands >= BENCHMARKS | PROGRAMS


def test_no_bench_module_imports_a_benchmark_entry_or_a_program() -> None:
    entries = {f"bench.{name}" for name in BENCHMARKS | PROGRAMS}
    offenders = {
        f"{importer} imports {imported}"
        for importer, imports in _graph().items()
        for imported in imports & entries
    }
    assert offenders == set()


def test_shared_modules_import_only_shared_modules_and_data_sets() -> None:
    allowed = {f"bench.{name}" for name in DATA_SETS} | {"bench"}
    offenders = {
        f"{importer} imports {imported}"
        for importer, imports in _graph().items()
        if importer.startswith("bench.shared")
        for imported in imports
        if not imported.startswith("bench.shared") and imported not in allowed
    }
    assert offenders == set()


def test_each_private_module_belongs_to_one_benchmark() -> None:
    graph = _graph()
    common = {"bench"} | {f"bench.{name}" for name in DATA_SETS}
    owners: dict[str, set[str]] = {}
    for benchmark in BENCHMARKS:
        seen: set[str] = set()
        todo = [f"bench.{benchmark}"]
        while todo:
            for imported in graph.get(todo.pop(), set()):
                if imported.startswith("bench.shared") or imported in common or imported in seen:
                    continue
                seen.add(imported)
                todo.append(imported)
        for module in seen:
            owners.setdefault(module, set()).add(benchmark)
    shared_by_several = {
        module: sorted(names) for module, names in owners.items() if len(names) > 1
    }
    assert shared_by_several == {}
