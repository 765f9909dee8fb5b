"""RealisID's two branches as controls in ComfyUI's ControlNet chain.

Both subclass comfy.controlnet.ControlNet, so they chain through `previous_controlnet`, merge
with `control_merge` (strength, start/end percent) and are loaded with the U-Net through
`get_models()`; each calls its ControlNet model itself. Before the first step, `pre_run` checks
that the ControlNet fits the model; every step, the merged residuals are checked against the
U-Net's feature shapes (ComfyUI's U-Net would only warn on a mismatch and drop the residual).
Errors name the node that attached the control (`node_name`). The maths is the engine's: this
module reads ComfyUI's objects and hands the engine plain tensors.
"""
from __future__ import annotations

from dataclasses import dataclass, field

import torch

import comfy.cldm.cldm
import comfy.conds
import comfy.controlnet
import comfy.model_base
import comfy.model_management

from ..realisid_core.branches.budget import crops_memory_bytes, crops_per_forward
from ..realisid_core.branches.cfg import identity_context, uncond_rows
from ..realisid_core.branches.layouts import (ControlLayout, layout_from_config, layout_from_controlnet, mismatch,
                                              shape_errors)
from ..realisid_core.branches.local import (LatentWindow, LocalBranchSettings, crop_index, crop_size_ids,
                                            latent_windows, plan_window, run_local_branch)
from ..realisid_core.branches.residuals import place_rows, scale_residuals
from ..realisid_core.errors import RealisIDInputError
from ..realisid_core.faces.pose import FacePose
from ..realisid_core.families import FAMILIES, to_pixels
from ..realisid_core.people.identity import IdentityTokens
from ..realisid_core.people.locations import FaceLocations
from ..realisid_core.signals.guidance import full_guidance, guidance_rows
from ..realisid_core.signals.hints import hints_in_crop_frames
from .errors import attributed

CONTROL_NET_INPUT = "control_net"
SDXL = FAMILIES["SDXL"]

AREA_KEY = "realisid_area"


class AreaProbe(comfy.conds.CONDRegular):
    """A model condition that tells RealisID's controls which part of the latent ComfyUI hands them.

    ComfyUI gives an area conditioning (Conditioning (Set Area)) only its area of the latent and
    narrows every model condition to it; this one records the area instead: per latent row
    (top, left, height, width) in latent cells, or -1s for the whole latent. The U-Net ignores it.
    """

    def __init__(self, cond: torch.Tensor | None = None):
        super().__init__(torch.full((1, 4), -1.0) if cond is None else cond)

    def process_cond(self, batch_size, area=None, **kwargs):
        if area is None or len(area) != 4:  # the whole latent (areas of video latents are not handled)
            row = torch.full((1, 4), -1.0)
        else:
            height, width, top, left = (float(v) for v in area)
            row = torch.tensor([[top, left, height, width]])
        return AreaProbe(row.repeat(batch_size, 1))


def controlnet_layout(control_net) -> ControlLayout:
    """The residual layout of an SD-style ControlNet, or an error saying this ControlNet type can't be used."""
    model = getattr(control_net, "control_model", None)
    if not isinstance(model, comfy.cldm.cldm.ControlNet):
        raise RealisIDInputError(input_name=CONTROL_NET_INPUT, problem=f"this is a {type(control_net).__name__} "
                                 f"({type(model).__name__}), not an SD1.5/SDXL-style ControlNet",
                                 fix="load a RealisID ControlNet (SD1.5 or SDXL) with 'Load ControlNet Model'")
    context_dim = next((m.in_features for name, m in model.named_modules() if name.endswith("attn2.to_k")), None)
    adm = model.label_emb[0][0].in_features if hasattr(model, "label_emb") else None
    return layout_from_controlnet([zc[0].out_channels for zc in model.zero_convs], model.num_res_blocks,
                                  model.middle_block_out[0].out_channels, context_dim, adm)


