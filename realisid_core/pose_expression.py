"""The local branch's pose-expression hint: face landmarks drawn in the face crop's frame.

This is a versioned format: training renders its hints with these functions, so a branch
trained on version N must be driven by version N. Change the drawing only with a new version.

Version 1: black square, anti-aliased lines; 68 landmarks (iBUG order, as insightface's 1k3d68
gives them) drawn part by part in fixed colours, or the 5 detector keypoints as filled discs.
Line width and disc radius scale with the hint size (1/128 and 1/64 of it).
"""
from __future__ import annotations

import numpy as np

from .face_pose import MIRROR_5, MIRROR_68
from .optional import require

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


def mirror_points(points: np.ndarray, image_width: float) -> np.ndarray:
    """The landmarks of the horizontally mirrored picture: x → width - x, left and right parts swapped."""
    points = np.asarray(points, np.float64)
    order = {68: MIRROR_68, 5: MIRROR_5}.get(points.shape[0])
    if order is None:
        raise ValueError(f"can mirror 68 landmarks or 5 keypoints, got {points.shape[0]} points")
    out = points[order].copy()
    out[:, 0] = image_width - out[:, 0]
    if out.shape[1] == 3:
        out[:, 2] = points[order, 2]
    return out


def mirror_box(box: np.ndarray, image_width: float) -> np.ndarray:
    x0, y0, x1, y1 = (float(v) for v in box)
    return np.array([image_width - x1, y0, image_width - x0, y1])


def keypoints_from_68(points: np.ndarray) -> np.ndarray:
    """The 5 detector keypoints (eye centres, nose tip, mouth corners) of 68 iBUG landmarks."""
    points = np.asarray(points, np.float64)
    return np.stack([points[36:42].mean(0), points[42:48].mean(0), points[30], points[48], points[54]])


def _draw(canvas: np.ndarray, points: np.ndarray, layout: str, size: int) -> np.ndarray:
    cv2 = require("cv2", "RealisID Pose & Expression", "opencv-python")
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


def head_pose_68(points_3d: np.ndarray) -> np.ndarray:
    """(pitch, yaw, roll) in degrees of 68 3-D landmarks, fitted to insightface's mean face as insightface does."""
    insightface = require("insightface.utils.transform", "RealisID Pose & Expression", "insightface")
    mean = require("insightface.data", "RealisID Pose & Expression", "insightface").get_object("meanshape_68.pkl")
    matrix = insightface.estimate_affine_matrix_3d23d(np.asarray(mean, np.float64), np.asarray(points_3d, np.float64))
    _, rotation, _ = insightface.P2sRt(matrix)
    return np.array(insightface.matrix2angle(rotation), np.float64)
