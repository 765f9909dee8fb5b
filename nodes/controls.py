"""RealisID's two branches as controls in ComfyUI's ControlNet chain.

Both subclass comfy.controlnet.ControlNet, so they chain through `previous_controlnet`, merge
with `control_merge` (strength, start/end percent) and are loaded with the U-Net through
`get_models()`. Before the first step, `pre_run` checks that the ControlNet fits the model;
every step, the merged residuals are checked against the U-Net's feature shapes (ComfyUI's
U-Net would only warn on a mismatch and drop the residual).
"""
from __future__ import annotations

from dataclasses import dataclass

import torch

import comfy.cldm.cldm
import comfy.controlnet
import comfy.model_base
import comfy.model_management
import comfy.utils

from ..realisid_core.branches.budget import crops_memory_bytes, crops_per_forward
from ..realisid_core.errors import RealisIDInputError
from ..realisid_core.faces.pose import FacePose
from ..realisid_core.branches.geometry import regions_from_locations
from ..realisid_core.signals.guidance import render_location_guidance
from ..realisid_core.signals.hints import render_branch_hints
from ..realisid_core.people.identity import IdentityTokens
from ..realisid_core.branches.local import LatentWindow, LocalBranchSettings, crop_index, plan_window, run_local_branch
from ..realisid_core.people.locations import FaceLocations
from ..realisid_core.branches.residuals import add_residuals, scale_residuals
from .conditioning import AREA_KEY
from ..realisid_core.branches.layouts import (ControlLayout, layout_from_config, layout_from_controlnet, mismatch,
                                         shape_errors)

CONTROL_NET_INPUT = "control_net"


def controlnet_layout(control_net, node: str) -> ControlLayout:
    """The residual layout of an SD-style ControlNet, or an error saying this ControlNet type can't be used."""
    model = getattr(control_net, "control_model", None)
    if not isinstance(model, comfy.cldm.cldm.ControlNet):
        raise RealisIDInputError(node, CONTROL_NET_INPUT, f"this is a {type(control_net).__name__} "
                                 f"({type(model).__name__}), not an SD1.5/SDXL-style ControlNet",
                                 "load a RealisID ControlNet (SD1.5 or SDXL) with 'Load ControlNet Model'")
    context_dim = next((m.in_features for name, m in model.named_modules() if name.endswith("attn2.to_k")), None)
    adm = model.label_emb[0][0].in_features if hasattr(model, "label_emb") else None
    return layout_from_controlnet([zc[0].out_channels for zc in model.zero_convs], model.num_res_blocks,
                                  model.middle_block_out[0].out_channels, context_dim, adm)


SUPPORTED_FAMILIES = "SD1.5 and SDXL (and other SD-style U-Nets: SD2, Segmind Vega, KOALA)"


def model_layout(model: comfy.model_base.BaseModel, node: str = "RealisID") -> ControlLayout:
    """The residual layout the sampled model's U-Net accepts; other model families are refused."""
    cfg = model.model_config.unet_config
    if "model_channels" not in cfg or "channel_mult" not in cfg:
        family = type(model).__name__
        raise RealisIDInputError(node, "model", f"the model being sampled is a {family} model, not an SD-style U-Net: "
                                 f"RealisID's branches are ControlNets for {SUPPORTED_FAMILIES}",
                                 "sample with an SD1.5 or SDXL checkpoint")
    return layout_from_config(cfg["model_channels"], cfg["channel_mult"], cfg["num_res_blocks"],
                              cfg.get("context_dim"), cfg.get("adm_in_channels"))


