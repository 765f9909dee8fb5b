"""RealisID Apply Global Branch: a ControlNet on the whole latent with the location guidance as hint."""
import logging

from ..realisid_core.errors import RealisIDInputError
from .conditioning import attach_control, chain_control
from .controls import GlobalBranchControl, GlobalBranchSpec, controlnet_layout
from .inputs import ID_PROJECTOR, STRENGTH_AND_WINDOW, check_window
from .models import description_of, projecting

NODE = "RealisID Apply Global Branch"
log = logging.getLogger("RealisID")


def global_identity(described, people, id_projector, legacy_identity=None):
    """The identity context [1, P·K, D] the branch attends to, by the branch's trained context: None for a branch
    trained on the text; the people's identity tokens for one trained on identities (refused without them)."""
    if described.context == "text":
        if legacy_identity is not None:
            log.warning("RealisID: %s: %s was trained to attend to the prompt; the identity tokens connected to its "
                        "old 'identity' input are not used", NODE, described.name)
        return None
    if people.has_identity:
        tokens = people.identity_tokens(projecting(id_projector))
    elif legacy_identity is not None:  # a workflow saved before the identity came from the people
        log.warning("RealisID: %s: the 'identity' input is gone; connect each person's identity to RealisID Person "
                    "(and the ID projector here) instead", NODE)
        if legacy_identity.null is None:
            raise RealisIDInputError(input_name="identity", problem="these identity tokens carry no null identity for "
                                     "CFG's unconditional side", fix="make them with RealisID Identity Tokens")
        tokens = legacy_identity
    else:
        raise RealisIDInputError(input_name="people", problem=f"{described.name} was trained to attend to the people's "
                                 "identities instead of the prompt, and no person has one",
                                 fix="connect each person's identity (RealisID Identity, or identity tokens) to "
                                 "RealisID Person, and the ID projector that belongs to this branch to 'id_projector'")
    return tokens.as_one_context()


class RealisIDApplyGlobalBranch:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "positive": ("CONDITIONING",),
            "negative": ("CONDITIONING",),
            "control_net": ("CONTROL_NET", {"tooltip": "The global-branch ControlNet, loaded with RealisID Load "
                                                       "ControlNet."}),
            "people": ("REALISID_PEOPLE", {"tooltip": "Who goes where (RealisID People): the branch draws where their "
                                                      "faces go at the size of the picture being sampled; a branch "
                                                      "trained on identities attends to theirs."}),
            **STRENGTH_AND_WINDOW,
        }, "optional": {
            "id_projector": ID_PROJECTOR,
        }}

    RETURN_TYPES = ("CONDITIONING", "CONDITIONING")
    RETURN_NAMES = ("positive", "negative")
    FUNCTION = "apply"
    CATEGORY = "RealisID/apply"
    DESCRIPTION = ("Steers where the faces go and keeps the whole picture coherent around them (RealisID's global "
                   "branch; its hint is a map of the faces' places, drawn at the picture's size).")

    def apply(self, positive, negative, control_net, people, strength, start_percent, end_percent, id_projector=None,
              identity=None):
        # identity: the input of workflows saved before the identity came from `people` (still honoured)
        check_window(start_percent, end_percent)
        if strength == 0:
            return positive, negative
        described = description_of(control_net)
        if described.role != "global":
            raise RealisIDInputError(input_name="control_net", problem=f"{described.name} is a {described.role} branch",
                                     fix="connect the global-branch ControlNet here (local branches go to Apply Local "
                                     "Branch)")
        controlnet_layout(control_net)
        spec = GlobalBranchSpec(people.locations(), global_identity(described, people, id_projector, identity))
        return attach_control(positive, negative, chain_control(GlobalBranchControl, control_net, spec, NODE, strength,
                                                                start_percent, end_percent))


NODE_CLASS_MAPPINGS = {"RealisID_ApplyGlobalBranch": RealisIDApplyGlobalBranch}
NODE_DISPLAY_NAME_MAPPINGS = {"RealisID_ApplyGlobalBranch": NODE}
