"""Face analysis with an insightface pack, loaded once per (pack folder, providers, detection size) and shared.

The pack's ONNX models run on onnxruntime directly (scrfd.py, recognition.py, landmarks.py, with
insightface's numerics; the insightface package is not needed). Each file is checked against the
signature of the task the pack gives it. Files are taken by name, not by globbing the folder, so
stray ONNX files beside a pack never change what is loaded.
"""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import numpy as np

from ..cache import SharedModels
from ..errors import RealisIDInputError, require
from .detected import DetectedFace
from .landmarks import Landmarks
from .onnx_models import open_model
from .packs import PACKS
from .recognition import ArcFace
from .scrfd import SCRFD

log = logging.getLogger("RealisID")

PROVIDERS = {
    "CUDA": "CUDAExecutionProvider",
    "ROCm": "ROCMExecutionProvider",
    "CoreML": "CoreMLExecutionProvider",
    "CPU": "CPUExecutionProvider",
}
PROVIDER_CHOICES = ("auto",) + tuple(PROVIDERS)
DETECTION_SIZES = (640, 320, 160)  # retried in this order: big close-ups need the smaller sizes


def choose_providers(provider: str, available: list[str]) -> list[str]:
    """onnxruntime provider list for a user choice: the asked (or best available) provider, then CPU."""
    if provider == "auto":
        for name in ("CUDA", "ROCm", "CoreML"):
            if PROVIDERS[name] in available:
                return [PROVIDERS[name], PROVIDERS["CPU"]]
        return [PROVIDERS["CPU"]]
    if provider not in PROVIDERS:
        raise RealisIDInputError(input_name="provider",
                                 problem=f"unknown provider '{provider}'",
                                 fix=f"choose one of {', '.join(PROVIDER_CHOICES)}")
    if provider == "CPU":
        return [PROVIDERS["CPU"]]
    return [PROVIDERS[provider], PROVIDERS["CPU"]]


def onnxruntime_distributions() -> list[str]:
    """Installed onnxruntime distributions (onnxruntime, onnxruntime-gpu, …): more than one shadow each other."""
    from importlib import metadata
    names = {(d.metadata["Name"] or "").lower() for d in metadata.distributions()}
    return sorted(n for n in names if n.startswith("onnxruntime"))


_fallbacks_reported: set[str] = set()  # the fall-back is said once per process and provider


def _warn_cpu_fallback(asked: str, got: list[str], folder: str, available: list[str]) -> None:
    installed = onnxruntime_distributions()
    if len(installed) > 1:
        fix = (f"{' and '.join(installed)} are all installed and the CPU build shadows the GPU one: "
               f"python -m pip uninstall -y {' '.join(installed)} && python -m pip install onnxruntime-gpu "
               "(the pack needs only onnxruntime-gpu; another package that requires onnxruntime, such as "
               "insightface, brings the CPU build back when it is installed or upgraded)")
    else:
        fix = (f"install the onnxruntime build for {asked} into ComfyUI's Python (onnxruntime-gpu for CUDA, "
               "with the CUDA/cuDNN versions it was built for)")
    log.warning("RealisID: !!! face analysis asked for %s but onnxruntime runs the models in %s on %s "
                "(onnxruntime offers %s). It works, slowly. Fix: %s. !!!",
                asked, folder, ", ".join(got) or "CPU", ", ".join(available), fix)


@dataclass(frozen=True)
class AnalyzerKey:
    folder: str
    providers: tuple[str, ...]
    detection_size: int


