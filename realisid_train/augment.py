"""Training pictures with faces at many sizes: each photo scaled and placed on a square canvas.

The face size s (the face box's longer side / the picture side) is drawn first, then the photo
is scaled so its face has that size and placed at a random position that keeps the whole face
box in the picture: zoomed out, the photo sits on a larger canvas (filled with its mean colour,
left out of the loss unless `loss_on_padding`); zoomed in, it is a random crop.

Distribution (the default): s log-uniform on [0.05, 0.60], i.e. each doubling of the face size
is equally likely — 28 % of pictures have faces under 10 % of the side (≤ 51 px at 512, the
small faces RealisID's local branch exists for), 44 % between 10 and 30 %, 28 % above 30 %;
median 17 %. A photo is never enlarged more than `max_upscale`: where the drawn size would need
more, s is drawn again, log-uniform over the sizes that photo can reach.
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from realisid_core.faces.pose import FacePose
from realisid_core.faces.pose import mirror_box, mirror_points

from .manifest import FaceRecord


@dataclass(frozen=True)
class ScaleDistribution:
    low: float = 0.05
    high: float = 0.60
    kind: str = "log-uniform"   # or "uniform"

    def sample(self, rng: np.random.Generator, high: float | None = None) -> float:
        """A face size in [low, min(high, self.high)] (the caller's cap where the photo limits it)."""
        top = self.high if high is None else min(self.high, high)
        low = min(self.low, top)
        if self.kind == "uniform":
            return float(rng.uniform(low, top))
        return float(math.exp(rng.uniform(math.log(low), math.log(top))))

    def quantile(self, q: float) -> float:
        """The q-quantile of the face size (no photo cap)."""
        if self.kind == "uniform":
            return self.low + q * (self.high - self.low)
        return math.exp(math.log(self.low) + q * (math.log(self.high) - math.log(self.low)))


@dataclass(frozen=True)
class Composed:
    """A training picture: pixels [R, R, 3] uint8 RGB, coverage [R, R] float (1 where the photo is),
    the face box (x0, y0, x1, y1) in its pixels, its pose (box frame), the face size (longer side / R), the flip."""

    pixels: np.ndarray
    coverage: np.ndarray
    box: np.ndarray
    pose: FacePose | None
    face_scale: float
    flipped: bool

    @property
    def box_fractions(self) -> np.ndarray:
        """(cx, cy, w, h) as fractions of the picture, as FaceLocations keeps boxes."""
        size = self.pixels.shape[0]
        x0, y0, x1, y1 = self.box
        return np.array([(x0 + x1) / 2 / size, (y0 + y1) / 2 / size, (x1 - x0) / size, (y1 - y0) / size])


def _offset(rng, scaled: float, face0: float, face1: float, size: int) -> float:
    """The photo's left (top) edge on the canvas: the face box inside, no empty canvas where the photo can cover it."""
    if scaled >= size:
        lo, hi = size - scaled, 0.0
    else:
        lo, hi = 0.0, size - scaled
    lo, hi = max(lo, -face0), min(hi, size - face1)
    if hi < lo:  # the face box is wider than the canvas (cannot happen below face scale 1): centre it
        return (size - face0 - face1) / 2
    return float(rng.uniform(lo, hi))


def compose(photo: np.ndarray, record: FaceRecord, size: int, rng: np.random.Generator,
            scales: ScaleDistribution = ScaleDistribution(), max_upscale: float = 2.0, flip: float = 0.5) -> Composed:
    """Place `photo` (the record's upright RGB photo) on a size×size canvas with its face at a drawn size."""
    import cv2

    height, width = photo.shape[:2]
    box = record.box.astype(np.float64)
    keypoints, landmarks = record.keypoints[:, :2].astype(np.float64), record.landmarks_68
    flipped = bool(rng.random() < flip)
    if flipped:
        photo = photo[:, ::-1]
        box = mirror_box(box, width)
        keypoints = mirror_points(keypoints, width)
        landmarks = None if landmarks is None else mirror_points(landmarks, width)
    face_side = max(box[2] - box[0], box[3] - box[1], 1e-6)
    reachable = max_upscale * face_side / size  # the largest face size this photo reaches without over-enlarging
    scale = scales.sample(rng, reachable if reachable < scales.high else None)
    zoom = scale * size / face_side
    if zoom < 1:  # shrink with area averaging (no aliasing), then place
        new_w, new_h = max(1, round(width * zoom)), max(1, round(height * zoom))
        src = cv2.resize(np.ascontiguousarray(photo), (new_w, new_h), interpolation=cv2.INTER_AREA)
        zx, zy = new_w / width, new_h / height
    else:
        src, zx, zy = np.ascontiguousarray(photo), zoom, zoom
    ox = _offset(rng, width * zx, box[0] * zx, box[2] * zx, size)
    oy = _offset(rng, height * zy, box[1] * zy, box[3] * zy, size)
    # edge coordinates (pixel i spans [i, i+1)): x' = zx·x + ox; warpAffine works on pixel centres
    if zoom >= 1:
        m = np.array([[zx, 0, ox + 0.5 * zx - 0.5], [0, zy, oy + 0.5 * zy - 0.5]])
    else:
        m = np.array([[1, 0, ox], [0, 1, oy]], np.float64)
    fill = tuple(float(v) for v in np.asarray(photo).reshape(-1, 3).mean(0))
    pixels = cv2.warpAffine(src, m, (size, size), flags=cv2.INTER_CUBIC if zoom >= 1 else cv2.INTER_LINEAR,
                            borderMode=cv2.BORDER_CONSTANT, borderValue=fill)
    coverage = np.zeros((size, size), np.float32)
    x0, x1 = max(0.0, ox), min(float(size), ox + width * zx)
    y0, y1 = max(0.0, oy), min(float(size), oy + height * zy)
    xs = np.clip(np.minimum(np.arange(size) + 1, x1) - np.maximum(np.arange(size), x0), 0, 1)
    ys = np.clip(np.minimum(np.arange(size) + 1, y1) - np.maximum(np.arange(size), y0), 0, 1)
    coverage[:] = ys[:, None] * xs[None, :]

    def moved(points):
        out = np.asarray(points, np.float64).copy()
        out[:, 0] = out[:, 0] * zx + ox
        out[:, 1] = out[:, 1] * zy + oy
        if out.shape[1] > 2:
            out[:, 2:] *= zx
        return out
    new_box = np.array([box[0] * zx + ox, box[1] * zy + oy, box[2] * zx + ox, box[3] * zy + oy])
    pose = FacePose.from_points(moved(keypoints), new_box, None if landmarks is None else moved(landmarks))
    actual = max(new_box[2] - new_box[0], new_box[3] - new_box[1]) / size  # the drawn scale, up to pixel rounding
    return Composed(pixels, coverage, new_box, pose, float(actual), flipped)
