"""The example workflows: UI files and API twins agree, and the twins run in a real ComfyUI.

The server gets the files the workflows name (tiny random-weight models under the real names,
insightface packs in the real signatures, reference photos) and runs each twin at a small size.
"""
import json
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

from tools.workflow_format import ui_to_api

pytest.importorskip("insightface")
pytest.importorskip("onnx")
skimage_data = pytest.importorskip("skimage.data")

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
EXAMPLES = sorted(p.stem for p in WORKFLOWS.glob("*.json"))
FAST = {"EmptyLatentImage": {"width": 128, "height": 96}, "RealisID_LocationGuidance": {"width": 128, "height": 96},
        "KSampler": {"steps": 2}, "RealisID_ApplyLocalBranch": {"working_size": 32},
        "RealisID_PoseExpression": {"hint_size": 256}}


@pytest.fixture(scope="module")
def workflow_server(server, tiny, tmp_path_factory):
    """The test server, given every file the example workflows name."""
    import torch
    from safetensors.torch import save_file

    from fixtures.fake_insightface import fake_insightface_root, paint_face
    from fixtures.host import pack_module
    links = {"checkpoints/v1-5-pruned-emaonly.safetensors": tiny["sd15"],
             "controlnet/realisid_local_sd15.safetensors": tiny["sd15_cn"],
             "controlnet/realisid_global_sd15.safetensors": tiny["sd15_cn_b"],
             "insightface/models/antelopev2": Path(fake_insightface_root()) / "models" / "antelopev2"}
    projector = tmp_path_factory.mktemp("projector") / "projector.safetensors"
    torch.manual_seed(0)
    weights = pack_module("realisid_core.id_projector").IDProjector(512, 4, 768).state_dict()
    save_file({k: v.contiguous() for k, v in weights.items()}, str(projector))
    links["realisid/realisid_id_projector_sd15.safetensors"] = projector
    for name, source in links.items():
        target = server.models / name
        target.parent.mkdir(parents=True, exist_ok=True)
        if not target.exists():
            target.symlink_to(source)
    astronaut = np.ascontiguousarray(skimage_data.astronaut()[..., ::-1])
    for name, (cx, cy, side) in {"realisid_person_1.png": (384, 128, 60), "realisid_person_2.png": (128, 384, 56),
                                 "realisid_pose.png": (256, 256, 64)}.items():
        Image.fromarray(paint_face(astronaut, cx, cy, side)[..., ::-1]).save(server.root / "input" / name)
    return server


@pytest.mark.parametrize("name", EXAMPLES)
def test_ui_workflow_and_api_twin_agree(server, name):
    ui = json.loads((WORKFLOWS / f"{name}.json").read_text())
    twin = json.loads((WORKFLOWS / "api" / f"{name}.json").read_text())
    assert ui_to_api(ui, server.object_info()) == twin


@pytest.mark.parametrize("name", EXAMPLES)
def test_api_twin_runs_in_comfyui(workflow_server, name):
    graph = json.loads((WORKFLOWS / "api" / f"{name}.json").read_text())
    for node in graph.values():
        node["inputs"].update(FAST.get(node["class_type"], {}))
    files = workflow_server.images(workflow_server.run(graph))
    saved = [f for f in files if f.name.startswith("RealisID_")]
    assert len(saved) == 1
    picture = np.asarray(Image.open(saved[0]))
    assert picture.shape == (96, 128, 3) and picture.std() > 0
