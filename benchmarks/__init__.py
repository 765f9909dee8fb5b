"""What RealisID costs per step, per face, and against a per-face second pass.

`python -m benchmarks --help` from the repository root. Every figure is measured on
random-weight models in the real architectures (ComfyUI's own U-Net and ControlNet classes),
through the real code paths (ComfyUI's BaseModel.apply_model with control residuals, ComfyUI's
ControlNet control, the pack's LocalBranchControl), and reported as a ratio to a baseline
measured in the same run: machines are noisy, ratios much less so.

Modules, one job each: host (find and import ComfyUI and the pack), models (random-weight
models), timing (warm-up, repeats, median), memory (peak memory of one call), scenarios (the
measurements), sharing (one model copy, face analysis throughput), report (table, targets,
JSON), run (the whole benchmark), __main__ (the command line).
"""
