"""RealisID Apply Local Branch: identity and pose-expression control at full detail on every face."""
import logging

from ..realisid_core.errors import RealisIDInputError
from .conditioning import local_branch_conditioning
from .controls import controlnet_layout
from .inputs import FEATHER, ID_PROJECTOR, STRENGTH_AND_WINDOW, WORKING_SIZE, check_window
from .models import description_of, projecting

NODE = "RealisID Apply Local Branch"
log = logging.getLogger("RealisID")


def local_identity(described, people, id_projector):
    """The people's identity tokens [F, K, D] for a branch trained on identities; None for one trained on the
    text, which refuses people with identities (they would be silently dropped)."""
    if described.context == "text":
        if people.has_identity:
            raise RealisIDInputError(input_name="people", problem=f"{described.name} was trained to attend to the "
                                     "prompt, not to identities, so the people's identities would be dropped",
                                     fix="use a local branch trained on identities, or give these people no identity "
                                     "(their identities can still go to a branch that reads them)")
        return None
    return people.identity_tokens(projecting(id_projector))


class RealisIDApplyLocalBranch:
    @classmethod
    def INPUT_TYPES(cls):
        return {"required": {
            "positive": ("CONDITIONING",),
            "negative": ("CONDITIONING",),
            "control_net": ("CONTROL_NET", {"tooltip": "The local-branch ControlNet, loaded with RealisID Load "
                                                       "ControlNet (it knows the hints and size it was trained on)."}),
            "people": ("REALISID_PEOPLE", {"tooltip": "Who goes where, looking how (RealisID People)."}),
            **STRENGTH_AND_WINDOW,
            "working_size": WORKING_SIZE,
            "feather": FEATHER,
        }, "optional": {
            "id_projector": ID_PROJECTOR,
        }}

    RETURN_TYPES = ("CONDITIONING", "CONDITIONING")
    RETURN_NAMES = ("positive", "negative")
    FUNCTION = "apply"
    CATEGORY = "RealisID/apply"
    DESCRIPTION = ("Works on every face at one size: crops each person's face from the picture being sampled, "
                   "steers it with the person's identity and pose there, and blends the result back — so a small "
                   "face gets the same identity detail as a large one.")

    def apply(self, positive, negative, control_net, people, strength, start_percent, end_percent, working_size,
              feather, id_projector=None):
        check_window(start_percent, end_percent)
        if strength == 0:
            return positive, negative
        described = description_of(control_net)
        if described.hint_format == "instantid-kps":
            raise RealisIDInputError(input_name="control_net", problem=f"{described.name} reads identity tokens from "
                                     "InstantID's own projector, which this node does not have",
                                     fix="use RealisID Apply InstantID with InstantID's adapter (ip-adapter.bin)")
        controlnet_layout(control_net)
        if described.feather is not None and abs(described.feather - feather) > 1e-6:
            log.info("RealisID: %s: %s was trained with feather %g; sampling with %g", NODE, described.name,
                     described.feather, feather)
        tokens = local_identity(described, people, id_projector)
        return local_branch_conditioning(positive, negative, control_net, described, people, tokens, strength,
                                         start_percent, end_percent, working_size, feather, NODE)


NODE_CLASS_MAPPINGS = {"RealisID_ApplyLocalBranch": RealisIDApplyLocalBranch}
NODE_DISPLAY_NAME_MAPPINGS = {"RealisID_ApplyLocalBranch": NODE}
