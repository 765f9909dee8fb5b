"""The packs' landmark models (1k3d68.onnx, 2d106det.onnx) run with onnxruntime.

As insightface runs them: a square crop centred on the face box, 1.5 × its longer side, scaled to
the model's input (192 px); outputs in [-1, 1] of the crop (depth too, for the 3-D model) mapped
to crop pixels and back to the picture through the inverse crop transform. The 3-D model gives
the head pose too (its fit to the mean face, pose.head_pose_68).
"""
from __future__ import annotations

import numpy as np

from .alignment import box_crop_matrix, invert_affine, transform_points, warp
from .onnx_models import Signature, normalisation, to_blob
from .pose import head_pose_68

CROP_MARGIN = 1.5


class Landmarks:
    """A landmark model session; `find` gives the points of the face in a box, in picture pixels."""

    def __init__(self, session, signature: Signature):
        self.session, self.signature = session, signature
        self.input_size = int(signature.input_shape[2])
        self.input_mean, self.input_std = normalisation(signature.first_node_names, landmark=True)
        outputs = int(signature.output_shapes[0][1])
        self.dimensions, self.count = (3, 68) if outputs == 3309 else (2, outputs // 2)
        self.taskname = f"landmark_{self.dimensions}d_{self.count}"

    def find(self, bgr: np.ndarray, box) -> np.ndarray:
        """[count, dimensions] float32 points of the face in box (x0, y0, x1, y1), picture pixels."""
        x0, y0, x1, y1 = (box[i] for i in range(4))
        centre = ((x1 + x0) / 2, (y1 + y0) / 2)
        matrix = box_crop_matrix(centre, self.input_size, self.input_size / (max(x1 - x0, y1 - y0) * CROP_MARGIN))
        blob = to_blob([warp(bgr, matrix, self.input_size)], self.input_mean, self.input_std)
        out = self.session.run(list(self.signature.output_names), {self.signature.input_name: blob})[0][0]
        points = out.reshape(-1, 3 if out.shape[0] >= 3000 else 2)[-self.count:].copy()
        half = self.input_size // 2
        points[:, :2] = (points[:, :2] + 1) * half
        if points.shape[1] == 3:
            points[:, 2] *= half
        return transform_points(points, invert_affine(matrix))

    def pose(self, points: np.ndarray) -> np.ndarray | None:
        """(pitch, yaw, roll) degrees of the 3-D model's 68 points; None for a 2-D model."""
        return np.asarray(head_pose_68(points), np.float32) if self.dimensions == 3 else None
