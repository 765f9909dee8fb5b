"""`python -m benchmarks --gpu-check`: what docs/performance.md lists as unmeasured, in one run on one GPU
(under 8 minutes on a current card), written as one JSON and one Markdown section the docs take as is.

Scenarios, each one entry of SCENARIOS (a new family, e.g. FLUX, is one more entry):
- sd15_local: SD1.5 at working size 64, float16, picture 512²: crops per ControlNet forward, the local
  branch batched against one face at a time and against its compute floor (its ControlNet forward alone,
  glue excluded), RealisID pass vs detailer route, peak memory (benchmarks.run);
- sdxl_crops: SDXL's ControlNet at working size 128, float16: crops per forward (benchmarks.crops);
- crop_memory: memory per crop measured by the device's allocator against the counted figure the pack
  budgets with (realisid_core.branches.budget.activation_bytes_per_crop), SD1.5 at 64 and SDXL at 128;
- instantid: IdentityNet on the full frame (InstantID's way) vs on the crops, 1024² and 1536²
  (benchmarks.instantid);
- training: seconds and memory per training step at the real shapes, via realisid_train (benchmarks.training).

`--device cpu --toy` runs every scenario end to end on toy shapes in about a minute (the test suite
does, so the check works the day a GPU comes); its numbers mean nothing.
"""
from __future__ import annotations

import json
import time
from dataclasses import dataclass
from typing import Callable

import torch

from . import crops, instantid, memory, models, report, run, training
from .host import import_host, pack_module


@dataclass(frozen=True)
class Check:
    device: torch.device
    toy: bool
    repeats: int
    log: Callable[[str], None]

    @property
    def dtype(self) -> torch.dtype:
        return torch.float16 if self.device.type == "cuda" else torch.float32

    def family(self, name: str) -> models.Family:
        return models.FAMILIES["toy" if self.toy else name]

    def size(self, name: str) -> int:
        return self.family(name).working_size


@dataclass(frozen=True)
class Scenario:
    name: str
    title: str
    measure: Callable[[Check], dict]
    markdown: Callable[[dict], str]


def _sd15_local(check: Check) -> dict:
    options = run.Options(device=check.device.type, family="toy" if check.toy else "sd15",
                          resolution=64 if check.toy else 512, working_size=0, steps=1,
                          faces=(1,) if check.toy else (1, 4), repeats=check.repeats, memory=True, sharing=False,
                          face_analysis=False, crop_counts=(1, 2) if check.toy else (1, 2, 4, 8))
    return run.run(options, check.log)


def _floor_rows(results: dict) -> list[str]:
    lines = []
    for faces, local in sorted(results["per_step"]["local"].items(), key=lambda kv: int(kv[0])):
        share = local["glue"]["share"]
        lines.append(f"| local branch, F={faces}, against its compute floor (its ControlNet forward of "
                     f"{2 * int(faces)} crops alone) | {1 / max(1e-9, 1 - share):.2f}× |")
    return lines


def _sd15_markdown(results: dict) -> str:
    s = results["settings"]
    head = (f"{s['family']}, {s['resolution']}² px, working size {s['working_size']}, {s['dtype']}, "
            f"batch {s['batch']} (CFG), median of {s['repeats']}")
    floor = ["", "| Measurement | Ratio |", "|---|---:|"] + _floor_rows(results)
    return head + "\n\n" + report.markdown(report.build_rows(results)) + "\n" + "\n".join(floor)


def _sdxl_crops(check: Check) -> dict:
    family = check.family("sdxl")
    return crops.crop_scaling(family, check.device, check.dtype, check.size("sdxl"), [1, 2] if check.toy else [1, 2, 4],
                              check.repeats, log=check.log)


def _sdxl_markdown(result: dict) -> str:
    return (f"{result['family']} ControlNet, working size {result['working_size']}, {result['dtype']}\n\n"
            + report.markdown(report.crop_rows(result, result.get("device", "")) ))


def _crop_memory(check: Check) -> dict:
    budget = pack_module("realisid_core.branches.budget")
    out = {"method": memory.method(check.device), "rows": []}
    for name, family_name in (("sd15", "SD1.5"), ("sdxl", "SDXL")):
        family, size = check.family(name), check.size(name)
        check.log(f"memory per crop: {family.name} at working size {size}")
        module = models.build_controlnet(family, check.device, check.dtype).control_model
        counts = [1, 2] if check.toy else [1, 2, 4]
        peaks = {}
        for k in counts:
            inputs = crops.forward_inputs(family, k, size, check.device, check.dtype)
            with torch.inference_mode():
                module(**inputs)  # warm: lazy allocations and kernels chosen
            peaks[k] = memory.peak_bytes(lambda: module(**inputs), check.device)
            del inputs
        del module
        if any(v is None for v in peaks.values()):
            out["rows"].append({"family": family.name, "working_size": size, "status": "not measured (no psutil)"})
            continue
        per_crop, fixed = crops._fit(counts, [peaks[k] for k in counts])
        itemsize = torch.empty((), dtype=check.dtype).element_size()
        counted = budget.activation_bytes_per_crop(check.device.type, family_name, size, itemsize,
                                                   family.unet_config["model_channels"])
        out["rows"].append({"family": family.name, "working_size": size, "peak_bytes": peaks,
                            "measured_bytes_per_crop": per_crop, "fixed_bytes": fixed,
                            "counted_bytes_per_crop": counted, "measured_over_counted": per_crop / max(counted, 1)})
    return out


