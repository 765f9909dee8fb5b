"""What k crops in one ControlNet forward cost: time per crop and activation memory per crop.

These are the figures `realisid_core.branches.budget` is built from:

- **time per crop** of one forward of k crops (k = 1, 2, 4, …) at a working size, on the device
  the benchmark runs on, as a ratio to one crop per forward: how far batching crops pays.
- **activation memory** of one forward of k crops, counted exactly: every tensor an operator
  creates during the forward is counted from its creation until its last reference dies (a
  `TorchDispatchMode`, so no allocator slack, no sampling). Views and in-place results add
  nothing. Weights and inputs, made before the forward, are not activations. The growth per
  crop, divided by (working size² × base channels × bytes per element), is the per-crop factor.

Memory is counted twice: on the device the benchmark runs on with ComfyUI's attention for it
(on the CPU ComfyUI uses sub-quadratic chunked attention), and on PyTorch's `meta` device (no
compute, so SDXL at working size 128 costs nothing to count) with attention replaced by one
that allocates only its output, as the fused attention ComfyUI uses on NVIDIA GPUs (PyTorch's
scaled_dot_product_attention) does. The second is the GPU figure; it was counted, not
measured on a GPU.
"""
from __future__ import annotations

import statistics
import time
import weakref
from contextlib import contextmanager

import torch
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_flatten

from . import timing
from .models import Family, _CONTROL_ONLY

IDENTITY_TOKENS = 16


class ActivationPeak(TorchDispatchMode):
    """Peak bytes of the tensors operators create while the mode is active (see the module doc)."""

    def __init__(self):
        super().__init__()
        self.current = self.peak = 0
        self._refs: dict[int, list] = {}  # StorageImpl address -> [bytes, live tensors on it]

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        inputs = {a.untyped_storage()._cdata for a in tree_flatten((args, kwargs))[0] if isinstance(a, torch.Tensor)}
        for o in tree_flatten(out)[0]:
            if not isinstance(o, torch.Tensor):
                continue
            key = o.untyped_storage()._cdata
            entry = self._refs.get(key)
            if entry is None:
                if key in inputs:
                    continue  # a view or in-place result of something made before the mode
                entry = self._refs[key] = [o.untyped_storage().nbytes(), 0]
                self.current += entry[0]
                self.peak = max(self.peak, self.current)
            entry[1] += 1
            weakref.finalize(o, self._release, key)
        return out

    def _release(self, key):
        entry = self._refs.get(key)
        if entry is None:
            return
        entry[1] -= 1
        if entry[1] == 0:
            self.current -= entry[0]
            del self._refs[key]


def activation_peak(fn) -> int:
    with torch.inference_mode(), ActivationPeak() as mode:
        out = fn()
        del out
    return mode.peak


@contextmanager
def fused_attention():
    """ComfyUI's attention replaced by one that allocates only its output (the memory of a fused kernel)."""
    import comfy.ldm.modules.attention as attention
    saved = attention.optimized_attention

    def output_only(q, k, v, heads, mask=None, attn_precision=None, skip_reshape=False, skip_output_reshape=False,
                    **kwargs):
        if skip_reshape:  # [b, heads, n, d] in
            b, h, n, d = q.shape
            return q.new_empty((b, h, n, d) if skip_output_reshape else (b, n, h * d))
        return q.new_empty(q.shape)
    attention.optimized_attention = output_only
    try:
        yield
    finally:
        attention.optimized_attention = saved


@contextmanager
def materialised_attention():
    """ComfyUI's plain attention (the whole query × key matrix at once): what its sub-quadratic attention
    does on the CPU when memory is plentiful, the worst case of the devices without fused attention."""
    import comfy.ldm.modules.attention as attention
    saved = attention.optimized_attention
    attention.optimized_attention = attention.attention_basic
    try:
        yield
    finally:
        attention.optimized_attention = saved


def flops(fn) -> int:
    """Multiply-add FLOPs of the matrix products and convolutions in fn (torch's FlopCounterMode)."""
    from torch.utils.flop_counter import FlopCounterMode
    with torch.inference_mode(), FlopCounterMode(display=False) as counter:
        fn()
    return counter.get_total_flops()


def size_costs(family: Family, sizes: list[int], dtype: torch.dtype = torch.float16) -> dict:
    """Per crop at each working size, counted on `meta` (no compute): activation bytes with fused
    attention (GPU) and with the whole attention matrix (CPU with ample memory), and FLOPs."""
    module = build_controlnet_module(family, torch.device("meta"), dtype)
    out = {}
    for size in sizes:
        inputs = forward_inputs(family, 1, size, "meta", dtype)
        with fused_attention():
            fused = activation_peak(lambda: module(**inputs))
        with materialised_attention():
            whole = activation_peak(lambda: module(**inputs))
            work = flops(lambda: module(**inputs))
        out[size] = {"fused_bytes": fused, "materialised_bytes": whole, "flops": work}
    return {"family": family.name, "dtype": str(dtype), "model_channels": family.unet_config["model_channels"],
            "per_size": out}


def build_controlnet_module(family: Family, device: torch.device, dtype: torch.dtype):
    """A cldm.ControlNet of the family's shape; weights left uninitialised (meta: no storage at all)."""
    import comfy.cldm.cldm
    import comfy.ops
    config = {k: v for k, v in family.unet_config.items() if k not in _CONTROL_ONLY}
    return comfy.cldm.cldm.ControlNet(hint_channels=3, **config, dtype=dtype, device=device,
                                      operations=comfy.ops.disable_weight_init).eval()


