"""Face locations: where each face goes in the picture, independent of its resolution."""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch

from ..errors import RealisIDInputError
from ..families import to_pixels

MAX_FACES = 8
# Latents are whole cells of 8 pixels, so a picture's aspect and its latent's differ a little; places made for
# pictures of other shapes cannot share one picture (square faces would stretch).
ASPECT_TOLERANCE = 0.03


def same_aspect(width_a: float, height_a: float, width_b: float, height_b: float) -> bool:
    """Whether two rectangles have the same shape, within ASPECT_TOLERANCE."""
    return abs((width_a / height_a) / (width_b / height_b) - 1) <= ASPECT_TOLERANCE


@dataclass(frozen=True)
class FaceLocations:
    """F face boxes as (cx, cy, w, h): centre and size as fractions of the picture's width and height.

    `width`/`height` are the pixel size of the picture the boxes were made for (0, 0: boxes typed
    as fractions of each side, which fit a picture of any shape); the boxes are relative, so the
    same locations apply to any latent of the same aspect. `sources` names where each face's
    place came from (for messages), in face order, or is empty.
    """

    boxes: torch.Tensor  # [F, 4] float64
    width: int
    height: int
    sources: tuple[str, ...] = ()

    def __post_init__(self):
        if self.boxes.ndim != 2 or self.boxes.shape[-1] != 4:
            raise ValueError(f"FaceLocations.boxes must be [F, 4], got {tuple(self.boxes.shape)}")

    @property
    def count(self) -> int:
        return int(self.boxes.shape[0])

    @property
    def has_shape(self) -> bool:
        """Whether the boxes were made for a picture of a particular shape."""
        return self.width > 0 and self.height > 0

    def source(self, face: int = 0) -> str:
        """Where face `face` (0-based) came from, for messages."""
        return self.sources[face] if face < len(self.sources) else "the face locations"

    def aspect_problem(self, latent_height: int, latent_width: int) -> str | None:
        """Why these places do not fit a latent of latent_height × latent_width cells (made for a picture of
        another shape), naming where they came from; None when they fit (or fit any shape)."""
        if not self.has_shape or same_aspect(self.width, self.height, latent_width, latent_height):
            return None
        return (f"the faces' places come from {self.source(0)}, made for a {self.width}×{self.height} picture, but the "
                f"latent being sampled is {latent_width}×{latent_height} cells (about {to_pixels(latent_width)}×"
                f"{to_pixels(latent_height)} pixels), another shape")

    def pixel_boxes(self, width: int | None = None, height: int | None = None) -> torch.Tensor:
        """Boxes as (x0, y0, x1, y1) in pixels of a picture `width`×`height` (default: their own)."""
        width = self.width if width is None else width
        height = self.height if height is None else height
        cx, cy, w, h = self.boxes.unbind(-1)
        return torch.stack([(cx - w / 2) * width, (cy - h / 2) * height,
                            (cx + w / 2) * width, (cy + h / 2) * height], dim=-1)

    @classmethod
    def from_pixel_boxes(cls, boxes, width: int, height: int) -> "FaceLocations":
        """Make locations from (x0, y0, x1, y1) pixel boxes in a `width`×`height` picture."""
        b = torch.as_tensor(np.asarray(boxes, dtype=np.float64)).reshape(-1, 4)
        rel = torch.stack([(b[:, 0] + b[:, 2]) / 2 / width, (b[:, 1] + b[:, 3]) / 2 / height,
                           (b[:, 2] - b[:, 0]) / width, (b[:, 3] - b[:, 1]) / height], dim=-1)
        return cls(rel, int(width), int(height))

    def validated(self, input_name: str) -> "FaceLocations":
        """Return self, or raise a RealisIDInputError naming the first bad face."""
        if self.count == 0:
            raise RealisIDInputError(input_name=input_name, problem="no face locations were given",
                                     fix="give at least one face, e.g. a line '0.5 0.4 0.25' (centre x, centre y, size)")
        if self.count > MAX_FACES:
            raise RealisIDInputError(input_name=input_name,
                                     problem=f"{self.count} faces were given, at most {MAX_FACES} are supported",
                                     fix=f"remove faces until there are {MAX_FACES} or fewer")
        for i, (cx, cy, w, h) in enumerate(self.boxes.tolist()):
            n = i + 1
            if not all(math.isfinite(v) for v in (cx, cy, w, h)):
                raise RealisIDInputError(input_name=input_name,
                                         problem=f"face {n} of {self.count} has a value that is not a number ({cx}, {cy}, {w}, {h})",
                                         fix="give finite numbers: centre x, centre y and size as fractions of the picture (0-1)")
            if w <= 0 or h <= 0:
                raise RealisIDInputError(input_name=input_name,
                                         problem=f"face {n} of {self.count} has zero or negative size (w={w:g}, h={h:g})",
                                         fix="give a size above 0, as a fraction of the picture (e.g. 0.2)")
            if cx + w / 2 <= 0 or cx - w / 2 >= 1 or cy + h / 2 <= 0 or cy - h / 2 >= 1:
                raise RealisIDInputError(input_name=input_name,
                                         problem=f"face {n} of {self.count} lies entirely outside the picture (centre {cx:g}, {cy:g})",
                                         fix="keep the centre within 0-1 (a face may cross the border; it is clipped)")
        return self


def parse_locations(text: str, width: int, height: int, input_name: str = "locations") -> FaceLocations:
    """Parse one face per line: `cx cy size` (square, size as a fraction of the shorter side)
    or `cx cy w h` (fractions of width and height). Commas or spaces separate; `#` starts a comment."""
    if not all(isinstance(v, (int, float, np.integer)) and not isinstance(v, bool) and v > 0 for v in (width, height)):
        raise RealisIDInputError(input_name="width/height", problem=f"the picture is {width}×{height}",
                                 fix="give the picture's width and height in pixels, both above 0")
    rows = []
    short = min(width, height)
    for line_no, raw in enumerate(text.splitlines(), 1):
        line = raw.split("#", 1)[0].replace(",", " ").strip()
        shown = raw.strip() if len(raw.strip()) <= 60 else raw.strip()[:57] + "..."
        if not line:
            continue
        try:
            values = [float(v) for v in line.split()]
        except (ValueError, OverflowError):
            raise RealisIDInputError(input_name=input_name,
                                     problem=f"line {line_no} ('{shown}') is not a list of numbers",
                                     fix="write 'cx cy size' or 'cx cy w h' with numbers between 0 and 1") from None
        if len(values) == 3:
            cx, cy, size = values
            rows.append([cx, cy, size * short / width, size * short / height])
        elif len(values) == 4:
            rows.append(values)
        else:
            raise RealisIDInputError(input_name=input_name,
                                     problem=f"line {line_no} ('{shown}') has {len(values)} numbers",
                                     fix="write 3 numbers (cx cy size) or 4 numbers (cx cy w h) per face")
    boxes = torch.tensor(rows, dtype=torch.float64).reshape(-1, 4)
    return FaceLocations(boxes, int(width), int(height)).validated(input_name)

