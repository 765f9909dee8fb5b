"""InfiniteYou's published FLUX weights through RealisID's local branch.

- RealisID Load InfuseNet: InfuseNetModel/diffusion_pytorch_model.safetensors (or ComfyUI_InfiniteYou's
  infusenet_*_bf16.safetensors) from models/infinite_you or models/controlnet, through ComfyUI's own loader.
- RealisID Load InfiniteYou Projector: image_proj_model.bin (read with weights_only).
- RealisID Apply InfiniteYou: people (identities made with the IR-SE50 recogniser, places, poses) →
  8 identity tokens per person → InfuseNet on every face's crop, residuals pasted on FLUX's tokens.
"""
from __future__ import annotations

import os

import comfy.controlnet
import comfy.model_management
import comfy.model_patcher
import folder_paths

from ..realisid_core.branches.local import LocalBranchSettings
from ..realisid_core.cache import SharedModels
from ..realisid_core.errors import RealisIDInputError
from ..realisid_core.models import infuse
from ..realisid_core.models.description import BranchDescription
from ..realisid_core.people.identity import Identity, join_identities
from ..realisid_core.people.people import People
from .conditioning import attach_control
from .controls import LocalBranchSpec
from .inputs import FEATHER, STRENGTH_AND_WINDOW, check_window
from .flux_control import NODE, InfuseNetControl, InfuseSpec, check_flux_model, infusenet_blocks
from .models import DESCRIPTION_ATTRIBUTE, shared_patcher, tokens_of

INFINITEYOU_FOLDER = "infinite_you"  # the folder ComfyUI_InfiniteYou uses
LOAD_INFUSENET = "RealisID Load InfuseNet"
LOAD_PROJECTOR = "RealisID Load InfiniteYou Projector"
PROJECTOR_TYPE = "REALISID_INFINITEYOU_PROJECTOR"

folder_paths.add_model_folder_path(INFINITEYOU_FOLDER, os.path.join(folder_paths.models_dir, INFINITEYOU_FOLDER))
_paths, _extensions = folder_paths.folder_names_and_paths[INFINITEYOU_FOLDER]
if not _extensions:
    folder_paths.folder_names_and_paths[INFINITEYOU_FOLDER] = (_paths, set(folder_paths.supported_pt_extensions))

_controlnets = SharedModels()  # (file, mtime, load device) → ControlNet: one copy per file per device


def _file_key(path: str):
    return os.path.realpath(path), os.path.getmtime(path), str(comfy.model_management.get_torch_device())


def infusenet_files() -> list[str]:
    names = [n for n in folder_paths.get_filename_list(INFINITEYOU_FOLDER) if n.lower().endswith(".safetensors")]
    return names + [n for n in folder_paths.get_filename_list("controlnet") if n not in names]


def model_file(folder: str, name, node: str, input_name: str, what: str, fallback: str | None = None) -> str:
    """A model file's full path, or an error naming the folders searched and what belongs there."""
    for kind in (folder, fallback):
        path = folder_paths.get_full_path(kind, name) if kind and isinstance(name, str) else None
        if path is not None and os.path.isfile(path):
            return path
    folders = folder_paths.get_folder_paths(folder)
    raise RealisIDInputError(input_name=input_name, problem=f"'{name}' was not found in "
                             f"{', '.join(folders)}", fix=f"put {what} there ({infuse.GET_IT})")


def load_infusenet(path: str):
    """The InfuseNet in `path` through ComfyUI's own loader, with InfiniteYou's description attached."""
    def load():
        control_net = comfy.controlnet.load_controlnet(path)
        if control_net is None:
            raise RealisIDInputError(node=LOAD_INFUSENET, input_name="infusenet_name", problem=f"ComfyUI could not "
                                     f"read {os.path.basename(path)} as a ControlNet", fix=infuse.GET_IT)
        infusenet_blocks(control_net)
        setattr(control_net, DESCRIPTION_ATTRIBUTE, infuse.INFINITEYOU_INFUSENET)
        return control_net
    return _controlnets.get(_file_key(path), load, f"InfuseNet {os.path.basename(path)}")


