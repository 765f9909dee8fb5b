"""The local branch's hint formats, and the one function that draws hints in each face's crop frame.

A hint is a picture drawn in a frame only the local branch knows (its crop square, margin and
working size), so the branch draws it itself from geometry (FacePose + face box), in the format
its ControlNet was trained on. Training calls `render_branch_hints` too, so a trained branch
sees at inference exactly what it saw in training.

Formats (the name is what a ControlNet's description records; change a drawing only under a new name):
- `realisid-pose-v1-68`: RealisID pose-expression v1, 68 landmarks (see pose_expression.py).
- `realisid-pose-v1-5`: RealisID pose-expression v1, the 5 detector keypoints as discs.
- `instantid-kps`: InstantID's `draw_kps` (the IdentityNet's hint): limbs from each point to the
  nose as ellipses of half-width 4, dimmed ×0.6, then the points as discs of radius 10, colours
  red, green, blue, yellow, magenta for left eye, right eye, nose, left and right mouth corner.
  InstantID draws these fixed pixel sizes on a ~1024-pixel portrait; here the crop is drawn as
  that portrait, so the sizes are scaled by hint size / 1024 (exactly InstantID's at SDXL's
  working size 128, i.e. 1024-pixel hints).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Callable, Sequence

import numpy as np
import torch

from ..faces.pose import FacePose
from ..branches.geometry import SquareRegions, regions_from_locations
from ..families import LATENT_SCALE
from ..people.locations import FaceLocations
from ..errors import RealisIDInputError, require
from .pose_v1 import LAYOUTS, render_pose

INSTANTID_COLOURS = ((255, 0, 0), (0, 255, 0), (0, 0, 255), (255, 255, 0), (255, 0, 255))
INSTANTID_PORTRAIT = 1024


def draw_instantid_keypoints(points: np.ndarray, size: int) -> np.ndarray:
    """InstantID's keypoint drawing of 5 points (crop pixels) on a black size×size canvas, sizes ×size/1024."""
    cv2 = require("cv2", "opencv-python")
    scale = size / INSTANTID_PORTRAIT
    stick, radius = max(1, round(4 * scale)), max(1, round(10 * scale))
    points = np.asarray(points, np.float64)[:, :2]
    canvas = np.zeros((size, size, 3), np.float64)
    for i in (0, 1, 3, 4):  # every limb ends at the nose (point 2), coloured as its first point
        (x0, y0), (x1, y1) = points[i], points[2]
        length = math.hypot(x0 - x1, y0 - y1)
        angle = math.degrees(math.atan2(y0 - y1, x0 - x1))
        polygon = cv2.ellipse2Poly((int((x0 + x1) / 2), int((y0 + y1) / 2)), (int(length / 2), stick),
                                   int(angle), 0, 360, 1)
        cv2.fillConvexPoly(canvas, polygon, INSTANTID_COLOURS[i])
    canvas = (canvas * 0.6).astype(np.uint8)
    for (x, y), colour in zip(points, INSTANTID_COLOURS):
        cv2.circle(canvas, (int(x), int(y)), radius, colour, -1)
    return canvas


@dataclass(frozen=True)
class HintFormat:
    """name: recorded in a ControlNet's description; layout: 68 landmarks or 5 keypoints it needs;
    draw(points in crop pixels, size) → [size, size, 3] uint8 RGB."""

    name: str
    layout: int
    draw: Callable[[np.ndarray, int], np.ndarray]
    description: str


HINT_FORMATS = {f.name: f for f in (
    HintFormat("realisid-pose-v1-68", 68, lambda p, s: render_pose(p, s, LAYOUTS[0]),
               "RealisID pose-expression v1, 68 landmarks"),
    HintFormat("realisid-pose-v1-5", 5, lambda p, s: render_pose(p, s, LAYOUTS[1]),
               "RealisID pose-expression v1, 5 keypoints"),
    HintFormat("instantid-kps", 5, draw_instantid_keypoints, "InstantID's 5-keypoint drawing"),
)}


def hint_format(name: str) -> HintFormat:
    """The format called `name`; ValueError naming the known ones otherwise."""
    if name not in HINT_FORMATS:
        raise ValueError(f"unknown hint format '{name}' (known: {', '.join(HINT_FORMATS)})")
    return HINT_FORMATS[name]


def check_poses(poses: Sequence[FacePose], format_name: str, input_name: str = "people") -> None:
    """Every person's pose must have the points the ControlNet's hint format draws."""
    fmt = hint_format(format_name)
    for k, pose in enumerate(poses, 1):
        if fmt.layout == 68 and pose.landmarks_68 is None:
            raise RealisIDInputError(input_name=input_name, problem=f"person {k}'s pose has no 68 landmarks, and this "
                                     f"ControlNet was trained on {fmt.description}", fix="take the pose from a face "
                                     "found with the antelopev2 or buffalo_l pack (they have 1k3d68.onnx)")


def face_frames(boxes: np.ndarray, height: float, width: float) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Centres (x, y) and longer sides of (cx, cy, w, h) fraction boxes on an H×W grid, in its units."""
    boxes = np.asarray(boxes, np.float64).reshape(-1, 4)
    cx, cy = boxes[:, 0] * width, boxes[:, 1] * height
    return cx, cy, np.maximum(boxes[:, 2] * width, boxes[:, 3] * height)


def placed_points(poses: Sequence[FacePose], boxes: np.ndarray, height: float, width: float,
                  layout: int) -> list[np.ndarray]:
    """Each pose put on its face box (centre to centre, longer side to longer side), in H×W grid units."""
    cx, cy, longer = face_frames(boxes, height, width)
    return [pose.placed(layout, cx[f], cy[f], longer[f]) for f, pose in enumerate(poses)]


def render_branch_hints(format_name: str, poses: Sequence[FacePose], boxes: np.ndarray, regions: SquareRegions,
                        height: float, width: float, size: int) -> np.ndarray:
    """One hint per face, drawn in its crop frame: [F, size, size, 3] uint8 RGB.

    `boxes` [F, 4] are the faces' (cx, cy, w, h) fractions, `regions` their crop squares on the
    same H×W grid (latent cells in the branch, pixels elsewhere): both from the same locations.
    """
    fmt = hint_format(format_name)
    placed = placed_points(poses, boxes, height, width, fmt.layout)
    hints = []
    for f, points in enumerate(placed):
        x0, y0, side = float(regions.x0[f]), float(regions.y0[f]), float(regions.side[f])
        hints.append(fmt.draw((points - np.array([x0, y0])) * (size / side), size))
    return np.stack(hints) if hints else np.zeros((0, size, size, 3), np.uint8)


def hints_in_crop_frames(format_name: str, poses: Sequence[FacePose], locations: FaceLocations, full_height: int,
                         full_width: int, margin: float, working_size: int):
    """Every face's hint drawn in its crop frame on the whole latent (full_height × full_width cells), at 8× the
    working size: a float tensor [F, 3, 8S, 8S] in [0, 1]. A crop's frame is the same whichever area of the
    picture a sampling call sees."""
    regions = regions_from_locations(locations, full_height, full_width, margin)
    drawn = render_branch_hints(format_name, poses, locations.boxes.numpy(), regions, full_height, full_width,
                                working_size * LATENT_SCALE)
    return torch.from_numpy(drawn).movedim(-1, 1).to(torch.float32) / 255
