"""RealisID Apply Global Branch: a ControlNet on the whole latent with the location guidance as hint."""
from .conditioning import STRENGTH_AND_WINDOW, attach_control, chain_control
from .controls import GlobalBranchControl, GlobalBranchSpec, controlnet_layout

NODE = GlobalBranchControl.node_name


class RealisIDApplyGlobalBranch:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "positive": ("CONDITIONING",),
            "negative": ("CONDITIONING",),
            "control_net": ("CONTROL_NET", {"tooltip": "The RealisID global-branch ControlNet (models/controlnet)."}),
            "guidance": ("IMAGE", {"tooltip": "Location guidance from RealisID Location Guidance."}),
            **STRENGTH_AND_WINDOW,
        }, "optional": {
            "identity": ("REALISID_ID_TOKENS", {"tooltip": "Identity tokens the global branch attends to "
                                                "instead of the prompt (all identities, in face order)."}),
        }}

    RETURN_TYPES = ("CONDITIONING", "CONDITIONING")
    RETURN_NAMES = ("positive", "negative")
    FUNCTION = "apply"
    CATEGORY = "RealisID/apply"
    DESCRIPTION = "Steers where faces go and the picture's overall harmony (RealisID's global branch)."

    def apply(self, positive, negative, control_net, guidance, strength, start_percent, end_percent, identity=None):
        if strength == 0:
            return positive, negative
        layout = controlnet_layout(control_net, NODE)
        tokens = None
        if identity is not None:
            tokens = identity.check_width(layout.context_dim, NODE, "identity").tokens
            tokens = tokens.reshape(1, -1, tokens.shape[-1])
        spec = GlobalBranchSpec(identity=tokens)
        hint = guidance.movedim(-1, 1)
        return attach_control(positive, negative, chain_control(GlobalBranchControl, control_net, spec, hint, strength,
                                                                start_percent, end_percent))


NODE_CLASS_MAPPINGS = {"RealisID_ApplyGlobalBranch": RealisIDApplyGlobalBranch}
NODE_DISPLAY_NAME_MAPPINGS = {"RealisID_ApplyGlobalBranch": "RealisID Apply Global Branch"}
