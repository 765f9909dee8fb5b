"""Registry metadata stays in step with requirements.txt; the engine never imports the host."""
import ast
import tomllib
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
HOST_MODULES = {"comfy", "comfy_extras", "comfy_api", "comfy_execution", "folder_paths", "nodes", "node_helpers",
                "server", "execution", "latent_preview"}


def requirement_lines(path):
    return [l.strip() for l in path.read_text().splitlines() if l.strip() and not l.startswith("#")]


def test_pyproject_dependencies_equal_requirements_txt():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["dependencies"] == requirement_lines(REPO / "requirements.txt")
    assert "comfyui" not in project["project"]["name"].lower()
    assert {"PublisherId", "DisplayName", "requires-comfyui"} <= set(project["tool"]["comfy"])


def test_realisid_core_never_imports_comfyui():
    for path in (REPO / "realisid_core").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names = []
            if isinstance(node, ast.Import):
                names = [a.name for a in node.names]
            elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                names = [node.module]
            for name in names:
                assert name.split(".")[0] not in HOST_MODULES, f"{path.relative_to(REPO)} imports {name}"


def test_nodes_use_relative_imports_for_the_pack():
    for path in (REPO / "nodes").rglob("*.py"):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
                assert node.module.split(".")[0] not in {"realisid_core"}, f"{path.name}: import {node.module} relatively"


def node_modules():
    """The modules of nodes/ that define nodes (the rest are shared helpers: inputs, models, controls, ...)."""
    return {p.stem for p in (REPO / "nodes").glob("*.py")
            if p.stem != "__init__" and "NODE_CLASS_MAPPINGS" in p.read_text()}


def test_node_modules_import_only_shared_helpers_and_the_engine_never_each_other():
    nodes = node_modules()
    assert {"apply_local_branch", "instantid", "people"} <= nodes and "controls" not in nodes
    for name in nodes:
        tree = ast.parse((REPO / "nodes" / f"{name}.py").read_text())
        for node in ast.walk(tree):
            if isinstance(node, ast.ImportFrom) and node.level == 1:
                assert (node.module or "") not in nodes, f"nodes/{name}.py imports the node module {node.module}"


def test_the_controls_declare_their_state_instead_of_growing_it_lazily():
    text = (REPO / "nodes" / "controls.py").read_text()
    assert "getattr(self" not in text and "previous_controlnet = None" not in text
    assert "super().get_control" not in text