SUPPORTED_FAMILIES = "SD1.5 and SDXL (and other SD-style U-Nets: SD2, Segmind Vega, KOALA)"


def model_layout(model: comfy.model_base.BaseModel) -> ControlLayout:
    """The residual layout the sampled model's U-Net accepts; other model families are refused."""
    cfg = model.model_config.unet_config
    if "model_channels" not in cfg or "channel_mult" not in cfg:
        family = type(model).__name__
        raise RealisIDInputError(input_name="model", problem=f"the model being sampled is a {family} model, not an "
                                 f"SD-style U-Net: RealisID's branches are ControlNets for {SUPPORTED_FAMILIES}",
                                 fix="sample with an SD1.5 or SDXL checkpoint")
    return layout_from_config(cfg["model_channels"], cfg["channel_mult"], cfg["num_res_blocks"],
                              cfg.get("context_dim"), cfg.get("adm_in_channels"))


@dataclass
class SamplingCache:
    """What a control keeps between the steps of one sampling run (reset in `cleanup`): the whole latent's size
    (cells) once a call showed it, the global branch's guidance at the whole latent's size, the local branch's
    crop/paste plans per window and its hints for one whole-latent size."""

    full_latent: tuple[int, int] | None = None
    guidance: torch.Tensor | None = None
    region_plans: dict = field(default_factory=dict)
    hints: torch.Tensor | None = None
    hints_key: tuple | None = None