class FaceAnalyzer:
    """A loaded pack: detector, recogniser and landmark models sharing one set of providers."""

    def __init__(self, key: AnalyzerKey, pack: str):
        require("onnxruntime", "onnxruntime-gpu")
        require("cv2", "opencv-python")  # resizing and warping the models' crops
        self.key, self.pack = key, pack
        layout = PACKS[pack]
        self.models = {}
        for task, file in (("detection", layout.detection), ("recognition", layout.recognition),
                           ("landmark_3d_68", layout.landmark_3d_68), ("landmark_2d_106", layout.landmark_2d_106)):
            if file is None:
                continue
            session, signature = open_model(os.path.join(key.folder, file), list(key.providers), task, file, pack)
            self.models[task] = MODEL_CLASSES[task](session, signature)
        self.active_providers = list(self.models["detection"].session.get_providers())
        asked = key.providers[0]
        if asked != PROVIDERS["CPU"] and asked not in self.active_providers and asked not in _fallbacks_reported:
            _fallbacks_reported.add(asked)
            _warn_cpu_fallback(asked, self.active_providers, key.folder,
                               list(require("onnxruntime", "onnxruntime-gpu").get_available_providers()))

    def detect(self, bgr: np.ndarray, threshold: float = 0.5):
        """(boxes [F, 5] with score, keypoints [F, 5, 2]), retrying at smaller detection sizes before giving up."""
        detector = self.models["detection"]
        sizes = [s for s in DETECTION_SIZES if s <= self.key.detection_size] or [self.key.detection_size]
        if self.key.detection_size not in sizes:
            sizes.insert(0, self.key.detection_size)
        for size in sizes:
            boxes, keypoints = detector.detect(bgr, input_size=(size, size), max_num=0, threshold=threshold)
            if boxes.shape[0]:
                return boxes, keypoints
        return np.zeros((0, 5), np.float32), np.zeros((0, 5, 2), np.float32)

    def analyze(self, bgr: np.ndarray, image_index: int = 0, threshold: float = 0.5) -> list[DetectedFace]:
        """Every face in a uint8 BGR picture, with landmarks, pose and normalised embedding."""
        boxes, keypoints = self.detect(bgr, threshold)
        height, width = bgr.shape[:2]
        lm68_model, lm106_model = self.models.get("landmark_3d_68"), self.models.get("landmark_2d_106")
        found = []
        for i in range(boxes.shape[0]):
            box = boxes[i, :4]
            embedding = self.models["recognition"].embed(bgr, keypoints[i])
            lm68 = None if lm68_model is None else lm68_model.find(bgr, box)
            lm106 = None if lm106_model is None else lm106_model.find(bgr, box)
            norm = float(np.linalg.norm(embedding))
            found.append(DetectedFace(
                image_index=image_index, image_width=width, image_height=height,
                box=box.astype(np.float32), score=float(boxes[i, 4]),
                keypoints=np.asarray(keypoints[i], np.float32),
                landmarks_2d_106=lm106, landmarks_3d_68=lm68,
                pose=None if lm68 is None else lm68_model.pose(lm68),
                embedding=embedding / max(norm, 1e-12), embedding_norm=norm, pack=self.pack))
        return found


MODEL_CLASSES = {"detection": SCRFD, "recognition": ArcFace, "landmark_3d_68": Landmarks, "landmark_2d_106": Landmarks}


_analyzers = SharedModels()


def get_analyzer(folder: str, pack: str, provider: str = "auto", detection_size: int = 640) -> FaceAnalyzer:
    """The process-wide analyzer for (folder, providers, detection size), loaded on first use."""
    ort = require("onnxruntime", "onnxruntime-gpu")
    providers = choose_providers(provider, list(ort.get_available_providers()))
    key = AnalyzerKey(os.path.realpath(folder), tuple(providers), int(detection_size))

    def load():
        log.info("RealisID: loading face analysis pack %s from %s (%s, detection size %d)",
                 pack, key.folder, ", ".join(providers), detection_size)
        return FaceAnalyzer(key, pack)
    return _analyzers.get(key, load, f"face analysis pack {pack} ({', '.join(providers)}, detection size {detection_size})")


def cached_analyzers() -> list[AnalyzerKey]:
    """Keys of the analyzers loaded and still in use."""
    return _analyzers.keys()


def release(key: AnalyzerKey) -> bool:
    """Forget one analyzer (its ONNX sessions are freed once no node output holds it); True if it was loaded."""
    return _analyzers.forget(lambda k: k == key) == 1


def release_all() -> int:
    """Forget every analyzer; returns how many there were."""
    return _analyzers.forget(lambda k: True)
