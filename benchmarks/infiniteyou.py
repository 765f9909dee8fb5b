"""python -m benchmarks.infiniteyou: what InfuseNet costs per sampling step, InfiniteYou's way (on the
full frame) against RealisID's (on each face's crop), at FLUX picture sizes.

- InfiniteYou's way: InfuseNet on the whole latent's tokens with the person's identity tokens. One
  identity per pass: several people (ComfyUI_InfiniteYou's multi-ID route, a masked InfuseNet per
  person) mean one full-frame pass per person. Only InfuseNet's forwards are counted, not FLUX's.
- RealisID's way: the pack's InfuseNetControl at InfiniteYou's description (working size 128 = 1024
  pixels per face, margin 2.0): every face cropped, all crops in one forward, residual tokens pasted
  back onto the picture's token grid; crop/paste glue included.

Both go through ComfyUI's own FLUX ControlNet (comfy.ldm.flux.controlnet.ControlNetFlux), latent
batch 1 (FLUX-dev: no unconditional pass), the hints as ready latents (the VAE encode, once per
size, is left out of both), every path warmed up, then the median of ≥ 5 interleaved repeats.

InfuseNet's block counts are not published in the code; the real one is FLUX-wide (hidden 3072).
On a CPU the net is REDUCED so the run finishes: hidden 256 (4 heads), 2 double and 4 single
blocks. Picture sizes and working size are the real ones. A narrow net weighs attention
(quadratic in tokens) more against its linear layers than the full one, so CPU ratios indicate,
GPU ratios decide.
"""
from __future__ import annotations

import sys

import numpy as np
import torch

from . import full_vs_crops, host, timing
from .instantid import KEYPOINTS, face_boxes
from .run import environment as run_environment

TOKENS = 8
FULL = dict(in_channels=16, out_channels=16, vec_in_dim=768, context_in_dim=4096, hidden_size=3072, mlp_ratio=4.0,
            num_heads=24, depth=5, depth_single_blocks=10, axes_dim=[16, 56, 56], theta=10000, patch_size=2,
            qkv_bias=True, guidance_embed=True)  # block counts assumed (InstantX's FLUX ControlNet's shape)
REDUCED = dict(FULL, hidden_size=256, num_heads=4, depth=2, depth_single_blocks=4, axes_dim=[8, 28, 28])


def build(config: dict, device, dtype):
    """A random-weight InfuseNet-shaped ControlNet as ComfyUI's loader makes it, and FLUX's model sampling."""
    import comfy.controlnet
    import comfy.latent_formats
    import comfy.ldm.flux.controlnet
    import comfy.model_base
    import comfy.ops
    import comfy.supported_models
    model = comfy.ldm.flux.controlnet.ControlNetFlux(latent_input=True, control_latent_channels=16,
                                                     operations=comfy.ops.manual_cast, device=device, dtype=dtype,
                                                     **config)
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            p.copy_((torch.randn(p.shape, generator=gen) / max(1, p.shape[-1]) ** 0.5).to(p.dtype))
    control = comfy.controlnet.ControlNet(model, compression_ratio=1, latent_format=comfy.latent_formats.Flux(),
                                          load_device=device, extra_conds=["y", "guidance"])
    flux = comfy.supported_models.Flux({"image_model": "flux", "guidance_embed": True})
    sampling = comfy.model_base.model_sampling(flux, comfy.model_base.ModelType.FLUX)
    return control, sampling


class ModelStub:
    """What a control's pre_run reads of the sampled model."""

    def __init__(self, sampling):
        self.model_sampling = sampling
        self.model_config = type("Config", (), {"unet_config": {"image_model": "flux"}})()


