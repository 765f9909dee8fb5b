"""RealisID Location Guidance: where the faces go, as the global branch's hint and as FACE_LOCATIONS."""
from ..realisid_core.guidance import LOCATION_GUIDANCE_FORMAT, render_location_guidance
from ..realisid_core.locations import parse_locations

NODE = "RealisID Location Guidance"


class RealisIDLocationGuidance:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "width": ("INT", {"default": 512, "min": 64, "max": 8192, "step": 8,
                              "tooltip": "Width of the picture to generate, in pixels."}),
            "height": ("INT", {"default": 512, "min": 64, "max": 8192, "step": 8,
                               "tooltip": "Height of the picture to generate, in pixels."}),
            "locations": ("STRING", {"multiline": True, "default": "0.5 0.4 0.3",
                                     "tooltip": "One face per line, numbers as fractions of the picture: "
                                                "'cx cy size' (a square face, size of the shorter side) or "
                                                "'cx cy w h'. Face order is person order."}),
        }}

    RETURN_TYPES = ("IMAGE", "FACE_LOCATIONS")
    RETURN_NAMES = ("guidance", "face_locations")
    FUNCTION = "draw"
    CATEGORY = "RealisID/locations"
    DESCRIPTION = (f"Draws the global branch's location guidance ({LOCATION_GUIDANCE_FORMAT}: white filled "
                   "ellipses on black) and outputs the same faces for the local branch.")

    def draw(self, width, height, locations):
        faces = parse_locations(locations, width, height, node=NODE, input_name="locations")
        return render_location_guidance(faces, width, height), faces


NODE_CLASS_MAPPINGS = {"RealisID_LocationGuidance": RealisIDLocationGuidance}
NODE_DISPLAY_NAME_MAPPINGS = {"RealisID_LocationGuidance": "RealisID Location Guidance"}
