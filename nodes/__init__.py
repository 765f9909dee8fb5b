"""Node registry: every node module's NODE_CLASS_MAPPINGS, each node's errors attributed to its display name.

Optional packages are imported when a node runs (realisid_core.errors.require), so importing these modules
needs only ComfyUI and torch.
"""
from . import (apply_global_branch, apply_local_branch, controlnet_loader, face_analysis, id_projector, infiniteyou,
               instantid, location_guidance, locations_from_pictures, people, pose_expression, recogniser)
from .errors import attribute_errors

NODE_MODULES = (controlnet_loader, people, location_guidance, apply_local_branch, apply_global_branch, face_analysis,
                id_projector, pose_expression, locations_from_pictures, instantid, infiniteyou, recogniser)

NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}
for _module in NODE_MODULES:
    NODE_CLASS_MAPPINGS.update(_module.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_module.NODE_DISPLAY_NAME_MAPPINGS)
attribute_errors(NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS)