class Bench:
    def __init__(self, device: torch.device, dtype: torch.dtype, reduced: bool):
        self.device, self.dtype, self.reduced = device, dtype, reduced
        self.control, sampling = build(REDUCED if reduced else FULL, device, dtype)
        self.model = ModelStub(sampling)
        self.generator = torch.Generator().manual_seed(1)

    def randn(self, *shape):
        return torch.randn(*shape, generator=self.generator).to(self.device, self.dtype)

    def cond(self):
        return {"c_crossattn": self.randn(1, 512, 4096), "y": self.randn(1, 768), "guidance": self.randn(1)}

    def infiniteyou_way(self, latent: int, faces: int):
        """One full-frame InfuseNet per person, its identity tokens as context and its own hint latent."""
        controls = []
        for _ in range(faces):
            c = self.control.copy().set_cond_hint(None, 1.0, (0.0, 1.0))
            c.pre_run(self.model, self.model.model_sampling.percent_to_sigma)
            c.cond_hint = self.randn(1, 16, latent, latent)  # the VAE-encoded keypoints, ready
            cond = self.cond()
            cond["crossattn_controlnet"] = self.randn(1, TOKENS, 4096)
            controls.append((c, cond))

        def step(x, sigma):
            return [c.get_control(x, sigma, cond, 1, {}) for c, cond in controls]
        return step, faces

    def realisid_way(self, resolution: int, faces: int):
        flux_control = host.pack_module("nodes.flux_control")
        controls = host.pack_module("nodes.controls")
        infuse = host.pack_module("realisid_core.models.infuse")
        described = infuse.INFINITEYOU_INFUSENET
        settings = host.pack_module("realisid_core.branches.local").LocalBranchSettings(described.working_size,
                                                                                       described.margin, 0.15)
        tokens = host.pack_module("realisid_core.people.identity").IdentityTokens(
            torch.randn(faces, TOKENS, 4096, generator=self.generator), torch.zeros(1, TOKENS, 4096))
        boxes = face_boxes(faces)
        locations = host.pack_module("realisid_core.people.locations").FaceLocations(boxes, resolution, resolution)
        pose = host.pack_module("realisid_core.faces.pose").FacePose
        poses = []
        for cx, cy, w, _ in boxes.tolist():
            s, px = w * resolution, np.array([cx, cy]) * resolution
            poses.append(pose.from_points(KEYPOINTS * s + px, (px[0] - s / 2, px[1] - s / 2, px[0] + s / 2, px[1] + s / 2)))
        spec = flux_control.InfuseSpec(controls.LocalBranchSpec(locations, tuple(poses), described.hint_format, tokens,
                                                                torch.ones(faces), settings))
        c = flux_control.InfuseNetControl.from_controlnet(self.control, spec)
        c.set_cond_hint(None, 1.0, (0.0, 1.0))
        c.pre_run(self.model, self.model.model_sampling.percent_to_sigma)
        latent = resolution // 8
        c.cond_hint = self.randn(faces, 16, described.working_size, described.working_size)
        c.hint_latent = (latent, latent)
        cond = self.cond()

        def step(x, sigma):
            return c.get_control(x, sigma, cond, 1, {"cond_or_uncond": [0]})
        return step, 1


def run(device: str = "cpu", resolutions=(1024, 1536), faces=(1, 4), repeats: int = 5, full: bool | None = None,
        log=lambda msg: None) -> dict:
    host.import_host(device)
    host.pack_module("nodes.flux_control")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda asked for, but torch sees no CUDA device")
    reduced = dev.type != "cuda" if full is None else not full
    dtype = torch.bfloat16 if dev.type == "cuda" else torch.float32
    log(f"building a random-weight {'reduced ' if reduced else ''}InfuseNet on {dev}")
    bench = Bench(dev, dtype, reduced)
    rows = []
    with torch.no_grad():
        for resolution in resolutions:
            latent = resolution // 8
            x = bench.randn(1, 16, latent, latent)
            sigma = torch.full((1,), 0.8, device=dev)
            for f in faces:
                log(f"{resolution}² px, {f} face(s): full frame vs crops")
                full_step, full_forwards = bench.infiniteyou_way(latent, f)
                crop_step, crop_forwards = bench.realisid_way(resolution, f)
                t = timing.time_paired({"full": lambda: full_step(x, sigma), "crops": lambda: crop_step(x, sigma)},
                                       dev, repeats)
                rows.append({"resolution": resolution, "faces": f, "full_frame": t["full"], "crops": t["crops"],
                             "full_forwards": full_forwards, "crop_forwards": crop_forwards,
                             "ratio": timing.paired_ratio(t["crops"], t["full"])})
    parameters = sum(p.numel() for p in bench.control.control_model.parameters())
    return {"rows": rows, "settings": {"device": str(dev), "dtype": str(dtype), "reduced": reduced, "repeats": repeats,
                                       "working_size": 128, "face_box": 0.15, "controlnet_parameters": parameters,
                                       "controlnet": "InfuseNet (reduced)" if reduced else "InfuseNet-shaped (FLUX)"},
            "environment": run_environment(dev)}


def markdown(results: dict) -> str:
    s = results["settings"]
    lines = [f"InfuseNet per sampling step ({s['controlnet']}, {s['controlnet_parameters'] / 1e6:.0f} M parameters, "
             f"{s['device']}{', REDUCED depth and width' if s['reduced'] else ''}; latent batch 1 (FLUX-dev), "
             f"{s['dtype']}, median of {s['repeats']} after warm-up)", "",
             "| Picture | Faces | InfiniteYou's way: full frame (forwards) | RealisID: crops at working size 128 "
             "(forwards) | Crops / full frame |", "|---|---:|---:|---:|---:|"]
    lines += full_vs_crops.table_rows(results)
    return "\n".join(lines)


def main(argv=None) -> int:
    return full_vs_crops.main(argv, "infiniteyou", __doc__, run, markdown, 16, "InfuseNet")


if __name__ == "__main__":
    sys.exit(main())
