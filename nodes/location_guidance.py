"""RealisID Location Guidance: where each person's face goes, typed or placed on the node's canvas.

The `locations` text is the source of truth (one face per line, line k = person k); the canvas in
web/location_canvas.js only edits that text. The picture's size comes from a connected latent,
else a layout picture, else the width/height widgets."""
from dataclasses import replace

from ..realisid_core.families import to_pixels
from ..realisid_core.signals.previews import draw_location_preview, fit_background
from ..realisid_core.people.locations import MAX_FACES, parse_locations
from .previews import save_temp_images, with_preview

NODE = "RealisID Location Guidance"


def picture_size(width: int, height: int, latent=None, layout_image=None) -> tuple[int, int, str]:
    """(width, height, where they came from): the latent's size × 8, else the layout picture's, else the widgets'."""
    if latent is not None:
        samples = latent["samples"]
        return to_pixels(int(samples.shape[-1])), to_pixels(int(samples.shape[-2])), "latent"
    if layout_image is not None:
        return int(layout_image.shape[2]), int(layout_image.shape[1]), "layout_image"
    return int(width), int(height), "width/height"


class RealisIDLocationGuidance:
    @classmethod
    def INPUT_TYPES(cls):
        return {
            "required": {
                "locations": ("STRING", {
                    "multiline": True, "default": "0.5 0.4 0.3",
                    "tooltip": "Where each person's face goes: one line per person, line 1 is person 1. "
                               "Drag the boxes on the canvas below, or type 'x y size' (a square face) or "
                               "'x y width height': the face's centre and size as fractions of the picture, "
                               "0 = left/top edge, 1 = right/bottom edge, size 0.3 = 30% of the picture's "
                               f"shorter side. Up to {MAX_FACES} people; '#' starts a note."}),
                "width": ("INT", {
                    "default": 512, "min": 64, "max": 8192, "step": 8,
                    "tooltip": "Width of the picture in pixels. Ignored when a latent or a layout picture is "
                               "connected: the picture's size is then taken from it."}),
                "height": ("INT", {
                    "default": 512, "min": 64, "max": 8192, "step": 8,
                    "tooltip": "Height of the picture in pixels. Ignored when a latent or a layout picture is "
                               "connected: the picture's size is then taken from it."}),
            },
            "optional": {
                "latent": ("LATENT", {
                    "tooltip": "The empty latent you sample into (e.g. Empty Latent Image): the picture's size "
                               "is taken from it, so it is set in one place only."}),
                "layout_image": ("IMAGE", {
                    "tooltip": "A photo to place the faces on, or a picture you made before (feed an output "
                               "back here): shown behind the boxes on the canvas and in the preview. Gives the "
                               "picture's size when no latent is connected; otherwise it is stretched to the "
                               "latent's shape."}),
            },
        }

    RETURN_TYPES = ("FACE_LOCATIONS", "IMAGE")
    RETURN_NAMES = ("face_locations", "preview")
    OUTPUT_TOOLTIPS = ("Where each person's face goes, for the local and global branches.",
                       "The face boxes numbered by person, over the layout picture or a dark frame.")
    FUNCTION = "locate"
    CATEGORY = "RealisID/locations"
    DESCRIPTION = ("Places each person's face in the picture: drag, resize, add or delete the numbered boxes "
                   "on the canvas (or edit the text; the text is what runs). Box k is person k.")

    def locate(self, locations, width, height, latent=None, layout_image=None):
        width, height, source = picture_size(width, height, latent, layout_image)
        faces = parse_locations(locations, width, height, input_name="locations")
        faces = replace(faces, sources=(NODE,) * faces.count)  # messages name where the places came from
        background = None if layout_image is None else fit_background(layout_image, width, height)
        preview = draw_location_preview(faces, width, height, background)
        # For the canvas: the picture's size as used in this run, and the layout picture without boxes.
        ui = {"realisid_frame": [{"width": width, "height": height, "source": source}]}
        if background is not None:
            ui["realisid_background"] = save_temp_images(background[:1], "RealisID_locations_layout")
        return with_preview((faces, preview), preview[:1], **ui)


NODE_CLASS_MAPPINGS = {"RealisID_LocationGuidance": RealisIDLocationGuidance}
NODE_DISPLAY_NAME_MAPPINGS = {"RealisID_LocationGuidance": NODE}
