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
    return RegionPlan(regions, size, x.shape[-2], x.shape[-1], dtype=x.dtype, device=x.device).crop(x)


def feather_mask(size: int, feather: float, dtype=torch.float32, device=None) -> torch.Tensor:
    """[size, size] mask over a region: 1 inside, falling linearly to 0 over the outer `feather` fraction."""
    u = (torch.arange(size, dtype=torch.float64, device=device) + 0.5) / size
    edge = torch.minimum(u, 1 - u)
    ramp = torch.ones_like(u) if feather <= 0 else (edge / feather).clamp(max=1)
    return (ramp[:, None] * ramp[None, :]).to(dtype)


def _paste_axis_weights(start: torch.Tensor, extent: torch.Tensor, n_src: int, lo: torch.Tensor,
                        cells: int) -> torch.Tensor:
    """[F, cells, n_src] overlap lengths of the cells lo..lo+cells with the n_src pixels tiling [start, start+extent)."""
    step = (extent / n_src)[:, None, None]
    pix_lo = start[:, None, None] + step * torch.arange(n_src, dtype=torch.float64)[None, None, :]
    cell = lo[:, None, None] + torch.arange(cells, dtype=torch.float64)[None, :, None]
    return (torch.minimum(cell + 1, pix_lo + step) - torch.maximum(cell, pix_lo)).clamp(min=0)


@dataclass(frozen=True)
class LevelPaste:
    """How one feature level of F faces' residuals lands on the latent's grid at that level."""

    size: int                 # the residual's side at this level
    resample: int             # its side after exact 2×2…k×k pooling (small regions) or bilinear up-sampling (large)
    out_height: int
    out_width: int
    rows: torch.Tensor        # [F, h, resample]: overlap of each face's window rows with its pixels
    cols: torch.Tensor        # [F, w, resample]
    windows: tuple            # per face (i0, j0, h_f, w_f): where its window sits, clipped to the grid
    mask: torch.Tensor        # [resample, resample] feather


def plan_level_paste(regions: SquareRegions, working_size: int, size: int, latent_height: int, latent_width: int,
                     feather: float, dtype=torch.float32, device=None) -> LevelPaste:
    """The paste of residuals of side `size` (crops of `working_size`) for an H×W latent."""
    k = halvings_between(working_size, size)
    out_height, out_width = halve(latent_height, k), halve(latent_width, k)
    level = regions.at_level(k, working_size, size)
    largest = float(level.side.max())
    if largest > size:
        resample = math.ceil(largest)
    else:  # pool by the largest divisor of `size` that keeps at least one pixel per cell: exact, and cheaper
        resample = size // max(d for d in range(1, size + 1) if size % d == 0 and size // d >= largest)
    lo_y, lo_x = level.y0.floor().clamp(min=0), level.x0.floor().clamp(min=0)
    hi_y = (level.y0 + level.side).ceil().clamp(max=out_height)
    hi_x = (level.x0 + level.side).ceil().clamp(max=out_width)
    heights, widths = (hi_y - lo_y).clamp(min=0).long(), (hi_x - lo_x).clamp(min=0).long()
    h, w = max(1, int(heights.max())), max(1, int(widths.max()))
    rows = _paste_axis_weights(level.y0, level.side, resample, lo_y, h)
    cols = _paste_axis_weights(level.x0, level.side, resample, lo_x, w)
    # rows/cols past a face's clipped window would land outside the grid (or on another face's cells)
    rows = rows * (torch.arange(h)[None, :] < heights[:, None])[..., None]
    cols = cols * (torch.arange(w)[None, :] < widths[:, None])[..., None]
    windows = tuple(zip(lo_y.long().tolist(), lo_x.long().tolist(), heights.tolist(), widths.tolist()))
    return LevelPaste(size, resample, out_height, out_width, rows.to(device, dtype), cols.to(device, dtype),
                      windows, feather_mask(resample, feather, dtype=dtype, device=device))


def apply_level_paste(residual: torch.Tensor, plan: LevelPaste) -> torch.Tensor:
    """[B*F, C, n, n] per-face residuals → [B, C, out_height, out_width], summed over faces."""
    faces = plan.rows.shape[0]
    bf, c, n, _ = residual.shape
    if plan.resample > n:
        residual = F.interpolate(residual, size=(plan.resample,) * 2, mode="bilinear", align_corners=False)
    elif plan.resample < n:
        residual = F.avg_pool2d(residual, n // plan.resample)
    r = residual.reshape(bf // faces, faces, c, plan.resample, plan.resample) * plan.mask
    windows = torch.einsum("fhp,bfcpq,fwq->fbchw", plan.rows, r, plan.cols)
    out = residual.new_zeros(bf // faces, c, plan.out_height, plan.out_width)
    for f, (i0, j0, h, w) in enumerate(plan.windows):  # a few slice adds; deterministic where faces overlap
        if h and w:
            out[:, :, i0:i0 + h, j0:j0 + w] += windows[f, :, :, :h, :w]
    return out


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
    plan = plan_level_paste(regions, working_size, residual.shape[-1], latent_height, latent_width, feather,
                            residual.dtype, residual.device)
    return apply_level_paste(residual, plan)


class RegionPlan:
    """Crop and paste weights of F regions for one latent size, computed once and reused every step."""

    def __init__(self, regions: SquareRegions, working_size: int, latent_height: int, latent_width: int,
                 feather: float = 0.0, dtype=torch.float32, device=None):
        self.regions, self.working_size, self.feather = regions, working_size, feather
        self.latent_size = (latent_height, latent_width)
        self.dtype, self.device = dtype, device
        self._crop_rows = _crop_axis_weights(latent_height, regions.y0, regions.side, working_size).to(device, dtype)
        self._crop_cols = _crop_axis_weights(latent_width, regions.x0, regions.side, working_size).to(device, dtype)
        self._levels: dict[int, LevelPaste] = {}

    def fits(self, latent_height: int, latent_width: int, dtype, device) -> bool:
        return self.latent_size == (latent_height, latent_width) and self.dtype == dtype and \
            torch.device(self.device or "cpu") == torch.device(device)

    def crop(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] → [B*F, C, S, S] latent-major crops."""
        b, c = x.shape[:2]
        crops = torch.einsum("fsh,bchw,ftw->bfcst", self._crop_rows, x.to(self.dtype), self._crop_cols)
        return crops.reshape(b * self.regions.count, c, self.working_size, self.working_size)

    def paste(self, residual: torch.Tensor) -> torch.Tensor:
        """One level of per-crop residuals → that level's feature map of the latent, summed over faces."""
        size = residual.shape[-1]
        if size not in self._levels:
            self._levels[size] = plan_level_paste(self.regions, self.working_size, size, *self.latent_size,
                                                  self.feather, self.dtype, self.device)
        return apply_level_paste(residual.to(self.dtype), self._levels[size])