class RealisIDControl(comfy.controlnet.ControlNet):
    """Shared plumbing: creation from a loaded ControlNet, copies, model checks, shape asserts."""

    node_name = "RealisID"
    identity_input = "people"

    @classmethod
    def from_controlnet(cls, base: comfy.controlnet.ControlNet, spec) -> "RealisIDControl":
        refuse_foreign_control(base, cls.node_name)
        c = cls(None, global_average_pooling=base.global_average_pooling, load_device=base.load_device,
                manual_cast_dtype=base.manual_cast_dtype)
        c.control_model = base.control_model
        c.control_model_wrapped = base.control_model_wrapped
        base.copy_to(c)
        c.spec = spec
        c.layout = controlnet_layout(base, cls.node_name)
        c.unet_layout = None
        return c

    def copy(self):
        c = type(self)(None, global_average_pooling=self.global_average_pooling, load_device=self.load_device,
                       manual_cast_dtype=self.manual_cast_dtype)
        c.control_model = self.control_model
        c.control_model_wrapped = self.control_model_wrapped
        self.copy_to(c)
        c.spec, c.layout, c.unet_layout = self.spec, self.layout, None
        return c

    def pre_run(self, model, percent_to_timestep_function):
        super().pre_run(model, percent_to_timestep_function)
        self.unet_layout = model_layout(model, self.node_name)
        why = mismatch(self.layout, self.unet_layout)
        if why:
            raise RealisIDInputError(self.node_name, CONTROL_NET_INPUT, why,
                                     f"load a ControlNet trained for {self.unet_layout.family} models, "
                                     f"or sample with a {self.layout.family} checkpoint")
        # only once the family fits: identity tokens of the wrong width are then the identity's fault
        if self.spec.identity is not None:
            self.spec.identity.check_width(self.layout.context_dim, self.node_name, self.identity_input)

    def cleanup(self):
        self.unet_layout = None
        super().cleanup()

    # Latents are whole cells of 8 pixels, so a picture's aspect and its latent's differ a little.
    ASPECT_TOLERANCE = 0.03

    def _check_aspect(self, window: LatentWindow, locations: FaceLocations, input_name: str):
        """Refuse face places made for a picture of another shape than the latent being sampled,
        naming where the places came from."""
        if not locations.has_shape:
            return
        width, height = locations.width, locations.height
        latent_h, latent_w = window.full_height, window.full_width
        if abs((width / height) / (latent_w / latent_h) - 1) > self.ASPECT_TOLERANCE:
            source = locations.source(0)
            raise RealisIDInputError(
                self.node_name, input_name, f"the faces' places come from {source}, made for a {width}×{height} "
                f"picture, but the latent being sampled is {latent_w}×{latent_h} cells (about {latent_w * 8}×"
                f"{latent_h * 8} pixels), another shape",
                f"make the places for the picture you generate: connect the latent to {source}, or use a layout "
                "photo or mask of the same shape as the picture")

    def _compute_dtype(self):
        return self.manual_cast_dtype if self.manual_cast_dtype is not None else self.control_model.dtype

    def _previous_control(self, x_noisy, t, cond, batched_number, transformer_options):
        """The rest of the chain's residuals, shape-checked before anything is added to them."""
        if self.previous_controlnet is None:
            return None
        control = self.previous_controlnet.get_control(x_noisy, t, cond, batched_number, transformer_options)
        return self._checked(control, x_noisy)

    def _windows(self, x_noisy, cond) -> list[tuple[torch.Tensor, LatentWindow]]:
        """Latent rows grouped by the part of the whole latent they are (area conditioning), with that part.

        The whole latent's size is what rows without an area showed, else the picture the places were
        made for; rows of a whole latent are their own window.
        """
        height, width = x_noisy.shape[-2:]
        areas = cond.get(AREA_KEY)
        if areas is None or bool((areas[:, 0] < 0).all()):
            self.full_latent = (height, width)
            return [(torch.arange(x_noisy.shape[0]), LatentWindow.whole(height, width))]
        groups = {}
        for row, (top, left, h, w) in enumerate(areas.round().long().tolist()):
            groups.setdefault((top, left), []).append(row)
        full = getattr(self, "full_latent", None) or self._full_latent_from_places()
        windows = []
        for (top, left), rows in groups.items():
            window = LatentWindow.whole(height, width) if top < 0 else \
                LatentWindow(top, left, height, width, full[0], full[1])
            windows.append((torch.tensor(rows), window))
        return windows

    def _full_latent_from_places(self):
        """The whole latent's size (cells) from the picture the places were made for."""
        locations = self.spec.locations
        if not locations.has_shape:
            raise RealisIDInputError(self.node_name, "people", "this conditioning covers an area of the picture, and "
                                     "the faces' places do not say how large the whole picture is",
                                     "take the places from RealisID Location Guidance with the latent connected, or "
                                     "leave the negative conditioning without an area")
        return round(locations.height / 8), round(locations.width / 8)

    def _identity_context(self, tokens: torch.Tensor, x_noisy, transformer_options, dtype) -> torch.Tensor:
        """[B, ...] context rows: the person's tokens on CFG's conditional rows, the null identity on
        the unconditional ones (ComfyUI tells which through cond_or_uncond, batched or not)."""
        uncond = uncond_rows(transformer_options, x_noisy.shape[0])
        null = self.spec.identity.null.to(x_noisy.device, dtype)
        tokens = tokens.to(x_noisy.device, dtype)
        mask = uncond.to(x_noisy.device).view(-1, *([1] * (tokens.ndim - 1)))
        return torch.where(mask, null.expand_as(tokens), tokens)

    def _checked(self, control, x_noisy):
        """`control` after asserting every residual has the U-Net's feature shape for x_noisy."""
        if control is not None and self.unet_layout is not None:
            errors = shape_errors(control, self.unet_layout, x_noisy.shape[0], x_noisy.shape[2], x_noisy.shape[3])
            if errors:
                raise RuntimeError(f"{self.node_name}: the control residuals do not fit the model's U-Net "
                                   f"({'; '.join(errors[:3])}). Fix: use ControlNets of the model's family "
                                   f"({self.unet_layout.family}) for every ControlNet on this conditioning.")
        return control