class RealisIDControl(comfy.controlnet.ControlNet):
    """Shared plumbing: creation from a loaded ControlNet, copies, model checks, shape asserts, and the
    name of the node that attached it (for errors)."""

    identity_input = "people"

    @classmethod
    def from_controlnet(cls, base: comfy.controlnet.ControlNet, spec, node_name: str = "RealisID") -> "RealisIDControl":
        refuse_foreign_control(base)
        c = cls(None, global_average_pooling=base.global_average_pooling, load_device=base.load_device,
                manual_cast_dtype=base.manual_cast_dtype)
        c.control_model = base.control_model
        c.control_model_wrapped = base.control_model_wrapped
        base.copy_to(c)
        c.spec, c.node_name = spec, node_name
        c.layout = cls.layout_of(base)
        c.unet_layout = None
        c.sampling = SamplingCache()
        return c

    @staticmethod
    def layout_of(base) -> ControlLayout | None:
        """The loaded ControlNet's residual layout, checked against the U-Net's in pre_run."""
        return controlnet_layout(base)

    def copy(self):
        c = type(self)(None, global_average_pooling=self.global_average_pooling, load_device=self.load_device,
                       manual_cast_dtype=self.manual_cast_dtype)
        c.control_model = self.control_model
        c.control_model_wrapped = self.control_model_wrapped
        self.copy_to(c)
        c.spec, c.node_name, c.layout, c.unet_layout = self.spec, self.node_name, self.layout, None
        c.sampling = SamplingCache()
        return c

    def pre_run(self, model, percent_to_timestep_function):
        super().pre_run(model, percent_to_timestep_function)
        with attributed(self.node_name):
            self.unet_layout = model_layout(model)
            why = mismatch(self.layout, self.unet_layout)
            if why:
                raise RealisIDInputError(input_name=CONTROL_NET_INPUT, problem=why,
                                         fix=f"load a ControlNet trained for {self.unet_layout.family} models, "
                                         f"or sample with a {self.layout.family} checkpoint")
            # only once the family fits: identity tokens of the wrong width are then the identity's fault
            if self.spec.identity is not None:
                self.spec.identity.check_width(self.layout.context_dim, self.identity_input)

    def cleanup(self):
        self.unet_layout = None
        self.sampling = SamplingCache()
        super().cleanup()

    def get_control(self, x_noisy, t, cond, batched_number, transformer_options):
        with attributed(self.node_name):
            return self._control(x_noisy, t, cond, batched_number, transformer_options)

    def _control(self, x_noisy, t, cond, batched_number, transformer_options):
        raise NotImplementedError

    def _windows(self, x_noisy, cond) -> list[tuple[torch.Tensor, LatentWindow]]:
        """Latent rows grouped by the part of the whole latent they are (area conditioning), with that part; the
        faces' places checked against the whole latent's shape."""
        windows, full = latent_windows(cond.get(AREA_KEY), x_noisy.shape[0], *x_noisy.shape[-2:],
                                       self.sampling.full_latent, self.spec.locations)
        self.sampling.full_latent = full or self.sampling.full_latent
        for _, window in windows:
            problem = self.spec.locations.aspect_problem(window.full_height, window.full_width)
            if problem:
                source = self.spec.locations.source(0)
                raise RealisIDInputError(input_name="people", problem=problem,
                                         fix=f"make the places for the picture you generate: connect the latent to "
                                         f"{source}, or use a layout photo or mask of the same shape as the picture")
        return windows

    def _compute_dtype(self):
        return self.manual_cast_dtype if self.manual_cast_dtype is not None else self.control_model.dtype

    def _previous_control(self, x_noisy, t, cond, batched_number, transformer_options):
        """The rest of the chain's residuals, shape-checked before anything is added to them."""
        if self.previous_controlnet is None:
            return None
        control = self.previous_controlnet.get_control(x_noisy, t, cond, batched_number, transformer_options)
        return self._checked(control, x_noisy)

    def _identity_context(self, tokens: torch.Tensor, x_noisy, transformer_options, dtype) -> torch.Tensor:
        """[B, ...] context rows: the people's tokens on CFG's conditional rows, the null identity on the
        unconditional ones (ComfyUI tells which through cond_or_uncond, batched or not)."""
        uncond = uncond_rows(transformer_options.get("cond_or_uncond"), x_noisy.shape[0])
        return identity_context(tokens.to(x_noisy.device, dtype), self.spec.identity.null, uncond)

    def _in_window(self, t) -> bool:
        return self.timestep_range is None or not (t[0] > self.timestep_range[0] or t[0] < self.timestep_range[1])

    def _checked(self, control, x_noisy):
        """`control` after asserting every residual has the U-Net's feature shape for x_noisy."""
        if control is not None and self.unet_layout is not None:
            errors = shape_errors(control, self.unet_layout, x_noisy.shape[0], x_noisy.shape[2], x_noisy.shape[3])
            if errors:
                raise RuntimeError(f"{self.node_name}: the control residuals do not fit the model's U-Net "
                                   f"({'; '.join(errors[:3])}). Fix: use ControlNets of the model's family "
                                   f"({self.unet_layout.family}) for every ControlNet on this conditioning.")
        return control


def refuse_foreign_control(base) -> None:
    """Refuse ControlNets of another pack's loader (Advanced-ControlNet's keyframes, soft weights and
    masks live in its own control class and would silently do nothing here)."""
    if type(base) is not comfy.controlnet.ControlNet:
        raise RealisIDInputError(input_name=CONTROL_NET_INPUT, problem=f"this ControlNet was loaded as a "
                                 f"{type(base).__module__}.{type(base).__name__}: its own settings (timestep keyframes, "
                                 "soft weights, masks of Advanced-ControlNet's loader) are not supported by RealisID's "
                                 "branches and would silently do nothing",
                                 fix="load the file with RealisID Load ControlNet")


def text_only(cond: dict) -> dict:
    """The conditioning without `crossattn_controlnet`: context another control put there (InstantID's
    face tokens, say) never reaches a RealisID branch, which attends to its own identity or the prompt."""
    return {k: v for k, v in cond.items() if k != "crossattn_controlnet"}


def model_extras(control, cond: dict, dtype, device) -> dict:
    """The extra model conditions the ControlNet takes (SDXL's `y`), cast for it."""
    return {c: comfy.model_base.convert_tensor(cond[c], dtype, device)
            for c in control.extra_conds if cond.get(c) is not None}


