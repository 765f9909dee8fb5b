"""RealisID Apply Global Branch: a ControlNet on the whole latent with the location guidance as hint."""
from ..realisid_core.errors import RealisIDInputError
from .conditioning import STRENGTH_AND_WINDOW, attach_control, chain_control
from .controlnet_loader import description_of
from .controls import GlobalBranchControl, GlobalBranchSpec, controlnet_layout

NODE = GlobalBranchControl.node_name


class RealisIDApplyGlobalBranch:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "positive": ("CONDITIONING",),
            "negative": ("CONDITIONING",),
            "control_net": ("CONTROL_NET", {"tooltip": "The global-branch ControlNet, loaded with RealisID Load "
                                                       "ControlNet."}),
            "people": ("REALISID_PEOPLE", {"tooltip": "Who goes where (RealisID People): the branch draws where their "
                                                      "faces go at the size of the picture being sampled."}),
            **STRENGTH_AND_WINDOW,
        }, "optional": {
            "identity": ("REALISID_ID_TOKENS", {"tooltip": "Identity tokens the global branch attends to instead of "
                                                           "the prompt, if it was trained that way."}),
        }}

    RETURN_TYPES = ("CONDITIONING", "CONDITIONING")
    RETURN_NAMES = ("positive", "negative")
    FUNCTION = "apply"
    CATEGORY = "RealisID/apply"
    DESCRIPTION = ("Steers where the faces go and keeps the whole picture coherent around them (RealisID's global "
                   "branch; its hint is a map of the faces' places, drawn at the picture's size).")

    def apply(self, positive, negative, control_net, people, strength, start_percent, end_percent, identity=None):
        if strength == 0:
            return positive, negative
        described = description_of(control_net, NODE)
        if described.role != "global":
            raise RealisIDInputError(NODE, "control_net", f"{described.name} is a {described.role} branch",
                                     "connect the global-branch ControlNet here (local branches go to Apply Local Branch)")
        controlnet_layout(control_net, NODE)
        tokens = None
        if identity is not None:
            if identity.null is None:
                raise RealisIDInputError(NODE, "identity", "these identity tokens carry no null identity for CFG's "
                                         "unconditional side", "make them with RealisID Identity Tokens")
            tokens = type(identity)(identity.tokens.reshape(1, -1, identity.width),
                                    identity.null.repeat(1, identity.count, 1))
        spec = GlobalBranchSpec(people.locations(NODE), tokens)
        return attach_control(positive, negative, chain_control(GlobalBranchControl, control_net, spec, None, strength,
                                                                start_percent, end_percent))


NODE_CLASS_MAPPINGS = {"RealisID_ApplyGlobalBranch": RealisIDApplyGlobalBranch}
NODE_DISPLAY_NAME_MAPPINGS = {"RealisID_ApplyGlobalBranch": "RealisID Apply Global Branch"}
