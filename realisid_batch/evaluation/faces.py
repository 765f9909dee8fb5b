"""Faces in pictures through the pack's own analyzer (realisid_core.faces.analyzer), with the evaluation's recogniser.

The recogniser that measures identity should not be the one that conditioned the pictures (a
method tuned to one ArcFace can fool that ArcFace), so by default another installed insightface
pack is used: buffalo_l when the pictures were conditioned with antelopev2, and the reverse;
`dlib` measures with a network of another family altogether (dlib_faces.py).
"""
from __future__ import annotations

import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from ..errors import BatchError


def default_insightface_roots() -> list[str]:
    """Where insightface packs usually are: ComfyUI's models/insightface (COMFYUI_PATH, ~/comfy/ComfyUI), ~/.insightface."""
    roots = []
    if os.environ.get("COMFYUI_PATH"):
        roots.append(os.path.join(os.environ["COMFYUI_PATH"], "models", "insightface"))
    roots += [os.path.expanduser("~/comfy/ComfyUI/models/insightface"), os.path.expanduser("~/.insightface")]
    return roots


@dataclass(frozen=True)
class Recogniser:
    pack: str
    folder: str
    note: str | None = None


def choose_recogniser(requested: str, conditioning: str, roots: list[str]) -> Recogniser:
    """The pack that measures: `requested`, or (auto) an installed pack other than the conditioning one."""
    from realisid_core.errors import RealisIDInputError
    from realisid_core.faces.packs import PACKS, find_pack_folder

    def folder(pack):
        return find_pack_folder(roots, pack, input_name="--recogniser")
    if requested != "auto":
        try:
            found = folder(requested)
        except RealisIDInputError as exc:
            raise BatchError(exc.problem + f"; looked in {', '.join(roots)} (give --insightface FOLDER)") from None
        note = None
        if requested == conditioning:
            note = (f"the evaluation recogniser is the conditioning pack's ({conditioning}): identity scores are "
                    "optimistic; install another pack (buffalo_l or antelopev2) to measure independently")
        return Recogniser(requested, found, note)
    others = [p for p in sorted(PACKS, key=lambda p: p != "buffalo_l") if p != conditioning]
    for pack in others + [conditioning]:
        try:
            found = folder(pack)
        except RealisIDInputError:
            continue
        return choose_recogniser(pack, conditioning, roots) if pack == conditioning else Recogniser(pack, found)
    raise BatchError(f"no insightface pack ({', '.join(PACKS)}) in {', '.join(roots)}; give --insightface FOLDER "
                     "(the folder holding models/<pack>)")


def read_bgr(path: Path) -> np.ndarray:
    from PIL import Image
    try:
        with Image.open(path) as im:
            rgb = np.asarray(im.convert("RGB"))
    except (OSError, ValueError) as exc:
        raise BatchError(f"cannot read picture {path}: {exc}") from None
    return np.ascontiguousarray(rgb[..., ::-1])


class FaceReader:
    """Analyses pictures (each file once) with one recogniser; the insightface packs through the pack's analyzer."""

    name = "insightface"
    confident_score = 0.0  # the packs' detectors keep only faces above 0.5 already

    def __init__(self, recogniser: Recogniser, provider: str = "auto", detection_size: int = 640):
        from realisid_core.faces.analyzer import get_analyzer
        from realisid_core.errors import MissingDependencyError
        try:
            self.analyzer = get_analyzer(recogniser.folder, recogniser.pack, provider, detection_size)
        except MissingDependencyError as exc:
            raise BatchError(str(exc)) from None
        self.recogniser = recogniser
        self._cache: dict[str, list] = {}

    def describe(self) -> dict:
        """What measured, for the report: the pack, its recogniser file, how similarity is computed."""
        from realisid_core.faces.packs import PACKS
        return {"name": self.recogniser.pack, "pack": self.recogniser.pack, "file": PACKS[self.recogniser.pack].recognition,
                "folder": self.recogniser.folder, "note": self.recogniser.note,
                "detector": f"insightface {PACKS[self.recogniser.pack].detection}",
                "similarity": "cosine of the L2-normalised ArcFace embeddings", "same_person_threshold": None,
                "distance": "angle between the embeddings (radians)"}

    def analyse(self, bgr: np.ndarray) -> list:
        return self.analyzer.analyze(bgr)

    @staticmethod
    def similarity(a, b) -> float:
        from .metrics import cosine
        return cosine(a, b)

    @classmethod
    def distance(cls, a, b) -> float:
        return float(np.arccos(np.clip(cls.similarity(a, b), -1.0, 1.0)))

    def faces(self, path: Path) -> list:
        """Every face in a picture (realisid_core DetectedFace), cached by path."""
        key = str(Path(path).resolve())
        if key not in self._cache:
            self._cache[key] = self.analyse(read_bgr(path))
        return self._cache[key]

    def largest(self, path: Path):
        """The largest face of a reference or pose picture, or None when there is none."""
        found = self.faces(path)
        return max(found, key=lambda f: f.area) if found else None


class DlibReader(FaceReader):
    """The same reader with dlib's models (realisid_batch.evaluation.dlib_faces)."""

    name = "dlib"
    # HOG scores of the faces in the packaged photos: 0.37 and up; the astronaut's suit badge: 0.12
    confident_score = 0.3

    def __init__(self, detector: str = "hog", upsample: int = 1):
        from .dlib_faces import DlibModels, DlibSettings
        self.models = DlibModels(DlibSettings(detector, upsample))
        self._cache = {}

    def describe(self) -> dict:
        from . import dlib_faces as d
        s = self.models.settings
        return {"name": "dlib", "pack": "dlib", "file": d.MODEL_FILES["recogniser"], "folder": self.models.folder,
                "note": None,
                "detector": f"dlib {'CNN (MMOD)' if s.detector == 'cnn' else 'HOG'}, up-sampled {s.upsample}×, "
                            f"landmarks {d.MODEL_FILES['landmarks']}",
                "similarity": f"1 - Euclidean distance / {d.DISTANCE_SCALE:g} of the 128-d descriptors "
                              f"(dlib's same-person distance {d.DISTANCE_THRESHOLD:g} = similarity "
                              f"{1 - d.DISTANCE_THRESHOLD / d.DISTANCE_SCALE:g})",
                "same_person_threshold": 1 - d.DISTANCE_THRESHOLD / d.DISTANCE_SCALE,
                "distance": "Euclidean distance between the descriptors"}

    def analyse(self, bgr: np.ndarray) -> list:
        from .dlib_faces import detected_faces
        return detected_faces(self.models, bgr)

    @staticmethod
    def similarity(a, b) -> float:
        from .dlib_faces import similarity
        return similarity(a, b)

    @classmethod
    def distance(cls, a, b) -> float:
        from .dlib_faces import distance
        return distance(a, b)


def open_reader(recogniser: str, conditioning: str, roots: list[str], provider: str = "auto",
                detector: str = "hog", upsample: int = 1) -> FaceReader:
    """The reader that measures: dlib's models for `dlib`, else an insightface pack (see choose_recogniser)."""
    if recogniser == "dlib":
        return DlibReader(detector, upsample)
    return FaceReader(choose_recogniser(recogniser, conditioning, roots), provider)
