"""Preview of face analysis: boxes, face numbers (from 1, in reading order per picture) and keypoints."""
from __future__ import annotations

import numpy as np

from .faces import DetectedFace, left_to_right
from .optional import require


def draw_faces(bgr: np.ndarray, faces: list[DetectedFace], selected: set[int] = frozenset()) -> np.ndarray:
    """[H, W, 3] uint8 RGB: every face's box and number (1 = first in reading order, as messages count
    people; the `index` input is that number − 1); selected faces (by id()) in green, others grey."""
    cv2 = require("cv2", "RealisID Face Analysis", "opencv-python")
    canvas = np.ascontiguousarray(bgr[..., ::-1])
    thickness = max(1, round(max(canvas.shape[:2]) / 400))
    for i, face in enumerate(left_to_right(faces)):
        colour = (0, 220, 0) if id(face) in selected else (160, 160, 160)
        x0, y0, x1, y1 = (int(round(float(v))) for v in face.box)
        cv2.rectangle(canvas, (x0, y0), (x1, y1), colour, thickness)
        cv2.putText(canvas, f"{i + 1} ({face.score:.2f})", (x0, max(12, y0 - 4)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4 * thickness, colour, thickness, cv2.LINE_AA)
        for k, (x, y) in enumerate(face.keypoints):
            cv2.circle(canvas, (int(round(float(x))), int(round(float(y)))), thickness + 1,
                       (255, 0, 0) if k in (0, 3) else (0, 0, 255), -1, cv2.LINE_AA)
    return canvas
