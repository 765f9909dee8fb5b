"""RealisID Load ControlNet: a branch ControlNet with its description (what it was trained on)."""
import logging

import comfy.controlnet
import folder_paths

from ..realisid_core.models.description import KNOWN_CONTROLNETS, BranchDescription, guess_known_kind
from ..realisid_core.errors import RealisIDInputError
from .models import DESCRIPTION_ATTRIBUTE

NODE = "RealisID Load ControlNet"
AUTO = "auto (from the file)"
KINDS = (AUTO, *KNOWN_CONTROLNETS)
log = logging.getLogger("RealisID")


def read_description(path: str, kind: str) -> BranchDescription:
    """The description of the branch in `path`: the file's own (RealisID exports), or a known kind's."""
    if kind != AUTO:
        return KNOWN_CONTROLNETS[kind]
    metadata = None
    if path.endswith(".safetensors"):
        from safetensors import safe_open
        try:
            with safe_open(path, framework="pt") as f:
                metadata = f.metadata()
        except Exception as exc:  # a damaged file: say so before ComfyUI's loader says something vaguer
            raise RealisIDInputError(input_name="control_net_name",
                                     problem=f"{path} is not a readable safetensors file ({exc})",
                                     fix="download the file again") from None
    described = BranchDescription.from_metadata(metadata)
    if described is not None:
        return described
    guessed = guess_known_kind(path)
    if guessed is not None:
        log.info("RealisID: %s has no RealisID description; taken as %s from its name", path, guessed)
        return KNOWN_CONTROLNETS[guessed]
    raise RealisIDInputError(input_name="kind",
                             problem=f"{path} carries no RealisID description (what it was trained on) and "
                             "its name matches no known ControlNet",
                             fix=f"choose what it is in 'kind' ({', '.join(KNOWN_CONTROLNETS)}), or load a branch "
                             "exported by python -m realisid_train export")


class RealisIDLoadControlNet:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "control_net_name": (folder_paths.get_filename_list("controlnet"),
                                 {"tooltip": "A branch ControlNet from models/controlnet: a RealisID local or global "
                                             "branch, or InstantID's IdentityNet."}),
            "kind": (list(KINDS), {"default": AUTO,
                                   "tooltip": "What the file is. 'auto' reads the description RealisID's trainer "
                                              "stores in the file, or knows InstantID's IdentityNet by a name "
                                              "containing 'instantid'; choose it here when the name does not say."}),
        }}

    RETURN_TYPES = ("CONTROL_NET",)
    RETURN_NAMES = ("control_net",)
    FUNCTION = "load"
    CATEGORY = "RealisID/loaders"
    DESCRIPTION = ("Loads a branch ControlNet with ComfyUI's own loader and reads what it was trained on (model "
                   "family, hint format, working size, margin), so the branch draws the right hints at the right size.")

    def load(self, control_net_name, kind):
        path = folder_paths.get_full_path_or_raise("controlnet", control_net_name)
        described = read_description(path, kind)
        control_net = comfy.controlnet.load_controlnet(path)
        if control_net is None:
            raise RealisIDInputError(input_name="control_net_name",
                                     problem=f"ComfyUI could not read {path} as a ControlNet",
                                     fix="choose a ControlNet file (.safetensors)")
        setattr(control_net, DESCRIPTION_ATTRIBUTE, described)
        return (control_net,)


NODE_CLASS_MAPPINGS = {"RealisID_LoadControlNet": RealisIDLoadControlNet}
NODE_DISPLAY_NAME_MAPPINGS = {"RealisID_LoadControlNet": NODE}