def _crop_memory_markdown(result: dict) -> str:
    lines = [f"Memory: {result['method']}", "",
             "| ControlNet | working size | measured per crop (MiB) | counted by the budget (MiB) | measured / counted |",
             "|---|---:|---:|---:|---:|"]
    for r in result["rows"]:
        if "status" in r:
            lines.append(f"| {r['family']} | {r['working_size']} | {r['status']} | | |")
            continue
        lines.append(f"| {r['family']} | {r['working_size']} | {r['measured_bytes_per_crop'] / 2**20:,.1f} | "
                     f"{r['counted_bytes_per_crop'] / 2**20:,.1f} | {r['measured_over_counted']:.2f}× |")
    return "\n".join(lines)


def _instantid(check: Check) -> dict:
    return instantid.run(check.device.type, (128,) if check.toy else (1024, 1536), (1,) if check.toy else (1, 4),
                         max(5, check.repeats), None, check.log, 16 if check.toy else 128)


def _training(check: Check) -> dict:
    return training.train_steps(check.device, check.toy, steps=2 if check.toy else 3, log=check.log)


def _training_markdown(r: dict) -> str:
    lines = [f"{r['family']}, {r['resolution']}² px, working size {r['working_size']}, batch {r['batch_size']}, "
             f"{r['dtype']} autocast, gradient checkpointing, local + global branches and projector "
             f"({r['trained_parameters_M']:.0f} M trained), median of {r['steps']} steps after one", "",
             "| Measurement | measured | counted (realisid_train.estimate) |", "|---|---:|---:|",
             f"| seconds per step | {r['seconds_per_step']:.3f} | "
             + (f"{min(r['counted']['seconds_per_step_H100']):.3f}–{max(r['counted']['seconds_per_step_H100']):.3f} "
                "(H100, 15–35 % of its bf16 peak)"
                if r.get("counted") else "") + " |"]
    if "peak_memory_GiB" in r:
        lines.append(f"| peak memory (GiB) | {r['peak_memory_GiB']:.2f} | "
                     + (f"{r['counted']['memory_total_GiB']:.2f}" if r.get("counted") else "") + " |")
    return "\n".join(lines)


SCENARIOS = (
    Scenario("sd15_local", "SD1.5 local branch at working size 64", _sd15_local, _sd15_markdown),
    Scenario("sdxl_crops", "SDXL crops per ControlNet forward at working size 128", _sdxl_crops, _sdxl_markdown),
    Scenario("crop_memory", "Memory per crop, measured against counted", _crop_memory, _crop_memory_markdown),
    Scenario("instantid", "InstantID: IdentityNet on the full frame vs on the crops", _instantid, instantid.markdown),
    Scenario("training", "Training step at the real shapes", _training, _training_markdown),
)


def gpu_check(device: str, toy: bool, repeats: int, only: tuple[str, ...] = (), log=lambda msg: None) -> dict:
    """Every scenario (or those named in `only`); a scenario that fails is recorded with its error, the rest run."""
    import_host(device)
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise RuntimeError("--device cuda asked for, but torch sees no CUDA device")
    check = Check(dev, toy, repeats, log)
    env = run.environment(dev)
    results = {"environment": env, "toy": toy, "scenarios": {}}
    for scenario in SCENARIOS:
        if only and scenario.name not in only:
            continue
        log(f"== {scenario.name}: {scenario.title}")
        start = time.perf_counter()
        try:
            measured = scenario.measure(check)
            entry = {"title": scenario.title, "result": measured, "markdown": scenario.markdown(measured)}
        except Exception as exc:  # noqa: BLE001 — one broken scenario must not cost the others' figures
            entry = {"title": scenario.title, "error": f"{type(exc).__name__}: {exc}"}
        entry["seconds"] = time.perf_counter() - start
        results["scenarios"][scenario.name] = entry
        if dev.type == "cuda":
            torch.cuda.empty_cache()
    return results


def markdown(results: dict) -> str:
    """The section docs/performance.md takes as is."""
    env = results["environment"]
    where = env.get("gpu", env["device"])
    lines = [f"## GPU check ({where})", "",
             f"`python -m benchmarks --gpu-check --device {env['device'].split(':')[0]}"
             f"{' --toy' if results['toy'] else ''}` — torch {env['torch']}"
             f"{', ComfyUI ' + env['comfyui'] if 'comfyui' in env else ''}, random weights in the real shapes"
             + (" (TOY shapes: a smoke run, not figures)" if results["toy"] else "") + ".", ""]
    for name, entry in results["scenarios"].items():
        lines += [f"### {entry['title']}", ""]
        lines += [f"Failed: `{entry['error']}`" if "error" in entry else entry["markdown"], "",
                  f"({entry['seconds']:.0f} s)", ""]
    return "\n".join(lines)


def write(results: dict, json_path: str | None, markdown_path: str | None) -> None:
    if json_path:
        with open(json_path, "w") as f:
            json.dump(dict(results, markdown=markdown(results)), f, indent=2, default=str)
    if markdown_path:
        with open(markdown_path, "w") as f:
            f.write(markdown(results))
