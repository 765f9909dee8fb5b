"""ID projector nodes: load a projector from models/realisid, turn identities into identity tokens."""
import folder_paths

from ..realisid_core.models.projector import load_projector
from .models import shared_patcher, tokens_of
from .paths import REALISID_FOLDER

LOADER = "RealisID ID Projector Loader"
TOKENS = "RealisID Identity Tokens"


def projector_files() -> list[str]:
    """The .safetensors files in models/realisid: the only format the loader reads (no pickles)."""
    return [n for n in folder_paths.get_filename_list(REALISID_FOLDER) if n.lower().endswith(".safetensors")]


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
        return (shared_patcher(folder_paths.get_full_path_or_raise(REALISID_FOLDER, projector_name), load_projector,
                               "ID projector"),)


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
        return (tokens_of(projector, identity),)


NODE_CLASS_MAPPINGS = {
    "RealisID_IDProjectorLoader": RealisIDIDProjectorLoader,
    "RealisID_IdentityTokens": RealisIDIdentityTokens,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "RealisID_IDProjectorLoader": LOADER,
    "RealisID_IdentityTokens": TOKENS,
}
