"""insightface face analysis, loaded once per (pack folder, providers, detection size) and shared.

Each pack file goes through insightface's own `model_zoo.get_model`, which routes an ONNX
file to its detector/landmark/recognition class by its input and output signature, so any
insightface version that reads the packs reads them here. Files are taken by name, not by
globbing the folder, so stray ONNX files beside a pack never change what is loaded.
"""
from __future__ import annotations

import logging
import os
import threading
from dataclasses import dataclass

import numpy as np

from ..errors import RealisIDInputError
from .packs import PACKS
from .detected import DetectedFace
from ..cache import SharedModels
from ..errors import require

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
               "(insightface 2.x pulls in the CPU build; install onnxruntime-gpu after it)")
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
        model_zoo = require("insightface.model_zoo", "insightface")
        require("onnxruntime", "onnxruntime-gpu")
        self.key, self.pack = key, pack
        self._detect_lock = threading.Lock()  # the threshold is detector state; one picture at a time
        layout = PACKS[pack]
        self.models = {}
        for task, file in (("detection", layout.detection), ("recognition", layout.recognition),
                           ("landmark_3d_68", layout.landmark_3d_68), ("landmark_2d_106", layout.landmark_2d_106)):
            if file is None:
                continue
            path = os.path.join(key.folder, file)
            model = model_zoo.get_model(path, providers=list(key.providers))
            if model is None or model.taskname != task:
                got = "nothing insightface recognises" if model is None else f"a '{model.taskname}' model"
                raise RealisIDInputError(input_name="pack",
                                         problem=f"{path} should be the pack's {task} model but is {got}",
                                         fix=f"replace it with the original {file} of the {pack} pack")
            model.prepare(ctx_id=0, input_size=(key.detection_size,) * 2) if task == "detection" else model.prepare(ctx_id=0)
            self.models[task] = model
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
        with self._detect_lock:
            detector.det_thresh = threshold
            for size in sizes:
                boxes, keypoints = detector.detect(bgr, input_size=(size, size), max_num=0)
                if boxes.shape[0]:
                    return boxes, keypoints
        return np.zeros((0, 5), np.float32), np.zeros((0, 5, 2), np.float32)

    def analyze(self, bgr: np.ndarray, image_index: int = 0, threshold: float = 0.5) -> list[DetectedFace]:
        """Every face in a uint8 BGR picture, with landmarks, pose and normalised embedding."""
        face_cls = require("insightface.app.common", "insightface").Face
        boxes, keypoints = self.detect(bgr, threshold)
        height, width = bgr.shape[:2]
        found = []
        for i in range(boxes.shape[0]):
            face = face_cls(bbox=boxes[i, :4], kps=keypoints[i], det_score=boxes[i, 4])
            for task, model in self.models.items():
                if task != "detection":
                    model.get(bgr, face)
            embedding = np.asarray(face.embedding, np.float32).ravel()
            lm68, lm106, pose = face.get("landmark_3d_68"), face.get("landmark_2d_106"), face.get("pose")
            found.append(DetectedFace(
                image_index=image_index, image_width=width, image_height=height,
                box=boxes[i, :4].astype(np.float32), score=float(boxes[i, 4]),
                keypoints=np.asarray(keypoints[i], np.float32),
                landmarks_2d_106=None if lm106 is None else np.asarray(lm106, np.float32),
                landmarks_3d_68=None if lm68 is None else np.asarray(lm68, np.float32),
                pose=None if pose is None else np.asarray(pose, np.float32),
                embedding=embedding / max(float(np.linalg.norm(embedding)), 1e-12),
                embedding_norm=float(np.linalg.norm(embedding)), pack=self.pack))
        return found


_analyzers = SharedModels()


def get_analyzer(folder: str, pack: str, provider: str = "auto", detection_size: int = 640) -> FaceAnalyzer:
    """The process-wide analyzer for (folder, providers, detection size), loaded on first use."""
    ort = require("onnxruntime", "onnxruntime-gpu")
    require("insightface", "insightface")
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
