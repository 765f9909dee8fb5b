"""The measurements: one sampling step with and without the branches, the local branch batched and
sequential with its glue split out, a RealisID pass against the detailer route, peak memory.

Everything goes through the code ComfyUI runs while sampling: BaseModel.apply_model with the
merged control dict, comfy.controlnet.ControlNet.get_control, and the pack's GlobalBranchControl
and LocalBranchControl (crop → ControlNet forward(s) → paste, in realisid_core.branches.local).
Latent batch 2 throughout: cond and uncond of classifier-free guidance in one call, as
ComfyUI's sampler batches them.
"""
from __future__ import annotations

import math
import statistics
import time
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from . import memory, timing
from .host import pack_module
from .models import Family

BATCH = 2  # cond + uncond
FACE_SIZE = 0.15  # face box side as a fraction of the picture


@dataclass
class Setup:
    family: Family
    device: torch.device
    dtype: torch.dtype
    model: object  # comfy.model_base.BaseModel
    controlnet: object  # comfy.controlnet.ControlNet
    resolution: int
    working_size: int
    steps: int
    repeats: int
    seed: int = 0

    @property
    def latent(self) -> int:
        return self.resolution // 8

    def tensor(self, *shape, scale=1.0):
        gen = torch.Generator().manual_seed(self.seed + len(shape) + sum(shape))
        return (torch.randn(*shape, generator=gen) * scale).to(self.device, self.dtype)

    def cond(self) -> dict:
        c = {"c_crossattn": self.tensor(BATCH, 77, self.family.context_dim)}
        if self.family.adm:
            c["y"] = self.tensor(BATCH, self.family.adm)
        return c

    def sigmas(self) -> torch.Tensor:
        ms = self.model.model_sampling
        return torch.linspace(float(ms.sigma_max) / 2, float(ms.sigma_min) * 2, max(2, self.steps))[:self.steps]


def face_locations(faces: int, resolution: int):
    """`faces` boxes of FACE_SIZE on a grid over the picture (never touching each other or the border)."""
    locations = pack_module("realisid_core.people.locations")
    cols = math.ceil(math.sqrt(faces))
    rows = math.ceil(faces / cols)
    boxes = [[(c + 0.5) / cols, (r + 0.5) / rows, FACE_SIZE, FACE_SIZE]
             for r in range(rows) for c in range(cols)][:faces]
    return locations.FaceLocations(torch.tensor(boxes, dtype=torch.float64), resolution, resolution)


class TimedModule:
    """Stands in for a ControlNet's module inside a control object, timing every forward."""

    def __init__(self, module, watch: timing.Stopwatch):
        self._module, self._call = module, watch.wrap(module.__call__)

    def __call__(self, *args, **kwargs):
        return self._call(*args, **kwargs)

    def __getattr__(self, name):
        return getattr(self._module, name)


def _pre_run(control, setup: Setup):
    control.pre_run(setup.model, setup.model.model_sampling.percent_to_sigma)
    return control


def global_control(setup: Setup):
    controls = pack_module("nodes.controls")
    spec = controls.GlobalBranchSpec(face_locations(4, setup.resolution))
    c = controls.GlobalBranchControl.from_controlnet(setup.controlnet, spec)
    c.set_cond_hint(None, 1.0, (0.0, 1.0))
    return _pre_run(c, setup)


def local_control(setup: Setup, faces: int, sequential: bool = False, previous=None):
    controls = pack_module("nodes.controls")
    local_branch = pack_module("realisid_core.branches.local")
    settings = local_branch.LocalBranchSettings(setup.working_size, 1.6, 0.15)
    tokens = pack_module("realisid_core.people.identity").IdentityTokens(
        torch.randn(faces, setup.family.tokens, setup.family.context_dim) * 0.5,
        torch.randn(1, setup.family.tokens, setup.family.context_dim) * 0.5)
    poses = (pack_module("realisid_core.faces.pose").frontal_pose(),) * faces
    spec = controls.LocalBranchSpec(face_locations(faces, setup.resolution), poses, "realisid-pose-v1-68", tokens,
                                    torch.ones(faces), settings)
    c = controls.LocalBranchControl.from_controlnet(setup.controlnet, spec)
    c.set_cond_hint(None, 1.0, (0.0, 1.0))
    # the two ends the pack's crop budget chooses between: one forward per face (its B crops), or one
    # forward over all B×F crops — the same total work
    c._max_crops = (lambda device, dtype, size, crops: BATCH) if sequential else (lambda device, dtype, size, crops: crops)
    if previous is not None:
        c.set_previous_controlnet(previous)
    return _pre_run(c, setup)


