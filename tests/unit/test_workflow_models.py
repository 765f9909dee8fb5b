"""The example workflows carry their public model files the way ComfyUI's editor reads them, so its
missing-models dialog lists each with its download address (read from comfyui-frontend-package 1.27's
loadGraphData and MissingModelsWarning): `properties.models` on the loader node, entries
{name, url, directory}; an entry counts only if `name` is one of the node's widget values; the dialog
offers a download only from huggingface.co or civitai.com and for names ending in .safetensors/.sft
(other files are listed with their address)."""
import json
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
UI_WORKFLOWS = sorted((REPO / "workflows").glob("*.json"))
ALLOWED_SOURCES = ("https://huggingface.co/", "https://civitai.com/")
DOWNLOADABLE_SUFFIXES = (".safetensors", ".sft")
MODEL_FOLDERS = {"checkpoints", "controlnet", "instantid", "realisid", "insightface", "diffusion_models", "vae",
                 "text_encoders", "infinite_you", "facexlib"}
PUBLIC_FILES = {"sd_xl_base_1.0.safetensors", "v1-5-pruned-emaonly-fp16.safetensors",
                "instantid_identitynet.safetensors", "ip-adapter.bin", "flux1-dev.safetensors", "ae.safetensors",
                "clip_l.safetensors", "t5xxl_fp16.safetensors", "aes_stage2/image_proj_model.bin",
                "aes_stage2/InfuseNetModel/diffusion_pytorch_model.safetensors", "recognition_arcface_ir_se50.pth"}


def recorded(node):
    return node.get("properties", {}).get("models", [])


@pytest.mark.parametrize("path", UI_WORKFLOWS, ids=lambda p: p.stem)
def test_each_recorded_model_is_one_the_editor_lists_with_its_address(path):
    nodes = json.loads(path.read_text())["nodes"]
    entries = [(n, m) for n in nodes for m in recorded(n)]
    assert entries, f"{path.name} records no model files"
    for node, model in entries:
        assert set(model) >= {"name", "url", "directory"}, model
        assert model["name"] in [v for v in node.get("widgets_values", []) if isinstance(v, str)], \
            f"{path.name}: {model['name']} is not a widget value of its {node['type']} node: the editor ignores it"
        if model["name"].endswith(DOWNLOADABLE_SUFFIXES):  # the dialog downloads these from its sources only
            assert model["url"].startswith(ALLOWED_SOURCES), model["url"]
        else:  # listed with their address (facexlib publishes its recogniser on GitHub)
            assert model["url"].startswith("https://"), model["url"]
        assert model["directory"] in MODEL_FOLDERS, model["directory"]


@pytest.mark.parametrize("path", UI_WORKFLOWS, ids=lambda p: p.stem)
def test_every_public_file_a_workflow_loads_is_recorded(path):
    nodes = json.loads(path.read_text())["nodes"]
    named = {v for n in nodes for v in n.get("widgets_values", []) if isinstance(v, str) and v in PUBLIC_FILES}
    listed = {m["name"] for n in nodes for m in recorded(n)}
    assert named and named <= listed, f"{path.name}: {sorted(named - listed)} loaded but not recorded"
    checkpoints = [m for n in nodes for m in recorded(n) if m["directory"] in ("checkpoints", "diffusion_models")]
    assert checkpoints and all(m["name"].endswith(DOWNLOADABLE_SUFFIXES) for m in checkpoints)  # one click
