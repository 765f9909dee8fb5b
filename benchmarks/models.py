"""Random-weight models in the real architectures: ComfyUI's BaseModel/UNetModel and cldm.ControlNet.

Weights are drawn in place with a fixed seed (fan-in scaled, as the tests' tiny models are):
speed and memory depend on the shapes, not on the values. The U-Net goes through ComfyUI's
own model config classes (supported_models.SD15 / SDXL), so `apply_model` is the sampler's path.
"""
from __future__ import annotations

import math
from dataclasses import dataclass, field

import torch

# SD1.5 as ComfyUI's detection reads a real checkpoint (model_detection.detect_unet_config)
SD15_UNET = dict(image_size=32, in_channels=4, out_channels=4, model_channels=320, num_res_blocks=[2, 2, 2, 2],
                 channel_mult=[1, 2, 4, 4], transformer_depth=[1, 1, 1, 1, 1, 1, 0, 0],
                 transformer_depth_output=[1, 1, 1, 1, 1, 1, 1, 1, 1, 0, 0, 0], transformer_depth_middle=1,
                 context_dim=768, num_heads=8, num_head_channels=-1, use_spatial_transformer=True,
                 use_linear_in_transformer=False, legacy=False, adm_in_channels=None,
                 use_temporal_attention=False, use_temporal_resblock=False)
# SDXL base
SDXL_UNET = dict(image_size=32, in_channels=4, out_channels=4, model_channels=320, num_res_blocks=[2, 2, 2],
                 channel_mult=[1, 2, 4], transformer_depth=[0, 0, 2, 2, 10, 10],
                 transformer_depth_output=[0, 0, 0, 2, 2, 2, 10, 10, 10], transformer_depth_middle=10,
                 context_dim=2048, num_head_channels=64, use_spatial_transformer=True,
                 use_linear_in_transformer=True, legacy=False, adm_in_channels=2816, num_classes="sequential",
                 use_temporal_attention=False, use_temporal_resblock=False)
# a toy of the SD1.5 shape for the smoke test (not a figure anyone should quote)
TOY_UNET = dict(SD15_UNET, model_channels=32, num_res_blocks=[1, 1], channel_mult=[1, 2],
                transformer_depth=[1, 1], transformer_depth_output=[1, 1, 1, 1], num_heads=2)
# shallow but SD1.5-detected by ComfyUI's loader (context 768, 320 channels): for the one-copy check
SHALLOW_SD15_UNET = dict(SD15_UNET, num_res_blocks=[1, 1], channel_mult=[1, 1], transformer_depth=[1, 1],
                         transformer_depth_output=[1, 1, 1, 1])
_CONTROL_ONLY = {"out_channels", "transformer_depth_output", "use_temporal_attention", "use_temporal_resblock"}


@dataclass(frozen=True)
class Family:
    name: str
    unet_config: dict = field(repr=False)
    config_class: str  # comfy.supported_models class
    working_size: int  # the local branch's working size S the pack uses by default
    tokens: int = 16  # identity tokens per face

    @property
    def context_dim(self) -> int:
        return self.unet_config["context_dim"]

    @property
    def adm(self) -> int | None:
        return self.unet_config.get("adm_in_channels")


FAMILIES = {
    "sd15": Family("SD1.5", SD15_UNET, "SD15", 64),
    "sdxl": Family("SDXL", SDXL_UNET, "SDXL", 128),
    "shallow_sd15": Family("shallow SD1.5", SHALLOW_SD15_UNET, "SD15", 16),
    "toy": Family("toy (SD1.5-shaped, 32 channels)", TOY_UNET, "SD15", 16),
}


@torch.no_grad()
def randomize_(module: torch.nn.Module, seed: int) -> torch.nn.Module:
    """Fan-in scaled normal weights, norm scales 1, small biases; in place, on the module's device."""
    device = next(module.parameters()).device
    gen = torch.Generator(device=device).manual_seed(seed)
    for name, p in module.state_dict().items():
        if not p.is_floating_point():
            continue
        if p.ndim >= 2:
            p.normal_(0, 1 / math.sqrt(math.prod(p.shape[1:])), generator=gen)
        elif name.endswith("weight"):
            p.fill_(1)
        else:
            p.normal_(0, 0.02, generator=gen)
    return module


def build_base_model(family: Family, device: torch.device, dtype: torch.dtype, seed: int = 1):
    """ComfyUI's BaseModel (model sampling, extra conds, apply_model) around a random U-Net."""
    import comfy.supported_models
    config = getattr(comfy.supported_models, family.config_class)(dict(family.unet_config))
    config.set_inference_dtype(dtype, None)
    model = config.get_model({}, device=device)
    randomize_(model.diffusion_model, seed)
    return model.eval()


def build_controlnet(family: Family, device: torch.device, dtype: torch.dtype, seed: int = 10):
    """A comfy.controlnet.ControlNet (what 'Load ControlNet Model' returns) around a random cldm.ControlNet."""
    import comfy.cldm.cldm
    import comfy.controlnet
    import comfy.ops
    config = {k: v for k, v in family.unet_config.items() if k not in _CONTROL_ONLY}
    model = comfy.cldm.cldm.ControlNet(hint_channels=3, **config, dtype=dtype, device=device,
                                       operations=comfy.ops.disable_weight_init)
    randomize_(model, seed).eval()
    return comfy.controlnet.ControlNet(model, load_device=device, manual_cast_dtype=None)


def parameter_count(module: torch.nn.Module) -> int:
    return sum(p.numel() for p in module.parameters())
