"""Registry metadata stays in step with requirements.txt; the engine never imports the host."""
import ast
import re
import tomllib
from pathlib import Path

import pytest
from packaging.markers import default_environment
from packaging.requirements import Requirement

REPO = Path(__file__).resolve().parents[2]
HOST_MODULES = {"comfy", "comfy_extras", "comfy_api", "comfy_execution", "folder_paths", "nodes", "node_helpers",
                "server", "execution", "latent_preview"}


def requirement_lines(path):
    return [l.strip() for l in path.read_text().splitlines() if l.strip() and not l.lstrip().startswith("#")]


def test_pyproject_dependencies_equal_requirements_txt():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    assert project["project"]["dependencies"] == requirement_lines(REPO / "requirements.txt")
    assert "comfyui" not in project["project"]["name"].lower()
    assert {"PublisherId", "DisplayName", "requires-comfyui"} <= set(project["tool"]["comfy"])


def registry_fields():
    project = tomllib.loads((REPO / "pyproject.toml").read_text())
    return project["project"], project["tool"]["comfy"]


def test_pyproject_has_what_the_comfy_registry_reads():
    project, comfy = registry_fields()
    assert re.fullmatch(r"\d+\.\d+\.\d+", project["version"])
    assert re.fullmatch(r"https://github\.com/[^/]+/ComfyUI-RealisID", project["urls"]["Repository"])
    assert re.fullmatch(r">=\d+\.\d+\.\d+", comfy["requires-comfyui"])
    assert comfy["Icon"].startswith(project["urls"]["Repository"].replace("github.com", "raw.githubusercontent.com"))


def test_the_registry_icon_is_in_the_repository():
    _, comfy = registry_fields()
    icon = REPO / comfy["Icon"].split("/main/", 1)[1]
    assert icon.is_file() and icon.read_text().lstrip().startswith("<svg")


PLATFORMS = {  # (sys_platform, platform_machine) → the onnxruntime build face analysis should get
    ("linux", "x86_64"): "onnxruntime-gpu", ("win32", "AMD64"): "onnxruntime-gpu",
    ("darwin", "arm64"): "onnxruntime", ("darwin", "x86_64"): "onnxruntime",
    ("linux", "aarch64"): "onnxruntime", ("win32", "ARM64"): "onnxruntime",
}


@pytest.mark.parametrize("platform", sorted(PLATFORMS), ids="-".join)
def test_each_platform_gets_exactly_one_onnxruntime_build(platform):
    """onnxruntime-gpu has wheels for x86-64 Linux and Windows only; elsewhere the plain build (CoreML on a Mac)."""
    environment = {**default_environment(), "sys_platform": platform[0], "platform_machine": platform[1]}
    builds = [r.name for r in map(Requirement, requirement_lines(REPO / "requirements.txt"))
              if r.name.startswith("onnxruntime") and (r.marker is None or r.marker.evaluate(environment))]
    assert builds == [PLATFORMS[platform]]


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
