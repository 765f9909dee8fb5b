"""The engine is strictly layered: each realisid_core module imports only modules of its own floor or
the floors below it, and never the host, the nodes, the trainer or the batch client."""
import ast
from pathlib import Path

CORE = Path(__file__).resolve().parents[2] / "realisid_core"
# Floor of each top-level name inside realisid_core, bottom first (docs/development.md draws them).
FLOORS = {"errors": 0, "cache": 0, "families": 0, "faces": 1, "people": 2, "branches": 3, "signals": 4, "models": 5}
FORBIDDEN = {"comfy", "comfy_extras", "comfy_api", "comfy_execution", "folder_paths", "nodes", "node_helpers",
             "server", "execution", "latent_preview", "realisid_train", "realisid_batch", "tests", "tools",
             "benchmarks"}


def floor_of(parts):
    return FLOORS[parts[0]] if parts else None


def core_parts(path: Path, core: Path = CORE):
    return list(path.relative_to(core).with_suffix("").parts)


def imported_core_modules(path: Path, core: Path = CORE):
    """(line, dotted parts inside realisid_core) for each relative import of the module at `path`."""
    here = core_parts(path, core)
    package = here[:-1] if here[-1] != "__init__" else here[:-1]
    tree = ast.parse(path.read_text())
    for node in ast.walk(tree):
        if isinstance(node, ast.ImportFrom) and node.level:
            base = package[:len(package) - (node.level - 1)] if node.level > 1 else package
            assert node.level - 1 <= len(package), f"{path}: import above realisid_core"
            target = base + (node.module.split(".") if node.module else [])
            if node.module is None:
                for alias in node.names:
                    yield node.lineno, target + [alias.name]
            else:
                yield node.lineno, target


def test_every_core_module_has_a_floor():
    for path in CORE.rglob("*.py"):
        parts = core_parts(path)
        if parts == ["__init__"]:
            continue
        assert parts[0] in FLOORS, f"{path.relative_to(CORE)} is on no floor: add it to FLOORS and the docs"


def test_core_imports_point_down_or_sideways():
    for path in CORE.rglob("*.py"):
        own = core_parts(path)
        if own == ["__init__"]:
            continue
        for line, target in imported_core_modules(path):
            assert target and target[0] in FLOORS, f"{path.relative_to(CORE)}:{line} imports {target}"
            assert floor_of(target) <= floor_of(own), (
                f"{path.relative_to(CORE)}:{line} imports {'.'.join(target)}, a floor above its own")


def test_core_never_imports_the_host_or_the_pack_around_it():
    for path in CORE.rglob("*.py"):
        for node in ast.walk(ast.parse(path.read_text())):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            elif isinstance(node, ast.ImportFrom) and node.level > len(core_parts(path)) - 1:
                names = [node.module or ""]  # climbs out of realisid_core into the pack
            for name in names:
                assert name.split(".")[0] not in FORBIDDEN, f"{path.relative_to(CORE)} imports {name}"


def test_the_layering_check_sees_an_upward_import(tmp_path):
    """The check above can fail: a faces module that imports a signals module is on the wrong floor."""
    bad = tmp_path / "realisid_core" / "faces" / "bad.py"
    bad.parent.mkdir(parents=True)
    bad.write_text("from ..signals.pose_v1 import LAYOUTS\n")
    core = tmp_path / "realisid_core"
    [(_, target)] = imported_core_modules(bad, core)
    assert target == ["signals", "pose_v1"]
    assert floor_of(target) > floor_of(core_parts(bad, core))
