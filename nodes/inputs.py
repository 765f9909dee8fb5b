"""Widget specs shared by the nodes (one statement each), and the checks of their values."""
from __future__ import annotations

from ..realisid_core.branches.budget import scaled_working_size, working_size_cost
from ..realisid_core.errors import RealisIDInputError
from ..realisid_core.families import FAMILIES, to_pixels

PERCENT = {"min": 0.0, "max": 1.0, "step": 0.001}

STRENGTH_AND_WINDOW = {
    "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01,
                           "tooltip": "How strongly this branch steers the picture: 0 switches it off, 1 is as "
                                      "trained; above 1 pushes harder and can over-cook the faces."}),
    "start_percent": ("FLOAT", {"default": 0.0, **PERCENT,
                                "tooltip": "When the branch starts steering, as a fraction of the sampling steps "
                                           "(0 = from the first step). Early steps decide layout and pose."}),
    "end_percent": ("FLOAT", {"default": 1.0, **PERCENT,
                              "tooltip": "When the branch stops steering, as a fraction of the sampling steps "
                                         "(1 = to the last step). Late steps decide fine detail."}),
}

WORKING_SIZES = {"as trained": 1.0, "smaller (0.75×, faster)": 0.75, "larger (1.25×)": 1.25, "largest (1.5×)": 1.5}

FEATHER = ("FLOAT", {"default": 0.15, "min": 0.0, "max": 0.5, "step": 0.01,
                     "tooltip": "How softly each face's effect fades out towards the edge of its square, as a fraction "
                                "of the square: 0 = a hard edge, 0.15 = a soft blend into the rest of the picture. A crop edge on the picture's own "
                                "border is never feathered. The log says when a branch was trained with another feather."})


ID_PROJECTOR = ("REALISID_ID_PROJECTOR", {"tooltip": "Turns the people's identities from photos into what this "
                                                     "ControlNet reads (the projector trained with it); needed when "
                                                     "the branch reads identities and people have them from photos."})


def _working_size_tooltip() -> str:
    """What each choice costs per face next to 'as trained' (counted for SD1.5's ControlNet; SDXL's is alike)."""
    sd15 = FAMILIES["SD1.5"]
    trained = sd15.default_working_size
    costs = []
    for choice, scale in WORKING_SIZES.items():
        if scale != 1.0:
            cost = working_size_cost(sd15.name, scaled_working_size(trained, sd15.name, scale))
            costs.append(f"{choice.split(' (')[0]} ≈ {cost.time:.1f}× the time, {cost.memory:.1f}× the GPU memory "
                         f"({cost.memory_without_fused_attention:.1f}× on a CPU)")
    sdxl = FAMILIES["SDXL"]
    return ("The detail every face is worked at, whatever its size in the picture: the size the branch was trained "
            f"at ({to_pixels(trained)} pixels for SD1.5, {to_pixels(sdxl.default_working_size)} for SDXL) or a "
            "step off it. Per face, next to 'as trained': " + "; ".join(costs)
            + ". Larger sizes are not offered: a step would take minutes.")


WORKING_SIZE = (list(WORKING_SIZES), {"default": "as trained", "tooltip": _working_size_tooltip()})


def check_window(start_percent: float, end_percent: float, start_input: str = "start_percent",
                 end_input: str = "end_percent") -> None:
    """Refuse a steering window that ends before it starts (it would silently switch the branch off)."""
    if start_percent > end_percent:
        raise RealisIDInputError(input_name=start_input, problem=f"{start_input} {start_percent:g} is after "
                                 f"{end_input} {end_percent:g}, so the branch would never steer",
                                 fix=f"set {start_input} at or below {end_input} (0 and 1 steer through every step), "
                                 "or set the strength to 0 to switch it off")
