"""RealisID Apply Local Branch: identity and pose-expression control at full detail on every face."""
from ..realisid_core.errors import RealisIDInputError
from ..realisid_core.local_branch import LocalBranchSettings
from .conditioning import STRENGTH_AND_WINDOW, attach_control, chain_control
from .controls import LocalBranchControl, LocalBranchSpec, controlnet_layout

NODE = LocalBranchControl.node_name
DEFAULT_WORKING_SIZE = {2048: 128}  # by cross-attention width (SDXL); everything else 64


class RealisIDApplyLocalBranch:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "positive": ("CONDITIONING",),
            "negative": ("CONDITIONING",),
            "control_net": ("CONTROL_NET", {"tooltip": "The RealisID local-branch ControlNet (models/controlnet)."}),
            "face_locations": ("FACE_LOCATIONS",),
            "hints": ("IMAGE", {"tooltip": "One pose-expression hint per face, in face order, drawn in the "
                                           "face's crop frame (RealisID Pose & Expression)."}),
            **STRENGTH_AND_WINDOW,
            "working_size": ("INT", {"default": 0, "min": 0, "max": 256, "step": 8,
                                     "tooltip": "Side of every face crop in latent cells (0 = auto: 64 for "
                                                "SD1.5, 128 for SDXL). Hints are used at 8× this."}),
            "margin": ("FLOAT", {"default": 1.6, "min": 1.0, "max": 4.0, "step": 0.05,
                                 "tooltip": "Crop side as a multiple of the face box's longer side."}),
            "feather": ("FLOAT", {"default": 0.15, "min": 0.0, "max": 0.5, "step": 0.01,
                                  "tooltip": "Fraction of the crop blended out towards its edge when pasting back."}),
        }, "optional": {
            "identity": ("REALISID_ID_TOKENS", {"tooltip": "Identity tokens, one identity per face or one for all. "
                                                "Without them the crops attend to the prompt."}),
        }}

    RETURN_TYPES = ("CONDITIONING", "CONDITIONING")
    RETURN_NAMES = ("positive", "negative")
    FUNCTION = "apply"
    CATEGORY = "RealisID/apply"
    DESCRIPTION = ("Crops every face of the noisy latent, up-samples it to one working size and runs the local "
                   "ControlNet there, so small faces get the same identity detail as large ones.")

    def apply(self, positive, negative, control_net, face_locations, hints, strength, start_percent, end_percent,
              working_size, margin, feather, identity=None):
        if strength == 0:
            return positive, negative
        layout = controlnet_layout(control_net, NODE)
        faces = face_locations.validated(NODE, "face_locations")
        if hints.shape[0] != faces.count:
            raise RealisIDInputError(NODE, "hints", f"{hints.shape[0]} hint images for {faces.count} faces",
                                     f"give exactly one hint per face ({faces.count}), in face order")
        tokens = None
        if identity is not None:
            tokens = identity.check_width(layout.context_dim, NODE, "identity").for_faces(faces.count, NODE, "identity")
        if working_size and (working_size < 32 or working_size % 8):
            raise RealisIDInputError(NODE, "working_size", f"{working_size} is not a multiple of 8 of at least 32",
                                     "use 0 (auto), 64 for SD1.5 or 128 for SDXL")
        settings = LocalBranchSettings(working_size or DEFAULT_WORKING_SIZE.get(layout.context_dim, 64), margin, feather)
        spec = LocalBranchSpec(faces, hints.movedim(-1, 1), tokens, settings)
        return attach_control(positive, negative, chain_control(LocalBranchControl, control_net, spec, spec.hints, strength,
                                                                start_percent, end_percent))


NODE_CLASS_MAPPINGS = {"RealisID_ApplyLocalBranch": RealisIDApplyLocalBranch}
NODE_DISPLAY_NAME_MAPPINGS = {"RealisID_ApplyLocalBranch": "RealisID Apply Local Branch"}
