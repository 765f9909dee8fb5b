"""What the local branch's face crops cost, how many go into one ControlNet forward, and which
working sizes each model family is run at (from `families`).

Every constant here was measured or counted by `python -m benchmarks` (its `crops` section and
`benchmarks.crops.size_costs`); docs/performance.md has the tables and the commands. Pure functions:
no torch, no ComfyUI, so the nodes, the trainer and the tests all call the same rule.

Memory per crop has two parts:

- **activations** of one crop's ControlNet forward, alive only during that forward: counted
  exactly (every tensor an operator makes, from creation to last use) for the real SD1.5 and
  SDXL ControlNet architectures. With fused attention (what ComfyUI uses on NVIDIA/AMD GPUs:
  PyTorch's scaled_dot_product_attention) they grow with working size²; without it (the CPU,
  and devices where ComfyUI falls back to its sub-quadratic attention, which materialises the
  whole attention matrix when memory allows) the attention matrix of the finest attention
  level makes them grow about with working size⁴. The count without fused attention agrees
  with a real CPU forward (SD1.5 at 64, float32: 1,084 MiB counted, 1,069 MiB on the CPU).
- **kept** per crop for the whole call: the crop itself, its hint, and its residuals until
  they are pasted (all chunks' residuals are joined before the paste).

How many crops per forward (`crops_per_forward`): never more than the memory budget holds; on
the CPU the count measured fastest per crop (`CPU_PER_CROP_TIME`: 2 — one face with its CFG
pair), so never over 5% slower than one face at a time; on GPUs as many as the memory budget
allows (batching is assumed to pay there: an estimate, no GPU was lent to measure it; see
docs/performance.md).
"""
from __future__ import annotations

from dataclasses import dataclass

from ..families import FAMILIES, WorkingSizes  # noqa: F401 (WorkingSizes: the type WORKING_SIZES holds)

MiB = 2 ** 20

# ---- working sizes -------------------------------------------------------------------------------


WORKING_SIZES = {name: f.working_sizes for name, f in FAMILIES.items()}


def supported_families() -> str:
    return ", ".join(WORKING_SIZES)


def working_size_range(family: str) -> WorkingSizes:
    """The working sizes of `family` ('SD1.5', 'SD2', 'SDXL': `ControlLayout.family`); ValueError otherwise."""
    try:
        return WORKING_SIZES[family]
    except KeyError:
        raise ValueError(f"no working sizes known for {family}: the local branch supports {supported_families()}") from None


def scaled_working_size(trained: int, family: str, scale: float) -> int:
    """The crop side in latent cells for a working-size choice: the trained size, or it scaled to a multiple of 8
    kept within the sizes the family is run at (so no choice is ever refused)."""
    if scale == 1.0:
        return trained
    sizes = working_size_range(family)
    size = int(round(trained * scale / sizes.step)) * sizes.step
    return min(max(size, min(sizes.low, trained)), max(sizes.high, trained))


# ---- measured and counted costs -------------------------------------------------------------------

@dataclass(frozen=True)
class FamilyCost:
    """Counted per crop, float16, for a ControlNet with `channels` base channels; tables by working size."""

    channels: int
    at: int              # the size `fused_mib` and `kept_mib` are given at (both grow with size²)
    fused_mib: float     # activations with fused attention
    kept_mib: float      # crop + hint + residuals, kept for the whole call
    whole_mib: dict      # working size → activations with the whole attention matrix (no fused attention)
    gflops: dict         # working size → GFLOPs of one crop's forward


# Counted by benchmarks.crops.size_costs (activation_peak and FlopCounterMode on 'meta', float16) for the
# real ControlNet shapes; kept_mib from the U-Net layout (residuals) plus the crop and its 8×-sized hint.
FAMILY_COSTS = {
    "SD1.5": FamilyCost(320, 64, fused_mib=60.0, kept_mib=14.4,
                        whole_mib={32: 39.5, 48: 178.9, 64: 542.0, 80: 1296.9, 96: 2659.5, 112: 4893.9, 128: 8312.0},
                        gflops={32: 61.3, 48: 146.2, 64: 281.1, 80: 482.1, 96: 769.9, 112: 1169.7, 128: 1711.5}),
    "SDXL": FamilyCost(320, 128, fused_mib=147.5, kept_mib=57.4,
                       whole_mib={64: 61.9, 96: 251.7, 128: 727.5, 160: 1699.2, 192: 3436.9, 224: 6270.5,
                                  256: 10590.0},
                       gflops={64: 688.6, 96: 1601.1, 128: 2987.8, 160: 4957.9, 192: 7651.9, 224: 11241.4,
                               256: 15929.2}),
}
FAMILY_COSTS["SD2"] = FAMILY_COSTS["SD1.5"]  # the same U-Net shape: per crop, the wider context changes little

