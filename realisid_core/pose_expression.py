"""The local branch's pose-expression hint: face landmarks drawn in the face crop's frame.

This is a versioned format: training renders its hints with these functions, so a branch
trained on version N must be driven by version N. Change the drawing only with a new version.

Version 1: black square, anti-aliased lines; 68 landmarks (iBUG order, as insightface's 1k3d68
gives them) drawn part by part in fixed colours, or the 5 detector keypoints as filled discs.
Line width and disc radius scale with the hint size (1/128 and 1/64 of it).
"""
from __future__ import annotations

import numpy as np

from .geometry import regions_from_locations
from .locations import FaceLocations
from .face_pose import MIRROR_5, MIRROR_68, FacePose
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


def retarget(points: np.ndarray, source_box: np.ndarray, target_box: np.ndarray) -> np.ndarray:
    """Move a face's landmarks from its box onto another box by a similarity transform.

    Centre goes to centre, and the longer side sets the scale (the crop frame's rule, the one
    FacePose uses), so the points sit in the target's crop exactly as they sat in the source's:
    pose and expression are kept. A third (depth) coordinate is scaled with x and y.
    """
    frame = FacePose.from_points(points, source_box).keypoints  # any number of points, in the box frame
    tx0, ty0, tx1, ty1 = (float(v) for v in target_box)
    out = frame * max(tx1 - tx0, ty1 - ty0)
    out[:, 0] += (tx0 + tx1) / 2
    out[:, 1] += (ty0 + ty1) / 2
    return out


def keypoints_from_68(points: np.ndarray) -> np.ndarray:
    """The 5 detector keypoints (eye centres, nose tip, mouth corners) of 68 iBUG landmarks."""
    points = np.asarray(points, np.float64)
    return np.stack([points[36:42].mean(0), points[42:48].mean(0), points[30], points[48], points[54]])


def to_crop_frame(points: np.ndarray, x0: float, y0: float, side: float, size: int) -> np.ndarray:
    """Picture pixels → pixels of a size×size crop whose square is (x0, y0, side) in the picture."""
    points = np.asarray(points, np.float64)[:, :2]
    return (points - np.array([x0, y0])) * (size / side)


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


def render_pose_preview(placed: list[np.ndarray], locations: FaceLocations, margin: float = 1.6,
                        layout: str = LAYOUTS[0]) -> np.ndarray:
    """The retargeted faces drawn on the whole picture, with each face's crop square: [H, W, 3] uint8 RGB."""
    cv2 = require("cv2", "RealisID Pose & Expression", "opencv-python")
    width, height = locations.width, locations.height
    canvas = np.zeros((height, width, 3), np.uint8)
    regions = regions_from_locations(locations, height, width, margin)
    for f, points in enumerate(placed):
        side = float(regions.side[f])
        _draw(canvas, points, layout, max(8, round(side)))
        x0, y0 = int(round(float(regions.x0[f]))), int(round(float(regions.y0[f])))
        cv2.rectangle(canvas, (x0, y0), (x0 + int(round(side)), y0 + int(round(side))), (90, 90, 90), 1)
        cv2.putText(canvas, str(f + 1), (x0 + 3, y0 + 16), cv2.FONT_HERSHEY_SIMPLEX, 0.5, (200, 200, 200), 1, cv2.LINE_AA)
    return canvas


def pose_hints(driving_points: list[np.ndarray], driving_boxes: list[np.ndarray], locations: FaceLocations,
               size: int, margin: float = 1.6, layout: str = LAYOUTS[0]) -> tuple[np.ndarray, list[np.ndarray]]:
    """One hint per face location (picture pixels), each driving face retargeted onto its location.

    The same drawing the local branch does in its crop frame (`hint_formats.render_branch_hints`).
    Returns (hints [F, size, size, 3] uint8, the retargeted points in the locations' picture pixels).
    """
    from .hint_formats import placed_points, render_branch_hints

    n = _layout_size(layout)
    poses = []
    for points, box in zip(driving_points, driving_boxes):
        points = np.asarray(points, np.float64)
        poses.append(FacePose.from_points(keypoints_from_68(points) if n == 68 else points, box,
                                          points if n == 68 else None))
    width, height = locations.width, locations.height
    regions = regions_from_locations(locations, height, width, margin)
    boxes = locations.boxes.numpy()
    name = "realisid-pose-v1-68" if n == 68 else "realisid-pose-v1-5"
    hints = render_branch_hints(name, poses, boxes, regions, height, width, size)
    return hints, placed_points(poses, boxes, height, width, n)


def head_pose_68(points_3d: np.ndarray) -> np.ndarray:
    """(pitch, yaw, roll) in degrees of 68 3-D landmarks, fitted to insightface's mean face as insightface does."""
    insightface = require("insightface.utils.transform", "RealisID Pose & Expression", "insightface")
    mean = require("insightface.data", "RealisID Pose & Expression", "insightface").get_object("meanshape_68.pkl")
    matrix = insightface.estimate_affine_matrix_3d23d(np.asarray(mean, np.float64), np.asarray(points_3d, np.float64))
    _, rotation, _ = insightface.P2sRt(matrix)
    return np.array(insightface.matrix2angle(rotation), np.float64)
