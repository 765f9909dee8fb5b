"""The model families RealisID's branches run on: one table of their facts.

A row per family: the U-Net's cross-attention (context) width, the width of its added class/size
vector (adm) and of the pooled text inside it, the training picture side, and the working sizes
the local branch is run at (crop side in latent cells). Every other module reads these facts from
here.
"""
from __future__ import annotations

from dataclasses import dataclass

LATENT_SCALE = 8  # pixels per latent cell, every family here (ComfyUI's ControlNet compression_ratio)


@dataclass(frozen=True)
class WorkingSizes:
    """The working sizes (crop side in latent cells, multiples of `step`) a family is run at."""

    family: str
    default: int   # the family's training resolution / 8: 512 px SD1.5, 1024 px SDXL
    low: int
    high: int
    step: int = 8

    def __contains__(self, size: int) -> bool:
        return self.low <= size <= self.high and size % self.step == 0

    @property
    def sizes(self) -> list[int]:
        return list(range(self.low, self.high + 1, self.step))


@dataclass(frozen=True)
class Family:
    """One model family's facts (None: the family has no such input)."""

    name: str
    context_width: int
    adm_width: int | None
    pooled_width: int | None
    resolution: int            # training picture side, pixels
    working_sizes: WorkingSizes

    @property
    def default_working_size(self) -> int:
        return self.working_sizes.default


# Working-size bounds: from half the training size (a quarter of the cost) up to where one crop costs
# about 3× the default's compute (measured FLOPs: SD1.5 96 → 2.74×, 112 → 4.2×, 128 → 6.1×;
# SDXL 192 → 2.56×, 224 → 3.8×), so a step cannot silently become minutes long.
FAMILIES: dict[str, Family] = {f.name: f for f in (
    Family("SD1.5", 768, None, None, 512, WorkingSizes("SD1.5", 64, 32, 96)),
    Family("SD2", 1024, None, None, 512, WorkingSizes("SD2", 64, 32, 96)),  # 768-v models at 96 fit the range
    Family("SDXL", 2048, 2816, 1280, 1024, WorkingSizes("SDXL", 128, 64, 192)),
    # FLUX is a transformer: its context is T5's width, its pooled vector CLIP-L's; crops are whole 2×2
    # patches (step 16 cells); only InfiniteYou's InfuseNet runs it (models/infuse.py).
    Family("FLUX", 4096, None, 768, 1024, WorkingSizes("FLUX", 128, 32, 192, step=16)),
)}


def family(name: str) -> Family:
    """The family called `name`; ValueError naming the known ones otherwise."""
    try:
        return FAMILIES[name]
    except KeyError:
        raise ValueError(f"unknown model family {name}: RealisID supports {', '.join(FAMILIES)}") from None


def family_name_of_context(context_width: int | None) -> str:
    """The family whose U-Net attends to `context_width`-wide context, or a description of the width."""
    found = next((f.name for f in FAMILIES.values() if f.context_width == context_width), None)
    return found or f"context width {context_width}"


def to_pixels(cells: int) -> int:
    """Latent cells to pixels."""
    return cells * LATENT_SCALE


def to_cells(pixels: float) -> int:
    """Pixels to whole latent cells (rounded)."""
    return round(pixels / LATENT_SCALE)
