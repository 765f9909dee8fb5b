"""Previews for the artist: the people's places numbered over the picture, their poses drawn where the branch will put them."""
from __future__ import annotations

from typing import Sequence

import numpy as np

from .face_pose import FacePose
from .hint_formats import placed_points
from .locations import FaceLocations
from .optional import require
from .pose_expression import LAYOUTS, render_pose

PREVIEW_LONG_SIDE = 768
PERSON_COLOURS = ((80, 200, 255), (255, 170, 60), (120, 230, 120), (240, 110, 200),
                  (255, 230, 90), (170, 140, 255), (90, 230, 220), (255, 120, 120))


def preview_size(locations: FaceLocations, background: np.ndarray | None = None) -> tuple[int, int]:
    """(width, height) of a preview: the background's, else the places' picture shape at a viewable size."""
    if background is not None:
        return background.shape[1], background.shape[0]
    width, height = (locations.width, locations.height) if locations.has_shape else (1, 1)
    scale = PREVIEW_LONG_SIDE / max(width, height)
    return max(8, round(width * scale)), max(8, round(height * scale))


def draw_people(locations: FaceLocations, poses: Sequence[FacePose | None] | None = None,
                background: np.ndarray | None = None, labels: Sequence[str] | None = None) -> np.ndarray:
    """[H, W, 3] uint8 RGB: each face box numbered by person (1-based), with its pose where given.

    background: an RGB uint8 picture to draw over (a layout photo); else a dark frame.
    """
    cv2 = require("cv2", "RealisID preview", "opencv-python")
    width, height = preview_size(locations, background)
    canvas = np.full((height, width, 3), 32, np.uint8) if background is None else \
        np.ascontiguousarray(background[..., :3]).astype(np.uint8).copy()
    thickness = max(1, round(max(width, height) / 400))
    boxes = locations.boxes.numpy()
    pixel = locations.pixel_boxes(width, height).numpy()
    for f in range(locations.count):
        colour = PERSON_COLOURS[f % len(PERSON_COLOURS)]
        pose = None if poses is None else poses[f]
        if pose is not None:
            layout = 68 if pose.landmarks_68 is not None else 5
            points = placed_points([pose], boxes[f:f + 1], height, width, layout)[0]
            render = render_pose(points, max(width, height), LAYOUTS[0] if layout == 68 else LAYOUTS[1])
            canvas = np.maximum(canvas, render[:height, :width])
        x0, y0, x1, y1 = (int(round(v)) for v in pixel[f])
        cv2.rectangle(canvas, (x0, y0), (x1, y1), colour, thickness, cv2.LINE_AA)
        text = str(f + 1) if labels is None else labels[f]
        cv2.putText(canvas, text, (x0 + 3, max(14, y0 + 16 * thickness)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.5 * thickness, colour, thickness, cv2.LINE_AA)
    return canvas
