"""Models as ComfyUI holds them: one ModelPatcher per file and device, shared by every node and workflow;
identity tokens made where ComfyUI loads the projector; the description RealisID Load ControlNet attaches."""
from __future__ import annotations

import os
from typing import Callable

import comfy.model_management
import comfy.model_patcher

from ..realisid_core.cache import SharedModels
from ..realisid_core.errors import RealisIDInputError
from ..realisid_core.models.description import BranchDescription
from ..realisid_core.models.projector import project

DESCRIPTION_ATTRIBUTE = "realisid_description"

_patchers = SharedModels()  # (file, mtime, load device) → ModelPatcher: one copy per model per device


def shared_patcher(path: str, load: Callable[[str], object], what: str):
    """The ModelPatcher of the model `load(path)` makes, shared while some node output holds it; `what` names
    the model in the log ("ID projector", "InstantID adapter")."""
    load_device = comfy.model_management.get_torch_device()
    key = (os.path.realpath(path), os.path.getmtime(path), str(load_device))
    return _patchers.get(key, lambda: comfy.model_patcher.ModelPatcher(
        load(path), load_device=load_device, offload_device=comfy.model_management.unet_offload_device()),
        f"the model patcher of {what} {os.path.basename(path)} ({load_device})")


def tokens_of(patcher, identity, projector=None, raw: bool = False):
    """Identity tokens (with their null) made where ComfyUI loads `patcher`; `projector`: the module that
    projects, when it is a part of the patcher's model (InstantID's Resampler in its adapter)."""
    comfy.model_management.load_models_gpu([patcher])
    return project(projector or patcher.model, identity, device=patcher.load_device, raw=raw)


def projecting(patcher):
    """`People.identity_tokens`'s projection through the projector `patcher` (None: no projector connected)."""
    return lambda identity: None if patcher is None else tokens_of(patcher, identity)


def description_of(control_net, input_name: str = "control_net") -> BranchDescription:
    """The description RealisID Load ControlNet attached, or an error saying to load it that way."""
    described = getattr(control_net, DESCRIPTION_ATTRIBUTE, None)
    if described is None:
        raise RealisIDInputError(input_name=input_name, problem="this ControlNet was loaded without its RealisID "
                                 "description, so the branch cannot know which hints, sizes and margin it was "
                                 "trained on", fix="load it with RealisID Load ControlNet instead of Load ControlNet "
                                 "Model")
    return described
