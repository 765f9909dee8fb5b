"""Identity in the U-Net's cross-attention, per person and per region (InstantID's adapter half).

InstantID adds to every cross-attention layer of the U-Net a second attention over the identity
tokens, with its own key/value projections:

    out = attn(q, K_text, V_text) + w · attn(q, to_k_ip(tokens), to_v_ip(tokens))

Here each person p has their own tokens and a region (their face box grown by a margin, or a mask
the artist drew), and the identity term is added only where that region is, in proportion to how
much of each token's cell it covers:

    out = attn(q, K_text, V_text) + w · Σ_p m_p ⊙ attn(q, K_p, V_p)

What that guarantees is per layer: inside each cross-attention layer, person p's identity term is
added only at the tokens of p's region, so no layer attends to one person's identity at another's face
or at the background, and two identities never mix at one token. It is not a guarantee about the
picture: between those layers the U-Net's convolutions and self-attention mix every position with
others, so each person's identity still influences cells outside their region (no cell of the output
outside the regions is unchanged), as anything added anywhere in a U-Net does. Where regions overlap,
the shares are scaled to sum to 1 (never a double dose). CFG's unconditional rows get the null
tokens (the Resampler of a zero embedding) in the same regions, as InstantID's pipeline does.

Pure torch, and no knowledge of a host's U-Net: the host's attention patch (nodes/instantid.py, which also
finds ComfyUI's cross-attention layers) calls these with its own attention function.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch
import torch.nn.functional as F

from ..errors import RealisIDInputError
from ..people.locations import FaceLocations

def describe_layers(widths: list[int]) -> str:
    counts = ", ".join(f"{widths.count(w)} of {w}" for w in sorted(set(widths)))
    return f"{len(widths)} cross-attention layers ({counts} channels)"


def _cover(lo: torch.Tensor, hi: torch.Tensor, cells: int) -> torch.Tensor:
    """[P, cells]: the fraction of each of `cells` equal cells of [0, 1] inside [lo, hi] (per row)."""
    edges = torch.arange(cells + 1, dtype=torch.float64) / cells
    inside = torch.minimum(hi[:, None], edges[None, 1:]) - torch.maximum(lo[:, None], edges[None, :-1])
    return inside.clamp_min(0) * cells


def box_weights(boxes: torch.Tensor, margin: float, height: int, width: int) -> torch.Tensor:
    """[P, H·W]: how much of each token cell of an H×W grid each (cx, cy, w, h) fraction box, grown
    by `margin` about its centre, covers (0 … 1; a region smaller than a cell still counts its share)."""
    boxes = torch.as_tensor(boxes, dtype=torch.float64).reshape(-1, 4)
    cx, cy, w, h = boxes.unbind(1)
    half_w, half_h = w * margin / 2, h * margin / 2
    cover_x = _cover((cx - half_w).clamp(0, 1), (cx + half_w).clamp(0, 1), width)
    cover_y = _cover((cy - half_h).clamp(0, 1), (cy + half_h).clamp(0, 1), height)
    return (cover_y[:, :, None] * cover_x[:, None, :]).reshape(len(boxes), -1).float()


def mask_weights(masks: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[M, H·W]: masks [M, h, w] (0 … 1, the picture's extent) averaged over each token cell."""
    masks = torch.as_tensor(masks, dtype=torch.float32)
    masks = masks.reshape(-1, *masks.shape[-2:])[:, None]
    return F.adaptive_avg_pool2d(masks, (height, width)).reshape(masks.shape[0], -1).clamp(0, 1)


def region_weights(boxes: torch.Tensor, margin: float, height: int, width: int,
                   masks: torch.Tensor | None = None) -> torch.Tensor:
    """[P, H·W] share of each person's identity at each token.

    Without masks: each face box grown by `margin`. With one mask per person: mask p is person p's
    region. With one mask for several people: each box region, limited to the mask. Overlapping
    shares are scaled so they sum to at most 1.
    """
    weights = box_weights(boxes, margin, height, width)
    if masks is not None:
        drawn = mask_weights(masks, height, width)
        if drawn.shape[0] == weights.shape[0]:
            weights = drawn
        elif drawn.shape[0] == 1:
            weights = weights * drawn
        else:
            raise ValueError(f"{drawn.shape[0]} masks for {weights.shape[0]} people (give one per person, or one)")
    return weights / weights.sum(0, keepdim=True).clamp_min(1)


@dataclass(frozen=True)
class TokenRegions:
    """Per person, the tokens their identity reaches (indices) and its share there."""

    index: tuple[torch.Tensor, ...]
    share: tuple[torch.Tensor, ...]

    @classmethod
    def from_weights(cls, weights: torch.Tensor) -> "TokenRegions":
        index = tuple(torch.nonzero(w > 0).flatten() for w in weights)
        return cls(index, tuple(w[i] for w, i in zip(weights, index)))

    def to(self, device, dtype) -> "TokenRegions":
        return TokenRegions(tuple(i.to(device) for i in self.index), tuple(s.to(device, dtype) for s in self.share))


