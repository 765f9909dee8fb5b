"""Face locations read from pictures: a layout photo's faces, or a MASK's regions."""
import dataclasses

from ..realisid_core.signals.previews import draw_people
from .previews import with_preview
from ..realisid_core.people.from_pictures import locations_from_faces, locations_from_mask

FROM_FACES = "RealisID Locations From Faces"
FROM_MASK = "RealisID Locations From Mask"


def _named(locations, source):
    """The locations with their source named (for messages), and their preview."""
    locations = dataclasses.replace(locations, sources=(source,) * locations.count)
    preview = draw_people(locations)
    return with_preview((locations, preview), preview)


class RealisIDLocationsFromFaces:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "faces": ("FACES", {"tooltip": "Faces of a layout photo (Face Analysis, selection 'all')."}),
            "image_index": ("INT", {"default": 0, "min": 0, "max": 4095, "tooltip": "Which picture of the batch is the layout (0 is photo 1)."}),
        }}

    RETURN_TYPES = ("FACE_LOCATIONS", "IMAGE")
    RETURN_NAMES = ("face_locations", "preview")
    FUNCTION = "locate"
    CATEGORY = "RealisID/locations"
    DESCRIPTION = ("Person 1 goes where face 1 is, person 2 where face 2 is, ... (faces counted in reading order: "
                   "left to right, faces one above the other top to bottom)")

    def locate(self, faces, image_index):
        locations = locations_from_faces(faces, image_index)
        return _named(locations, f"{FROM_FACES} (layout photo {image_index})")


class RealisIDLocationsFromMask:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "mask": ("MASK", {"tooltip": "One blob per face; its bounding box is the face's location."}),
            "min_area": ("FLOAT", {"default": 0.0005, "min": 0.0, "max": 0.5, "step": 0.0001,
                                   "tooltip": "Blobs under this fraction of the picture are ignored."}),
        }}

    RETURN_TYPES = ("FACE_LOCATIONS", "IMAGE")
    RETURN_NAMES = ("face_locations", "preview")
    FUNCTION = "locate"
    CATEGORY = "RealisID/locations"
    DESCRIPTION = ("One face location per connected region of the mask, in reading order (left to right, "
                   "regions one above the other top to bottom): region 1 is person 1.")

    def locate(self, mask, min_area):
        locations = locations_from_mask(mask, "mask", min_area)
        return _named(locations, f"{FROM_MASK} (the mask)")


NODE_CLASS_MAPPINGS = {
    "RealisID_LocationsFromFaces": RealisIDLocationsFromFaces,
    "RealisID_LocationsFromMask": RealisIDLocationsFromMask,
}
NODE_DISPLAY_NAME_MAPPINGS = {
    "RealisID_LocationsFromFaces": FROM_FACES,
    "RealisID_LocationsFromMask": FROM_MASK,
}
