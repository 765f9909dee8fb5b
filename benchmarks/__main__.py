"""python -m benchmarks: measure what RealisID costs, print a table, optionally write JSON."""
from __future__ import annotations

import argparse
import logging
import sys
import time

from . import report
from .run import Options, run


def parse(argv=None) -> Options:
    p = argparse.ArgumentParser(prog="python -m benchmarks", description=__doc__)
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--resolution", type=int, default=256, help="picture side in pixels (latent = /8)")
    p.add_argument("--working-size", type=int, default=0,
                   help="local branch crop side in latent cells (0: the pack's default, 64 SD1.5 / 128 SDXL)")
    p.add_argument("--steps", type=int, default=2, help="sampling steps of each whole pass")
    p.add_argument("--faces", default="1,2,4,8", help="comma-separated face counts")
    p.add_argument("--repeats", type=int, default=3, help="timed repeats per figure (median reported)")
    p.add_argument("--json", help="write raw timings, ratios and environment here")
    p.add_argument("--sdxl", action="store_true", help="SDXL-size U-Net and ControlNet instead of SD1.5")
    p.add_argument("--toy", action="store_true", help="a toy SD1.5-shaped model (smoke runs only)")
    p.add_argument("--crop-counts", default="1,2,4,8",
                   help="crops per ControlNet forward to time and count memory for ('' to skip)")
    p.add_argument("--crops-only", action="store_true",
                   help="only the crops-per-forward measurement (no U-Net: SDXL fits in less memory)")
    p.add_argument("--no-memory", action="store_true")
    p.add_argument("--no-sharing", action="store_true")
    p.add_argument("--no-face-analysis", action="store_true")
    p.add_argument("--gpu-check", action="store_true",
                   help="the whole GPU check (benchmarks/gpu_check.py): every scenario at the real shapes, one JSON "
                        "(--json) and one Markdown section (--markdown); with --device cpu --toy a smoke run")
    p.add_argument("--markdown", help="with --gpu-check: write the Markdown section here")
    p.add_argument("--only", default="", help="with --gpu-check: comma-separated scenario names to run")
    a = p.parse_args(argv)
    if a.gpu_check:
        return a
    if a.resolution % 8:
        p.error("--resolution must be a multiple of 8")
    faces = tuple(int(f) for f in a.faces.split(",") if f.strip())
    if not faces or min(faces) < 1 or max(faces) > 8:
        p.error("--faces takes counts from 1 to 8")
    counts = tuple(int(c) for c in a.crop_counts.split(",") if c.strip())
    if counts and (min(counts) < 1 or list(counts) != sorted(set(counts))):
        p.error("--crop-counts takes increasing counts of at least 1")
    if a.crops_only and not counts:
        p.error("--crops-only needs --crop-counts")
    return Options(device=a.device, family="toy" if a.toy else "sdxl" if a.sdxl else "sd15",
                   resolution=a.resolution, working_size=a.working_size, steps=a.steps, faces=faces,
                   repeats=a.repeats, memory=not a.no_memory, sharing=not a.no_sharing,
                   face_analysis=not a.no_face_analysis, crop_counts=counts, crops_only=a.crops_only), a.json


def _gpu_check(a, log) -> int:
    from . import gpu_check
    from .host import HostNotFound
    only = tuple(n.strip() for n in a.only.split(",") if n.strip())
    unknown = set(only) - {s.name for s in gpu_check.SCENARIOS}
    if unknown:
        print(f"error: --only: no scenario {', '.join(sorted(unknown))} (there are "
              f"{', '.join(s.name for s in gpu_check.SCENARIOS)})", file=sys.stderr)
        return 2
    try:
        results = gpu_check.gpu_check(a.device, a.toy, a.repeats, only, log)
    except HostNotFound as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    gpu_check.write(results, a.json, a.markdown)
    print(gpu_check.markdown(results))
    failed = [name for name, entry in results["scenarios"].items() if "error" in entry]
    for name in failed:
        print(f"scenario {name} failed: {results['scenarios'][name]['error']}", file=sys.stderr)
    return 1 if failed else 0


def main(argv=None) -> int:
    parsed = parse(argv)
    logging.basicConfig(level=logging.WARNING)
    start = time.perf_counter()

    def log(msg):
        print(f"[{time.perf_counter() - start:6.1f}s] {msg}", file=sys.stderr, flush=True)
    if not isinstance(parsed, tuple):
        return _gpu_check(parsed, log)
    options, json_path = parsed
    try:
        results = run(options, log)
    except Exception as e:  # noqa: BLE001 — a clear one-line reason for the command line
        from .host import HostNotFound
        if isinstance(e, HostNotFound):
            print(f"error: {e}", file=sys.stderr)
            return 2
        raise
    rows = report.build_rows(results)
    s, env = results["settings"], results["environment"]
    if s.get("crops_only"):
        print(f"\n{s['family']} ControlNet, random weights, {env['device']}, working size {s['working_size']}, "
              f"{s['dtype']}, median of {s['repeats']}, torch {env['torch']}, {env['cpu_count']} CPUs\n")
        print(report.markdown(rows))
        if json_path:
            report.write_json(results, rows, json_path)
            print(f"wrote {json_path}")
        return 0
    print(f"\n{s['family']} random weights, {env['device']}{' (' + env['gpu'] + ')' if 'gpu' in env else ''}, "
          f"{s['resolution']}×{s['resolution']} px (latent {s['latent']}), working size {s['working_size']} "
          f"(hints {s['hint_pixels']} px), batch {s['batch']} (CFG), {s['dtype']}, median of {s['repeats']}, "
          f"torch {env['torch']}, {env['cpu_count']} CPUs\n")
    print(report.markdown(rows))
    if "memory" in results:
        print(f"\nmemory: {results['memory']['method']}")
    if json_path:
        report.write_json(results, rows, json_path)
        print(f"wrote {json_path}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
