"""The local branch's pose-expression hint: face landmarks drawn in the face crop's frame.

This is a versioned format: training renders its hints with these functions, so a branch
trained on version N must be driven by version N. Change the drawing only with a new version.

Version 1: black square, anti-aliased lines; 68 landmarks (iBUG order, as insightface's 1k3d68
gives them) drawn part by part in fixed colours, or the 5 detector keypoints as filled discs.
Line width and disc radius scale with the hint size (1/128 and 1/64 of it).
"""
from __future__ import annotations

import numpy as np

from ..errors import require

RENDERER_VERSION = 1
LAYOUTS = ("68 landmarks", "5 keypoints")

# (part, first index, end index, closed, RGB colour)
PARTS_68 = (
    ("jaw", 0, 17, False, (255, 255, 255)),
    ("right brow", 17, 22, False, (255, 128, 0)),
    ("left brow", 22, 27, False, (255, 200, 0)),
    ("nose bridge", 27, 31, False, (0, 255, 255)),
    ("nose base", 31, 36, False, (0, 160, 255)),
    ("right eye", 36, 42, True, (0, 255, 0)),
    ("left eye", 42, 48, True, (128, 255, 0)),
    ("outer lips", 48, 60, True, (255, 0, 0)),
    ("inner lips", 60, 68, True, (255, 0, 255)),
)
# right eye, left eye, nose, right and left mouth corner (the subject's right is the picture's left)
KEYPOINT_COLOURS = ((0, 255, 0), (128, 255, 0), (0, 160, 255), (255, 0, 0), (255, 0, 255))


def _layout_size(layout: str) -> int:
    if layout not in LAYOUTS:
        raise ValueError(f"unknown landmark layout '{layout}', expected one of {LAYOUTS}")
    return 68 if layout == LAYOUTS[0] else 5


def _draw(canvas: np.ndarray, points: np.ndarray, layout: str, size: int) -> np.ndarray:
    cv2 = require("cv2", "opencv-python")
    n = _layout_size(layout)
    points = np.asarray(points, np.float64)[:, :2]
    if points.shape[0] != n:
        raise ValueError(f"layout '{layout}' needs {n} points, got {points.shape[0]}")
    shift = 4  # sub-pixel drawing: coordinates in 1/16 pixel
    fixed = np.round(points * (1 << shift)).astype(np.int32)
    if n == 68:
        width = max(1, round(size / 128))
        for _, start, end, closed, colour in PARTS_68:
            cv2.polylines(canvas, [fixed[start:end]], closed, colour, width, cv2.LINE_AA, shift)
    else:
        radius = max(1, round(size / 64))
        for point, colour in zip(fixed, KEYPOINT_COLOURS):
            cv2.circle(canvas, tuple(int(v) for v in point), radius << shift, colour, -1, cv2.LINE_AA, shift)
    return canvas


def render_pose(points: np.ndarray, size: int, layout: str = LAYOUTS[0]) -> np.ndarray:
    """Draw one face's landmarks, given in the crop's pixels, as a [size, size, 3] uint8 RGB hint."""
    return _draw(np.zeros((size, size, 3), np.uint8), points, layout, size)
