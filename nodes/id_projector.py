"""ID projector nodes: load a projector from models/realisid, turn identities into identity tokens."""
import os

import comfy.model_management
import comfy.model_patcher
import folder_paths

from ..realisid_core.models.projector import load_projector, project
from ..realisid_core.cache import SharedModels
from .paths import REALISID_FOLDER

LOADER = "RealisID ID Projector Loader"
TOKENS = "RealisID Identity Tokens"

_patchers = SharedModels()  # (file, mtime, load device) → ModelPatcher: one copy per model per device


def _patcher_for(path):
    load_device = comfy.model_management.get_torch_device()
    key = (os.path.realpath(path), os.path.getmtime(path), str(load_device))
    return _patchers.get(key, lambda: comfy.model_patcher.ModelPatcher(
        load_projector(path, LOADER), load_device=load_device, offload_device=comfy.model_management.unet_offload_device()),
        f"the model patcher of ID projector {os.path.basename(path)} ({load_device})")


def projector_files() -> list[str]:
    """The .safetensors files in models/realisid: the only format the loader reads (no pickles)."""
    return [n for n in folder_paths.get_filename_list(REALISID_FOLDER) if n.lower().endswith(".safetensors")]


def tokens_of(patcher, identity, node: str, projector=None, raw: bool = False):
    """Identity tokens (with their null) made where ComfyUI loads `patcher`; `projector`: the module that
    projects, when it is a part of the patcher's model (InstantID's Resampler in its adapter)."""
    comfy.model_management.load_models_gpu([patcher])
    return project(projector or patcher.model, identity, node, device=patcher.load_device, raw=raw)


class RealisIDIDProjectorLoader:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"projector_name": (projector_files(),
                                                {"tooltip": "ID projector weights (safetensors) in models/realisid."})}}

    RETURN_TYPES = ("REALISID_ID_PROJECTOR",)
    FUNCTION = "load"
    CATEGORY = "RealisID/loaders"
    DESCRIPTION = "Loads an ID projector: ArcFace embedding → K identity tokens of the local ControlNet's context width."

    def load(self, projector_name):
        return (_patcher_for(folder_paths.get_full_path_or_raise(REALISID_FOLDER, projector_name)),)


class RealisIDIdentityTokens:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "projector": ("REALISID_ID_PROJECTOR", {"tooltip": "The ID projector that belongs to the local-branch "
                                                               "ControlNet (RealisID ID Projector Loader)."}),
            "identity": ("REALISID_IDENTITY", {"tooltip": "One or several people's identities (RealisID Identity)."}),
        }}

    RETURN_TYPES = ("REALISID_ID_TOKENS",)
    RETURN_NAMES = ("id_tokens",)
    FUNCTION = "project"
    CATEGORY = "RealisID/faces"
    DESCRIPTION = ("Turns identities into what the local branch's ControlNet reads (one set of identity tokens per "
                   "person, plus the 'no identity' tokens CFG's negative side gets).")

    def project(self, projector, identity):
        return (tokens_of(projector, identity, TOKENS),)


NODE_CLASS_MAPPINGS = {
    "RealisID_IDProjectorLoader": RealisIDIDProjectorLoader,
    "RealisID_IdentityTokens": RealisIDIdentityTokens,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "RealisID_IDProjectorLoader": LOADER,
    "RealisID_IdentityTokens": TOKENS,
}
