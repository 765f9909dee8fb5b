"""InstantID's Resampler: an ArcFace embedding → identity tokens (IP-Adapter Plus's perceiver architecture).

`num_queries` learnt latents attend, `depth` times, to the projected embedding together with
themselves (pre-normed perceiver attention, then a pre-normed feed-forward, both residual); the
result is projected to the U-Net's context width and layer-normed. InstantID's file has dim 1280,
depth 4, 20 heads of 64, 16 queries, 512 → 2048, feed-forward ×4.

The module names follow the file's keys (`latents`, `proj_in`, `proj_out`, `norm_out`,
`layers.N.0.{norm1,norm2,to_q,to_kv,to_out}`, `layers.N.1.{0,1,3}`), so a state dict loads as is.
Every size is read from the tensors' shapes except the head width, which no shape holds: 64, the
width every published Resampler uses (heads = to_q's width / 64).
"""
from __future__ import annotations

import re

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import RealisIDInputError

DIM_HEAD = 64


class PerceiverAttention(nn.Module):
    """The latents (queries) attend to the embedding tokens and to themselves."""

    def __init__(self, dim: int, heads: int, dim_head: int = DIM_HEAD):
        super().__init__()
        inner = heads * dim_head
        self.heads = heads
        self.norm1 = nn.LayerNorm(dim)  # the embedding tokens
        self.norm2 = nn.LayerNorm(dim)  # the latents
        self.to_q = nn.Linear(dim, inner, bias=False)
        self.to_kv = nn.Linear(dim, 2 * inner, bias=False)
        self.to_out = nn.Linear(inner, dim, bias=False)

    def forward(self, x: torch.Tensor, latents: torch.Tensor) -> torch.Tensor:
        x, latents = self.norm1(x), self.norm2(latents)
        keys, values = self.to_kv(torch.cat([x, latents], dim=1)).chunk(2, dim=-1)

        def heads(t):  # [B, T, H·D] → [B, H, T, D]
            return t.unflatten(-1, (self.heads, -1)).transpose(1, 2)
        out = F.scaled_dot_product_attention(heads(self.to_q(latents)), heads(keys), heads(values))
        return self.to_out(out.transpose(1, 2).flatten(2))


def feed_forward(dim: int, mult: int) -> nn.Sequential:
    """LayerNorm → Linear ×mult → GELU → Linear back (no biases): keys .0, .1, .3."""
    return nn.Sequential(nn.LayerNorm(dim), nn.Linear(dim, dim * mult, bias=False), nn.GELU(),
                         nn.Linear(dim * mult, dim, bias=False))


class Resampler(nn.Module):
    def __init__(self, dim: int = 1280, depth: int = 4, heads: int = 20, num_queries: int = 16,
                 embedding_dim: int = 512, output_dim: int = 2048, ff_mult: int = 4, dim_head: int = DIM_HEAD):
        super().__init__()
        self.latents = nn.Parameter(torch.zeros(1, num_queries, dim))
        self.proj_in = nn.Linear(embedding_dim, dim)
        self.proj_out = nn.Linear(dim, output_dim)
        self.norm_out = nn.LayerNorm(output_dim)
        self.layers = nn.ModuleList(nn.ModuleList([PerceiverAttention(dim, heads, dim_head), feed_forward(dim, ff_mult)])
                                    for _ in range(depth))

    @property
    def embedding_width(self) -> int:
        """Width of the embedding it takes (512 for ArcFace)."""
        return self.proj_in.in_features

    @property
    def tokens(self) -> int:
        return self.latents.shape[1]

    @property
    def width(self) -> int:
        """Width of the tokens it makes (the U-Net's cross-attention width)."""
        return self.proj_out.out_features

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        """[N, E] embeddings (or [N, T, E] token sequences) → [N, num_queries, output_dim]."""
        x = embeddings[:, None] if embeddings.ndim == 2 else embeddings
        x = self.proj_in(x)
        latents = self.latents.expand(x.shape[0], -1, -1)
        for attention, ff in self.layers:
            latents = attention(x, latents) + latents
            latents = ff(latents) + latents
        return self.norm_out(self.proj_out(latents))


def resampler_from_state_dict(state: dict[str, torch.Tensor], name: str,
                              input_name: str = "adapter_name") -> Resampler:
    """The Resampler whose sizes the state dict's shapes give; errors name the file and what is wrong."""
    def refuse(problem):
        raise RealisIDInputError(input_name=input_name, problem=f"{name}: the Resampler (image_proj) {problem}",
                                 fix="use InstantID's original ip-adapter.bin (huggingface.co/InstantX/InstantID)")

    for key in ("latents", "proj_in.weight", "proj_out.weight", "layers.0.0.to_q.weight", "layers.0.1.1.weight"):
        if key not in state:
            refuse(f"has no '{key}'")
    for key, ndim in (("latents", 3), ("proj_in.weight", 2), ("proj_out.weight", 2), ("layers.0.0.to_q.weight", 2),
                      ("layers.0.1.1.weight", 2)):
        if state[key].ndim != ndim or 0 in state[key].shape:
            refuse(f"has '{key}' of shape {tuple(state[key].shape)}, not {ndim}-dimensional")
    indices = sorted({int(m.group(1)) for k in state if (m := re.match(r"layers\.(\d+)\.", k))})
    depth = len(indices)
    if indices != list(range(depth)):  # a stray 'layers.99999.' must not make a Resampler 100000 layers deep
        refuse(f"numbers its layers {indices[:3]}…{indices[-1]}, not 0 to {depth - 1}")
    latents, proj_in, proj_out = state["latents"], state["proj_in.weight"], state["proj_out.weight"]
    if latents.shape[0] != 1:
        refuse(f"has latents of shape {tuple(latents.shape)}, not [1, queries, width]")
    dim = latents.shape[2]
    inner = state["layers.0.0.to_q.weight"].shape[0]
    if inner % DIM_HEAD:
        refuse(f"has attention {inner} wide, not a whole number of {DIM_HEAD}-wide heads")
    ff = state["layers.0.1.1.weight"].shape[0]
    if ff % dim:
        refuse(f"has a feed-forward {ff} wide, not a multiple of its width {dim}")
    sizes = dict(dim=dim, depth=depth, heads=inner // DIM_HEAD, num_queries=latents.shape[1],
                 embedding_dim=proj_in.shape[1], output_dim=proj_out.shape[0], ff_mult=ff // dim)
    with torch.device("meta"):  # shapes first: nothing is allocated for a file that does not fit them
        expected = {k: v.shape for k, v in Resampler(**sizes).state_dict().items()}
    wrong = [f"{k} {tuple(state[k].shape)} (expected {tuple(v)})" for k, v in expected.items()
             if k in state and tuple(state[k].shape) != tuple(v)]
    missing = [k for k in expected if k not in state]
    extra = [k for k in state if k not in expected]
    if wrong or missing or extra:
        refuse("does not have the Resampler's layout: " + "; ".join(
            ([f"shapes {', '.join(wrong[:3])}"] if wrong else []) + ([f"missing {', '.join(missing[:3])}"] if missing else [])
            + ([f"unknown {', '.join(extra[:3])}"] if extra else [])))
    resampler = Resampler(**sizes)
    resampler.load_state_dict({k: v.float() for k, v in state.items()})
    return resampler.eval().requires_grad_(False)
