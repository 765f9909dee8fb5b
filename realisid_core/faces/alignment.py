"""Crops the face models take: ArcFace's 112 px alignment from 5 keypoints, the landmark models'
box-centred square; and points carried back from a crop to the picture.

The similarity transform is Umeyama's least-squares estimate (the one scikit-image's
SimilarityTransform computes and insightface's norm_crop uses), in the keypoints' own dtype.
"""
from __future__ import annotations

import numpy as np

# Where ArcFace models expect the 5 keypoints in their 112 × 112 input
ARCFACE_KEYPOINTS = np.array([[38.2946, 51.6963], [73.5318, 51.5014], [56.0252, 71.7366],
                              [41.5493, 92.3655], [70.7299, 92.2041]], np.float32)


def umeyama(src: np.ndarray, dst: np.ndarray) -> np.ndarray:
    """[D+1, D+1] similarity (rotation, uniform scale, translation) taking src [N, D] closest to dst in
    least squares (Umeyama 1991, eq. 38-43; a reflection is never chosen). NaN when src is degenerate."""
    src, dst = np.asarray(src), np.asarray(dst)
    n, dim = src.shape
    src_centre, dst_centre = src.mean(0), dst.mean(0)
    src_c, dst_c = src - src_centre, dst - dst_centre
    covariance = dst_c.T @ src_c / n
    signs = np.ones(dim)
    if np.linalg.det(covariance) < 0:
        signs[-1] = -1
    out = np.eye(dim + 1)
    u, singular, vt = np.linalg.svd(covariance)
    rank = np.count_nonzero(singular > singular.max() * max(covariance.shape) * np.finfo(float).eps)
    if rank == 0:
        return np.full((dim + 1, dim + 1), np.nan)
    if rank == dim - 1 and np.linalg.det(u) * np.linalg.det(vt) <= 0:
        flipped = signs.copy()
        flipped[-1] = -1
        out[:dim, :dim] = u @ np.diag(flipped) @ vt
    elif rank == dim - 1:
        out[:dim, :dim] = u @ vt
    else:
        out[:dim, :dim] = u @ np.diag(signs) @ vt
    scale = 1.0 / src_c.var(0).sum() * (singular @ signs)
    out[:dim, dim] = dst_centre - scale * (out[:dim, :dim] @ src_centre.T)
    out[:dim, :dim] *= scale
    return out


def arcface_matrix(keypoints: np.ndarray, size: int = 112) -> np.ndarray:
    """[2, 3] affine taking the picture to the `size` px ArcFace crop of a face's 5 keypoints."""
    if size % 112 == 0:
        target = ARCFACE_KEYPOINTS * (size / 112.0)
    elif size % 128 == 0:
        target = ARCFACE_KEYPOINTS * (size / 128.0)
        target[:, 0] += 8.0 * size / 128.0
    else:
        raise ValueError(f"ArcFace crops are multiples of 112 or 128 px, not {size}")
    return umeyama(np.asarray(keypoints).reshape(5, 2), target)[:2]


def warp(bgr: np.ndarray, matrix: np.ndarray, size: int) -> np.ndarray:
    """The size × size picture `matrix` maps to (bilinear, black outside)."""
    import cv2
    return cv2.warpAffine(bgr, matrix, (size, size), borderValue=0.0)


def box_crop_matrix(centre, size: int, scale: float, rotation_degrees: float = 0.0) -> np.ndarray:
    """[2, 3] affine: scale about the picture origin, the scaled centre to the origin, rotate, then to
    the middle of a size × size crop (insightface's face_align.transform)."""
    angle = np.deg2rad(float(rotation_degrees))
    rotate = np.array([[np.cos(angle), -np.sin(angle)], [np.sin(angle), np.cos(angle)]])
    shift = -rotate @ (np.array([centre[0], centre[1]], np.float64) * scale) + size / 2
    return np.hstack([rotate * scale, shift[:, None]])


def invert_affine(matrix: np.ndarray) -> np.ndarray:
    """The [2, 3] affine undoing `matrix`."""
    linear = np.linalg.inv(matrix[:, :2])
    return np.hstack([linear, -linear @ matrix[:, 2:]])


def transform_points(points: np.ndarray, matrix: np.ndarray) -> np.ndarray:
    """Points [N, 2] or [N, 3] through a [2, 3] affine, float32; a third coordinate is scaled by the
    affine's scale (depth follows the picture's size)."""
    points = np.asarray(points, np.float32)
    out = np.empty(points.shape, np.float32)
    out[:, :2] = points[:, :2].astype(np.float64) @ matrix[:, :2].T + matrix[:, 2]
    if points.shape[1] == 3:
        out[:, 2] = points[:, 2] * np.sqrt(matrix[0, 0] ** 2 + matrix[0, 1] ** 2)
    return out
