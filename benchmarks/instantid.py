"""python -m benchmarks.instantid: what IdentityNet costs per sampling step, InstantID's way (on
the full frame) against RealisID's (on each face's crop), at SDXL picture sizes.

- InstantID's way: IdentityNet on the whole latent, the keypoint hint drawn at the picture's size,
  the identity tokens as context. One identity per pass: several people (ComfyUI_InstantID's
  multi-ID route) mean one full-frame pass per person, each with its own tokens and hint. Only the
  IdentityNet forwards are counted; that route also runs the U-Net once per person (masked
  conditionings are not batched together), which is not counted here.
- RealisID's way: the pack's LocalBranchControl with InstantID's description (working size 128,
  1024-pixel hints, margin 2.0): every face cropped from the noisy latent, all crops in one
  forward, pasted back; crop/paste/hint glue included.

Both run through ComfyUI's own ControlNet code (comfy.controlnet.ControlNet.get_control), latent
batch 2 (CFG's two sides), every path warmed up, then the median of ≥ 5 interleaved repeats.

On a GPU the IdentityNet is full size (SDXL ControlNet: 320/640/1280 channels, transformer depth
2 and 10, middle 10). On a CPU it is REDUCED so the run finishes: channels 32/64/128 and one
transformer per attention block (middle included). Picture sizes and working size are the real
ones. A reduced net weighs self-attention (quadratic in tokens) more against convolutions than
the full one, so CPU ratios indicate, GPU ratios decide.
"""
from __future__ import annotations

import math
import sys

import numpy as np
import torch

from . import full_vs_crops, host, models, timing
from .run import environment as run_environment

BATCH = 2  # cond + uncond
FACE_SIZE = 0.15  # face box side, fraction of the picture
TOKENS = 16
# InstantID's IdentityNet = an SDXL ControlNet (ComfyUI's ldm config of diffusers' ControlNetModel)
FULL = dict(models.SDXL_UNET)
REDUCED = dict(models.SDXL_UNET, model_channels=32, transformer_depth=[0, 0, 1, 1, 1, 1],
               transformer_depth_output=[0, 0, 0, 1, 1, 1, 1, 1, 1], transformer_depth_middle=1, num_head_channels=32)
KEYPOINTS = np.array([[-0.2, -0.12], [0.2, -0.12], [0.0, 0.08], [-0.15, 0.25], [0.15, 0.25]])  # box frame


def face_boxes(faces: int) -> torch.Tensor:
    """`faces` boxes of FACE_SIZE on a grid over the picture, apart from each other and the border."""
    cols = math.ceil(math.sqrt(faces))
    rows = math.ceil(faces / cols)
    return torch.tensor([[(c + 0.5) / cols, (r + 0.5) / rows, FACE_SIZE, FACE_SIZE]
                         for r in range(rows) for c in range(cols)][:faces], dtype=torch.float64)


class Bench:
    def __init__(self, device: torch.device, dtype: torch.dtype, reduced: bool, seed: int = 0):
        self.device, self.dtype, self.reduced = device, dtype, reduced
        config = REDUCED if reduced else FULL
        self.family = models.Family("IdentityNet (reduced)" if reduced else "IdentityNet (SDXL)", config, "SDXL", 128)
        self.model = models.build_base_model(self.family, device, dtype)  # only for model sampling and the layout
        self.controlnet = models.build_controlnet(self.family, device, dtype)
        self.generator = torch.Generator().manual_seed(seed)

    def randn(self, *shape):
        return torch.randn(*shape, generator=self.generator).to(self.device, self.dtype)

    def cond(self, tokens):
        return {"c_crossattn": self.randn(BATCH, 77, 2048), "y": self.randn(BATCH, 2816), "crossattn_controlnet": tokens}

    def poses(self, boxes, side):
        pose = host.pack_module("realisid_core.faces.pose").FacePose
        out = []
        for cx, cy, w, h in boxes.tolist():
            px = np.array([cx * side, cy * side])
            s = max(w, h) * side
            out.append(pose.from_points(KEYPOINTS * s + px, (px[0] - s / 2, px[1] - s / 2, px[0] + s / 2, px[1] + s / 2)))
        return out

    def instantid_way(self, resolution: int, faces: int):
        """One full-frame IdentityNet control per person (its hint: that person's keypoints on the picture)."""
        draw = host.pack_module("realisid_core.signals.hints").draw_instantid_keypoints
        boxes = face_boxes(faces)
        controls = []
        for f, pose in enumerate(self.poses(boxes, resolution)):
            cx, cy = boxes[f, 0] * resolution, boxes[f, 1] * resolution
            points = pose.placed(5, float(cx), float(cy), float(boxes[f, 2] * resolution))
            hint = torch.from_numpy(draw(points, resolution)).movedim(-1, 0)[None].float() / 255
            c = self.controlnet.copy().set_cond_hint(hint, 0.8, (0.0, 1.0))
            c.pre_run(self.model, self.model.model_sampling.percent_to_sigma)
            controls.append((c, self.cond(self.randn(BATCH, TOKENS, 2048))))

        def step(x, sigma):
            return [c.get_control(x, sigma, cond, BATCH, {}) for c, cond in controls]
        return step, faces

    def realisid_way(self, resolution: int, faces: int, working_size: int | None = None):
        controls = host.pack_module("nodes.controls")
        described = host.pack_module("realisid_core.models.description").INSTANTID_IDENTITYNET
        settings = host.pack_module("realisid_core.branches.local").LocalBranchSettings(working_size or described.working_size,
                                                                                       described.margin, 0.15)
        tokens = host.pack_module("realisid_core.people.identity").IdentityTokens(
            torch.randn(faces, TOKENS, 2048, generator=self.generator), torch.randn(1, TOKENS, 2048))
        boxes = face_boxes(faces)
        locations = host.pack_module("realisid_core.people.locations").FaceLocations(boxes, resolution, resolution)
        spec = controls.LocalBranchSpec(locations, tuple(self.poses(boxes, resolution)), described.hint_format, tokens,
                                        torch.ones(faces), settings)
        c = controls.LocalBranchControl.from_controlnet(self.controlnet, spec)
        c.set_cond_hint(None, 0.8, (0.0, 1.0))
        c.pre_run(self.model, self.model.model_sampling.percent_to_sigma)
        cond = self.cond(None)
        del cond["crossattn_controlnet"]
        options = {"cond_or_uncond": [0, 1]}

        def step(x, sigma):
            return c.get_control(x, sigma, cond, BATCH, options)
        return step, 1


