"""Does one model file stay one copy in memory, and how fast is face analysis on the CPU?"""
from __future__ import annotations

import os
import tempfile
import time

import numpy as np
import torch

from . import models
from .host import pack_module


def _storage_bytes(module: torch.nn.Module) -> int:
    return sum(p.numel() * p.element_size() for p in module.state_dict().values())


def _same_weights(a: torch.nn.Module, b: torch.nn.Module) -> bool:
    pa, pb = next(a.parameters()), next(b.parameters())
    return pa.data_ptr() == pb.data_ptr()


def controlnet_copies(setup) -> dict:
    """One ControlNet file loaded twice with ComfyUI's loader (what 'Load ControlNet Model' runs, and
    what the pack's Apply nodes take), and one loaded ControlNet given to two RealisID nodes."""
    import comfy.controlnet
    from safetensors.torch import save_file
    cn = models.build_controlnet(models.FAMILIES["shallow_sd15"], torch.device("cpu"), torch.float32, seed=5)
    with tempfile.TemporaryDirectory(prefix="realisid-bench-") as tmp:
        path = os.path.join(tmp, "controlnet.safetensors")
        save_file({k: v.to(torch.float16).contiguous() for k, v in cn.control_model.state_dict().items()}, path)
        first = comfy.controlnet.load_controlnet(path)
        second = comfy.controlnet.load_controlnet(path)
    two_loads_share = _same_weights(first.control_model, second.control_model)
    controls = pack_module("nodes.controls")
    glob = controls.GlobalBranchControl.from_controlnet(setup.controlnet, controls.GlobalBranchSpec())
    from .scenarios import local_control
    local = local_control(setup, 1)
    copied = local.copy()
    nodes_share = all(c.control_model is setup.controlnet.control_model for c in (glob, local, copied))
    return {
        "loader_two_loads_share_weights": two_loads_share,
        "loader_copy_bytes": _storage_bytes(first.control_model),
        "nodes_on_one_loaded_controlnet_share_weights": nodes_share,
        "controlnet_bytes": _storage_bytes(setup.controlnet.control_model),
    }


def face_analysis(images: int = 20) -> dict:
    """Images per second through realisid_core.faces.analyzer on the CPU, with the fake packs of tools/fake_insightface.py
    (real file signatures, tiny graphs): the pipeline's own cost, not the real models' compute."""
    try:
        import onnxruntime  # noqa: F401
        from tools.fake_insightface import fake_insightface_root, paint_face
    except ImportError as e:
        return {"status": f"not measured: {e}"}
    analyzer_mod = pack_module("realisid_core.faces.analyzer")
    packs = pack_module("realisid_core.faces.packs")
    folder = packs.find_pack_folder([fake_insightface_root()], "antelopev2")
    a = analyzer_mod.get_analyzer(folder, "antelopev2", "CPU", 640)
    b = analyzer_mod.get_analyzer(folder, "antelopev2", "CPU", 640)
    rng = np.random.default_rng(0)
    picture = rng.integers(0, 255, (512, 512, 3), dtype=np.uint8)
    picture = paint_face(paint_face(picture, 128, 128, 64), 384, 320, 64)
    found = len(a.analyze(picture))  # warm-up
    start = time.perf_counter()
    for _ in range(images):
        a.analyze(picture)
    seconds = time.perf_counter() - start
    return {"status": "measured", "pack": "antelopev2 (test pack: real signatures, tiny graphs)",
            "images": images, "picture": "512x512, 2 faces", "faces_found": found,
            "images_per_s": images / seconds, "two_loads_same_analyzer": a is b,
            "providers": list(a.active_providers)}
