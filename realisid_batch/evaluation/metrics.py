"""The numbers of the evaluation, as plain functions of boxes, poses, landmarks and embeddings."""
from __future__ import annotations

import math

import numpy as np

# face side in pixels (square root of the box area): upper bounds of the buckets, the last open
BUCKETS = (("<=48", 48.0), ("48-96", 96.0), ("96-192", 192.0), (">192", math.inf))
BUCKET_LABELS = {"<=48": "≤ 48 px", "48-96": "48–96 px", "96-192": "96–192 px", ">192": "> 192 px"}
EYES_68 = list(range(36, 48))
MOUTH_68 = list(range(48, 68))


def face_side(box) -> float:
    """The side of a face box (x0, y0, x1, y1): the square root of its area, in pixels."""
    x0, y0, x1, y1 = (float(v) for v in box)
    return math.sqrt(max(0.0, x1 - x0) * max(0.0, y1 - y0))


def bucket(side: float) -> str:
    for name, upper in BUCKETS:
        if side <= upper:
            return name
    return BUCKETS[-1][0]


def iou(a, b) -> float:
    """Intersection over union of two (x0, y0, x1, y1) boxes."""
    ax0, ay0, ax1, ay1 = (float(v) for v in a)
    bx0, by0, bx1, by1 = (float(v) for v in b)
    inter = max(0.0, min(ax1, bx1) - max(ax0, bx0)) * max(0.0, min(ay1, by1) - max(ay0, by0))
    union = (ax1 - ax0) * (ay1 - ay0) + (bx1 - bx0) * (by1 - by0) - inter
    return inter / union if union > 0 else 0.0


def cosine(a, b) -> float:
    a, b = np.asarray(a, np.float64).ravel(), np.asarray(b, np.float64).ravel()
    return float(a @ b / max(np.linalg.norm(a) * np.linalg.norm(b), 1e-12))


def angle_difference(a: float, b: float) -> float:
    """|a - b| in degrees, the short way round (179° and -179° are 2° apart)."""
    return abs((float(a) - float(b) + 180.0) % 360.0 - 180.0)


def pose_error(pose, driving_pose) -> dict[str, float]:
    """Absolute yaw, pitch and roll differences (degrees) from insightface poses (pitch, yaw, roll)."""
    pitch, yaw, roll = (float(v) for v in pose)
    d_pitch, d_yaw, d_roll = (float(v) for v in driving_pose)
    return {"yaw": angle_difference(yaw, d_yaw), "pitch": angle_difference(pitch, d_pitch),
            "roll": angle_difference(roll, d_roll)}


def normalised_expression(landmarks_68) -> np.ndarray:
    """Eye and mouth landmarks [32, 2] in the face's own frame: the eye centres' midpoint at 0, the eye line
    along x, the inter-ocular distance 1 — so place, size and in-plane rotation drop out, expression stays."""
    points = np.asarray(landmarks_68, np.float64)[:, :2]
    right_eye, left_eye = points[36:42].mean(0), points[42:48].mean(0)
    axis = left_eye - right_eye
    distance = float(np.hypot(*axis))
    if distance < 1e-9:
        raise ValueError("the eyes coincide: no inter-ocular distance to normalise by")
    c, s = axis / distance
    rotate = np.array([[c, s], [-s, c]])  # turns the eye line onto +x
    centre = (right_eye + left_eye) / 2
    return (points[EYES_68 + MOUTH_68] - centre) @ rotate.T / distance


def expression_error(landmarks_68, driving_landmarks_68) -> float:
    """Mean distance between the eye and mouth landmarks of two faces, in inter-ocular distances."""
    a, b = normalised_expression(landmarks_68), normalised_expression(driving_landmarks_68)
    return float(np.linalg.norm(a - b, axis=1).mean())


def assign(scores: np.ndarray, minimum: float) -> dict[int, tuple[int, float]]:
    """Hungarian matching (scipy's linear_sum_assignment) maximising the total score of rows against
    columns: {row: (column, score)}, pairs scoring below `minimum` or not finite (no score) dropped."""
    scores = np.asarray(scores, np.float64)
    if scores.size == 0:
        return {}
    from scipy.optimize import linear_sum_assignment
    finite = np.isfinite(scores)
    low = (scores[finite].min() if finite.any() else 0.0) - 1e3  # below every real pair: taken only when nothing else is left
    rows, cols = linear_sum_assignment(np.where(finite, scores, low), maximize=True)
    return {int(i): (int(j), float(scores[i, j])) for i, j in zip(rows, cols) if finite[i, j] and scores[i, j] >= minimum}


def match_by_box(intended: list, detected: list, min_iou: float) -> dict[int, tuple[int, float]]:
    """One face per intended box (Hungarian): the most boxes given a face overlapping them by at least
    `min_iou` (and more than 0), then the largest total overlap: {intended index: (detected index, IoU)}."""
    overlaps = np.array([[iou(a, b) for b in detected] for a in intended]).reshape(len(intended), len(detected))
    usable = (overlaps >= min_iou) & (overlaps > 0)
    pairs = assign(np.where(usable, 1.0 + overlaps, 0.0), 1.0)  # +1 per pair: the count comes first
    return {i: (j, float(overlaps[i, j])) for i, (j, _) in pairs.items()}


def copy_paste(distance_to_held_out: float, distance_to_reference: float, reference_to_held_out: float) -> float:
    """MultiID-Bench's copy-paste score (WithAnyone): (d(g, t) - d(g, r)) / max(d(t, r), eps), g the generated
    face, r the reference, t the held-out photo: +1 where the face is the reference's copy, -1 where it is
    the held-out photo, 0 half way."""
    return (distance_to_held_out - distance_to_reference) / max(reference_to_held_out, 1e-6)


def mean(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.mean(values)) if values else None


def median(values) -> float | None:
    values = [v for v in values if v is not None]
    return float(np.median(values)) if values else None
