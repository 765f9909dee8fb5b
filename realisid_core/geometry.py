"""Square face regions of a latent: crop them to a working size, paste residuals back.

Coordinates are in latent cells: cell i spans [i, i+1). Regions are float, so crops have
sub-cell precision. Training and inference both use these functions.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from .locations import FaceLocations


@dataclass(frozen=True)
class SquareRegions:
    """F square regions in latent cells: top-left corner (x0, y0) and side, each [F] float64."""

    x0: torch.Tensor
    y0: torch.Tensor
    side: torch.Tensor

    @property
    def count(self) -> int:
        return int(self.side.shape[0])

    def at_level(self, halvings: int, working_size: int, level_size: int) -> "SquareRegions":
        """Where a crop's level-k feature map lies on the latent's level-k feature grid.

        A stride-2 convolution centres output cell j on input cell 2j, so level-k cell j is
        centred on latent cell 2^k·j. Crop and latent share that convention at different
        scales, which shifts small regions by up to half a cell at deep levels.
        """
        scale = self.side / working_size  # latent cells per crop pixel
        f = 2.0 ** halvings
        def start(origin):
            return (origin + 0.5 * scale - 0.5) / f + 0.5 * (1 - scale)
        return SquareRegions(start(self.x0), start(self.y0), scale * level_size)


def regions_from_locations(locations: FaceLocations, latent_height: int, latent_width: int,
                           margin: float = 1.6) -> SquareRegions:
    """Square regions centred on each face box, side = margin × the box's longer side."""
    cx, cy, w, h = locations.boxes.to(torch.float64).unbind(-1)
    side = margin * torch.maximum(w * latent_width, h * latent_height)
    return SquareRegions(cx * latent_width - side / 2, cy * latent_height - side / 2, side)


def halve(size: int, times: int) -> int:
    """Size after `times` stride-2 convolutions (each maps n to ceil(n/2))."""
    for _ in range(times):
        size = (size + 1) // 2
    return size


def halvings_between(full: int, reduced: int) -> int:
    """How many stride-2 steps turn `full` into `reduced`; ValueError when none does."""
    k, size = 0, full
    while size > reduced:
        size, k = (size + 1) // 2, k + 1
    if size != reduced:
        raise ValueError(f"a feature map of size {reduced} is not a stride-2 reduction of {full}")
    return k


def _crop_axis_weights(n_src: int, start: torch.Tensor, extent: torch.Tensor, n_out: int) -> torch.Tensor:
    """[F, n_out, n_src] weights sampling `n_out` pixels over [start, start+extent) of a length-n_src axis.

    Up-sampling (pixel ≤ 1 cell) is bilinear; down-sampling averages the cells under each
    pixel (area). Outside the axis the border cell is repeated.
    """
    step = (extent / n_out)[:, None, None]
    k = torch.arange(n_out, dtype=torch.float64)[None, :, None]
    cells = torch.arange(n_src, dtype=torch.float64)[None, None, :]
    lo = start[:, None, None] + k * step
    centre = lo + step / 2
    bilinear = torch.relu(1 - (centre.clamp(0.5, n_src - 0.5) - 0.5 - cells).abs())
    a = lo.clamp(0, n_src - 1)
    b = (lo + step).clamp(1, n_src)
    b = torch.maximum(b, a + 1e-9)
    area = (torch.minimum(b, cells + 1) - torch.maximum(a, cells)).clamp(min=0)
    weights = torch.where(step <= 1, bilinear, area)
    return weights / weights.sum(-1, keepdim=True)


def crop_regions(x: torch.Tensor, regions: SquareRegions, size: int) -> torch.Tensor:
    """Crop every region of every latent and resample it to size×size.

    x: [B, C, H, W] → [B*F, C, size, size], ordered latent-major (b0f0, b0f1, …, b1f0, …).
    """
    b, c, h, w = x.shape
    wy = _crop_axis_weights(h, regions.y0, regions.side, size).to(x)
    wx = _crop_axis_weights(w, regions.x0, regions.side, size).to(x)
    crops = torch.einsum("fsh,bchw,ftw->bfcst", wy, x, wx)
    return crops.reshape(b * regions.count, c, size, size)


def feather_mask(size: int, feather: float, dtype=torch.float32, device=None) -> torch.Tensor:
    """[size, size] mask over a region: 1 inside, falling linearly to 0 over the outer `feather` fraction."""
    u = (torch.arange(size, dtype=torch.float64, device=device) + 0.5) / size
    edge = torch.minimum(u, 1 - u)
    ramp = torch.ones_like(u) if feather <= 0 else (edge / feather).clamp(max=1)
    return (ramp[:, None] * ramp[None, :]).to(dtype)


def _paste_axis_weights(start: float, extent: float, n_src: int, lo: int, hi: int) -> torch.Tensor:
    """[hi-lo, n_src] overlap lengths of cells [lo, hi) with the n_src pixels tiling [start, start+extent)."""
    step = extent / n_src
    pix_lo = start + step * torch.arange(n_src, dtype=torch.float64)
    cells = torch.arange(lo, hi, dtype=torch.float64)[:, None]
    return (torch.minimum(cells + 1, pix_lo + step) - torch.maximum(cells, pix_lo)).clamp(min=0)


def paste_regions(residual: torch.Tensor, regions: SquareRegions, working_size: int,
                  latent_height: int, latent_width: int, feather: float = 0.0) -> torch.Tensor:
    """Paste one feature level of per-face residuals back onto the latent's grid, summed over faces.

    residual: [B*F, C, n, n] (latent-major, as `crop_regions` orders them), one level of the
    ControlNet's output for crops of `working_size`; `regions` in latent cells. The level is
    read from n, and the output has that level's shape for a latent_height×latent_width
    latent: [B, C, ceil-halved H, ceil-halved W]. Each cell receives the integral of the
    (feathered) residual over its area, so a constant residual integrates to the region's
    area even when the region is smaller than one cell; regions are clipped at the border.
    """
    n = residual.shape[-1]
    k = halvings_between(working_size, n)
    out_height, out_width = halve(latent_height, k), halve(latent_width, k)
    regions = regions.at_level(k, working_size, n)
    nf = regions.count
    bf, c, n, _ = residual.shape
    b = bf // nf
    per_face = residual.reshape(b, nf, c, n, n)
    out = residual.new_zeros(b, c, out_height, out_width)
    for f in range(nf):
        x0, y0, side = float(regions.x0[f]), float(regions.y0[f]), float(regions.side[f])
        r = per_face[:, f]
        if side > n:  # region covers more cells than the residual has pixels: up-sample first
            m = math.ceil(side)
            r = F.interpolate(r, size=(m, m), mode="bilinear", align_corners=False)
        m = r.shape[-1]
        r = r * feather_mask(m, feather, dtype=r.dtype, device=r.device)
        i0, i1 = max(0, math.floor(y0)), min(out_height, math.ceil(y0 + side))
        j0, j1 = max(0, math.floor(x0)), min(out_width, math.ceil(x0 + side))
        if i1 <= i0 or j1 <= j0:
            continue
        wy = _paste_axis_weights(y0, side, m, i0, i1).to(r)
        wx = _paste_axis_weights(x0, side, m, j0, j1).to(r)
        out[:, :, i0:i1, j0:j1] += torch.einsum("hp,bcpq,wq->bchw", wy, r, wx)
    return out