class RealisIDLoadInfuseNet:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {"infusenet_name": (infusenet_files(), {
            "tooltip": "InfiniteYou's InfuseNet: InfuseNetModel/diffusion_pytorch_model.safetensors (aes_stage2 or "
                       "sim_stage1) in models/infinite_you (or models/controlnet)."})}}

    RETURN_TYPES = ("CONTROL_NET",)
    RETURN_NAMES = ("control_net",)
    FUNCTION = "load"
    CATEGORY = "RealisID/loaders"
    DESCRIPTION = ("Loads InfiniteYou's InfuseNet (a FLUX ControlNet) with ComfyUI's own loader, once per file and "
                   "device. Licence of the weights: CC BY-NC 4.0 (non-commercial).")

    def load(self, infusenet_name):
        return (load_infusenet(model_file(INFINITEYOU_FOLDER, infusenet_name, LOAD_INFUSENET, "infusenet_name",
                                          "InfuseNetModel/diffusion_pytorch_model.safetensors", "controlnet")),)


class RealisIDLoadInfiniteYouProjector:
    @classmethod
    def INPUT_TYPES(cls):
        names = [n for n in folder_paths.get_filename_list(INFINITEYOU_FOLDER) if not n.endswith(".safetensors")
                 or "image_proj" in n]
        return {"required": {"projector_name": (names, {
            "tooltip": "InfiniteYou's image_proj_model.bin (same folder as its InfuseNet) in models/infinite_you: "
                       "turns an IR-SE50 face embedding into 8 identity tokens."})}}

    RETURN_TYPES = (PROJECTOR_TYPE,)
    RETURN_NAMES = ("projector",)
    FUNCTION = "load"
    CATEGORY = "RealisID/loaders"
    DESCRIPTION = ("Loads InfiniteYou's projector (image_proj_model.bin), read safely: a file holding code is refused "
                   "unrun.")

    def load(self, projector_name):
        path = model_file(INFINITEYOU_FOLDER, projector_name, LOAD_PROJECTOR, "projector_name", "image_proj_model.bin")
        return (shared_patcher(path, infuse.load_projector, "InfiniteYou projector"),)


def infusenet_description(control_net) -> BranchDescription:
    infusenet_blocks(control_net)
    described = getattr(control_net, DESCRIPTION_ATTRIBUTE, None)
    if described is None:
        return infuse.INFINITEYOU_INFUSENET
    if described.family != infuse.FAMILY or described.role != "local":
        raise RealisIDInputError(input_name="control_net", problem=f"{described.name} is a {described.family} "
                                 f"{described.role} branch, not InfiniteYou's InfuseNet",
                                 fix="load InfuseNet with RealisID Load InfuseNet")
    return described


def people_identity(people: People) -> Identity:
    """Everyone's identity [P, 512], made with the recogniser InfiniteYou's projector was trained on."""
    people.locations()
    for k, person in enumerate(people.persons, 1):
        if person.tokens is not None:
            raise RealisIDInputError(input_name="people", problem=f"person {k} was given ready identity "
                                     "tokens, but InfiniteYou makes its own with its projector",
                                     fix="connect RealisID Identity (photos, recogniser IR-SE50) to the person")
        if person.identity is None:
            raise RealisIDInputError(input_name="people", problem=f"person {k} has no identity",
                                     fix="connect RealisID Identity (photos, recogniser IR-SE50) to each person")
        pack = person.identity.pack
        if pack != infuse.RECOGNISER:
            made = f"made with the {pack} recogniser" if pack else "made by an unknown recogniser"
            raise RealisIDInputError(input_name="people", problem=f"person {k}'s identity was {made}, but "
                                     f"InfiniteYou's projector was trained on facexlib's IR-SE50 ArcFace vectors "
                                     f"(another recogniser's vectors would mean nothing to it)",
                                     fix="make the identity with RealisID Identity (IR-SE50) and RealisID Load Face "
                                         "Recogniser (recognition_arcface_ir_se50.pth)")
    return join_identities([p.identity for p in people.persons], "people")


