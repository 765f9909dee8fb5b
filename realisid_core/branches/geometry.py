"""Square face regions of a latent: crop them to a working size, paste residuals back.

Coordinates are in latent cells: cell i spans [i, i+1). Regions are float, so crops have
sub-cell precision. Training and inference both use these functions.

Precision and devices: every weight is built in float64 on the CPU and moved to the sampling
device in the compute dtype, float32 (float64 only when the tensors themselves are float64):
no float64 tensor is ever made on the sampling device (Apple's MPS has none). Crops and pastes
are computed in that dtype and only their result is cast to the sampling dtype, so a bfloat16
or float16 latent loses no more than the rounding of the result.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F

from ..people.locations import FaceLocations


@dataclass(frozen=True)
class SquareRegions:
    """F square regions in latent cells: top-left corner (x0, y0) and side, each [F] float64."""

    x0: torch.Tensor
    y0: torch.Tensor
    side: torch.Tensor

    @property
    def count(self) -> int:
        return int(self.side.shape[0])

    def cpu64(self) -> "SquareRegions":
        """The same regions as float64 CPU tensors (where every weight is built)."""
        return SquareRegions(*(t.detach().to("cpu", torch.float64) for t in (self.x0, self.y0, self.side)))

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


def compute_dtype(dtype: torch.dtype) -> torch.dtype:
    """The dtype crops and pastes are computed in for tensors of `dtype`: float32, or float64 for float64."""
    return torch.promote_types(dtype, torch.float32) if dtype.is_floating_point else torch.float32


def crop_regions(x: torch.Tensor, regions: SquareRegions, size: int) -> torch.Tensor:
    """Crop every region of every latent and resample it to size×size.

    x: [B, C, H, W] → [B*F, C, size, size], ordered latent-major (b0f0, b0f1, …, b1f0, …).
    """
    return RegionPlan(regions, size, x.shape[-2], x.shape[-1], dtype=x.dtype, device=x.device).crop(x)


def feather_mask(size: int, feather: float, dtype=torch.float32, device=None) -> torch.Tensor:
    """[size, size] mask over a region: 1 inside, falling linearly to 0 over the outer `feather` fraction.

    Built in float64 on the CPU, then moved to `device` as `dtype`."""
    return _feather_mask64(size, feather).to(device, dtype)


def _feather_mask64(size: int, feather: float) -> torch.Tensor:
    u = (torch.arange(size, dtype=torch.float64) + 0.5) / size
    ramp = _profile(u, feather, torch.tensor(False), torch.tensor(False))
    return ramp[:, None] * ramp[None, :]


def _profile(u: torch.Tensor, feather: float, lo_open: torch.Tensor, hi_open: torch.Tensor) -> torch.Tensor:
    """The feather along one axis at crop positions u in [0, 1): rising from 0 at the low edge and falling to
    0 at the high edge over `feather`, except at an edge that is open (on the picture's border: no seam)."""
    if feather <= 0:
        return torch.ones_like(u)
    inf = torch.full((), math.inf, dtype=u.dtype)
    lo = torch.where(lo_open, inf, u / feather)
    hi = torch.where(hi_open, inf, (1 - u) / feather)
    return torch.minimum(lo, hi).clamp(max=1)


BORDER_TOLERANCE = 1e-6  # latent cells: a crop edge this close to the picture's edge lies on it


def border_sides(regions: SquareRegions, latent_height: int, latent_width: int) -> torch.Tensor:
    """[F, 4] bool (left, top, right, bottom): which edges of each region lie on or past the border of the
    latent it is pasted on. There the crop meets no other part of the picture, so there is no seam to
    hide and the feather leaves the residuals whole (a crop that is the whole frame pastes unfeathered)."""
    r = regions.cpu64()
    eps = BORDER_TOLERANCE
    return torch.stack([r.x0 <= eps, r.y0 <= eps, r.x0 + r.side >= latent_width - eps,
                        r.y0 + r.side >= latent_height - eps], dim=-1)


def _face_masks64(resample: int, feather: float, sides: torch.Tensor) -> torch.Tensor:
    """[F, r, r] each face's feather mask with its open sides (`border_sides`) left unfeathered."""
    u = (torch.arange(resample, dtype=torch.float64) + 0.5) / resample
    wx = _profile(u[None, :], feather, sides[:, 0:1], sides[:, 2:3])
    wy = _profile(u[None, :], feather, sides[:, 1:2], sides[:, 3:4])
    return wy[:, :, None] * wx[:, None, :]


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
    mask: torch.Tensor        # [resample, resample] feather, or [F, 1, resample, resample] per face (faces that
                              # overlap, or reach the picture's border)
    blend: torch.Tensor | None = None  # [out_height, out_width] cell scale where overlaps still sum past 1

    @property
    def dtype(self) -> torch.dtype:
        return self.rows.dtype


def plan_level_paste(regions: SquareRegions, working_size: int, size: int, latent_height: int, latent_width: int,
                     feather: float, dtype=torch.float32, device=None) -> LevelPaste:
    """The paste of residuals of side `size` (crops of `working_size`) for an H×W latent.

    Weights are built in float64 on the CPU and moved to `device` in `compute_dtype(dtype)`.

    Overlapping faces are blended, not added: where regions overlap, each face's feather mask
    is scaled so that at every point the faces' weights sum to the strongest face's mask
    there, shared in proportion to their masks (`_overlap_masks`). Two faces in one place
    paste as one face would; a cell never gets more than one face's full weight (a last
    per-cell scale, `blend`, catches what the pixel grids of two faces leave past 1 at their
    edges). Faces that do not overlap paste exactly as alone, including several faces
    smaller than a cell adding their area shares in one deep cell. The feather ramps only
    where a crop meets the rest of the picture: an edge on the latent's border is not
    feathered (`border_sides`). All of it is computed once per level and kept in the plan.
    """
    k = halvings_between(working_size, size)
    out_height, out_width = halve(latent_height, k), halve(latent_width, k)
    level = regions.cpu64().at_level(k, working_size, size)
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
    sides = border_sides(regions, latent_height, latent_width)
    mask = _overlap_masks(level, resample, feather, sides)
    blend = None
    if mask is None and (feather <= 0 or not bool(sides.any())):
        mask = _feather_mask64(resample, feather)
    elif mask is None:
        mask = _face_masks64(resample, feather, sides)[:, None]  # [F, 1, r, r]
    else:
        blend = _cell_blend(rows, cols, mask, windows, out_height, out_width)
        mask = mask[:, None]  # [F, 1, r, r]: broadcast over channels
    compute = compute_dtype(dtype)
    return LevelPaste(size, resample, out_height, out_width, rows.to(device, compute), cols.to(device, compute),
                      windows, mask.to(device, compute), None if blend is None else blend.to(device, compute))


def _ramp(pos: torch.Tensor, start: torch.Tensor, side: torch.Tensor, feather: float, lo_open: torch.Tensor,
          hi_open: torch.Tensor) -> torch.Tensor:
    """A feather profile along one axis, evaluated at positions `pos` [F, r] for each region g: [F, G, r]
    (`lo_open`/`hi_open` [G]: g's edges on the picture's border, not feathered)."""
    u = (pos[:, None, :] - start[None, :, None]) / side[None, :, None]
    inside = (u >= 0) & (u < 1)
    profile = _profile(u, feather, lo_open[None, :, None], hi_open[None, :, None])
    return torch.where(inside, profile, torch.zeros(()).double())


def _overlap_masks(level: SquareRegions, resample: int, feather: float, sides: torch.Tensor) -> torch.Tensor | None:
    """[F, r, r] per-face weights where faces overlap (float64, CPU), or None when no two faces overlap.

    At the centre of each of face f's r×r pixels, every face g's feather mask m_g is
    evaluated (the same profile `feather_mask` samples at g's own pixel centres); face f's
    weight there is m_f · max_g m_g / Σ_g m_g (m_g left whole along g's sides on the picture's
    border, as `border_sides` says). Alone, that is m_f; n identical faces get
    m/n each; the weights at any point sum to the strongest mask there, never past 1.
    """
    if level.count < 2:
        return None
    t = (torch.arange(resample, dtype=torch.float64) + 0.5) / resample
    xs = level.x0[:, None] + t[None, :] * level.side[:, None]  # [F, r] pixel centres of each face
    ys = level.y0[:, None] + t[None, :] * level.side[:, None]
    wx = _ramp(xs, level.x0, level.side, feather, sides[:, 0], sides[:, 2])  # [F, G, r]
    wy = _ramp(ys, level.y0, level.side, feather, sides[:, 1], sides[:, 3])
    faces = level.count
    own = torch.stack([wy[f, f][:, None] * wx[f, f][None, :] for f in range(faces)])  # [F, r, r]
    total, strongest = torch.zeros_like(own), torch.zeros_like(own)
    for g in range(faces):  # one face at a time: memory F·r², not F²·r²
        m = wy[:, g, :, None] * wx[:, g, None, :]
        total += m
        strongest = torch.maximum(strongest, m)
    if torch.equal(total, own):
        return None
    return torch.where(total > 0, own * strongest / total.clamp(min=1e-300), torch.zeros(()).double())


def _cell_blend(rows: torch.Tensor, cols: torch.Tensor, masks: torch.Tensor, windows: tuple, out_height: int,
                out_width: int) -> torch.Tensor | None:
    """[H, W] 1/max(1, summed coverage) (float64, CPU), or None when no cell's coverage sums past 1.

    A face's coverage of a cell is what a residual of 1 everywhere pastes there with its
    weights; blended faces on pixel grids that do not line up can still sum a little past 1
    along the edges of an overlap."""
    coverage = torch.einsum("fhp,fpq,fwq->fhw", rows, masks, cols)
    total = torch.zeros(out_height, out_width, dtype=torch.float64)
    for f, (i0, j0, h, w) in enumerate(windows):
        if h and w:
            total[i0:i0 + h, j0:j0 + w] += coverage[f, :h, :w]
    if float(total.max()) <= 1 + 1e-9:
        return None
    return 1 / total.clamp(min=1)


def apply_level_paste(residual: torch.Tensor, plan: LevelPaste) -> torch.Tensor:
    """[B*F, C, n, n] per-face residuals → [B, C, out_height, out_width], summed over faces (blended
    where they overlap), computed in the plan's dtype and returned in the residual's."""
    out_dtype = residual.dtype
    residual = residual.to(plan.dtype)
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
    if plan.blend is not None:
        out *= plan.blend
    return out.to(out_dtype)


def paste_regions(residual: torch.Tensor, regions: SquareRegions, working_size: int,
                  latent_height: int, latent_width: int, feather: float = 0.0) -> torch.Tensor:
    """Paste one feature level of per-face residuals back onto the latent's grid, summed over faces.

    residual: [B*F, C, n, n] (latent-major, as `crop_regions` orders them), one level of the
    ControlNet's output for crops of `working_size`; `regions` in latent cells. The level is
    read from n, and the output has that level's shape for a latent_height×latent_width
    latent: [B, C, ceil-halved H, ceil-halved W]. Each cell receives the integral of the
    (feathered) residual over its area, so a constant residual integrates to the region's
    area even when the region is smaller than one cell; regions are clipped at the border.
    Where regions overlap, no cell receives more than one face's full weight (see
    `plan_level_paste`).
    """
    plan = plan_level_paste(regions, working_size, residual.shape[-1], latent_height, latent_width, feather,
                            residual.dtype, residual.device)
    return apply_level_paste(residual, plan)


class RegionPlan:
    """Crop and paste weights of F regions for one latent size, computed once and reused every step.

    `dtype` is the sampling dtype: crops and pastes come out in it; they are computed in
    `compute_dtype(dtype)` (float32 for half types) with weights built on the CPU in float64.
    """

    def __init__(self, regions: SquareRegions, working_size: int, latent_height: int, latent_width: int,
                 feather: float = 0.0, dtype=torch.float32, device=None):
        self.regions, self.working_size, self.feather = regions, working_size, feather
        self.latent_size = (latent_height, latent_width)
        self.dtype, self.device = dtype, device
        self.compute_dtype = compute_dtype(dtype)
        cpu = regions.cpu64()
        self._crop_rows = _crop_axis_weights(latent_height, cpu.y0, cpu.side, working_size).to(device, self.compute_dtype)
        self._crop_cols = _crop_axis_weights(latent_width, cpu.x0, cpu.side, working_size).to(device, self.compute_dtype)
        self._levels: dict[int, LevelPaste] = {}

    def crop(self, x: torch.Tensor) -> torch.Tensor:
        """[B, C, H, W] → [B*F, C, S, S] latent-major crops."""
        b, c = x.shape[:2]
        crops = torch.einsum("fsh,bchw,ftw->bfcst", self._crop_rows, x.to(self.compute_dtype), self._crop_cols)
        return crops.reshape(b * self.regions.count, c, self.working_size, self.working_size).to(self.dtype)

    def paste(self, residual: torch.Tensor) -> torch.Tensor:
        """One level of per-crop residuals → that level's feature map of the latent, summed over faces
        (blended where they overlap), in the sampling dtype."""
        size = residual.shape[-1]
        if size not in self._levels:
            self._levels[size] = plan_level_paste(self.regions, self.working_size, size, *self.latent_size,
                                                  self.feather, self.dtype, self.device)
        return apply_level_paste(residual, self._levels[size]).to(self.dtype)