def forward_inputs(family: Family, crops: int, working_size: int, device, dtype, seed: int = 0) -> dict:
    """What the local branch hands the ControlNet for `crops` crops."""
    gen = torch.Generator().manual_seed(seed)

    def rand(*shape):
        return torch.randn(*shape, generator=gen).to(device, dtype)
    inputs = {"x": rand(crops, 4, working_size, working_size),
              "hint": rand(crops, 3, 8 * working_size, 8 * working_size).clamp(0, 1),
              "timesteps": torch.full((crops,), 500.0).to(device, dtype),
              "context": rand(crops, IDENTITY_TOKENS, family.context_dim)}
    if family.adm:
        inputs["y"] = rand(crops, family.adm)
    return inputs


def _fit(counts: list[int], values: list[float]) -> tuple[float, float]:
    """Least-squares line values ≈ fixed + per_item × count: (per_item, fixed)."""
    n = len(counts)
    mx, my = sum(counts) / n, sum(values) / n
    sxx = sum((c - mx) ** 2 for c in counts)
    if sxx == 0:
        return values[0] / max(counts[0], 1), 0.0
    slope = sum((c - mx) * (v - my) for c, v in zip(counts, values)) / sxx
    return slope, my - slope * mx


def memory_per_crop(module, family: Family, working_size: int, counts: list[int], device, dtype) -> dict:
    """Activation peak of one forward of k crops for each k, the bytes per crop, and the factor."""
    peaks = {}
    for k in counts:
        inputs = forward_inputs(family, k, working_size, device, dtype)
        peaks[k] = activation_peak(lambda: module(**inputs))
        del inputs
    per_crop, fixed = _fit(counts, [peaks[k] for k in counts])
    itemsize = torch.empty((), dtype=dtype).element_size()
    return {"peak_bytes": peaks, "bytes_per_crop": per_crop, "fixed_bytes": fixed,
            "factor": per_crop / (working_size ** 2 * family.unet_config["model_channels"] * itemsize),
            "factor_definition": "bytes per crop / (working size² × model_channels × bytes per element)"}


def time_per_crop(module, family: Family, working_size: int, counts: list[int], device, dtype, repeats: int,
                  log=lambda msg: None) -> dict:
    """Median ms of one forward of k crops; ms per crop as a ratio to one crop per forward.

    The counts are timed interleaved (1 2 4, 2 4 1, …) so load changes hit all alike; the
    ratio is the median over repeats of (ms(k)/k) / ms(1) from the same repeat. On a shared
    machine, where other work only ever adds time, the ratio of the fastest runs
    (`per_crop_ratio_fastest`) is the steadier figure.
    """
    inputs = {k: forward_inputs(family, k, working_size, device, dtype) for k in counts}
    fns = {k: (lambda k=k: module(**inputs[k])) for k in counts}
    log(f"ControlNet forward of {counts} crops at working size {working_size}, {repeats} repeats")
    t = timing.time_paired(fns, torch.device(device), repeats)
    base = t[counts[0]]["runs_ms"]
    out = {}
    for k in counts:
        runs = t[k]["runs_ms"]
        out[k] = {"median_ms": t[k]["median_ms"], "runs_ms": runs, "ms_per_crop": t[k]["median_ms"] / k,
                  "per_crop_ratio": statistics.median((r / k) / (b / counts[0]) for r, b in zip(runs, base)),
                  "fastest_ms": min(runs), "per_crop_ratio_fastest": (min(runs) / k) / (min(base) / counts[0])}
    return out


def crop_scaling(family: Family, device: torch.device, dtype: torch.dtype, working_size: int,
                 counts: list[int], repeats: int, timed: bool = True, log=lambda msg: None,
                 module=None) -> dict:
    """Time and memory per crop on `device`, and the memory counted on `meta` with fused attention.

    `module`: the cldm.ControlNet to time (else one with random weights is built)."""
    t0 = time.perf_counter()
    result = {"family": family.name, "working_size": working_size, "counts": counts, "dtype": str(dtype),
              "model_channels": family.unet_config["model_channels"]}
    log(f"{family.name}: activation memory per crop counted on meta (fused attention), working size {working_size}")
    meta = build_controlnet_module(family, torch.device("meta"), dtype)
    with fused_attention():
        result["meta_fused_attention"] = memory_per_crop(meta, family, working_size, counts, "meta", dtype)
    with materialised_attention():
        result["meta_materialised_attention"] = memory_per_crop(meta, family, working_size, counts, "meta", dtype)
    del meta
    if timed:
        if module is None:
            log(f"{family.name}: building the ControlNet on {device} (random weights)")
            from .models import build_controlnet
            module = build_controlnet(family, device, dtype).control_model
        result["time"] = time_per_crop(module, family, working_size, counts, device, dtype, repeats, log)
        log(f"{family.name}: activation memory per crop on {device} (ComfyUI's attention for it)")
        result["device_memory"] = memory_per_crop(module, family, working_size, counts, device, dtype)
        result["device"] = str(device)
        del module
    result["seconds"] = time.perf_counter() - t0
    return result
