"""RealisID's trainable parts and their forward pass in training: the engine's geometry, diffusers models.

The local branch crops each face of the *noisy* latent with the engine's RegionPlan
(`plan_local_branch`), runs a diffusers ControlNet on the crops with the identity tokens as its
cross-attention context and the pose-expression hint drawn by `render_branch_hints` in the crop
frame, and pastes the residuals back with the same plan — exactly what the nodes' local branch
does at inference. The global branch is a ControlNet on the whole latent with the location
guidance (`render_location_guidance`) as hint. Their residuals are summed and added to the
frozen U-Net's skip connections (`down_block_additional_residuals`) and middle block.
"""
from __future__ import annotations

import numpy as np
import torch
from torch import nn

from realisid_core.branches.geometry import RegionPlan
from realisid_core.signals.hints import render_branch_hints
from realisid_core.models.projector import IDProjector
from realisid_core.branches.local import LocalBranchSettings, crop_size_ids, plan_local_branch
from realisid_core.families import to_pixels
from realisid_core.people.locations import FaceLocations


def settings_of(local_section) -> LocalBranchSettings:
    return LocalBranchSettings(local_section.working_size, local_section.margin, local_section.feather)


def local_plan(boxes, local_section, latent_height: int, latent_width: int, dtype=torch.float32,
               device=None) -> RegionPlan:
    """The engine's crop/paste plan for the faces (cx, cy, w, h fraction boxes [F, 4]) of one latent."""
    locations = FaceLocations(torch.as_tensor(np.asarray(boxes, np.float64)).reshape(-1, 4), 0, 0)
    return plan_local_branch(locations, settings_of(local_section), latent_height, latent_width, dtype, device)


def local_hints(format_name: str, poses, boxes, plan: RegionPlan, latent_height: int, latent_width: int,
                working_size: int) -> np.ndarray:
    """Each face's hint drawn in its crop frame at 8× the working size: [F, 8S, 8S, 3] uint8 (the nodes' drawing)."""
    return render_branch_hints(format_name, poses, np.asarray(boxes, np.float64).reshape(-1, 4), plan.regions,
                               latent_height, latent_width, to_pixels(working_size))


def size_time_ids(height: int, width: int, count: int, device=None, dtype=torch.float32) -> torch.Tensor:
    """SDXL's size conditioning [count, 6] of a whole picture: original = target = height×width pixels, crop
    origin 0, 0."""
    row = torch.tensor([height, width, 0, 0, height, width], dtype=dtype, device=device)
    return row.expand(count, 6)


def crop_owners(counts: list[int], device) -> torch.Tensor:
    """The latent each crop comes from, in the crops' latent-major order ([0, 0, 1, …] for counts [2, 1, …])."""
    return torch.tensor([b for b, n in enumerate(counts) for _ in range(n)], dtype=torch.long, device=device)


def run_local(controlnet, x_t: torch.Tensor, timesteps: torch.Tensor, contexts: torch.Tensor, hints: torch.Tensor,
              plans: list[RegionPlan], pooled_text: torch.Tensor | None = None):
    """Local-branch residuals for latents x_t [B, C, H, W] (diffusers order: down list, mid).

    plans[b] holds latent b's faces; contexts [ΣF, K, D] and hints [ΣF, 3, 8S, 8S] follow the
    crops' latent-major order; timesteps [B]. For SDXL (`pooled_text` [B, 1280]) each crop gets
    the pooled text and the size conditioning of a picture of the crop's own size (`crop_size_ids`).
    """
    counts = [p.regions.count for p in plans]
    owner = crop_owners(counts, x_t.device)
    crops = torch.cat([plan.crop(x_t[b:b + 1]) for b, plan in enumerate(plans)])
    kwargs = {}
    if pooled_text is not None:
        ids = torch.tensor(crop_size_ids(plans[0].working_size), dtype=pooled_text.dtype, device=x_t.device)
        kwargs["added_cond_kwargs"] = {"text_embeds": pooled_text[owner], "time_ids": ids.expand(len(crops), 6)}
    down, mid = controlnet(crops.to(controlnet.dtype), timesteps[owner], encoder_hidden_states=contexts,
                           controlnet_cond=hints.to(controlnet.dtype), return_dict=False, **kwargs)

    def paste(residual):
        return torch.cat([plan.paste(part) for plan, part in zip(plans, residual.split(counts))])
    return [paste(r) for r in down], paste(mid)