def detailer_control(setup: Setup):
    """A plain ControlNet on the face crop, hint at the crop's pixel size (what a detailer pass applies)."""
    c = setup.controlnet.copy()
    size = setup.working_size * 8
    c.set_cond_hint(torch.rand(1, 3, size, size, generator=torch.Generator().manual_seed(3)), 1.0, (0.0, 1.0))
    return _pre_run(c, setup)


def step(setup: Setup, x, sigma, cond, control=None):
    """One denoiser call of the sampler: controls' residuals, then the U-Net with them."""
    residuals = None if control is None else control.get_control(x, sigma, cond, BATCH, {})
    return setup.model.apply_model(x, sigma, c_crossattn=cond["c_crossattn"], control=residuals,
                                   transformer_options={}, **{k: v for k, v in cond.items() if k == "y"})


def per_step(setup: Setup, faces_list: list[int], log) -> dict:
    """ms per sampling step: U-Net alone, + global branch, local branch alone batched/sequential with glue."""
    x = setup.tensor(BATCH, 4, setup.latent, setup.latent)
    sigma = torch.full((BATCH,), float(setup.sigmas()[0]), device=setup.device)
    cond = setup.cond()
    glob = global_control(setup)
    log("U-Net alone, U-Net + global branch, global branch alone")
    out = timing.time_paired({"unet": lambda: step(setup, x, sigma, cond),
                              "unet_global": lambda: step(setup, x, sigma, cond, glob),
                              "global_alone": lambda: glob.get_control(x, sigma, cond, BATCH, {})},
                             setup.device, setup.repeats)
    out["local"] = {}
    for faces in faces_list:
        log(f"local branch, {faces} face(s), batched and sequential")
        watch, seq_watch = timing.Stopwatch(setup.device), timing.Stopwatch(setup.device)
        batched = local_control(setup, faces)
        batched.control_model = TimedModule(batched.control_model, watch)
        seq = local_control(setup, faces, sequential=True)
        seq.control_model = TimedModule(seq.control_model, seq_watch)
        forward_ms, forwards = [], {}

        def run_batched():
            watch.reset()
            batched.get_control(x, sigma, cond, BATCH, {})
            forward_ms.append(watch.ms)
            forwards["batched"] = watch.calls

        def run_sequential():
            seq_watch.reset()
            seq.get_control(x, sigma, cond, BATCH, {})
            forwards["sequential"] = seq_watch.calls
        t = timing.time_paired({"batched": run_batched, "sequential": run_sequential}, setup.device, setup.repeats)
        totals = t["batched"]["runs_ms"]
        glue = [total - fwd for total, fwd in zip(totals, forward_ms[-len(totals):])]
        out["local"][faces] = {
            "batched": {**t["batched"], "forwards": forwards["batched"]},
            "sequential": {**t["sequential"], "forwards": forwards["sequential"]},
            "glue": {"median_ms": statistics.median(glue), "runs_ms": glue,
                     "share": statistics.median(g / total for g, total in zip(glue, totals))},
        }
    return out


def _paste_latent(latent, patch, region) -> None:
    """Write a face patch back over its region (pixel-aligned, clipped), as a detailer pastes its result."""
    x0, y0, side = (int(round(float(v))) for v in (region.x0[0], region.y0[0], region.side[0]))
    side = max(1, side)
    resized = F.interpolate(patch, size=(side, side), mode="bilinear", align_corners=False)
    h, w = latent.shape[-2:]
    ya, yb, xa, xb = max(0, y0), min(h, y0 + side), max(0, x0), min(w, x0 + side)
    latent[..., ya:yb, xa:xb] = resized[..., ya - y0:yb - y0, xa - x0:xb - x0]


