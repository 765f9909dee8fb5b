"""The IR-SE50 ArcFace recogniser InfiniteYou's projector was trained on, and identities made with it.

- RealisID Load Face Recogniser: facexlib's `recognition_arcface_ir_se50.pth` from models/facexlib
  (facexlib itself downloads it to its package's `weights` folder; ComfyUI_InfiniteYou leaves it
  there), run by the pack's own torch network.
- RealisID Identity (IR-SE50): antelopev2 finds each photo's largest face and its five keypoints;
  the face is aligned as insightface's norm_crop aligns it (112 px) and the recogniser gives its unit vector.
"""
from __future__ import annotations

import os

import comfy.model_management
import folder_paths

from ..realisid_core.errors import RealisIDInputError
from ..realisid_core.models import arcface_ir_se50
from ..realisid_core.people.identity import mean_identity
from .face_batches import largest_faces
from .models import shared_patcher
from .previews import with_preview

FACEXLIB_FOLDER = "facexlib"
LOADER = "RealisID Load Face Recogniser"
IDENTITY = "RealisID Identity (IR-SE50)"
RECOGNISER_TYPE = "REALISID_FACE_RECOGNISER"

folder_paths.add_model_folder_path(FACEXLIB_FOLDER, os.path.join(folder_paths.models_dir, FACEXLIB_FOLDER))
_paths, _extensions = folder_paths.folder_names_and_paths[FACEXLIB_FOLDER]
if not _extensions:
    folder_paths.folder_names_and_paths[FACEXLIB_FOLDER] = (_paths, set(folder_paths.supported_pt_extensions))


def recogniser_path(name, node: str = LOADER) -> str:
    path = folder_paths.get_full_path(FACEXLIB_FOLDER, name) if isinstance(name, str) else None
    if path is None or not os.path.isfile(path):
        raise RealisIDInputError(node=node, input_name="recogniser_name", problem=f"'{name}' was not found in "
                                 f"{', '.join(folder_paths.get_folder_paths(FACEXLIB_FOLDER))}",
                                 fix=arcface_ir_se50.GET_IT)
    return path


class RealisIDLoadFaceRecogniser:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"recogniser_name": (folder_paths.get_filename_list(FACEXLIB_FOLDER), {
            "tooltip": "facexlib's IR-SE50 ArcFace (recognition_arcface_ir_se50.pth) in models/facexlib: the "
                       "recogniser InfiniteYou's projector was trained on."})}}

    RETURN_TYPES = (RECOGNISER_TYPE,)
    RETURN_NAMES = ("recogniser",)
    FUNCTION = "load"
    CATEGORY = "RealisID/loaders"
    DESCRIPTION = ("Loads facexlib's IR-SE50 ArcFace recogniser once per file and device (read safely: a file holding "
                   "code is refused unrun). Identities for RealisID Apply InfiniteYou are made with it.")

    def load(self, recogniser_name):
        path = recogniser_path(recogniser_name)
        return (shared_patcher(path, arcface_ir_se50.load_recogniser, "IR-SE50 recogniser"),)


class RealisIDIdentityIRSE50:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "analyzer": ("FACE_ANALYZER", {"tooltip": "antelopev2 (RealisID Face Analysis Loader): finds the faces "
                                                      "and their five keypoints; its own recogniser is not used."}),
            "recogniser": (RECOGNISER_TYPE, {"tooltip": "RealisID Load Face Recogniser (IR-SE50)."}),
            "images": ("IMAGE", {"tooltip": "One or several photos of ONE person; the largest face of each is used."}),
            "photo_without_face": (["error", "skip"], {"default": "error",
                                   "tooltip": "What to do with a photo in which no face is found."}),
        }}

    RETURN_TYPES = ("REALISID_IDENTITY", "IMAGE")
    RETURN_NAMES = ("identity", "preview")
    FUNCTION = "identify"
    CATEGORY = "RealisID/faces"
    DESCRIPTION = ("One identity for InfiniteYou from reference photos: each photo's largest face (green in the "
                   "preview), aligned to 112 px and recognised by IR-SE50, the unit vectors averaged.")

    def identify(self, analyzer, recogniser, images, photo_without_face):
        used, stacked = largest_faces(analyzer, images, photo_without_face)
        comfy.model_management.load_models_gpu([recogniser])
        vectors = arcface_ir_se50.embed(recogniser.model, [p for p, _ in used], [f.keypoints for _, f in used],
                                        device=recogniser.load_device)
        identity = mean_identity(vectors, "images", pack=arcface_ir_se50.PACK)
        return with_preview((identity, stacked), stacked)


NODE_CLASS_MAPPINGS = {"RealisID_LoadFaceRecogniser": RealisIDLoadFaceRecogniser,
                       "RealisID_IdentityIRSE50": RealisIDIdentityIRSE50}
NODE_DISPLAY_NAME_MAPPINGS = {"RealisID_LoadFaceRecogniser": LOADER, "RealisID_IdentityIRSE50": IDENTITY}
