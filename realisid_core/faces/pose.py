"""A person's pose and expression as geometry: landmarks in the face box's own frame.

A driving face's points are stored relative to its box — origin at the box centre, one unit =
the box's longer side — so they can be put on any face location by the rule the local branch's
crop frame uses (centre to centre, longer side to longer side). Nothing here is a picture: the
branch that consumes a pose draws it in its own crop frame, in its own hint format.
"""
from __future__ import annotations

import functools
import math
import os
from dataclasses import dataclass

import numpy as np

MEAN_FACE_FILE = os.path.join(os.path.dirname(__file__), "meanshape_68.npy")  # see tools/make_meanshape.py

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
    mean = mean_face_68().astype(np.float64)  # y grows downwards
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


@functools.lru_cache(maxsize=None)
def _mean_face() -> np.ndarray:
    mean = np.load(MEAN_FACE_FILE, allow_pickle=False)
    mean.setflags(write=False)
    return mean


def mean_face_68() -> np.ndarray:
    """insightface's mean 3-D face [68, 3] (iBUG order, x right, y down), shipped as meanshape_68.npy."""
    return _mean_face().copy()


def fit_affine_3d(source: np.ndarray, target: np.ndarray) -> np.ndarray:
    """[3, 4] affine P with target ≈ P · [source, 1], least squares over the points."""
    homogeneous = np.hstack([source, np.ones((source.shape[0], 1))])
    return np.linalg.lstsq(homogeneous, target, rcond=None)[0].T


def rotation_of(affine: np.ndarray) -> np.ndarray:
    """The rotation [3, 3] of an affine camera [3, 4]: its first two rows normalised, the third their cross product."""
    r1 = affine[0:1, :3] / np.linalg.norm(affine[0:1, :3])
    r2 = affine[1:2, :3] / np.linalg.norm(affine[1:2, :3])
    return np.concatenate([r1, r2, np.cross(r1, r2)], 0)


def euler_degrees(rotation: np.ndarray) -> tuple[float, float, float]:
    """(pitch, yaw, roll) in degrees of a rotation matrix (x, y, z Euler angles, as insightface reads them)."""
    sy = math.sqrt(rotation[0, 0] ** 2 + rotation[1, 0] ** 2)
    if sy >= 1e-6:
        x, z = math.atan2(rotation[2, 1], rotation[2, 2]), math.atan2(rotation[1, 0], rotation[0, 0])
    else:
        x, z = math.atan2(-rotation[1, 2], rotation[1, 1]), 0.0
    y = math.atan2(-rotation[2, 0], sy)
    return x * 180 / np.pi, y * 180 / np.pi, z * 180 / np.pi


def head_pose_68(points_3d: np.ndarray) -> np.ndarray:
    """(pitch, yaw, roll) in degrees of 68 3-D landmarks, fitted to insightface's mean face as insightface does."""
    matrix = fit_affine_3d(_mean_face().astype(np.float64), np.asarray(points_3d, np.float64))
    return np.array(euler_degrees(rotation_of(matrix)), np.float64)
