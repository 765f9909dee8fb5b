"""The residual layout an SD-style U-Net accepts from a ControlNet, and checks against it.

A ControlNet returns {'output': one residual per U-Net input block, 'middle': [one]}. Each
entry has a channel count and a depth k (number of stride-2 steps), so its spatial size for
an H×W latent is ceil-halved k times.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import Sequence

from ..families import family_name_of_context
from .geometry import halve


@dataclass(frozen=True)
class ControlLayout:
    """Channels and depth of every residual a U-Net takes, plus its cross-attention width."""

    output: tuple[tuple[int, int], ...]  # (channels, halvings) per input block
    middle: tuple[int, int]
    context_dim: int | None
    adm_in_channels: int | None = None

    @property
    def family(self) -> str:
        return family_name_of_context(self.context_dim)

    def expected_shapes(self, batch: int, height: int, width: int) -> dict[str, list[tuple[int, ...]]]:
        def shape(ch, k):
            return (batch, ch, halve(height, k), halve(width, k))
        return {"output": [shape(c, k) for c, k in self.output], "middle": [shape(*self.middle)]}


def layout_from_config(model_channels: int, channel_mult: Sequence[int], num_res_blocks,
                       context_dim: int | None, adm_in_channels: int | None = None) -> ControlLayout:
    """The layout of an SD-style U-Net (or ControlNet) built from these settings."""
    levels = len(channel_mult)
    blocks = [num_res_blocks] * levels if isinstance(num_res_blocks, int) else list(num_res_blocks)
    output = [(model_channels, 0)]
    for level, mult in enumerate(channel_mult):
        output += [(model_channels * mult, level)] * blocks[level]
        if level != levels - 1:
            output.append((model_channels * mult, level + 1))
    return ControlLayout(tuple(output), (model_channels * channel_mult[-1], levels - 1), context_dim, adm_in_channels)


def layout_from_controlnet(zero_conv_channels: Sequence[int], num_res_blocks: Sequence[int],
                           middle_channels: int, context_dim: int | None,
                           adm_in_channels: int | None = None) -> ControlLayout:
    """The layout a loaded ControlNet produces, read from its zero convolutions."""
    depths = [0]
    for level, blocks in enumerate(num_res_blocks):
        depths += [level] * blocks
        if level != len(num_res_blocks) - 1:
            depths.append(level + 1)
    if len(depths) != len(zero_conv_channels):
        raise ValueError(f"ControlNet has {len(zero_conv_channels)} zero convolutions, its blocks imply {len(depths)}")
    output = tuple(zip(zero_conv_channels, depths))
    return ControlLayout(output, (middle_channels, len(num_res_blocks) - 1), context_dim, adm_in_channels)


def mismatch(control: ControlLayout, model: ControlLayout) -> str | None:
    """Why a ControlNet with layout `control` cannot steer a U-Net with layout `model`, or None."""
    if control.context_dim != model.context_dim:
        return (f"the ControlNet is built for {control.family} (cross-attention width {control.context_dim}) "
                f"but the model is {model.family} (width {model.context_dim})")
    if control.output != model.output or control.middle != model.middle:
        return (f"the ControlNet's residual layout ({len(control.output)} blocks, channels "
                f"{sorted({c for c, _ in control.output})}) does not match the model's "
                f"({len(model.output)} blocks, channels {sorted({c for c, _ in model.output})})")
    if (control.adm_in_channels or None) != (model.adm_in_channels or None):
        return (f"the ControlNet expects a class/size vector of width {control.adm_in_channels} "
                f"but the model gives {model.adm_in_channels}")
    return None


def shape_errors(control: dict, layout: ControlLayout, batch: int, height: int, width: int) -> list[str]:
    """Every residual present whose shape differs from what the U-Net block it lands on needs.

    ComfyUI's U-Net pops each list from its end: 'input'[-1] is added to the first input
    block's output, 'output'[-1] to the last input block's skip (the first output block reads
    it), 'middle'[-1] to the middle block. So a list shorter than the model's blocks reaches
    only some blocks, and a missing key, an empty list or a None entry is no residual there:
    ComfyUI's T2I adapters return only 'input', other controls only some levels. Only the
    tensors present are checked, each against the block it lands on; a tensor that would land
    on no block (a list longer than the model's) is an error too.
    """
    expected = layout.expected_shapes(batch, height, width)
    blocks = expected["output"]
    n = len(blocks)
    # where entry j of an m-long list lands (a block index), or None when it lands nowhere
    lands = {"output": lambda j, m: j + n - m if j + n - m >= 0 else None,
             "input": lambda j, m: m - 1 - j if m - 1 - j < n else None,
             "middle": lambda j, m: 0 if j == m - 1 else None}
    errors = []
    for key, where in lands.items():
        got = control.get(key) or []
        targets = expected["middle"] if key == "middle" else blocks
        for j, r in enumerate(got):
            if r is None:
                continue
            block = where(j, len(got))
            if block is None:
                errors.append(f"'{key}' has {len(got)} residuals, the model takes at most {len(targets)}")
                break
            if tuple(r.shape) != targets[block]:
                errors.append(f"'{key}'[{j}] is {tuple(r.shape)}, the model needs {targets[block]}")
    return errors