@dataclass(frozen=True)
class GlobalBranchSpec:
    """locations: where the faces go (the branch draws the guidance at the latent's size);
    identity: tokens [1, T, D] the global branch attends to instead of the text (with their null), or None."""

    locations: FaceLocations
    identity: IdentityTokens | None = None


class GlobalBranchControl(RealisIDControl):
    """A ControlNet on the full latent, its hint the location guidance drawn at the latent's size.

    With identity tokens it carries them itself, so they never reach other ControlNets on the
    same conditioning (as `crossattn_controlnet` would); the unconditional rows get the null identity.
    """

    def _control(self, x_noisy, t, cond, batched_number, transformer_options):
        control_prev = self._previous_control(x_noisy, t, cond, batched_number, transformer_options)
        if not self._in_window(t):
            return control_prev
        dtype, device = self._compute_dtype(), x_noisy.device
        windows = self._windows(x_noisy, cond)
        hint = self._guidance(x_noisy, windows).to(device, dtype)
        if self.spec.identity is not None:
            tokens = self.spec.identity.tokens.expand(x_noisy.shape[0], -1, -1)
            context = self._identity_context(tokens, x_noisy, transformer_options, dtype)
        else:
            context = comfy.model_management.cast_to_device(text_only(cond)["c_crossattn"], device, dtype)
        timestep = self.model_sampling_current.timestep(t).to(dtype)
        x_in = self.model_sampling_current.calculate_input(t, x_noisy)
        extra = {**self.extra_args, **model_extras(self, cond, dtype, device)}
        own = self.control_model(x=x_in.to(dtype), hint=hint, timesteps=timestep, context=context, **extra)
        return self._checked(self.control_merge(own, control_prev, output_dtype=None), x_noisy)

    def _guidance(self, x_noisy, windows) -> torch.Tensor:
        """Each latent row's guidance: drawn at the whole latent's pixel size (once per size), cut to the row's
        window."""
        full = windows[0][1]
        drawn = self.sampling.guidance
        if drawn is None or tuple(drawn.shape[-2:]) != (to_pixels(full.full_height), to_pixels(full.full_width)):
            drawn = self.sampling.guidance = full_guidance(self.spec.locations, full)
        return guidance_rows(drawn, windows, x_noisy.shape[0])


@dataclass(frozen=True)
class LocalBranchSpec:
    """Faces (places), their poses (geometry the branch draws in its crop frame, in `hint_format`),
    optional identity tokens [F, K, D] with their null, per-face strengths [F], crop settings."""

    locations: FaceLocations
    poses: tuple[FacePose, ...]
    hint_format: str
    identity: IdentityTokens | None
    strengths: torch.Tensor
    settings: LocalBranchSettings


