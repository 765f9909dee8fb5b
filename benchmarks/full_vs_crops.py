"""What the full-frame benchmarks (InstantID's and InfiniteYou's way against RealisID's crops) share:
their command line and the rows of their table."""
from __future__ import annotations

import argparse
import json
import sys
import time

from . import host


def table_rows(results: dict) -> list[str]:
    """One markdown row per (picture, faces): both ways' medians with their forwards, and the ratio."""
    return [f"| {r['resolution']}×{r['resolution']} | {r['faces']} | {r['full_frame']['median_ms']:,.0f} ms "
            f"({r['full_forwards']}) | {r['crops']['median_ms']:,.0f} ms ({r['crop_forwards']}) | {r['ratio']:.2f}× |"
            for r in results["rows"]]


def main(argv, prog: str, doc: str, run, markdown, multiple: int, net: str) -> int:
    """`python -m benchmarks.<prog>`: parse, run(device, resolutions, faces, repeats, full, log), print the table."""
    p = argparse.ArgumentParser(prog=f"python -m benchmarks.{prog}", description=doc.split("\n\n")[0])
    p.add_argument("--device", choices=["cpu", "cuda"], default="cpu")
    p.add_argument("--resolutions", default="1024,1536", help="comma-separated picture sides in pixels")
    p.add_argument("--faces", default="1,4", help="comma-separated face counts")
    p.add_argument("--repeats", type=int, default=5, help="timed repeats per figure (≥ 5; median reported)")
    size = p.add_mutually_exclusive_group()
    size.add_argument("--full", action="store_true", help=f"full-size {net} even on the CPU")
    size.add_argument("--reduced", action="store_true", help=f"reduced {net} even on a GPU")
    p.add_argument("--json", help="write the raw timings here")
    a = p.parse_args(argv)
    if a.repeats < 5:
        p.error("--repeats must be at least 5")
    resolutions = tuple(int(v) for v in a.resolutions.split(",") if v.strip())
    if any(r % multiple for r in resolutions):
        p.error(f"--resolutions must be multiples of {multiple}")
    faces = tuple(int(v) for v in a.faces.split(",") if v.strip())
    start = time.perf_counter()

    def log(msg):
        print(f"[{time.perf_counter() - start:6.1f}s] {msg}", file=sys.stderr, flush=True)
    try:
        results = run(a.device, resolutions, faces, a.repeats, True if a.full else False if a.reduced else None, log)
    except host.HostNotFound as e:
        print(f"error: {e}", file=sys.stderr)
        return 2
    print(markdown(results))
    if a.json:
        with open(a.json, "w") as f:
            json.dump(results, f, indent=2, default=str)
        print(f"wrote {a.json}")
    return 0
