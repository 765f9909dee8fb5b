"""Attaching a branch's control to positive and negative conditioning the way ComfyUI's own apply node does."""
from __future__ import annotations

from typing import Callable

from ..realisid_core.branches.local import LocalBranchSettings
from ..realisid_core.branches.budget import scaled_working_size
from ..realisid_core.errors import RealisIDInputError
from ..realisid_core.models.description import BranchDescription
from ..realisid_core.people.people import People
from ..realisid_core.signals.hints import check_poses
from .controls import AREA_KEY, AreaProbe, LocalBranchControl, LocalBranchSpec
from .inputs import WORKING_SIZES, check_window

def chain_control(control_cls, control_net, spec, node_name: str, strength, start_percent, end_percent):
    """attach_control's factory for a RealisID control of `control_cls` after a previous control; the control's
    errors name `node_name` (the node that attached it)."""
    def make(previous):
        control = control_cls.from_controlnet(control_net, spec, node_name)
        control.set_cond_hint(None, strength, (start_percent, end_percent))
        return control.set_previous_controlnet(previous)
    return make


def attach_control(positive, negative, make_control: Callable[[object], object]):
    """Chain a new control after each entry's existing one, for both conditionings.

    Entries that share a previous control share the new one too, so ComfyUI can still batch
    cond and uncond together (it only concatenates conds whose control is the same object).
    """
    made = {}
    out = []
    for conditioning in (positive, negative):
        entries = []
        for embedding, options in conditioning:
            options = options.copy()
            options["model_conds"] = {**options.get("model_conds", {}), AREA_KEY: AreaProbe()}
            previous = options.get("control")
            if previous not in made:
                made[previous] = make_control(previous)
            options["control"] = made[previous]
            options["control_apply_to_uncond"] = False
            entries.append([embedding, options])
        out.append(entries)
    return out[0], out[1]


def local_branch_conditioning(positive, negative, control_net, described: BranchDescription, people: People, tokens,
                              strength, start_percent, end_percent, working_size_choice, feather, node_name: str,
                              window_inputs=("start_percent", "end_percent")):
    """Attach a local-branch control for `people` (identity `tokens` [F, K, D] with their null, or None); its
    errors at sampling time name `node_name`."""
    check_window(start_percent, end_percent, *window_inputs)
    if described.role != "local":
        raise RealisIDInputError(input_name="control_net", problem=f"{described.name} is a {described.role} branch",
                                 fix="connect a local-branch ControlNet here (its global twin goes to Apply Global "
                                 "Branch)")
    check_poses(people.poses(), described.hint_format)
    locations = people.locations()
    size = scaled_working_size(described.working_size, described.family, WORKING_SIZES[working_size_choice])
    settings = LocalBranchSettings(size, described.margin, feather)
    spec = LocalBranchSpec(locations, tuple(people.poses()), described.hint_format, tokens, people.strengths(),
                           settings)
    return attach_control(positive, negative, chain_control(LocalBranchControl, control_net, spec, node_name, strength,
                                                            start_percent, end_percent))
