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
pytest.importorskip("skimage.data")

WORKFLOWS = Path(__file__).resolve().parents[2] / "workflows"
EXAMPLES = sorted(p.stem for p in WORKFLOWS.glob("*.json"))
FAST = {"EmptyLatentImage": {"width": 128, "height": 96}, "RealisID_LocationGuidance": {"width": 128, "height": 96},
        "KSampler": {"steps": 2}, "RealisID_ApplyLocalBranch": {"working_size": 32},
        "RealisID_PoseExpression": {"hint_size": 256}}


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
