"""The local branch on FLUX: InfiniteYou's InfuseNet on every face's crop, its residual tokens pasted
onto the face's cells of the whole picture's token grid (realisid_core.branches.tokens).

A comfy.controlnet.ControlNet subclass like the SD branches (nodes/controls.py): it chains through
`previous_controlnet`, merges with strength and start/end, and is loaded with FLUX through
`get_models()`. CFG: InfiniteYou's pipeline gives the unconditional pass no InfuseNet residuals,
so here the unconditional rows get none (the "null identity" on FLUX is no identity control);
FLUX-dev's guidance distillation has no unconditional pass at CFG 1, so every row is conditional.
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

import comfy.controlnet
import comfy.ldm.flux.controlnet
import comfy.model_base
import comfy.model_management

from ..realisid_core.branches.cfg import uncond_rows
from ..realisid_core.branches.local import LatentWindow, crop_index, plan_window
from ..realisid_core.branches.tokens import TokenPlan, distinct, run_token_branch
from ..realisid_core.errors import RealisIDInputError
from ..realisid_core.models import infuse
from ..realisid_core.signals.hints import hints_in_crop_frames
from .errors import attributed
from .controls import CONTROL_NET_INPUT, LocalBranchSpec, RealisIDControl

NODE = "RealisID Apply InfiniteYou"


@dataclass(frozen=True)
class InfuseSpec:
    """The local branch's spec (faces, poses, identity tokens [F, 8, 4096], strengths, crop settings) and
    the guidance InfuseNet is called with (InfiniteYou's pipeline: 1.0)."""

    branch: LocalBranchSpec
    guidance: float = infuse.INFUSENET_GUIDANCE

    @property
    def locations(self):
        return self.branch.locations

    @property
    def identity(self):
        return self.branch.identity


def infusenet_blocks(control_net) -> tuple[int, int]:
    """(double, single) block counts of a FLUX ControlNet that reads a VAE-latent hint (InfuseNet's
    kind), or an error saying what was connected instead."""
    model = getattr(control_net, "control_model", None)
    if not isinstance(model, comfy.ldm.flux.controlnet.ControlNetFlux):
        raise RealisIDInputError(input_name=CONTROL_NET_INPUT, problem=f"this is a "
                                 f"{type(model).__name__} ControlNet, not a FLUX ControlNet: an SD1.5/SDXL ControlNet "
                                 "cannot steer FLUX's transformer", fix="load InfiniteYou's InfuseNet "
                                 "(InfuseNetModel/diffusion_pytorch_model.safetensors) with RealisID Load InfuseNet")
    if not model.latent_input:
        raise RealisIDInputError(input_name=CONTROL_NET_INPUT, problem="this FLUX ControlNet reads a picture "
                                 "hint (an XLabs/Mistoline ControlNet), but InfuseNet reads a VAE-encoded hint",
                                 fix="load InfiniteYou's InfuseNet with RealisID Load InfuseNet")
    return len(model.double_blocks), len(model.single_blocks)


def check_flux_model(model) -> None:
    """The sampled model must be FLUX (InfuseNet's residuals are FLUX's token widths)."""
    config = getattr(model, "model_config", None)
    image_model = getattr(config, "unet_config", {}).get("image_model") if config is not None else None
    if image_model != "flux":
        family = type(model).__name__
        raise RealisIDInputError(input_name="model", problem=f"the model being sampled is a {family} model "
                                 f"({image_model or 'a U-Net'}), but InfiniteYou's InfuseNet is a ControlNet for FLUX",
                                 fix="sample with a FLUX.1 model (dev or schnell) loaded with Load Diffusion Model; "
                                     "for SDXL use RealisID Apply InstantID")


class InfuseNetControl(RealisIDControl):
    """Crops every face of the noisy latent, runs InfuseNet on the crops with each person's tokens and
    the five-keypoint hint drawn in the crop (VAE-encoded), pastes the residual tokens back."""

    @classmethod
    def from_controlnet(cls, base, spec: InfuseSpec, vae=None, node_name: str = NODE) -> "InfuseNetControl":
        c = super().from_controlnet(base, spec, node_name)
        if vae is not None:
            c.vae = vae
        return c

    @staticmethod
    def layout_of(base):
        """No U-Net layout: InfuseNet is checked as a FLUX ControlNet here and FLUX itself in pre_run."""
        infusenet_blocks(base)
        return None

    @property
    def blocks(self) -> tuple[int, int]:
        return len(self.control_model.double_blocks), len(self.control_model.single_blocks)

    def pre_run(self, model, percent_to_timestep_function):
        comfy.controlnet.ControlNet.pre_run(self, model, percent_to_timestep_function)
        with attributed(self.node_name):
            check_flux_model(model)

    def _control(self, x_noisy, t, cond, batched_number, transformer_options):
        control_prev = self._previous_control(x_noisy, t, cond, batched_number, transformer_options)
        if not self._in_window(t):
            return control_prev
        spec, dtype, device = self.spec.branch, self._compute_dtype(), x_noisy.device
        batch = x_noisy.shape[0]
        windows = self._windows(x_noisy, cond)
        uncond = uncond_rows(transformer_options.get("cond_or_uncond"), batch)
        if bool(uncond.all()):  # CFG's unconditional pass: InfiniteYou gives it no InfuseNet
            return control_prev
        hint = self._hints(windows[0][1], device, dtype)
        timestep = self.model_sampling_current.timestep(t).to(dtype)
        x_in = self.model_sampling_current.calculate_input(t, x_noisy)
        tokens = spec.identity.tokens.to(device, dtype)
        y = comfy.model_base.convert_tensor(cond["y"], dtype, device) if cond.get("y") is not None else None
        guidance = torch.full((batch,), self.spec.guidance, device=device, dtype=dtype)
        strengths = spec.strengths.to(device, dtype)

        control = None
        for rows, window in windows:
            rows = rows[~uncond[rows]]
            plan, kept = self._plan(window, dtype, device)
            if plan is None or not len(rows):  # no face reaches into this area, or only unconditional rows
                continue
            rows_on, faces = rows.to(device), torch.tensor(kept, device=device)

            def run(crops, start, rows_on=rows_on, faces=faces):
                b, f = crop_index(torch.arange(start, start + len(crops), device=device), len(faces))
                row, face = rows_on[b], faces[f]
                return self.control_model(x=crops.to(dtype), hint=hint[face], timesteps=timestep[row],
                                          context=tokens[face], y=None if y is None else y[row], guidance=guidance[row])

            part = run_token_branch(x_in[rows_on], plan, run, self._max_crops(device, dtype, len(rows) * len(kept)),
                                    on_chunk=comfy.model_management.throw_exception_if_processing_interrupted,
                                    scale=strengths[faces].repeat(len(rows)))
            whole = len(rows) == batch and len(windows) == 1
            control = part if whole else place_shared_rows(control, part, rows_on, batch)
        if control is None:
            return control_prev
        return self.control_merge(control, control_prev, output_dtype=None)

    def _plan(self, window: LatentWindow, dtype, device):
        """Crop/paste weights for this window of the latent on its token grid, kept across steps."""
        plans = self.sampling.region_plans
        key = (window, dtype, str(device))
        if key not in plans:
            plan, kept = plan_window(self.spec.branch.locations, self.spec.branch.settings, window, dtype, device)
            plans[key] = (None if plan is None else TokenPlan(plan), kept)
        return plans[key]

    def _hints(self, window: LatentWindow, device, dtype):
        """Every face's keypoints drawn in its crop frame at 8× the working size, VAE-encoded into FLUX's
        latent space (InfuseNet reads latents), once per whole-latent size."""
        spec = self.spec.branch
        key = (window.full_height, window.full_width)
        if self.sampling.hints_key == key:
            return self.sampling.hints.to(device, dtype)
        if self.vae is None:
            raise RealisIDInputError(input_name="vae", problem="InfuseNet reads its keypoint hint as a FLUX latent, "
                                     "and no VAE was given to encode it",
                                     fix="connect FLUX's VAE (ae.safetensors) to the node's 'vae' input")
        drawn = hints_in_crop_frames(spec.hint_format, spec.poses, spec.locations, *key, spec.settings.margin,
                                     spec.settings.working_size)  # [F, 3, 8S, 8S] in [0, 1]
        loaded = comfy.model_management.loaded_models(only_currently_used=True)
        latent = self.vae.encode(drawn.movedim(1, -1))
        comfy.model_management.load_models_gpu(loaded)
        latent = self.latent_format.process_in(latent)
        self.sampling.hints, self.sampling.hints_key = latent.to(device, dtype), key
        return self.sampling.hints

    def _max_crops(self, device, dtype, crops: int) -> int:
        kind = torch.device(device).type
        free = comfy.model_management.get_free_memory(device) if kind != "cpu" else None
        return infuse.crops_per_forward(self.spec.branch.settings.working_size, dtype.itemsize, *self.blocks, free,
                                        crops, fused_attention=kind == "cuda")

    def inference_memory_requirements(self, dtype):
        """InfuseNet's weights (ComfyUI's count) plus every face crop's activations and residuals."""
        crops = self.spec.branch.locations.count
        kind = torch.device(self.load_device or "cpu").type
        per_crop = infuse.crop_bytes(self.spec.branch.settings.working_size, dtype.itemsize, *self.blocks,
                                     fused_attention=kind == "cuda")
        return super().inference_memory_requirements(dtype) + crops * per_crop


def place_shared_rows(control, part, rows, batch: int):
    """Residuals computed for some latent rows put into a whole batch's (zeros elsewhere); blocks that
    shared one residual still share one tensor."""
    out = {} if control is None else control
    for key, levels in part.items():
        unique, index = distinct(levels)
        if key not in out:
            zeros = [r.new_zeros(batch, *r.shape[1:]) for r in unique]
            out[key] = [None if i is None else zeros[i] for i in index]
        targets, _ = distinct(out[key])
        for whole, r in zip(targets, unique):
            whole[rows] = r
    return out
