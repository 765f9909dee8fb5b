"""The local branch: crop each face of the noisy latent, run one ControlNet on all crops, paste back."""
from __future__ import annotations

from dataclasses import dataclass
from typing import Callable

import torch

from ..errors import RealisIDInputError
from ..families import FAMILIES, LATENT_SCALE, to_cells
from .geometry import RegionPlan, SquareRegions, regions_from_locations
from ..people.locations import FaceLocations
from .residuals import Residuals, concat_residuals
# run_controlnet(crops [N, C, S, S], first_crop_index) -> residual dict for those N crops
ControlNetRunner = Callable[[torch.Tensor, int], Residuals]


@dataclass(frozen=True)
class LocalBranchSettings:
    """working_size: side S of every crop in latent cells (hints are 8S pixels);
    margin: crop side / face box side; feather: fraction of the crop blended out at its edge."""

    working_size: int = FAMILIES["SD1.5"].default_working_size
    margin: float = 1.6
    feather: float = 0.15


def crop_index(i: int | torch.Tensor, faces: int):
    """(latent index, face index) of crop i in the latent-major order `crop_regions` uses."""
    return i // faces, i % faces


def plan_local_branch(locations: FaceLocations, settings: LocalBranchSettings, latent_height: int, latent_width: int,
                      dtype=torch.float32, device=None) -> RegionPlan:
    """Crop and paste weights for the faces on an H×W latent (reuse it while the latent size stays)."""
    regions = regions_from_locations(locations, latent_height, latent_width, settings.margin)
    return RegionPlan(regions, settings.working_size, latent_height, latent_width, settings.feather, dtype, device)


@dataclass(frozen=True)
class LatentWindow:
    """The part of the whole latent a sampling call sees (ComfyUI hands area conditionings only their
    area): top-left cell and size, within a whole latent of full_height × full_width cells."""

    top: int
    left: int
    height: int
    width: int
    full_height: int
    full_width: int

    @classmethod
    def whole(cls, height: int, width: int) -> "LatentWindow":
        return cls(0, 0, height, width, height, width)


def full_latent_from_places(locations: FaceLocations, input_name: str = "people") -> tuple[int, int]:
    """The whole latent's size (cells) from the picture the places were made for."""
    if not locations.has_shape:
        raise RealisIDInputError(input_name=input_name, problem="this conditioning covers an area of the picture, and "
                                 "the faces' places do not say how large the whole picture is",
                                 fix="take the places from RealisID Location Guidance with the latent connected, or "
                                 "leave the negative conditioning without an area")
    return to_cells(locations.height), to_cells(locations.width)


def latent_windows(areas: torch.Tensor | None, batch: int, height: int, width: int, full_latent: tuple[int, int] | None,
                   locations: FaceLocations) -> tuple[list[tuple[torch.Tensor, LatentWindow]], tuple[int, int] | None]:
    """Latent rows grouped by the part of the whole latent they are, with that part; and the whole latent's size
    when this call shows it.

    `areas` [batch, 4] (top, left, height, width cells per row, -1s for the whole latent; None: every row whole)
    come from area conditioning on an `height`×`width` latent. An area's whole latent is `full_latent` (what
    an earlier call of whole rows showed, which the caller keeps), else the picture the places were made for.
    """
    if areas is None or bool((areas[:, 0] < 0).all()):
        return [(torch.arange(batch), LatentWindow.whole(height, width))], (height, width)
    groups = {}
    for row, (top, left, _, _) in enumerate(areas.round().long().tolist()):
        groups.setdefault((top, left), []).append(row)
    full = full_latent or full_latent_from_places(locations)
    windows = [(torch.tensor(rows), LatentWindow.whole(height, width) if top < 0 else
                LatentWindow(top, left, height, width, full[0], full[1])) for (top, left), rows in groups.items()]
    return windows, full_latent


def crop_size_ids(working_size: int) -> list[int]:
    """SDXL's size conditioning for a face crop: (original h, w, crop top, left, target h, w) of a picture of the
    crop's own size at origin 0, 0 — what an 8S×8S portrait gets, since the ControlNet sees the crop as a whole
    picture. The host embeds these ids as its U-Net does (ComfyUI's Timestep, diffusers' add_time_ids)."""
    pixels = working_size * LATENT_SCALE
    return [pixels, pixels, 0, 0, pixels, pixels]


def plan_window(locations: FaceLocations, settings: LocalBranchSettings, window: LatentWindow,
                dtype=torch.float32, device=None) -> tuple[RegionPlan | None, list[int]]:
    """Crop/paste weights for the faces that reach into `window` (placed on the whole latent), and
    which faces they are; (None, []) when none does — a face outside an area is absent from its call."""
    regions = regions_from_locations(locations, window.full_height, window.full_width, settings.margin)
    x0, y0 = regions.x0 - window.left, regions.y0 - window.top
    inside = (x0 < window.width) & (x0 + regions.side > 0) & (y0 < window.height) & (y0 + regions.side > 0)
    kept = torch.nonzero(inside).flatten().tolist()
    if not kept:
        return None, []
    shifted = SquareRegions(x0[kept], y0[kept], regions.side[kept])
    return RegionPlan(shifted, settings.working_size, window.height, window.width, settings.feather, dtype,
                      device), kept


def run_local_branch(x: torch.Tensor, locations: FaceLocations, run_controlnet: ControlNetRunner,
                     settings: LocalBranchSettings, max_crops_per_forward: int | None = None,
                     on_chunk: Callable[[], None] | None = None, plan: RegionPlan | None = None) -> Residuals:
    """Residuals of the local branch for latents x [B, C, H, W], shaped for the full latent.

    All B×F crops go through `run_controlnet` in one forward, or in chunks of
    `max_crops_per_forward` when memory requires; `on_chunk` runs after each chunk
    (progress, interruption). `plan` (from `plan_local_branch`) saves recomputing the weights.
    """
    if plan is None:
        plan = plan_local_branch(locations, settings, x.shape[-2], x.shape[-1], x.dtype, x.device)
    crops = plan.crop(x)
    chunk = len(crops) if not max_crops_per_forward else max(1, max_crops_per_forward)
    parts = []
    for start in range(0, len(crops), chunk):
        parts.append(run_controlnet(crops[start:start + chunk], start))
        if on_chunk is not None:
            on_chunk()
    return {key: [None if r is None else plan.paste(r) for r in levels]
            for key, levels in concat_residuals(parts).items()}