# CPU, SD1.5 ControlNet, working size 64, float32: ms per crop of one forward of k crops, as a ratio
# to one crop per forward (docs/performance.md). 1, 2: this branch's crops benchmark (median of 7 paired
# repeats, 2 shared cores: 2 crops 0.75×, 4 crops 0.63×). 4, 8: the worse of that and issue 11's
# measurement through the whole local branch on a quiet machine (4 crops 1.07×, 8 crops 1.21× the
# time of 2 crops per forward), since the two disagree: 0.75 × 1.07 and 0.75 × 1.21.
CPU_PER_CROP_TIME = {1: 1.0, 2: 0.75, 4: 0.80, 8: 0.91}
CPU_SLOWDOWN_ALLOWED = 1.05  # take the most crops whose time per crop is within 5% of the fastest
FUSED_ATTENTION_DEVICES = ("cuda",)  # ComfyUI uses PyTorch's fused attention there (NVIDIA, AMD ROCm)


def _cost(family: str) -> FamilyCost:
    try:
        return FAMILY_COSTS[family]
    except KeyError:
        raise ValueError(f"no crop costs known for {family}: the local branch supports {supported_families()}") from None


@dataclass(frozen=True)
class SizeCost:
    time: float    # compute of one crop relative to the family's default working size
    memory: float  # activation memory (fused attention) relative to the default
    memory_without_fused_attention: float


def _table(table: dict, size: int, power: float) -> float:
    """A counted table read at `size`: linear between entries, scaled by (size/entry)^power outside it."""
    if size in table:
        return table[size]
    sizes = sorted(table)
    if size < sizes[0] or size > sizes[-1]:
        edge = sizes[0] if size < sizes[0] else sizes[-1]
        return table[edge] * (size / edge) ** power
    lo, hi = max(s for s in sizes if s < size), min(s for s in sizes if s > size)
    w = (size - lo) / (hi - lo)
    return table[lo] * (1 - w) + table[hi] * w


def working_size_cost(family: str, size: int) -> SizeCost:
    """What one crop at `size` costs next to one at the family's default size (counted, not timed)."""
    default = working_size_range(family).default
    cost = _cost(family)
    return SizeCost(_table(cost.gflops, size, 3) / _table(cost.gflops, default, 3), (size / default) ** 2,
                    _table(cost.whole_mib, size, 4) / _table(cost.whole_mib, default, 4))


def _scale(family: str, itemsize: int, channels: int | None) -> tuple[FamilyCost, float]:
    cost = _cost(family)
    return cost, (itemsize / 2) * ((channels or cost.channels) / cost.channels)


def activation_bytes_per_crop(device_kind: str, family: str, working_size: int, itemsize: int,
                              channels: int | None = None) -> int:
    """Peak activation bytes one crop adds to a ControlNet forward on a device of `device_kind`
    ('cuda', 'cpu', 'mps', …: torch.device.type). `channels`: the ControlNet's base channels when
    not the family's 320 (the bytes are scaled in proportion, an approximation)."""
    cost, scale = _scale(family, itemsize, channels)
    if device_kind in FUSED_ATTENTION_DEVICES:
        mib = cost.fused_mib * (working_size / cost.at) ** 2
    else:
        mib = _table(cost.whole_mib, working_size, 4)
    return int(mib * scale * MiB)


def kept_bytes_per_crop(family: str, working_size: int, itemsize: int, channels: int | None = None) -> int:
    """Bytes each crop holds for the whole local-branch call: crop, hint, and its residuals until pasted."""
    cost, scale = _scale(family, itemsize, channels)
    return int(cost.kept_mib * (working_size / cost.at) ** 2 * scale * MiB)


def crops_memory_bytes(device_kind: str, family: str, working_size: int, itemsize: int, crops: int,
                       per_forward: int, channels: int | None = None) -> int:
    """Peak bytes of a local-branch call of `crops` crops run `per_forward` at a time: what to
    report to ComfyUI (on top of the ControlNet's weights) so it frees enough before sampling."""
    per_forward = max(1, min(per_forward, crops))
    return (per_forward * activation_bytes_per_crop(device_kind, family, working_size, itemsize, channels)
            + crops * kept_bytes_per_crop(family, working_size, itemsize, channels))


def crops_per_forward(device_kind: str, working_size: int, family: str, itemsize: int, free_bytes: int | None,
                      crops: int, channels: int | None = None) -> int:
    """How many of `crops` (faces × latent batch) crops go into one ControlNet forward.

    - never more than `free_bytes` (the memory budget, e.g. ComfyUI's free memory on the
      device) can hold: activations of the crops in the forward plus what every crop keeps;
      at least 1 (one crop at a time is the least any forward needs);
    - on the CPU, the most crops per forward whose measured time per crop is within 5% of the
      fastest count that fits (`CPU_PER_CROP_TIME`), so never over 5% slower than one face
      (its 1 or 2 crops) at a time; today that is 2;
    - elsewhere (GPUs), as many as the memory allows: batching is assumed to pay there.
    `free_bytes` None: no memory limit known.
    """
    if crops <= 1:
        return max(crops, 1)
    limit = crops
    if free_bytes is not None:
        activations = activation_bytes_per_crop(device_kind, family, working_size, itemsize, channels)
        kept = crops * kept_bytes_per_crop(family, working_size, itemsize, channels)
        limit = min(limit, max(1, int((free_bytes - kept) // max(activations, 1))))
    if device_kind == "cpu":
        candidates = {k: r for k, r in CPU_PER_CROP_TIME.items() if k <= limit} or {1: 1.0}
        fastest = min(candidates.values())
        limit = max(k for k, r in candidates.items() if r <= CPU_SLOWDOWN_ALLOWED * fastest)
    return max(1, limit)
