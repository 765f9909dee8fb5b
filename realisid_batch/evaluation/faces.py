"""Faces in pictures through the pack's own analyzer (realisid_core.faces.analyzer), with the evaluation's recogniser.

The recogniser that measures identity should not be the one that conditioned the pictures (a
method tuned to one ArcFace can fool that ArcFace), so by default another installed insightface
pack is used: buffalo_l when the pictures were conditioned with antelopev2, and the reverse.
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

    def describe(self) -> str:
        from realisid_core.faces.packs import PACKS
        return f"{self.pack} ({PACKS[self.pack].recognition}) from {self.folder}"


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
    """Analyses pictures (each once) with one pack."""

    def __init__(self, recogniser: Recogniser, provider: str = "auto", detection_size: int = 640):
        from realisid_core.faces.analyzer import get_analyzer
        from realisid_core.errors import MissingDependencyError
        try:
            self.analyzer = get_analyzer(recogniser.folder, recogniser.pack, provider, detection_size)
        except MissingDependencyError as exc:
            raise BatchError(str(exc)) from None
        self._cache: dict[str, list] = {}

    def faces(self, path: Path) -> list:
        """Every face in a picture (realisid_core DetectedFace), cached by path."""
        key = str(Path(path).resolve())
        if key not in self._cache:
            self._cache[key] = self.analyzer.analyze(read_bgr(path))
        return self._cache[key]

    def largest(self, path: Path):
        """The largest face of a reference or pose picture; BatchError when there is none."""
        found = self.faces(path)
        if not found:
            raise BatchError(f"no face found in {path}")
        return max(found, key=lambda f: f.area)
