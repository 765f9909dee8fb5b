"""Peak memory of one call: the GPU allocator's peak on CUDA, sampled resident-memory growth on the CPU.

On the CPU torch has no allocator statistics, so the honest measure available is the growth of
the process's resident set (psutil) over the call, sampled every millisecond in a thread after
freed heap has been handed back to the OS (glibc malloc_trim). It includes allocator slack and
can miss a peak shorter than the sampling period; read it as an estimate.
"""
from __future__ import annotations

import ctypes
import gc
import threading
import time
from typing import Callable

import torch


def _trim() -> None:
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:  # not glibc
        pass


def method(device: torch.device) -> str:
    if device.type == "cuda":
        return "torch.cuda.max_memory_allocated − memory allocated before the call"
    return "CPU resident-set growth over the call (psutil, sampled every 1 ms, after malloc_trim)"


def peak_bytes(fn: Callable[[], object], device: torch.device) -> int | None:
    """Bytes the call needs above what was allocated before it (None when it cannot be measured)."""
    with torch.inference_mode():
        if device.type == "cuda":
            torch.cuda.synchronize(device)
            before = torch.cuda.memory_allocated(device)
            torch.cuda.reset_peak_memory_stats(device)
            fn()
            torch.cuda.synchronize(device)
            return torch.cuda.max_memory_allocated(device) - before
        try:
            import psutil
        except ImportError:
            return None
        proc = psutil.Process()
        _trim()
        before = proc.memory_info().rss
        peak = [before]
        done = threading.Event()

        def sample():
            while not done.is_set():
                peak[0] = max(peak[0], proc.memory_info().rss)
                time.sleep(0.001)
        watcher = threading.Thread(target=sample, daemon=True)
        watcher.start()
        try:
            out = fn()
        finally:
            done.set()
            watcher.join()
        peak[0] = max(peak[0], proc.memory_info().rss)
        del out
        return peak[0] - before
