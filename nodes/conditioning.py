"""Attaching a control to positive and negative conditioning the way ComfyUI's own apply node does."""
from __future__ import annotations

from typing import Callable

import torch

import comfy.conds

AREA_KEY = "realisid_area"


class AreaProbe(comfy.conds.CONDRegular):
    """A model condition that tells RealisID's controls which part of the latent ComfyUI hands them.

    ComfyUI gives an area conditioning (Conditioning (Set Area)) only its area of the latent and
    narrows every model condition to it; this one records the area instead: per latent row
    (top, left, height, width) in latent cells, or -1s for the whole latent. The U-Net ignores it.
    """

    def __init__(self, cond: torch.Tensor | None = None):
        super().__init__(torch.full((1, 4), -1.0) if cond is None else cond)

    def process_cond(self, batch_size, area=None, **kwargs):
        if area is None or len(area) != 4:  # the whole latent (areas of video latents are not handled)
            row = torch.full((1, 4), -1.0)
        else:
            height, width, top, left = (float(v) for v in area)
            row = torch.tensor([[top, left, height, width]])
        return AreaProbe(row.repeat(batch_size, 1))

STRENGTH_AND_WINDOW = {
    "strength": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 10.0, "step": 0.01,
                           "tooltip": "How strongly this branch steers the picture: 0 switches it off, 1 is as "
                                      "trained; above 1 pushes harder and can over-cook the faces."}),
    "start_percent": ("FLOAT", {"default": 0.0, "min": 0.0, "max": 1.0, "step": 0.001,
                                "tooltip": "When the branch starts steering, as a fraction of the sampling steps "
                                           "(0 = from the first step). Early steps decide layout and pose."}),
    "end_percent": ("FLOAT", {"default": 1.0, "min": 0.0, "max": 1.0, "step": 0.001,
                              "tooltip": "When the branch stops steering, as a fraction of the sampling steps "
                                         "(1 = to the last step). Late steps decide fine detail."}),
}


def chain_control(control_cls, control_net, spec, hint, strength, start_percent, end_percent):
    """attach_control's factory for a RealisID control of `control_cls` after a previous control."""
    def make(previous):
        control = control_cls.from_controlnet(control_net, spec)
        control.set_cond_hint(hint, strength, (start_percent, end_percent))
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
