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

from ..realisid_core.errors import RealisIDInputError
from ..realisid_core.local_branch import LocalBranchSettings, crop_index, plan_local_branch, run_local_branch
from ..realisid_core.locations import FaceLocations
from ..realisid_core.residuals import add_residuals
from ..realisid_core.unet_layout import (ControlLayout, layout_from_config, layout_from_controlnet, mismatch,
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


def model_layout(model: comfy.model_base.BaseModel) -> ControlLayout:
    """The residual layout the sampled model's U-Net accepts."""
    cfg = model.model_config.unet_config
    return layout_from_config(cfg["model_channels"], cfg["channel_mult"], cfg["num_res_blocks"],
                              cfg.get("context_dim"), cfg.get("adm_in_channels"))


class RealisIDControl(comfy.controlnet.ControlNet):
    """Shared plumbing: creation from a loaded ControlNet, copies, model checks, shape asserts."""

    node_name = "RealisID"

    @classmethod
    def from_controlnet(cls, base: comfy.controlnet.ControlNet, spec) -> "RealisIDControl":
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
        self.unet_layout = model_layout(model)
        why = mismatch(self.layout, self.unet_layout)
        if why:
            raise RealisIDInputError(self.node_name, CONTROL_NET_INPUT, why,
                                     f"load a ControlNet trained for {self.unet_layout.family} models, "
                                     f"or sample with a {self.layout.family} checkpoint")

    def cleanup(self):
        self.unet_layout = None
        super().cleanup()

    # Latents are whole cells of 8 pixels, so a picture's aspect and its latent's differ a little.
    ASPECT_TOLERANCE = 0.03

    def _check_aspect(self, x_noisy, width: int, height: int, input_name: str):
        """Refuse locations or guidance made for a picture of another shape than the latent being sampled."""
        latent_h, latent_w = x_noisy.shape[-2:]
        if abs((width / height) / (latent_w / latent_h) - 1) > self.ASPECT_TOLERANCE:
            raise RealisIDInputError(
                self.node_name, input_name, f"it was made for a {width}×{height} picture but the latent being sampled "
                f"is {latent_w}×{latent_h} cells (about {latent_w * 8}×{latent_h * 8} pixels), another shape",
                "give RealisID Location Guidance the width and height of the picture you generate")

    def _compute_dtype(self):
        return self.manual_cast_dtype if self.manual_cast_dtype is not None else self.control_model.dtype

    def _previous_control(self, x_noisy, t, cond, batched_number, transformer_options):
        """The rest of the chain's residuals, shape-checked before anything is added to them."""
        if self.previous_controlnet is None:
            return None
        control = self.previous_controlnet.get_control(x_noisy, t, cond, batched_number, transformer_options)
        return self._checked(control, x_noisy)

    def _checked(self, control, x_noisy):
        """`control` after asserting every residual has the U-Net's feature shape for x_noisy."""
        if control is not None and self.unet_layout is not None:
            errors = shape_errors(control, self.unet_layout, x_noisy.shape[0], x_noisy.shape[2], x_noisy.shape[3])
            if errors:
                raise RuntimeError(f"{self.node_name}: the control residuals do not fit the model's U-Net "
                                   f"({'; '.join(errors[:3])}). Fix: use ControlNets of the model's family "
                                   f"({self.unet_layout.family}) for every ControlNet on this conditioning.")
        return control


@dataclass(frozen=True)
class GlobalBranchSpec:
    """identity: [1, T, D] tokens the global branch attends to instead of the text, or None."""

    identity: torch.Tensor | None = None


class GlobalBranchControl(RealisIDControl):
    """A ControlNet on the full latent; with identity tokens, it carries them itself so they never
    reach other ControlNets on the same conditioning (as `crossattn_controlnet` would)."""

    node_name = "RealisID Apply Global Branch"

    def get_control(self, x_noisy, t, cond, batched_number, transformer_options):
        previous = self.previous_controlnet
        control_prev = self._previous_control(x_noisy, t, cond, batched_number, transformer_options)
        self._check_aspect(x_noisy, self.cond_hint_original.shape[-1], self.cond_hint_original.shape[-2], "guidance")
        if self.spec.identity is not None:
            cond = {**cond, "crossattn_controlnet": self.spec.identity.expand(x_noisy.shape[0], -1, -1)}
        self.previous_controlnet = None  # the parent would pass our cond (and identity) down the chain
        try:
            own = super().get_control(x_noisy, t, cond, batched_number, transformer_options)
        finally:
            self.previous_controlnet = previous
        return self._checked(add_residuals(own, control_prev), x_noisy)


@dataclass(frozen=True)
class LocalBranchSpec:
    """Faces, their hints [F, 3, h, w], optional identity tokens [F, K, D], crop settings."""

    locations: FaceLocations
    hints: torch.Tensor
    identity: torch.Tensor | None
    settings: LocalBranchSettings


class LocalBranchControl(RealisIDControl):
    """Crops every face of the noisy latent, runs the ControlNet once on all B×F crops, pastes back."""

    node_name = "RealisID Apply Local Branch"
    # rough activation bytes per crop pixel per base channel of an SD ControlNet forward
    _BYTES_FACTOR = 48

    def get_control(self, x_noisy, t, cond, batched_number, transformer_options):
        control_prev = self._previous_control(x_noisy, t, cond, batched_number, transformer_options)
        if self.timestep_range is not None and (t[0] > self.timestep_range[0] or t[0] < self.timestep_range[1]):
            return control_prev

        spec, dtype, device = self.spec, self._compute_dtype(), x_noisy.device
        self._check_aspect(x_noisy, spec.locations.width, spec.locations.height, "face_locations")
        faces = spec.locations.count
        size = spec.settings.working_size
        hint = self._hint(size * 8, device, dtype)
        timestep = self.model_sampling_current.timestep(t).to(dtype)
        x_in = self.model_sampling_current.calculate_input(t, x_noisy)
        text = cond.get("crossattn_controlnet", cond["c_crossattn"])
        text = comfy.model_management.cast_to_device(text, device, dtype)
        identity = None if spec.identity is None else spec.identity.to(device, dtype)
        extra = {c: comfy.model_base.convert_tensor(cond[c], dtype, device)
                 for c in self.extra_conds if cond.get(c) is not None}

        def run(crops, start):
            b, f = crop_index(torch.arange(start, start + len(crops), device=device), faces)
            context = identity[f] if identity is not None else text[b]
            return self.control_model(x=crops.to(dtype), hint=hint[f], timesteps=timestep[b], context=context,
                                      **{k: v[b] for k, v in extra.items()})

        control = run_local_branch(x_in, spec.locations, run, spec.settings, self._max_crops(device, dtype, size),
                                   on_chunk=comfy.model_management.throw_exception_if_processing_interrupted,
                                   plan=self._plan(x_noisy, dtype))
        return self._checked(self.control_merge(control, control_prev, output_dtype=None), x_noisy)

    def _plan(self, x_noisy, dtype):
        """Crop/paste weights for this latent size, kept across steps (sampling keeps the size)."""
        height, width = x_noisy.shape[-2:]
        plan = getattr(self, "region_plan", None)
        if plan is None or not plan.fits(height, width, dtype, x_noisy.device):
            plan = self.region_plan = plan_local_branch(self.spec.locations, self.spec.settings, height, width,
                                                        dtype, x_noisy.device)
        return plan

    def cleanup(self):
        self.region_plan = None
        super().cleanup()

    def _hint(self, pixels, device, dtype):
        hint = self.cond_hint
        if hint is None or hint.shape[-1] != pixels or hint.device != device or hint.dtype != dtype:
            hint = comfy.utils.common_upscale(self.spec.hints, pixels, pixels, self.upscale_algorithm, "center")
            self.cond_hint = hint = hint.to(device=device, dtype=dtype)
        return hint

    def _max_crops(self, device, dtype, size):
        """How many crops fit in one forward with the free memory (None: all of them)."""
        per_crop = size * size * self.control_model.model_channels * self._BYTES_FACTOR * dtype.itemsize
        fits = int(comfy.model_management.get_free_memory(device) * 0.8 // per_crop)
        return max(1, fits)