def token_grid(tokens: int, activations_shape=None, original_shape=None) -> tuple[int, int]:
    """(h, w) of the token grid of an attention layer with `tokens` queries: the layer's activation
    shape when known, else the latent's (H, W) halved (ceil) as many times as fits."""
    if activations_shape is not None and len(activations_shape) >= 4:
        h, w = int(activations_shape[-2]), int(activations_shape[-1])
        if h * w == tokens:
            return h, w
    if original_shape is not None and len(original_shape) >= 4:
        h, w = int(original_shape[-2]), int(original_shape[-1])
        for _ in range(8):
            if h * w == tokens:
                return h, w
            h, w = -(-h // 2), -(-w // 2)
    raise ValueError(f"cannot tell the picture shape of an attention layer with {tokens} tokens "
                     f"(activations {activations_shape}, latent {original_shape})")


Attention = Callable[[torch.Tensor, torch.Tensor, torch.Tensor], torch.Tensor]


def add_identity_attention(out: torch.Tensor, q: torch.Tensor, keys: torch.Tensor, values: torch.Tensor,
                           null_key: torch.Tensor, null_value: torch.Tensor, regions: TokenRegions,
                           uncond: torch.Tensor, weight: float, attention: Attention) -> torch.Tensor:
    """out + weight · Σ_p share_p ⊙ attention(q, K_p, V_p) at person p's tokens only.

    out, q: [B, N, C] (the base attention's output, the projected queries); keys, values: [P, K, C]
    (to_k_ip / to_v_ip of each person's tokens); null_key, null_value: [1, K, C] (of the null tokens),
    used on the rows where `uncond` [B] is true; attention(q [B, n, C], k [B, K, C], v [B, K, C]) → [B, n, C].
    Tokens outside every region are returned bit for bit (by this layer: the layers after it spread
    what it added, see the module's docstring).
    """
    rows = uncond.to(q.device).view(-1, 1, 1)
    result = None
    for p, (index, share) in enumerate(zip(regions.index, regions.share)):
        if index.numel() == 0:
            continue
        k = torch.where(rows, null_key, keys[p:p + 1]).expand(q.shape[0], -1, -1)
        v = torch.where(rows, null_value, values[p:p + 1]).expand(q.shape[0], -1, -1)
        added = attention(q.index_select(1, index), k, v) * (share * weight)[None, :, None]
        if result is None:
            result = out.clone()
        result.index_add_(1, index, added.to(result.dtype))
    return out if result is None else result


def check_masks(mask: torch.Tensor | None, people_count: int, input_name: str = "mask") -> torch.Tensor | None:
    """Masks [M, h, w] float on the CPU, one per person or one for everybody; None without a mask."""
    if mask is None:
        return None
    masks = mask.reshape(-1, *mask.shape[-2:]).float().cpu()
    if masks.shape[0] not in (1, people_count):
        raise RealisIDInputError(input_name=input_name, problem=f"{masks.shape[0]} masks were given for {people_count} "
                                 "people", fix=f"give one mask per person ({people_count}, in person order), or one mask "
                                 "that limits everybody's identity")
    return masks


class IdentityAttention:
    """What every layer's identity attention shares: per-layer keys/values of each person's tokens and of the
    null tokens, the people's regions (token weights per grid size, computed once), weight and sigma window.

    Shared, never copied: a host may deep-copy model options (ComfyUI does, on every model clone).
    """

    def __init__(self, keys_values, locations: FaceLocations, strengths, margin, masks, weight, sigma_start,
                 sigma_end, input_name: str = "people"):
        self.keys_values = keys_values  # per layer (keys [P+1, K, C], values [P+1, K, C]), the null last, CPU
        self.locations, self.strengths, self.margin, self.masks = locations, strengths, margin, masks
        self.weight, self.sigma_start, self.sigma_end = weight, sigma_start, sigma_end
        self.input_name = input_name
        self._regions, self._layers, self._checked = {}, {}, set()

    def __deepcopy__(self, memo):
        return self

    def active(self, sigma: float | None) -> bool:
        """Whether the identity attention runs at noise level `sigma` (None: unknown, it runs)."""
        return sigma is None or self.sigma_end <= sigma <= self.sigma_start

    def regions(self, height, width, device, dtype) -> TokenRegions:
        key = (height, width, str(device), dtype)
        if key not in self._regions:
            weights = region_weights(self.locations.boxes, self.margin, height, width, self.masks)
            weights = weights * self.strengths[:, None]
            self._regions[key] = TokenRegions.from_weights(weights).to(device, dtype)
        return self._regions[key]

    def layer(self, i, device, dtype):
        """Layer i's (person keys, person values, null key, null value) on `device` in `dtype`."""
        key = (i, str(device), dtype)
        if key not in self._layers:
            keys, values = (t.to(device, dtype) for t in self.keys_values[i])
            self._layers[key] = (keys[:-1], values[:-1], keys[-1:], values[-1:])
        return self._layers[key]

    def check_shape(self, latent_height: int, latent_width: int) -> None:
        """Places made for a picture of another shape than the latent are refused (as the local branch does)."""
        if (latent_height, latent_width) in self._checked:
            return
        problem = self.locations.aspect_problem(latent_height, latent_width)
        if problem:
            raise RealisIDInputError(input_name=self.input_name, problem=problem,
                                     fix="make the places for the picture you generate")
        self._checked.add((latent_height, latent_width))
