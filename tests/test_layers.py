"""Imports run one way: pure helpers <- model, TensorFlow and device modules <- CLIs (issue 19).

Read from the source with ast, lazy imports inside functions included, so a cycle cannot hide
behind one. TF-free and fast."""

import ast

from conftest import PROJECT_DIR

# Pure helpers: numpy/scipy maths, files and names; never TensorFlow, a model, a device or a CLI.
PURE = {"params", "atomic_write", "class_map", "model_folder", "audio_util", "augment", "detection",
        "metrics", "dense_landmarks", "landmarks", "fingerprint_params", "evidence"}
# audio_util.py is both the one loader and the `convert` command, as the seed has it: others may import it.
IMPORTABLE_CLIS = {"audio_util"}
HEAVY_PACKAGES = {"tensorflow", "tensorflow_hub", "keras", "sounddevice", "paho"}


def project_imports() -> dict[str, set[str]]:
    """{module: the project modules and top-level packages it imports anywhere in its source}."""
    names = {path.stem for path in PROJECT_DIR.glob("*.py")}
    graph = {}
    for name in names:
        tree = ast.parse((PROJECT_DIR / f"{name}.py").read_text(encoding="utf-8"))
        imported = set()
        for node in ast.walk(tree):
            if isinstance(node, ast.Import):
                imported.update(alias.name.split(".")[0] for alias in node.names)
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                imported.add(node.module.split(".")[0])
        graph[name] = imported - {name}
    return graph


def clis() -> set[str]:
    return {path.stem for path in PROJECT_DIR.glob("*.py") if '__name__ == "__main__"' in path.read_text(encoding="utf-8")}


def cycle_through(graph: dict[str, set[str]], start: str) -> list[str] | None:
    """A path start -> ... -> start through project modules, or None."""
    stack, seen = [(start, [start])], set()
    while stack:
        module, path = stack.pop()
        for imported in graph.get(module, ()):
            if imported == start:
                return path + [start]
            if imported in graph and imported not in seen:
                seen.add(imported)
                stack.append((imported, path + [imported]))
    return None


def test_no_import_cycles():
    graph = project_imports()
    cycles = [" -> ".join(cycle) for module in sorted(graph) if (cycle := cycle_through(graph, module))]
    assert cycles == []


def test_no_library_module_imports_a_cli():
    graph, commands = project_imports(), clis() - IMPORTABLE_CLIS
    assert {"train", "main", "listen", "evaluate", "fingerprint", "record"} <= commands
    offending = {module: sorted(graph[module] & commands) for module in graph if module not in commands}
    assert {module: found for module, found in offending.items() if found} == {}


def test_pure_helpers_import_only_pure_helpers():
    graph, project = project_imports(), set(project_imports())
    assert PURE <= project
    offending = {module: sorted(graph[module] & (project - PURE) | graph[module] & HEAVY_PACKAGES)
                 for module in PURE}
    assert {module: found for module, found in offending.items() if found} == {}
