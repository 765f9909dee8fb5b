"""RealisID Pose & Expression: the local branch's hints, a driving face retargeted onto each face location."""
import torch

from ..realisid_core.errors import RealisIDInputError
from ..realisid_core.faces import faces_for_targets
from ..realisid_core.pose_expression import (LAYOUTS, RENDERER_VERSION, mirror_box, mirror_points, pose_hints,
                                             render_pose_preview)

NODE = "RealisID Pose & Expression"


def _driving_points(face, layout, mirror):
    if layout == LAYOUTS[0]:
        if face.landmarks_3d_68 is None:
            raise RealisIDInputError(NODE, "driving_faces", f"the face in image {face.image_index} has no 68 landmarks "
                                     "(its pack has no 1k3d68.onnx)", "use the antelopev2 or buffalo_l pack, or layout '5 keypoints'")
        points = face.landmarks_3d_68
    else:
        points = face.keypoints
    box = face.box
    if mirror:
        points, box = mirror_points(points, face.image_width), mirror_box(box, face.image_width)
    return points, box


class RealisIDPoseExpression:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "face_locations": ("FACE_LOCATIONS",),
            "driving_faces": ("FACES", {"tooltip": "One face for every location, or one per location (in order): "
                                                   "this pose and expression, put where each location is."}),
            "layout": (list(LAYOUTS), {"default": LAYOUTS[0], "tooltip": "Dense landmarks (pose and expression) or 5 keypoints (pose only)."}),
            "hint_size": ("INT", {"default": 512, "min": 64, "max": 2048, "step": 8,
                                  "tooltip": "Side of each hint in pixels: 8 × the local branch's working size (512 for SD1.5)."}),
            "margin": ("FLOAT", {"default": 1.6, "min": 1.0, "max": 4.0, "step": 0.05,
                                 "tooltip": "Crop side / face box side; must equal the local branch's margin."}),
            "mirror": ("BOOLEAN", {"default": False, "tooltip": "Mirror the driving face (turns the head the other way)."}),
        }}

    RETURN_TYPES = ("IMAGE", "IMAGE")
    RETURN_NAMES = ("pose_hints", "preview")
    FUNCTION = "render"
    CATEGORY = "RealisID/faces"
    DESCRIPTION = (f"Pose-expression hints (renderer v{RENDERER_VERSION}), one per face location in the local "
                   "branch's crop frame; the preview shows them on the whole picture.")

    def render(self, face_locations, driving_faces, layout, hint_size, margin, mirror):
        face_locations.validated(NODE, "face_locations")
        faces = faces_for_targets(driving_faces, face_locations.count, NODE, "driving_faces")
        driving = [_driving_points(f, layout, mirror) for f in faces]
        hints, placed = pose_hints([p for p, _ in driving], [b for _, b in driving], face_locations,
                                   hint_size, margin, layout)
        preview = render_pose_preview(placed, face_locations, margin, layout)
        return torch.from_numpy(hints).float() / 255, torch.from_numpy(preview)[None].float() / 255


NODE_CLASS_MAPPINGS = {"RealisID_PoseExpression": RealisIDPoseExpression}
NODE_DISPLAY_NAME_MAPPINGS = {"RealisID_PoseExpression": NODE}