class LocalBranchControl(RealisIDControl):
    """Crops every face of the noisy latent, runs the ControlNet on the B×F crops, pastes back."""

    def _control(self, x_noisy, t, cond, batched_number, transformer_options):
        control_prev = self._previous_control(x_noisy, t, cond, batched_number, transformer_options)
        if not self._in_window(t):
            return control_prev

        spec, dtype, device = self.spec, self._compute_dtype(), x_noisy.device
        windows = self._windows(x_noisy, cond)
        size = spec.settings.working_size
        hint = self._hints(windows[0][1], device, dtype)
        timestep = self.model_sampling_current.timestep(t).to(dtype)
        x_in = self.model_sampling_current.calculate_input(t, x_noisy)
        if spec.identity is not None:
            contexts = self._identity_context(spec.identity.tokens[None].expand(x_noisy.shape[0], -1, -1, -1),
                                              x_noisy, transformer_options, dtype)  # [B, F, K, D]
        else:
            contexts = comfy.model_management.cast_to_device(cond["c_crossattn"], device, dtype)
        extra = model_extras(self, cond, dtype, device)
        if "y" in extra and self.layout.adm_in_channels == SDXL.adm_width:
            extra["y"] = crop_size_conditioning(extra["y"], size)
        strengths = spec.strengths.to(device, dtype)

        control = None
        for rows, window in windows:
            plan, kept = self._plan(window, dtype, device)
            if plan is None:  # no face reaches into this area
                continue
            rows_on = rows.to(device)
            faces = torch.tensor(kept, device=device)

            def run(crops, start, rows_on=rows_on, faces=faces):
                b, f = crop_index(torch.arange(start, start + len(crops), device=device), len(faces))
                row, face = rows_on[b], faces[f]
                context = contexts[row, face] if spec.identity is not None else contexts[row]
                out = self.control_model(x=crops.to(dtype), hint=hint[face], timesteps=timestep[row],
                                         context=context, **{k: v[row] for k, v in extra.items()})
                return scale_residuals(out, strengths[face])

            part = run_local_branch(x_in[rows_on], spec.locations, run, spec.settings,
                                    self._max_crops(device, dtype, size, len(rows) * len(kept)),
                                    on_chunk=comfy.model_management.throw_exception_if_processing_interrupted,
                                    plan=plan)
            control = part if len(windows) == 1 else place_rows(control, part, rows_on, x_noisy.shape[0])
        if control is None:
            return control_prev
        return self._checked(self.control_merge(control, control_prev, output_dtype=None), x_noisy)

    def _plan(self, window: LatentWindow, dtype, device):
        """Crop/paste weights for this window of the latent, kept across steps (sampling keeps the size)."""
        plans = self.sampling.region_plans
        key = (window, dtype, str(device))
        if key not in plans:
            plans[key] = plan_window(self.spec.locations, self.spec.settings, window, dtype, device)
        return plans[key]

    def _hints(self, window: LatentWindow, device, dtype):
        """Every face's hint in its crop frame (once per whole-latent size, device and dtype)."""
        key = (window.full_height, window.full_width, str(device), dtype)
        if self.sampling.hints_key != key:
            spec = self.spec
            drawn = hints_in_crop_frames(spec.hint_format, spec.poses, spec.locations, window.full_height,
                                         window.full_width, spec.settings.margin, spec.settings.working_size)
            self.sampling.hints, self.sampling.hints_key = drawn.to(device=device).to(dtype), key
        return self.sampling.hints

    def _max_crops(self, device, dtype, size, crops):
        """How many of `crops` crops go into one forward: what pays on this device and fits its free memory."""
        free = comfy.model_management.get_free_memory(device)
        return crops_per_forward(torch.device(device).type, size, self.layout.family, dtype.itemsize, free, crops,
                                 self.control_model.model_channels)

    def inference_memory_requirements(self, dtype):
        """The ControlNet's weights (ComfyUI's count) plus the face crops' activations and residuals for
        CFG's two sides, so ComfyUI frees enough before sampling."""
        crops = 2 * self.spec.locations.count
        size = self.spec.settings.working_size
        kind = torch.device(self.load_device or "cpu").type
        per_forward = crops_per_forward(kind, size, self.layout.family, dtype.itemsize, None, crops,
                                        self.control_model.model_channels)
        return super().inference_memory_requirements(dtype) + crops_memory_bytes(
            kind, self.layout.family, size, dtype.itemsize, crops, per_forward, self.control_model.model_channels)


def crop_size_conditioning(y: torch.Tensor, working_size: int) -> torch.Tensor:
    """SDXL's added conditioning for a face crop: the pooled text kept, and the engine's crop size ids
    (`crop_size_ids`) embedded as ComfyUI's SDXL model embeds its size ids."""
    from comfy.ldm.modules.diffusionmodules.openaimodel import Timestep
    embed = Timestep(256)
    sizes = torch.tensor(crop_size_ids(working_size), dtype=torch.float32)
    flat = torch.cat([embed(v.reshape(1)) for v in sizes]).reshape(1, -1).to(y.device, y.dtype)
    return torch.cat([y[:, :SDXL.pooled_width], flat.expand(y.shape[0], -1)], dim=1)
