"""RealisID Pose & Expression: a driving face's pose and expression, as geometry the branch draws itself."""
from ..realisid_core.errors import RealisIDInputError
from ..realisid_core.faces.pose import FacePose
from ..realisid_core.signals.previews import draw_poses
from .previews import with_preview

NODE = "RealisID Pose & Expression"
PREVIEW_SIDE = 256


class RealisIDPoseExpression:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "driving_faces": ("FACES", {"tooltip": "Faces found by RealisID Face Analysis in a photo whose pose and "
                                                   "expression you want."}),
            "face_number": ("INT", {"default": 1, "min": 0, "max": 64,
                                    "tooltip": "Which of the faces drives (1 = the first, in Face Analysis's order); "
                                               "0 = every face, one pose each, in order."}),
            "mirror": ("BOOLEAN", {"default": False, "tooltip": "Mirror the pose: the head turns the other way."}),
        }}

    RETURN_TYPES = ("REALISID_POSE", "IMAGE")
    RETURN_NAMES = ("pose", "preview")
    FUNCTION = "extract"
    CATEGORY = "RealisID/people"
    DESCRIPTION = ("Takes the pose and expression of a face as landmarks (not a picture): the local branch draws "
                   "them in each face's own frame, in the format its ControlNet was trained on. The preview shows "
                   "the landmarks as they will be used.")

    def extract(self, driving_faces, face_number, mirror):
        faces = list(driving_faces.faces)
        if not faces:
            raise RealisIDInputError(input_name="driving_faces", problem="no face was found in the driving photo",
                                     fix="use a photo with a clearly visible face")
        if face_number > len(faces):
            raise RealisIDInputError(input_name="face_number",
                                     problem=f"face {face_number} was asked for but {len(faces)} "
                                     f"face{'s were' if len(faces) != 1 else ' was'} found",
                                     fix=f"choose a number from 1 to {len(faces)}, or 0 for all of them")
        chosen = faces if face_number == 0 else [faces[face_number - 1]]
        poses = tuple(FacePose.from_face(f, mirror) for f in chosen)
        preview = draw_poses(list(poses), PREVIEW_SIDE)
        return with_preview((poses, preview), preview)


NODE_CLASS_MAPPINGS = {"RealisID_PoseExpression": RealisIDPoseExpression}
NODE_DISPLAY_NAME_MAPPINGS = {"RealisID_PoseExpression": NODE}
