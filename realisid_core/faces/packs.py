"""insightface model packs on disk: which files each pack has and where its folder is.

Packs live in `<insightface folder>/models/<pack>/`, the layout other identity packs use.
Unzipping a pack's archive inside that folder gives `<pack>/<pack>/`, which insightface itself
rejects with a bare `assert 'detection'`; it is found here too.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

from ..errors import RealisIDInputError


@dataclass(frozen=True)
class PackLayout:
    """The ONNX file of each task a pack provides (None where the pack has no such model)."""

    detection: str
    recognition: str
    landmark_3d_68: str | None
    landmark_2d_106: str | None

    @property
    def files(self) -> tuple[str, ...]:
        return tuple(f for f in (self.detection, self.recognition, self.landmark_3d_68, self.landmark_2d_106) if f)


PACKS = {
    "antelopev2": PackLayout("scrfd_10g_bnkps.onnx", "glintr100.onnx", "1k3d68.onnx", "2d106det.onnx"),
    "buffalo_l": PackLayout("det_10g.onnx", "w600k_r50.onnx", "1k3d68.onnx", "2d106det.onnx"),
}
DEFAULT_PACK = "antelopev2"


def pack_folder_candidates(insightface_roots: list[str], pack: str) -> list[str]:
    """Folders a pack may be in, most likely first: `<root>/models/<pack>` then the nested `<pack>/<pack>`."""
    out = []
    for root in insightface_roots:
        out += [os.path.join(root, "models", pack), os.path.join(root, "models", pack, pack)]
    return out


def find_pack_folder(insightface_roots: list[str], pack: str, input_name: str = "pack") -> str:
    """The folder holding every file of `pack`, or a RealisIDInputError naming the folder and files expected."""
    if pack not in PACKS:
        raise RealisIDInputError(input_name=input_name, problem=f"unknown face-analysis pack '{pack}'",
                                 fix=f"choose one of {', '.join(PACKS)}")
    layout = PACKS[pack]
    candidates = pack_folder_candidates(insightface_roots, pack)
    best, best_missing = None, layout.files
    for folder in candidates:
        if not os.path.isdir(folder):
            continue
        missing = tuple(f for f in layout.files if not os.path.isfile(os.path.join(folder, f)))
        if not missing:
            return folder
        if best is None or len(missing) < len(best_missing):
            best, best_missing = folder, missing
    expected = candidates[0] if candidates else os.path.join("models", "insightface", "models", pack)
    if best is None:
        problem = f"the '{pack}' pack was not found: there is no folder {expected}"
    else:
        problem = f"the '{pack}' pack in {best} is incomplete: {', '.join(best_missing)} missing"
    raise RealisIDInputError(input_name=input_name, problem=problem,
                             fix=f"put the pack's files ({', '.join(layout.files)}) directly in {expected} "
                             f"(download {pack}.zip from insightface's model releases and unzip it in "
                             f"{os.path.dirname(expected)})")
