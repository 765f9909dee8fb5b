"""RealisID Apply Local Branch: identity and pose-expression control at full detail on every face."""
from ..realisid_core.models.description import BranchDescription
from ..realisid_core.branches.budget import working_size_cost, working_size_range
from ..realisid_core.errors import RealisIDInputError
from ..realisid_core.signals.hints import hint_format
from ..realisid_core.branches.local import LocalBranchSettings
from ..realisid_core.people.people import People
from .conditioning import STRENGTH_AND_WINDOW, attach_control, chain_control
from .controlnet_loader import description_of
from .controls import LocalBranchControl, LocalBranchSpec, controlnet_layout
from .id_projector import tokens_of

NODE = LocalBranchControl.node_name
WORKING_SIZES = {"as trained": 1.0, "smaller (0.75×, faster)": 0.75, "larger (1.25×)": 1.25, "largest (1.5×)": 1.5}
FEATHER = ("FLOAT", {"default": 0.15, "min": 0.0, "max": 0.5, "step": 0.01,
                     "tooltip": "How softly each face's effect fades out towards the edge of its square, as a fraction "
                                "of the square: 0 = a hard edge, 0.15 = a soft blend into the rest of the picture."})
def _working_size_tooltip() -> str:
    """What each choice costs per face next to 'as trained' (counted for SD1.5's ControlNet; SDXL's is alike)."""
    costs = []
    for choice, scale in WORKING_SIZES.items():
        if scale != 1.0:
            cost = working_size_cost("SD1.5", int(round(64 * scale / 8)) * 8)
            costs.append(f"{choice.split(' (')[0]} ≈ {cost.time:.1f}× the time, {cost.memory:.1f}× the GPU memory "
                         f"({cost.memory_without_fused_attention:.1f}× on a CPU)")
    return ("The detail every face is worked at, whatever its size in the picture: the size the branch was trained "
            "at (512 pixels for SD1.5, 1024 for SDXL) or a step off it. Per face, next to 'as trained': "
            + "; ".join(costs) + ". Larger sizes are not offered: a step would take minutes.")


WORKING_SIZE = (list(WORKING_SIZES), {"default": "as trained", "tooltip": _working_size_tooltip()})


def working_size(described: BranchDescription, choice: str) -> int:
    """The crop side in latent cells for a working-size choice: the trained size, or it scaled to a multiple
    of 8 kept within the sizes the family is run at (so no choice is ever refused)."""
    trained = described.working_size
    if WORKING_SIZES[choice] == 1.0:
        return trained
    size = int(round(trained * WORKING_SIZES[choice] / 8)) * 8
    sizes = working_size_range(described.family)
    return min(max(size, min(sizes.low, trained)), max(sizes.high, trained))


def check_poses(people: People, format_name: str, node: str) -> None:
    """Every person's pose must have the points the ControlNet's hint format draws."""
    fmt = hint_format(format_name)
    for k, pose in enumerate(people.poses(), 1):
        if fmt.layout == 68 and pose.landmarks_68 is None:
            raise RealisIDInputError(node, "people", f"person {k}'s pose has no 68 landmarks, and this ControlNet was "
                                     f"trained on {fmt.description}", "take the pose from a face found with the "
                                     "antelopev2 or buffalo_l pack (they have 1k3d68.onnx)")


def local_branch_conditioning(positive, negative, control_net, described: BranchDescription, people: People,
                              tokens, strength, start_percent, end_percent, working_size_choice, feather, node=NODE):
    """Attach a local-branch control for `people` (identity `tokens` [F, K, D] with their null, or None)."""
    if described.role != "local":
        raise RealisIDInputError(node, "control_net", f"{described.name} is a {described.role} branch",
                                 "connect a local-branch ControlNet here (its global twin goes to Apply Global Branch)")
    check_poses(people, described.hint_format, node)
    locations = people.locations(node)
    settings = LocalBranchSettings(working_size(described, working_size_choice), described.margin, feather)
    spec = LocalBranchSpec(locations, tuple(people.poses()), described.hint_format, tokens, people.strengths(),
                           settings)
    return attach_control(positive, negative, chain_control(LocalBranchControl, control_net, spec, None, strength,
                                                            start_percent, end_percent))


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
            "id_projector": ("REALISID_ID_PROJECTOR", {"tooltip": "Turns identities from photos into what this "
                                                                  "ControlNet reads; needed when people have "
                                                                  "identities from photos."}),
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
        if strength == 0:
            return positive, negative
        described = description_of(control_net, NODE)
        if described.hint_format == "instantid-kps":
            raise RealisIDInputError(NODE, "control_net", f"{described.name} reads identity tokens from InstantID's "
                                     "own projector, which this node does not have",
                                     "use RealisID Apply InstantID with InstantID's adapter (ip-adapter.bin)")
        controlnet_layout(control_net, NODE)

        def to_tokens(identity):
            return None if id_projector is None else tokens_of(id_projector, identity, NODE)

        tokens = people.identity_tokens(to_tokens, NODE) if described.context == "identity" else None
        return local_branch_conditioning(positive, negative, control_net, described, people, tokens, strength,
                                         start_percent, end_percent, working_size, feather)


NODE_CLASS_MAPPINGS = {"RealisID_ApplyLocalBranch": RealisIDApplyLocalBranch}
NODE_DISPLAY_NAME_MAPPINGS = {"RealisID_ApplyLocalBranch": "RealisID Apply Local Branch"}