def run_global(controlnet, x_t: torch.Tensor, timesteps: torch.Tensor, context: torch.Tensor, guidance: torch.Tensor,
               pooled_text: torch.Tensor | None = None):
    """Global-branch residuals on the whole latent; guidance [B, 3, 8H, 8W] in [0, 1]."""
    kwargs = {}
    if pooled_text is not None:
        height, width = to_pixels(x_t.shape[-2]), to_pixels(x_t.shape[-1])
        kwargs["added_cond_kwargs"] = {"text_embeds": pooled_text,
                                       "time_ids": size_time_ids(height, width, len(x_t), x_t.device, pooled_text.dtype)}
    down, mid = controlnet(x_t.to(controlnet.dtype), timesteps, encoder_hidden_states=context,
                           controlnet_cond=guidance.to(controlnet.dtype), return_dict=False, **kwargs)
    return list(down), mid


def add_down_mid(a, b):
    """The sum of two (down residuals, mid residual) pairs in diffusers' order (None passes through)."""
    if a is None:
        return b
    if b is None:
        return a
    return [x + y for x, y in zip(a[0], b[0])], a[1] + b[1]


class Branches(nn.Module):
    """Everything RealisID trains: the ID projector, the local and the global ControlNet (either may be None).

    One module so that data-parallel training syncs one set of gradients; `forward` is the
    branches' part of a training step and what the training-equals-inference tests compare.
    """

    def __init__(self, projector: IDProjector, local=None, global_=None, global_context: str = "text"):
        super().__init__()
        self.projector, self.local, self.global_ = projector, local, global_
        self.global_context = global_context

    @property
    def uses_identity(self) -> bool:
        """Whether any branch attends to the identity tokens (else the projector has nothing to learn)."""
        return self.local is not None or (self.global_ is not None and self.global_context == "identity")

    def identity_tokens(self, embeddings: torch.Tensor, drop: torch.Tensor) -> torch.Tensor:
        """Tokens [N, K, D]; rows with `drop` get the null identity: the projector of a zero embedding,
        exactly the tokens the nodes give CFG's unconditional side (realisid_core.models.projector.project)."""
        dtype = self.projector.proj.weight.dtype
        embeddings = torch.where(drop.view(-1, 1), torch.zeros_like(embeddings), embeddings)
        return self.projector(embeddings.to(dtype))

    def forward(self, x_t, timesteps, embeddings, drop_identity, text_context, pooled_text=None,
                local_plans=None, local_hint=None, global_hint=None):
        """(down residuals, mid residual) of the enabled branches, summed, for latents x_t [B, C, H, W].

        embeddings [B, E] (one face per latent, as in training); drop_identity [B] bool;
        text_context [B, T, D] (the prompt, for a global branch that attends to text).
        """
        tokens = self.identity_tokens(embeddings, drop_identity) if self.uses_identity else None
        out = None
        if self.local is not None:
            owner = crop_owners([p.regions.count for p in local_plans], x_t.device)
            out = run_local(self.local, x_t, timesteps, tokens[owner].to(self.local.dtype), local_hint, local_plans,
                            pooled_text)
        if self.global_ is not None:
            context = tokens if self.global_context == "identity" else text_context
            out = add_down_mid(out, run_global(self.global_, x_t, timesteps, context.to(self.global_.dtype),
                                                global_hint, pooled_text))
        return out