def uncond_rows(transformer_options: dict, batch: int) -> torch.Tensor:
    """[batch] bool: which latent rows are CFG's unconditional side.

    ComfyUI batches conditionings in equal chunks and lists each chunk's kind in
    `cond_or_uncond` (0 cond, 1 uncond); without it, every row counts as conditional.
    """
    kinds = list(transformer_options.get("cond_or_uncond") or [0])
    if batch % len(kinds):
        raise RuntimeError(f"RealisID: a batch of {batch} latents cannot be split into the sampler's "
                           f"{len(kinds)} conditioning chunks {kinds}")
    return torch.tensor([k == 1 for k in kinds]).repeat_interleave(batch // len(kinds))


def refuse_foreign_control(base, node: str) -> None:
    """Refuse ControlNets of another pack's loader (Advanced-ControlNet's keyframes, soft weights and
    masks live in its own control class and would silently do nothing here)."""
    if type(base) is not comfy.controlnet.ControlNet:
        raise RealisIDInputError(node, CONTROL_NET_INPUT, f"this ControlNet was loaded as a {type(base).__module__}."
                                 f"{type(base).__name__}: its own settings (timestep keyframes, soft weights, masks "
                                 "of Advanced-ControlNet's loader) are not supported by RealisID's branches and would "
                                 "silently do nothing", "load the file with RealisID Load ControlNet")


def text_only(cond: dict) -> dict:
    """The conditioning without `crossattn_controlnet`: context another control put there (InstantID's
    face tokens, say) never reaches a RealisID branch, which attends to its own identity or the prompt."""
    return {k: v for k, v in cond.items() if k != "crossattn_controlnet"}


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

    node_name = "RealisID Apply Global Branch"
    identity_input = "identity"

    def get_control(self, x_noisy, t, cond, batched_number, transformer_options):
        previous = self.previous_controlnet
        control_prev = self._previous_control(x_noisy, t, cond, batched_number, transformer_options)
        windows = self._windows(x_noisy, cond)
        for _, window in windows:
            self._check_aspect(window, self.spec.locations, "people")
        self._guidance_for(x_noisy, windows)
        cond = text_only(cond)
        if self.spec.identity is not None:
            tokens = self.spec.identity.tokens.expand(x_noisy.shape[0], -1, -1)
            cond["crossattn_controlnet"] = self._identity_context(tokens, x_noisy, transformer_options,
                                                                  self._compute_dtype())
        self.previous_controlnet = None  # the parent would pass our cond (and identity) down the chain
        try:
            own = super().get_control(x_noisy, t, cond, batched_number, transformer_options)
        finally:
            self.previous_controlnet = previous
        return self._checked(add_residuals(own, control_prev), x_noisy)

    def _guidance_for(self, x_noisy, windows):
        """The guidance of each latent row: drawn at the whole latent's pixel size (once per size), cut to
        the row's window, so faces land where they were placed whatever area a conditioning covers."""
        full = (windows[0][1].full_height * 8, windows[0][1].full_width * 8)
        drawn = getattr(self, "guidance", None)
        if drawn is None or tuple(drawn.shape[-2:]) != full:
            drawn = self.guidance = render_location_guidance(self.spec.locations, full[1], full[0]).movedim(-1, 1)
        rows = torch.empty(x_noisy.shape[0], 3, x_noisy.shape[-2] * 8, x_noisy.shape[-1] * 8)
        for index, window in windows:
            rows[index] = drawn[:, :, window.top * 8:(window.top + window.height) * 8,
                                window.left * 8:(window.left + window.width) * 8]
        self.cond_hint_original = rows[:1]
        self.cond_hint = rows.to(x_noisy.device, self._compute_dtype())

    def cleanup(self):
        self.guidance = None
        self.full_latent = None
        super().cleanup()


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

    node_name = "RealisID Apply Local Branch"

    def get_control(self, x_noisy, t, cond, batched_number, transformer_options):
        control_prev = self._previous_control(x_noisy, t, cond, batched_number, transformer_options)
        if self.timestep_range is not None and (t[0] > self.timestep_range[0] or t[0] < self.timestep_range[1]):
            return control_prev

        spec, dtype, device = self.spec, self._compute_dtype(), x_noisy.device
        windows = self._windows(x_noisy, cond)
        for _, window in windows:
            self._check_aspect(window, spec.locations, "people")
        size = spec.settings.working_size
        hint = self._hints(windows[0][1], device, dtype)
        timestep = self.model_sampling_current.timestep(t).to(dtype)
        x_in = self.model_sampling_current.calculate_input(t, x_noisy)
        if spec.identity is not None:
            contexts = self._identity_context(spec.identity.tokens[None].expand(x_noisy.shape[0], -1, -1, -1),
                                              x_noisy, transformer_options, dtype)  # [B, F, K, D]
        else:
            contexts = comfy.model_management.cast_to_device(cond["c_crossattn"], device, dtype)
        extra = {c: comfy.model_base.convert_tensor(cond[c], dtype, device)
                 for c in self.extra_conds if cond.get(c) is not None}
        if "y" in extra and self.layout.adm_in_channels == SDXL_ADM:
            extra["y"] = crop_size_conditioning(extra["y"], size * 8)
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
        plans = getattr(self, "region_plans", None)
        if plans is None:
            plans = self.region_plans = {}
        key = (window, dtype, str(device))
        if key not in plans:
            plans[key] = plan_window(self.spec.locations, self.spec.settings, window, dtype, device)
        return plans[key]

    def cleanup(self):
        self.region_plans = None
        self.full_latent = None
        super().cleanup()

    def _hints(self, window: LatentWindow, device, dtype):
        """Every face's hint drawn in its crop frame at 8× the working size (once per latent size): a
        crop's frame is the same whichever area of the picture a call sees."""
        hint = self.cond_hint
        full = (window.full_height, window.full_width)
        if hint is None or hint.device != device or hint.dtype != dtype or getattr(self, "hint_latent", None) != full:
            regions = regions_from_locations(self.spec.locations, *full, self.spec.settings.margin)
            drawn = render_branch_hints(self.spec.hint_format, self.spec.poses, self.spec.locations.boxes.numpy(),
                                        regions, *full, self.spec.settings.working_size * 8)
            hint = torch.from_numpy(drawn).movedim(-1, 1).to(device=device, dtype=torch.float32) / 255
            self.cond_hint, self.hint_latent = hint.to(dtype), full
        return self.cond_hint

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


def place_rows(control, part, rows, batch: int):
    """Residuals computed for some latent rows put into a whole batch's residuals (zeros elsewhere)."""
    if control is None:
        control = {k: [None if r is None else r.new_zeros(batch, *r.shape[1:]) for r in levels]
                   for k, levels in part.items()}
    for key, levels in part.items():
        for whole, r in zip(control[key], levels):
            if r is not None:
                whole[rows] = r
    return control


SDXL_ADM = 2816
SDXL_POOLED = 1280


def crop_size_conditioning(y: torch.Tensor, pixels: int) -> torch.Tensor:
    """SDXL's added conditioning for a face crop: the pooled text kept, and the size part of a
    picture of the crop's own size (original = target = pixels², crop origin 0, 0) — what a
    pixels×pixels portrait gets, since the ControlNet sees the crop as a whole picture."""
    from comfy.ldm.modules.diffusionmodules.openaimodel import Timestep
    embed = Timestep(256)
    sizes = torch.tensor([pixels, pixels, 0, 0, pixels, pixels], dtype=torch.float32)
    flat = torch.cat([embed(v.reshape(1)) for v in sizes]).reshape(1, -1).to(y.device, y.dtype)
    return torch.cat([y[:, :SDXL_POOLED], flat.expand(y.shape[0], -1)], dim=1)
