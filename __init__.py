"""ComfyUI-RealisID: identity customization with RealisID's local and global ControlNet branches."""
from .nodes import NODE_CLASS_MAPPINGS, NODE_DISPLAY_NAME_MAPPINGS

# The frontend extension: the face-placement canvas on RealisID Location Guidance (web/location_canvas.js).
WEB_DIRECTORY = "./web"

__all__ = ["NODE_CLASS_MAPPINGS", "NODE_DISPLAY_NAME_MAPPINGS", "WEB_DIRECTORY"]
