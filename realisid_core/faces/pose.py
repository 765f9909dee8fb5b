"""A person's pose and expression as geometry: landmarks in the face box's own frame.

A driving face's points are stored relative to its box — origin at the box centre, one unit =
the box's longer side — so they can be put on any face location by the rule the local branch's
crop frame uses (centre to centre, longer side to longer side). Nothing here is a picture: the
branch that consumes a pose draws it in its own crop frame, in its own hint format.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import require

# Which point becomes which when the face is mirrored (the subject's right eye becomes the left one, ...)
MIRROR_68 = np.array(list(range(16, -1, -1)) + list(range(26, 16, -1)) + [27, 28, 29, 30] + [35, 34, 33, 32, 31]
                     + [45, 44, 43, 42, 47, 46] + [39, 38, 37, 36, 41, 40]
                     + [54, 53, 52, 51, 50, 49, 48, 59, 58, 57, 56, 55] + [64, 63, 62, 61, 60, 67, 66, 65])
MIRROR_5 = np.array([1, 0, 2, 4, 3])


@dataclass(frozen=True)
class FacePose:
    """keypoints [5, 2] (insightface order: the subject's right eye, left eye, nose, right and left
    mouth corner) and landmarks_68 [68, 3] (iBUG order, or None), in the box frame (see module doc)."""

    keypoints: np.ndarray
    landmarks_68: np.ndarray | None = None

    @classmethod
    def from_points(cls, keypoints, box, landmarks_68=None) -> "FacePose":
        """Pose from points in picture pixels and the face's (x0, y0, x1, y1) box in the same pixels."""
        x0, y0, x1, y1 = (float(v) for v in box)
        centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
        unit = max(x1 - x0, y1 - y0, 1e-9)

        def to_frame(points):
            points = np.asarray(points, np.float64).copy()
            points[:, :2] = (points[:, :2] - centre) / unit
            if points.shape[1] > 2:
                points[:, 2:] /= unit
            return points

        return cls(to_frame(keypoints), None if landmarks_68 is None else to_frame(landmarks_68))

    @classmethod
    def from_face(cls, face, mirror: bool = False) -> "FacePose":
        """Pose of a DetectedFace (its keypoints and, where the pack has them, 68 landmarks)."""
        pose = cls.from_points(face.keypoints, face.box, face.landmarks_3d_68)
        return pose.mirrored() if mirror else pose

    def mirrored(self) -> "FacePose":
        """The pose of the mirrored face: x negated, left and right parts swapped (the head turns the other way)."""
        def flip(points, order):
            out = points[order].copy()
            out[:, 0] = -out[:, 0]
            return out
        return FacePose(flip(self.keypoints, MIRROR_5),
                        None if self.landmarks_68 is None else flip(self.landmarks_68, MIRROR_68))

    def points(self, layout: int) -> np.ndarray:
        """[5, 2] keypoints (layout 5) or [68, ≥2] landmarks (layout 68) in the box frame."""
        if layout == 5:
            return self.keypoints
        if self.landmarks_68 is None:
            raise ValueError("this pose has no 68 landmarks (its face pack has no 1k3d68.onnx)")
        return self.landmarks_68

    def placed(self, layout: int, cx: float, cy: float, longer_side: float) -> np.ndarray:
        """Points (x, y) put on a face box centred at (cx, cy) with that longer side, in the same units."""
        points = self.points(layout)[:, :2]
        return points * longer_side + np.array([cx, cy])


def frontal_pose() -> FacePose:
    """A neutral face looking at the camera: insightface's mean 3-D face (68 landmarks and the 5
    keypoints from them), in a box like a detector's (the landmarks' extent, the forehead added).
    The pose of a person who has no pose source."""
    data = require("insightface.data", "insightface")
    mean = np.asarray(data.get_object("meanshape_68.pkl"), np.float64)  # y grows downwards
    x0, y0 = mean[:, :2].min(0)
    x1, y1 = mean[:, :2].max(0)
    box = (x0, y0 - 0.2 * (y1 - y0), x1, y1)
    return FacePose.from_points(keypoints_from_68(mean)[:, :2], box, mean)


def keypoints_from_68(points: np.ndarray) -> np.ndarray:
    """The 5 detector keypoints (eye centres, nose tip, mouth corners) of 68 iBUG landmarks."""
    points = np.asarray(points, np.float64)
    return np.stack([points[36:42].mean(0), points[42:48].mean(0), points[30], points[48], points[54]])


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


def head_pose_68(points_3d: np.ndarray) -> np.ndarray:
    """(pitch, yaw, roll) in degrees of 68 3-D landmarks, fitted to insightface's mean face as insightface does."""
    insightface = require("insightface.utils.transform", "insightface")
    mean = require("insightface.data", "insightface").get_object("meanshape_68.pkl")
    matrix = insightface.estimate_affine_matrix_3d23d(np.asarray(mean, np.float64), np.asarray(points_3d, np.float64))
    _, rotation, _ = insightface.P2sRt(matrix)
    return np.array(insightface.matrix2angle(rotation), np.float64)
