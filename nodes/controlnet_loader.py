"""RealisID Load ControlNet: a branch ControlNet with its description (what it was trained on)."""
import logging
import os

import comfy.controlnet
import folder_paths

from ..realisid_core.errors import RealisIDInputError
from ..realisid_core.models.description import (KNOWN_CONTROLNETS, BranchDescription, ControlNetShapes,
                                                controlnet_shapes, known_kind_from_shapes, shape_contradiction)
from ..realisid_core.models.files import is_safetensors, read_torch_pickle, safetensors_header
from .errors import attributed
from .models import DESCRIPTION_ATTRIBUTE

NODE = "RealisID Load ControlNet"
AUTO = "auto (from the file)"
KINDS = (AUTO, *KNOWN_CONTROLNETS)
INPUT = "control_net_name"
READ_FIX = "download or export the ControlNet again, as a .safetensors file in models/controlnet"
CODE_FIX = ("use the ControlNet's .safetensors file (RealisID's exports and InstantID's IdentityNet are published "
            "as .safetensors)")
log = logging.getLogger("RealisID")


def _refuse(problem: str, fix: str, input_name: str = INPUT) -> RealisIDInputError:
    return RealisIDInputError(input_name=input_name, problem=problem, fix=fix, node=NODE)


def _state_dict(data, path: str) -> dict:
    """The tensors of a torch.save ControlNet (ComfyUI's rule: a 'state_dict' entry, else the file's dict)."""
    if isinstance(data, dict) and isinstance(data.get("state_dict"), dict):
        data = data["state_dict"]
    if not isinstance(data, dict) or not data:
        raise _refuse(f"{os.path.basename(path)} holds no table of weights", READ_FIX)
    return data


def read_weights_header(path: str) -> tuple[ControlNetShapes, dict, dict | None]:
    """(what the shapes say, metadata, the state dict when it had to be read: a weights-only pickle)."""
    if is_safetensors(path):
        shapes, metadata = safetensors_header(path, INPUT, READ_FIX, pickle_fix=CODE_FIX)
        return controlnet_shapes(shapes), metadata, None
    state = _state_dict(read_torch_pickle(path, INPUT, READ_FIX, code_fix=CODE_FIX), path)
    shapes = {str(k): tuple(v.shape) for k, v in state.items() if hasattr(v, "shape")}
    return controlnet_shapes(shapes), {}, state


def describe_file(path: str, kind: str, found: ControlNetShapes, metadata: dict) -> BranchDescription:
    """The description of the branch in `path`: the file's own (RealisID exports), or the known kind chosen
    in `kind` or recognised by the file's shapes; checked against the shapes."""
    name = os.path.basename(path)
    if kind != AUTO:
        if kind not in KNOWN_CONTROLNETS:
            raise _refuse(f"'{kind}' is no kind this node knows", f"choose one of {', '.join(KINDS)}", "kind")
        described = KNOWN_CONTROLNETS[kind]
        if known_kind_from_shapes(found) != kind:
            raise _refuse(f"{name} is {found.describe()}, not {kind}",
                          "choose 'auto' in 'kind', or the file of the ControlNet you meant", "kind")
        return described
    described = BranchDescription.from_metadata(metadata, name, INPUT)
    if described is not None:
        contradiction = shape_contradiction(described, found)
        if contradiction is not None:
            raise _refuse(f"{name}'s RealisID description {contradiction}",
                                     "export the branch again from the run that trained these weights (its family "
                                     "is read from the base model)")
        return described
    known = known_kind_from_shapes(found)
    if known is not None:
        log.info("RealisID: %s has no RealisID description; taken as %s from its shapes (%s)", name, known,
                 found.describe())
        return KNOWN_CONTROLNETS[known]
    raise _refuse(f"{name} carries no RealisID description (what it was trained on) and is "
                             f"{found.describe()}, which is no known branch ControlNet (InstantID's IdentityNet is "
                             "an SDXL ControlNet with a 3-channel hint)",
                             "load a branch exported by python -m realisid_train export, or InstantID's IdentityNet; "
                             "other ControlNets go into ComfyUI's own Apply ControlNet")


def read_description(path: str, kind: str) -> BranchDescription:
    """The description of the branch in `path` (see `describe_file`), read from its header; errors name this node."""
    with attributed(NODE):
        found, metadata, _ = read_weights_header(path)
        return describe_file(path, kind, found, metadata)


class RealisIDLoadControlNet:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "control_net_name": (folder_paths.get_filename_list("controlnet"),
                                 {"tooltip": "A branch ControlNet from models/controlnet: a RealisID local or global "
                                             "branch, or InstantID's IdentityNet."}),
            "kind": (list(KINDS), {"default": AUTO,
                                   "tooltip": "What the file is. 'auto' reads the description RealisID's trainer "
                                              "stores in the file, or knows InstantID's IdentityNet by its shapes "
                                              "(an SDXL ControlNet with no RealisID description)."}),
        }}

    RETURN_TYPES = ("CONTROL_NET",)
    RETURN_NAMES = ("control_net",)
    FUNCTION = "load"
    CATEGORY = "RealisID/loaders"
    DESCRIPTION = ("Loads a branch ControlNet with ComfyUI's own loader and reads what it was trained on (model "
                   "family, hint format, working size, margin), so the branch draws the right hints at the right size.")

    def load(self, control_net_name, kind):
        path = folder_paths.get_full_path_or_raise("controlnet", control_net_name)
        found, metadata, state = read_weights_header(path)
        described = describe_file(path, kind, found, metadata)
        try:  # a pickle was read weights-only above: ComfyUI gets its tensors, never the file
            control_net = (comfy.controlnet.load_controlnet(path) if state is None
                           else comfy.controlnet.load_controlnet_state_dict(state))
        except Exception as exc:  # noqa: BLE001 — ComfyUI's loader on weights it does not know
            raise _refuse(f"ComfyUI could not load {os.path.basename(path)} as a ControlNet "
                                     f"({type(exc).__name__}: {str(exc)[:200]})", READ_FIX) from None
        if control_net is None:
            raise _refuse(f"ComfyUI could not read {path} as a ControlNet",
                                     "choose a ControlNet file (.safetensors)")
        setattr(control_net, DESCRIPTION_ATTRIBUTE, described)
        return (control_net,)


NODE_CLASS_MAPPINGS = {"RealisID_LoadControlNet": RealisIDLoadControlNet}
NODE_DISPLAY_NAME_MAPPINGS = {"RealisID_LoadControlNet": NODE}