def run(device: str = "cpu", resolutions=(1024, 1536), faces=(1, 4), repeats: int = 5, full: bool | None = None,
        log=lambda msg: None, working_size: int = 128) -> dict:
    """`working_size`: InstantID's 128 (smaller only for a smoke run)."""
    host.import_host(device)
    host.pack_module("nodes.controls")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda asked for, but torch sees no CUDA device")
    reduced = dev.type != "cuda" if full is None else not full
    dtype = torch.float16 if dev.type == "cuda" else torch.float32
    log(f"building a random-weight {'reduced ' if reduced else ''}IdentityNet on {dev}")
    bench = Bench(dev, dtype, reduced)
    rows = []
    for resolution in resolutions:
        latent = resolution // 8
        x = bench.randn(BATCH, 4, latent, latent)
        sigma = torch.full((BATCH,), float(bench.model.model_sampling.percent_to_sigma(0.2)), device=dev)
        for f in faces:
            log(f"{resolution}² px, {f} face(s): full frame vs crops")
            full_step, full_forwards = bench.instantid_way(resolution, f)
            crop_step, crop_forwards = bench.realisid_way(resolution, f, working_size)
            t = timing.time_paired({"full": lambda: full_step(x, sigma), "crops": lambda: crop_step(x, sigma)},
                                   dev, repeats)
            rows.append({"resolution": resolution, "faces": f, "full_frame": t["full"], "crops": t["crops"],
                         "full_forwards": full_forwards, "crop_forwards": crop_forwards,
                         "ratio": timing.paired_ratio(t["crops"], t["full"])})
    return {"rows": rows, "settings": {"device": str(dev), "dtype": str(dtype), "reduced": reduced,
                                       "repeats": repeats, "working_size": working_size, "batch": BATCH,
                                       "face_box": FACE_SIZE, "controlnet": bench.family.name,
                                       "controlnet_parameters": models.parameter_count(bench.controlnet.control_model)},
            "environment": run_environment(dev)}


def markdown(results: dict) -> str:
    s = results["settings"]
    lines = [f"IdentityNet per sampling step ({s['controlnet']}, {s['controlnet_parameters'] / 1e6:.0f} M parameters, "
             f"{s['device']}{', REDUCED depth and width' if s['reduced'] else ''}; latent batch {s['batch']} (CFG), "
             f"{s['dtype']}, median of {s['repeats']} after warm-up)", "",
             f"| Picture | Faces | InstantID's way: full frame (forwards) | RealisID: crops at working size {s.get('working_size', 128)} "
             "(forwards) | Crops / full frame |", "|---|---:|---:|---:|---:|"]
    lines += full_vs_crops.table_rows(results)
    return "\n".join(lines)


def main(argv=None) -> int:
    return full_vs_crops.main(argv, "instantid", __doc__, run, markdown, 64, "IdentityNet")


if __name__ == "__main__":
    sys.exit(main())