def checked_working_size(size: int) -> int:
    problem = infuse.working_size_problem(size)
    if problem:
        raise RealisIDInputError(input_name="working_size", problem=problem,
                                 fix=f"choose {infuse.INFINITEYOU_INFUSENET.working_size} (1024 pixels per face)")
    return size


class RealisIDApplyInfiniteYou:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "model": ("MODEL", {"tooltip": "A FLUX.1 model (dev or schnell): InfuseNet steers its transformer."}),
            "positive": ("CONDITIONING",),
            "negative": ("CONDITIONING",),
            "control_net": ("CONTROL_NET", {"tooltip": "InfiniteYou's InfuseNet (RealisID Load InfuseNet)."}),
            "projector": (PROJECTOR_TYPE, {"tooltip": "InfiniteYou's image_proj_model.bin (RealisID Load "
                                                      "InfiniteYou Projector), from the same variant as InfuseNet."}),
            "people": ("REALISID_PEOPLE", {"tooltip": "Who goes where, looking how: identities made with the IR-SE50 "
                                                      "recogniser, face places, poses."}),
            "vae": ("VAE", {"tooltip": "FLUX's VAE: InfuseNet reads its keypoint hint as a latent."}),
            **STRENGTH_AND_WINDOW,
            "working_size": ("INT", {"default": infuse.INFINITEYOU_INFUSENET.working_size,
                                     "min": infuse.WORKING_SIZE_LOW, "max": infuse.WORKING_SIZE_HIGH,
                                     "step": infuse.WORKING_SIZE_STEP,
                                     "tooltip": "Each face's crop side in latent cells (×8 pixels): 128 = 1024 pixels, "
                                                "FLUX's own size. Smaller is faster (cost grows with its square)."}),
            "feather": FEATHER,
            "infusenet_guidance": ("FLOAT", {"default": infuse.INFUSENET_GUIDANCE, "min": 0.0, "max": 10.0,
                                             "step": 0.1, "tooltip": "The guidance value InfuseNet itself is called "
                                             "with: 1.0 in InfiniteYou's pipeline (FLUX keeps its own guidance)."}),
        }}

    RETURN_TYPES = ("CONDITIONING", "CONDITIONING")
    RETURN_NAMES = ("positive", "negative")
    FUNCTION = "apply"
    CATEGORY = "RealisID/apply"
    DESCRIPTION = ("InfiniteYou (FLUX) per person: InfuseNet works on every face cropped and up-sampled to one size, "
                   "with that person's identity and pose, and its result is blended back into the face's place, so "
                   "small faces and several people keep their own identities.")

    def apply(self, model, positive, negative, control_net, projector, people, vae, strength, start_percent,
              end_percent, working_size, feather, infusenet_guidance):
        check_window(start_percent, end_percent)
        check_flux_model(model.model)
        described = infusenet_description(control_net)
        identity = people_identity(people)
        settings = LocalBranchSettings(checked_working_size(working_size), described.margin, feather)
        if strength == 0:
            return positive, negative
        tokens = tokens_of(projector, identity)
        spec = InfuseSpec(LocalBranchSpec(people.locations(), tuple(people.poses()), described.hint_format, tokens,
                                          people.strengths(), settings), float(infusenet_guidance))

        def make(previous):
            control = InfuseNetControl.from_controlnet(control_net, spec, vae, NODE)
            control.set_cond_hint(None, strength, (start_percent, end_percent), vae=vae)
            return control.set_previous_controlnet(previous)
        return attach_control(positive, negative, make)


NODE_CLASS_MAPPINGS = {
    "RealisID_LoadInfuseNet": RealisIDLoadInfuseNet,
    "RealisID_LoadInfiniteYouProjector": RealisIDLoadInfiniteYouProjector,
    "RealisID_ApplyInfiniteYou": RealisIDApplyInfiniteYou,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "RealisID_LoadInfuseNet": LOAD_INFUSENET,
    "RealisID_LoadInfiniteYouProjector": LOAD_PROJECTOR,
    "RealisID_ApplyInfiniteYou": NODE,
}
