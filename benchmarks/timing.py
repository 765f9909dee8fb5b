"""Wall-clock timing: warm-up, then the median of repeats, synchronising the GPU around each call."""
from __future__ import annotations

import statistics
import time
from typing import Callable

import torch


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


class Stopwatch:
    """Accumulates the time spent inside wrapped calls (used to split a call into forward and glue)."""

    def __init__(self, device: torch.device):
        self.device, self.ms, self.calls = device, 0.0, 0

    def reset(self) -> None:
        self.ms, self.calls = 0.0, 0

    def wrap(self, fn):
        def timed(*args, **kwargs):
            sync(self.device)
            start = time.perf_counter()
            out = fn(*args, **kwargs)
            sync(self.device)
            self.ms += (time.perf_counter() - start) * 1000
            self.calls += 1
            return out
        return timed


def time_paired(fns: dict[str, Callable[[], object]], device: torch.device, repeats: int,
                warmup: int = 1) -> dict:
    """Time several calls interleaved (a b c, b c a, …), so that load changing during the run
    hits every side of a comparison alike; runs_ms of each are aligned by repeat."""
    names = list(fns)
    runs = {n: [] for n in names}
    with torch.inference_mode():
        for _ in range(warmup):
            for n in names:
                fns[n]()
        sync(device)
        for r in range(max(1, repeats)):
            order = names[r % len(names):] + names[:r % len(names)]
            for n in order:
                start = time.perf_counter()
                fns[n]()
                sync(device)
                runs[n].append((time.perf_counter() - start) * 1000)
    return {n: {"median_ms": statistics.median(v), "runs_ms": v} for n, v in runs.items()}


def paired_ratio(a: dict, b: dict) -> float:
    """Median of per-repeat ratios a/b when both were timed interleaved, else the ratio of medians."""
    ra, rb = a.get("runs_ms"), b.get("runs_ms")
    if ra and rb and len(ra) == len(rb):
        return statistics.median(x / y for x, y in zip(ra, rb))
    return a["median_ms"] / b["median_ms"]