def passes(setup: Setup, faces_list: list[int], log) -> dict:
    """Whole sampling passes of `steps` steps: RealisID (U-Net + global + local, one pass) for F faces,
    against the detailer route: a base pass (U-Net + one ControlNet) then one pass per face at the
    working size (crop the face's latent region, up-sample, `steps` steps of U-Net + ControlNet, paste)."""
    geometry = pack_module("realisid_core.branches.geometry")
    cond = setup.cond()
    sigmas = setup.sigmas()
    repeats = setup.repeats

    def sample(x, control):
        for s in sigmas:
            sigma = torch.full((BATCH,), float(s), device=setup.device)
            eps = step(setup, x, sigma, cond, control)
            x = x - 0.1 * eps  # the sampler's own arithmetic is negligible next to the networks
        return x

    start = setup.tensor(1, 4, setup.latent, setup.latent)
    base_x = start.expand(BATCH, -1, -1, -1).clone()
    base_control = global_control(setup)
    det = detailer_control(setup)
    out = {"base": {"runs_ms": []}, "realisid": {}, "detailer_faces": {}, "detailer_route": {}}
    for faces in faces_list:
        log(f"RealisID pass and {faces} detailer pass(es)")
        chain = local_control(setup, faces, previous=global_control(setup))
        regions = geometry.regions_from_locations(face_locations(faces, setup.resolution), setup.latent,
                                                  setup.latent, 1.6)

        def detail_all():
            latent = start.clone()
            for f in range(faces):
                region = geometry.SquareRegions(regions.x0[f:f + 1], regions.y0[f:f + 1], regions.side[f:f + 1])
                crop = geometry.crop_regions(latent, region, setup.working_size)
                done = sample(crop.expand(BATCH, -1, -1, -1).clone(), det)
                _paste_latent(latent, done[:1], region)
            return latent
        parts = {"base": [], "faces": []}

        def detailer_route():
            t0 = time.perf_counter()
            sample(base_x, base_control)
            timing.sync(setup.device)
            t1 = time.perf_counter()
            detail_all()
            timing.sync(setup.device)
            parts["base"].append((t1 - t0) * 1000)
            parts["faces"].append((time.perf_counter() - t1) * 1000)

        t = timing.time_paired({"realisid": lambda: sample(base_x, chain), "detailer_route": detailer_route},
                               setup.device, repeats, warmup=0)
        out["realisid"][faces], out["detailer_route"][faces] = t["realisid"], t["detailer_route"]
        out["detailer_faces"][faces] = {"median_ms": statistics.median(parts["faces"]), "runs_ms": parts["faces"]}
        out["base"]["runs_ms"] += parts["base"]
    out["base"]["median_ms"] = statistics.median(out["base"]["runs_ms"])
    return out


def local_memory(setup: Setup, faces_list: list[int], log) -> dict:
    """Peak extra memory of one local-branch call, batched and sequential, for each F."""
    x = setup.tensor(BATCH, 4, setup.latent, setup.latent)
    sigma = torch.full((BATCH,), float(setup.sigmas()[0]), device=setup.device)
    cond = setup.cond()
    out = {"method": memory.method(setup.device), "bytes": {}}
    for faces in faces_list:
        log(f"memory, {faces} face(s)")
        row = {}
        for mode in ("batched", "sequential"):
            c = local_control(setup, faces, sequential=mode == "sequential")
            with torch.inference_mode():
                c.get_control(x, sigma, cond, BATCH, {})  # hint cached, lazy allocations done
            row[mode] = memory.peak_bytes(lambda: c.get_control(x, sigma, cond, BATCH, {}), setup.device)
        out["bytes"][faces] = row
    return out
