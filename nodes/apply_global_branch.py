"""RealisID Apply Global Branch: a ControlNet on the whole latent with the location guidance as hint."""
from .conditioning import attach_control
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
            "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01}),
            "start_percent": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.001}),
            "end_percent": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.001}),
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

        def make(previous):
            control = GlobalBranchControl.from_controlnet(control_net, spec)
            control.set_cond_hint(hint, strength, (start_percent, end_percent))
            return control.set_previous_controlnet(previous)

        return attach_control(positive, negative, make)


NODE_CLASS_MAPPINGS = {"RealisID_ApplyGlobalBranch": RealisIDApplyGlobalBranch}
NODE_DISPLAY_NAME_MAPPINGS = {"RealisID_ApplyGlobalBranch": "RealisID Apply Global Branch"}
