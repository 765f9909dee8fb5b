"""The whole benchmark: build the models, measure, and return the raw results."""
from __future__ import annotations

import os
import platform
import sys
import time
from dataclasses import dataclass

import torch

from . import crops, host, models, scenarios, sharing


@dataclass
class Options:
    device: str = "cpu"
    family: str = "sd15"
    resolution: int = 256
    working_size: int = 0  # 0: the pack's default for the family (64 SD1.5, 128 SDXL)
    steps: int = 2
    faces: tuple[int, ...] = (1, 2, 4, 8)
    repeats: int = 3
    memory: bool = True
    sharing: bool = True
    face_analysis: bool = True
    crop_counts: tuple[int, ...] = (1, 2, 4, 8)  # crops per ControlNet forward (empty: not measured)
    crops_only: bool = False  # only the crops-per-forward measurement (no U-Net built)


def working_size(options: Options, family: models.Family) -> int:
    return options.working_size or family.working_size


def environment(device: torch.device) -> dict:
    env = {"torch": torch.__version__, "python": sys.version.split()[0], "platform": platform.platform(),
           "cpu_count": os.cpu_count(), "torch_threads": torch.get_num_threads(), "device": str(device)}
    if device.type == "cuda":
        env["gpu"] = torch.cuda.get_device_name(device)
    try:
        import comfyui_version
        env["comfyui"] = comfyui_version.__version__
    except ImportError:
        pass
    return env


def run(options: Options, log=lambda msg: None) -> dict:
    host_dir = host.import_host(options.device)
    host.pack_module("nodes.controls")  # load the pack first: fail before minutes of model building
    device = torch.device(options.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda asked for, but torch sees no CUDA device")
    dtype = torch.float16 if device.type == "cuda" else torch.float32
    family = models.FAMILIES[options.family]
    size = working_size(options, family)
    t0 = time.perf_counter()
    if options.crops_only:
        return {"environment": dict(environment(device), comfyui_path=str(host_dir)),
                "settings": {"family": family.name, "working_size": size, "dtype": str(dtype),
                             "repeats": options.repeats, "crops_only": True},
                "crops": crops.crop_scaling(family, device, dtype, size, list(options.crop_counts),
                                            options.repeats, log=log),
                "seconds": time.perf_counter() - t0}
    log(f"building random-weight {family.name} U-Net and ControlNet on {device}")
    model = models.build_base_model(family, device, dtype)
    controlnet = models.build_controlnet(family, device, dtype)
    setup = scenarios.Setup(family, device, dtype, model, controlnet, options.resolution, size, options.steps,
                            options.repeats)
    faces = list(options.faces)
    results = {
        "environment": dict(environment(device), comfyui_path=str(host_dir)),
        "settings": {"family": family.name, "resolution": options.resolution, "latent": setup.latent,
                     "working_size": size, "hint_pixels": size * 8, "steps": options.steps, "faces": faces,
                     "repeats": options.repeats, "batch": scenarios.BATCH, "dtype": str(dtype),
                     "face_box": scenarios.FACE_SIZE, "margin": 1.6,
                     "unet_parameters": models.parameter_count(model.diffusion_model),
                     "controlnet_parameters": models.parameter_count(controlnet.control_model)},
    }
    results["per_step"] = scenarios.per_step(setup, faces, log)
    results["passes"] = scenarios.passes(setup, faces, log)
    if options.memory:
        results["memory"] = scenarios.local_memory(setup, faces, log)
    if options.crop_counts:
        results["crops"] = crops.crop_scaling(family, device, dtype, size, list(options.crop_counts),
                                              options.repeats, log=log, module=controlnet.control_model)
    if options.sharing:
        log("one copy per model file")
        results["sharing"] = sharing.controlnet_copies(setup)
    if options.face_analysis:
        log("face analysis throughput")
        results["face_analysis"] = sharing.face_analysis()
    results["seconds"] = time.perf_counter() - t0
    return results
