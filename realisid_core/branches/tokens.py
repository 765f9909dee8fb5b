"""The local branch on a transformer's token grid (FLUX): crop the latent, paste residual tokens back.

A FLUX transformer sees the latent as 2×2 patches: token (i, j) of an H×W latent is the patch
of cells [2i, 2i+2) × [2j, 2j+2), row-major, on a ceil(H/2)×ceil(W/2) grid. A ControlNet run on a
face's S×S crop returns, per block, [S/2·S/2, D] tokens: the crop's own patch grid. That grid
is the crop's region at half the latent's scale, so it is pasted with the same geometry as the
SD branch's latent level (`RegionPlan` of `geometry`, one crop/paste), on regions halved onto
the whole picture's patch grid: cell by cell integrals, the feather, overlap blending and the
border clipping are the SD branch's.

ControlNets of this kind repeat each block's residual over several of the transformer's blocks
(the same tensor several times): each distinct residual is pasted once and repeated again.
"""
from __future__ import annotations

from typing import Callable

import torch

from .geometry import RegionPlan, SquareRegions
from .residuals import Residuals

PATCH = 2
# run(crops [N, C, S, S], first_crop_index) -> {'input': [tokens [N, S/2·S/2, D] …], 'output': […]}
TokenRunner = Callable[[torch.Tensor, int], Residuals]


def patch_grid(size: int) -> int:
    """Tokens along an axis of `size` latent cells (FLUX pads odd sizes to whole patches)."""
    return (size + PATCH - 1) // PATCH


def tokens_to_grid(tokens: torch.Tensor, height: int, width: int) -> torch.Tensor:
    """[N, height·width, D] row-major tokens → [N, D, height, width]."""
    n, length, d = tokens.shape
    if length != height * width:
        raise ValueError(f"{length} tokens are not a {height}×{width} patch grid")
    return tokens.transpose(1, 2).reshape(n, d, height, width)


def grid_to_tokens(grid: torch.Tensor) -> torch.Tensor:
    """[N, D, h, w] → [N, h·w, D] row-major tokens."""
    n, d, h, w = grid.shape
    return grid.reshape(n, d, h * w).transpose(1, 2)


def halved(regions: SquareRegions) -> SquareRegions:
    """The regions (latent cells) on the patch grid: a patch spans 2×2 cells, so every coordinate halves."""
    return SquareRegions(regions.x0 / PATCH, regions.y0 / PATCH, regions.side / PATCH)


class TokenPlan:
    """Crop weights of F faces on an H×W latent and the paste of their residual tokens onto the
    latent's patch grid, computed once and reused every step."""

    def __init__(self, latent_plan: RegionPlan):
        size = latent_plan.working_size
        if size % PATCH:
            raise ValueError(f"the working size must be a whole number of {PATCH}×{PATCH} patches, got {size} cells")
        self.latent_plan = latent_plan
        height, width = latent_plan.latent_size
        self.grid = (patch_grid(height), patch_grid(width))
        self.crop_grid = size // PATCH
        self.patch_plan = RegionPlan(halved(latent_plan.regions), self.crop_grid, *self.grid, latent_plan.feather,
                                     latent_plan.dtype, latent_plan.device)

    @property
    def count(self) -> int:
        return self.latent_plan.regions.count

    def crop(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] → [B*F, C, S, S] latent-major crops."""
        return self.latent_plan.crop(x)

    def paste(self, tokens: torch.Tensor) -> torch.Tensor:
        """[B*F, (S/2)², D] residual tokens of every crop → [B, ceil(H/2)·ceil(W/2), D] on the latent's tokens."""
        grid = tokens_to_grid(tokens, self.crop_grid, self.crop_grid)
        return grid_to_tokens(self.patch_plan.paste(grid))


def distinct(levels) -> tuple[list[torch.Tensor], list[int | None]]:
    """The distinct tensors of a residual list (a ControlNet repeats one tensor over several
    blocks) and, per block, which of them it is (None where the block gets nothing)."""
    unique, index, seen = [], [], {}
    for r in levels:
        if r is None:
            index.append(None)
            continue
        if id(r) not in seen:
            seen[id(r)] = len(unique)
            unique.append(r)
        index.append(seen[id(r)])
    return unique, index


def run_token_branch(x: torch.Tensor, plan: TokenPlan, run: TokenRunner, max_crops_per_forward: int | None = None,
                     on_chunk: Callable[[], None] | None = None,
                     scale: torch.Tensor | None = None) -> Residuals:
    """Residual tokens of the local branch for latents x [B, C, H, W], on the whole latent's token grid.

    All B×F crops go through `run` in one forward, or in chunks of `max_crops_per_forward`;
    `on_chunk` runs after each (interruption). `scale` [B*F] multiplies each crop's residuals
    (per-face strengths) before the paste. Blocks that shared one residual share its paste.
    """
    crops = plan.crop(x)
    chunk = len(crops) if not max_crops_per_forward else max(1, max_crops_per_forward)
    pattern, parts = None, []
    for start in range(0, len(crops), chunk):
        out = run(crops[start:start + chunk], start)
        split = {key: distinct(levels) for key, levels in out.items()}
        layout = {key: index for key, (_, index) in split.items()}
        if pattern is None:
            pattern = layout
        elif layout != pattern:
            raise RuntimeError("the ControlNet returned residuals in another block pattern for another chunk of crops")
        parts.append({key: unique for key, (unique, _) in split.items()})
        if on_chunk is not None:
            on_chunk()
    result = {}
    for key, index in pattern.items():
        uniques = [torch.cat([p[key][u] for p in parts]) if len(parts) > 1 else parts[0][key][u]
                   for u in range(len(parts[0][key]))]
        if scale is not None:
            uniques = [u * scale.view(-1, 1, 1).to(u.dtype) for u in uniques]
        pasted = [plan.paste(u) for u in uniques]
        result[key] = [None if i is None else pasted[i] for i in index]
    return result
