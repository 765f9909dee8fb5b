"""Classifier-free guidance's two sides for a branch: which latent rows are the unconditional side, and the
identity context they get (the null identity, the projector of a zero embedding: the rule the trainer's
identity dropout follows too)."""
from __future__ import annotations

import torch


def uncond_rows(kinds, batch: int) -> torch.Tensor:
    """[batch] bool: which latent rows are CFG's unconditional side.

    The sampler batches conditionings in equal chunks and lists each chunk's kind (0 cond, 1 uncond;
    ComfyUI's `cond_or_uncond`); without a list, every row counts as conditional.
    """
    kinds = list(kinds or [0])
    if batch % len(kinds):
        raise RuntimeError(f"RealisID: a batch of {batch} latents cannot be split into the sampler's "
                           f"{len(kinds)} conditioning chunks {kinds}")
    return torch.tensor([k == 1 for k in kinds]).repeat_interleave(batch // len(kinds))


def identity_context(tokens: torch.Tensor, null: torch.Tensor, uncond: torch.Tensor) -> torch.Tensor:
    """Context rows [B, ...]: `tokens` [B, ...] on the conditional rows, `null` (broadcast to them) on the rows
    `uncond` [B] marks; on the tokens' device and dtype."""
    null = null.to(tokens.device, tokens.dtype)
    mask = uncond.to(tokens.device).view(-1, *([1] * (tokens.ndim - 1)))
    return torch.where(mask, null.expand_as(tokens), tokens)
