"""Node registry: every module listed here contributes its NODE_CLASS_MAPPINGS.

A module that fails to import (a missing optional package) disables only its own nodes and
says which package to install; ComfyUI's start-up never fails because of this pack.
"""
import importlib
import logging

log = logging.getLogger("RealisID")

NODE_MODULES = (
    "controlnet_loader",
    "people",
    "location_guidance",
    "apply_local_branch",
    "apply_global_branch",
    "face_analysis",
    "id_projector",
    "pose_expression",
    "locations_from_pictures",
    "instantid",
    "infiniteyou",
    "recogniser",
)

NODE_CLASS_MAPPINGS = {}
NODE_DISPLAY_NAME_MAPPINGS = {}

for _name in NODE_MODULES:
    try:
        _module = importlib.import_module(f".{_name}", __name__)
    except ImportError as exc:
        log.error("RealisID: nodes in '%s' are disabled: %s. Install the missing package into ComfyUI's "
                  "Python (pip install -r requirements.txt in the ComfyUI-RealisID folder).", _name, exc)
        continue
    NODE_CLASS_MAPPINGS.update(_module.NODE_CLASS_MAPPINGS)
    NODE_DISPLAY_NAME_MAPPINGS.update(_module.NODE_DISPLAY_NAME_MAPPINGS)
