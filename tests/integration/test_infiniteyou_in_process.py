"""InfiniteYou's InfuseNet through RealisID, in-process with ComfyUI's own loaders and FLUX.

- InfuseNet written by diffusers (`FluxControlNetModel.save_pretrained`, InfiniteYou's folder
  layout) and read by ComfyUI's `load_controlnet`: its residuals equal diffusers' forward called
  the way InfiniteYou's pipeline calls it (identity tokens as the only context, zero txt ids,
  pooled text, guidance 1.0, the VAE-latent hint), and ComfyUI repeats each over ceil(19/n) and
  ceil(38/m) of FLUX's blocks.
- The local branch with one face whose crop is the whole frame equals InfuseNet on the whole frame.
"""
import numpy as np
import pytest
import torch

from fixtures import flux_models
from fixtures.host import host_node, load_pack, pack_module

T = 0.7


@pytest.fixture(scope="module")
def infuse():
    diffusers = pytest.importorskip("diffusers")
    load_pack()
    import comfy.controlnet
    folder = flux_models.infusenet_folder()
    comfy_cn = comfy.controlnet.load_controlnet(str(folder / "diffusion_pytorch_model.safetensors"))
    reference = diffusers.FluxControlNetModel.from_pretrained(str(folder), torch_dtype=torch.float32).eval()
    yield {"folder": folder, "comfy": comfy_cn, "diffusers": reference}


def inputs(seed=0, size=8, batch=1):
    g = torch.Generator().manual_seed(seed)
    return dict(latent=torch.randn(batch, 16, size, size, generator=g), hint=torch.randn(batch, 16, size, size, generator=g),
                tokens=torch.randn(batch, 8, 4096, generator=g), pooled=torch.randn(batch, 768, generator=g))


def pack(latent):
    b, c, h, w = latent.shape  # diffusers' _pack_latents
    return latent.view(b, c, h // 2, 2, w // 2, 2).permute(0, 2, 4, 1, 3, 5).reshape(b, h * w // 4, c * 4)


def diffusers_residuals(model, x):
    """InfuseNet called as InfiniteYou's FluxInfuseNetPipeline calls it."""
    b, _, h, w = x["latent"].shape
    ids = torch.zeros(h // 2, w // 2, 3)
    ids[..., 1] += torch.arange(h // 2)[:, None]
    ids[..., 2] += torch.arange(w // 2)[None, :]
    with torch.no_grad():
        double, single = model(hidden_states=pack(x["latent"]), controlnet_cond=pack(x["hint"]), conditioning_scale=1.0,
                               timestep=torch.full((b,), T), guidance=torch.full((b,), 1.0),
                               pooled_projections=x["pooled"], encoder_hidden_states=x["tokens"],
                               txt_ids=torch.zeros(8, 3), img_ids=ids.reshape(-1, 3), return_dict=False)
    return double, single


def comfy_residuals(control_net, x):
    with torch.no_grad():
        return control_net.control_model(x=x["latent"], hint=x["hint"], timesteps=torch.full((x["latent"].shape[0],), T),
                                         context=x["tokens"], y=x["pooled"], guidance=torch.full((x["latent"].shape[0],), 1.0))


def close(a, b, rel=1e-4):
    return float((a - b).abs().max() / b.abs().max()) < rel


def test_infusenet_through_comfyuis_loader_equals_diffusers_forward(infuse):
    import comfy.ldm.flux.controlnet
    cn = infuse["comfy"]
    assert isinstance(cn.control_model, comfy.ldm.flux.controlnet.ControlNetFlux) and cn.control_model.latent_input
    config = flux_models.config_of(infuse["folder"])
    x = inputs()
    double, single = diffusers_residuals(infuse["diffusers"], x)
    out = comfy_residuals(cn, x)
    assert len(double) == config["num_layers"] and len(single) == config["num_single_layers"]
    assert len(out["input"]) == 19 and len(out["output"]) == 38
    assert close(out["input"][0], double[0]) and close(out["output"][0], single[0])
    # each residual serves ceil(19/n) double and ceil(38/m) single blocks: one tensor, repeated
    assert all(r is out["input"][0] for r in out["input"]) and all(r is out["output"][0] for r in out["output"])
    assert pack_module("realisid_core.models.infuse").repeats(19, config["num_layers"]) == 19
