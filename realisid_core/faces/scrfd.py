"""SCRFD face detection (the packs' scrfd_10g_bnkps.onnx / det_10g.onnx) run with onnxruntime.

The numerics are insightface's: the picture letterboxed into the detection size (aspect kept,
top-left aligned, black padding), RGB, (pixel - 127.5) / 128; per stride, anchor centres on the
feature grid (two anchors per location for 3-stride models), distances × stride decoded into
boxes and keypoints; candidates over the threshold sorted by score and NMS'd at IoU 0.4.
"""
from __future__ import annotations

import numpy as np

from .onnx_models import Signature, to_blob

NMS_THRESHOLD = 0.4
MEAN, STD = 127.5, 128.0


def anchor_centres(height: int, width: int, stride: int, anchors: int) -> np.ndarray:
    """[height * width * anchors, 2] (x, y) in input pixels, row by row, each location `anchors` times."""
    ys, xs = np.mgrid[:height, :width]
    centres = (np.stack([xs, ys], -1).astype(np.float32) * stride).reshape(-1, 2)
    return np.repeat(centres, anchors, axis=0) if anchors > 1 else centres


def distance_to_box(centres: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """[N, 4] (x0, y0, x1, y1) from distances (left, top, right, bottom) to each centre."""
    return np.stack([centres[:, 0] - distance[:, 0], centres[:, 1] - distance[:, 1],
                     centres[:, 0] + distance[:, 2], centres[:, 1] + distance[:, 3]], -1)


def distance_to_points(centres: np.ndarray, distance: np.ndarray) -> np.ndarray:
    """[N, K, 2] points from (dx, dy) offsets [N, 2K] to each centre."""
    return distance.reshape(distance.shape[0], -1, 2) + centres[:, None, :]


def nms(boxes: np.ndarray, threshold: float = NMS_THRESHOLD) -> list[int]:
    """Indices kept by greedy non-maximum suppression of [N, 5] (box, score), highest score first
    (insightface's integer-pixel areas: width and height + 1)."""
    x0, y0, x1, y1, scores = (boxes[:, i] for i in range(5))
    areas = (x1 - x0 + 1) * (y1 - y0 + 1)
    order = np.argsort(-scores, kind="stable")
    keep = []
    while order.size:
        best, rest = order[0], order[1:]
        keep.append(int(best))
        w = np.maximum(0.0, np.minimum(x1[best], x1[rest]) - np.maximum(x0[best], x0[rest]) + 1)
        h = np.maximum(0.0, np.minimum(y1[best], y1[rest]) - np.maximum(y0[best], y0[rest]) + 1)
        overlap = w * h / (areas[best] + areas[rest] - w * h)
        order = rest[overlap <= threshold]
    return keep


def letterbox(bgr: np.ndarray, size: tuple[int, int]) -> tuple[np.ndarray, float]:
    """The picture resized into (width, height) keeping its aspect, at the top left of black; and the scale."""
    import cv2
    width, height = size
    if bgr.shape[0] / bgr.shape[1] > height / width:
        new_h = height
        new_w = int(new_h / (bgr.shape[0] / bgr.shape[1]))
    else:
        new_w = width
        new_h = int(new_w * (bgr.shape[0] / bgr.shape[1]))
    out = np.zeros((height, width, 3), np.uint8)
    out[:new_h, :new_w] = cv2.resize(bgr, (new_w, new_h))
    return out, new_h / bgr.shape[0]


class SCRFD:
    """An SCRFD detector session; `detect` gives (boxes [F, 5] with score, keypoints [F, 5, 2])."""

    taskname = "detection"

    def __init__(self, session, signature: Signature):
        self.session, self.signature = session, signature
        outputs = len(signature.output_names)
        if outputs not in (6, 9, 10, 15):
            raise ValueError(f"an SCRFD model has 6, 9, 10 or 15 outputs, this one {outputs}")
        self.levels = 3 if outputs in (6, 9) else 5
        self.strides = (8, 16, 32) if self.levels == 3 else (8, 16, 32, 64, 128)
        self.anchors = 2 if self.levels == 3 else 1
        self.has_keypoints = outputs in (9, 15)
        self.batched = len(signature.output_shapes[0]) == 3
        self._centres: dict[tuple[int, int, int], np.ndarray] = {}

    def _centres_for(self, height: int, width: int, stride: int) -> np.ndarray:
        key = (height, width, stride)
        if key not in self._centres:
            self._centres[key] = anchor_centres(height, width, stride, self.anchors)
        return self._centres[key]

    def candidates(self, bgr: np.ndarray, size: tuple[int, int], threshold: float):
        """Boxes [N, 5] and keypoints [N, 5, 2] over the threshold in picture pixels, best first, before NMS."""
        picture, scale = letterbox(bgr, size)
        blob = to_blob([picture], MEAN, STD)
        outs = self.session.run(list(self.signature.output_names), {self.signature.input_name: blob})
        if self.batched:
            outs = [o[0] for o in outs]
        boxes, scores, points = [], [], []
        for level, stride in enumerate(self.strides):
            centres = self._centres_for(blob.shape[2] // stride, blob.shape[3] // stride, stride)
            level_scores = outs[level].reshape(-1)
            keep = np.where(level_scores >= threshold)[0]
            scores.append(level_scores[keep])
            boxes.append(distance_to_box(centres, outs[level + self.levels] * stride)[keep])
            if self.has_keypoints:
                points.append(distance_to_points(centres, outs[level + 2 * self.levels] * stride)[keep])
        score = np.concatenate(scores)
        order = np.argsort(-score, kind="stable")
        found = np.hstack([np.concatenate(boxes) / scale, score[:, None]]).astype(np.float32)[order]
        keypoints = (np.concatenate(points) / scale)[order] if self.has_keypoints else None
        return found, keypoints

    def detect(self, bgr: np.ndarray, input_size=(640, 640), max_num: int = 0, threshold: float = 0.5):
        """Faces after NMS (insightface's `SCRFD.detect`): boxes [F, 5] (x0, y0, x1, y1, score) and keypoints
        [F, 5, 2]; max_num > 0 keeps that many, the largest and most central first."""
        found, keypoints = self.candidates(bgr, tuple(int(v) for v in input_size), threshold)
        if found.shape[0] == 0:
            return np.zeros((0, 5), np.float32), np.zeros((0, 5, 2), np.float32)
        keep = nms(found)
        found = found[keep]
        keypoints = keypoints[keep] if keypoints is not None else np.zeros((len(keep), 5, 2), np.float32)
        if 0 < max_num < found.shape[0]:
            area = (found[:, 2] - found[:, 0]) * (found[:, 3] - found[:, 1])
            cy, cx = bgr.shape[0] // 2, bgr.shape[1] // 2
            off = ((found[:, 0] + found[:, 2]) / 2 - cx) ** 2 + ((found[:, 1] + found[:, 3]) / 2 - cy) ** 2
            best = np.argsort(area - off * 2.0)[::-1][:max_num]
            found, keypoints = found[best], keypoints[best]
        return found, keypoints
