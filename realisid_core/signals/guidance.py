"""Location guidance: the global branch's hint, a picture of where the faces go.

Format `realisid-location-v1` (the global branch is trained on exactly this, so it is versioned):
an RGB image the size of the target picture, black (0) background, each face an antialiased
white (1) filled ellipse inscribed in its face box; overlapping faces take the maximum.
"""
from __future__ import annotations

import torch

from ..branches.local import LatentWindow
from ..families import LATENT_SCALE
from ..people.locations import FaceLocations

LOCATION_GUIDANCE_FORMAT = "realisid-location-v1"
_SUPERSAMPLE = 4


def render_location_guidance(locations: FaceLocations, width: int, height: int) -> torch.Tensor:
    """The guidance map as a ComfyUI-style IMAGE [1, height, width, 3], values in [0, 1]."""
    s = _SUPERSAMPLE
    ys = (torch.arange(height * s, dtype=torch.float64) + 0.5) / (height * s)
    xs = (torch.arange(width * s, dtype=torch.float64) + 0.5) / (width * s)
    canvas = torch.zeros(height * s, width * s, dtype=torch.float64)
    for cx, cy, w, h in locations.boxes.tolist():
        inside = ((xs[None, :] - cx) / (w / 2)) ** 2 + ((ys[:, None] - cy) / (h / 2)) ** 2 <= 1
        canvas = torch.maximum(canvas, inside.to(torch.float64))
    coverage = torch.nn.functional.avg_pool2d(canvas[None, None], s)[0, 0]
    return coverage.to(torch.float32)[None, :, :, None].expand(1, height, width, 3).contiguous()


def full_guidance(locations: FaceLocations, window: LatentWindow) -> torch.Tensor:
    """The guidance of the whole latent `window` belongs to, at its pixel size: [1, 3, 8H, 8W] in [0, 1]."""
    return render_location_guidance(locations, window.full_width * LATENT_SCALE,
                                    window.full_height * LATENT_SCALE).movedim(-1, 1)


def guidance_rows(full: torch.Tensor, windows: list[tuple[torch.Tensor, LatentWindow]], batch: int) -> torch.Tensor:
    """Each latent row's guidance [batch, 3, 8h, 8w]: the whole latent's (`full_guidance`) cut to the row's window,
    so faces land where they were placed whatever area a conditioning covers."""
    s = LATENT_SCALE
    first = windows[0][1]
    rows = torch.empty(batch, 3, first.height * s, first.width * s)
    for index, window in windows:
        rows[index] = full[:, :, window.top * s:(window.top + window.height) * s,
                           window.left * s:(window.left + window.width) * s]
    return rows
