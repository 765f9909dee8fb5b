"""The PNG plot (drawn with Pillow, no plotting library), one colour per run:

- top: identity similarity against face size. x: face side in pixels, log scale, the bucket edges
  dashed; dots: every found face (crosses: found but not measurable at that size); line: each
  bucket's mean, at the mean side of its faces. A run where no face was found says so in its colour.
- bottom: the detection rate per bucket, one bar per run, its count written above it; a rate of 0
  is a visible bar at the axis, "n.m." counts the faces not measurable at that size, a bucket with no
  intended faces says "no faces".
"""
from __future__ import annotations

import math
from pathlib import Path

from . import metrics

COLOURS = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14), (23, 190, 207))
SIZE = (900, 860)
MARGIN = (100, 50, 190, 70)  # left, top, right, bottom of the identity panel
RATE_PANEL = (590, 790)  # top and bottom of the detection-rate panel
GREY = (110, 110, 110)


def _font(size: int):
    from PIL import ImageFont
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _faces(run: dict) -> list[dict]:
    return [f for p in run["pictures"] for f in p["faces"]]


def _points(run: dict) -> tuple[list, list, list]:
    """(measured dots, not-measurable dots, bucket means of the measured) as (side, identity) pairs."""
    found = [f for f in _faces(run) if f["found"] and f["face_side"] and f["identity"] is not None]
    measured = [f for f in found if f["measurable"] is not False]
    line = []
    for name, _ in metrics.BUCKETS:
        group = [f for f in measured if f["bucket"] == name]
        if group:
            line.append((metrics.mean(f["face_side"] for f in group), metrics.mean(f["identity"] for f in group)))
    return ([(f["face_side"], f["identity"]) for f in measured],
            [(f["face_side"], f["identity"]) for f in found if f["measurable"] is False], line)


def _detection_panel(draw, runs: dict, left: int, x1: int, fonts) -> None:
    small, normal = fonts
    top, y1 = RATE_PANEL
    draw.rectangle([left, top, x1, y1], outline="black")
    draw.text((left, top - 24), "detection rate per face-size bucket (found / intended faces)", fill="black", font=normal)
    full = y1 - top - 20  # 100 %, with room above for the counts
    for k in range(0, 11, 2):
        y = y1 - k / 10 * full
        draw.line([left - 5, y, left, y], fill="black")
        draw.text((left - 8, y), f"{10 * k}%", fill="black", font=small, anchor="rm")
    buckets = [name for name, _ in metrics.BUCKETS]
    slot = (x1 - left) / len(buckets)
    bar = min(40.0, 0.8 * slot / max(1, len(runs)))
    for b, name in enumerate(buckets):
        centre = left + (b + 0.5) * slot
        draw.text((centre, y1 + 8), f"{name} px", fill="black", font=small, anchor="mt")
        if not any(run["summary"][name]["faces"] for run in runs.values()):
            draw.text((centre, y1 - 14), "no faces", fill=GREY, font=small, anchor="mb")
            continue
        for r, run in enumerate(runs.values()):
            s = run["summary"][name]
            x0 = centre - bar * len(runs) / 2 + r * bar
            colour = COLOURS[r % len(COLOURS)]
            if not s["faces"]:
                draw.text((x0 + bar / 2, y1 - 4), "-", fill=GREY, font=small, anchor="mb")
                continue
            height = max(3.0, s["found_rate"] * full)  # 0 % stays visible
            draw.rectangle([x0 + 2, y1 - height, x0 + bar - 2, y1], fill=colour)
            label = f"{s['found']}/{s['faces']}"
            if s["not_measurable"]:  # the recogniser cannot see these at that size: say so beside the rate
                draw.text((x0 + bar / 2, y1 - height - 17), f"{s['not_measurable']} n.m.", fill=GREY, font=small,
                          anchor="mb")
            draw.text((x0 + bar / 2, y1 - height - 3), label, fill="black", font=small, anchor="mb")


def plot(runs: dict[str, dict], path: Path, recogniser: dict | str) -> Path:
    from PIL import Image, ImageDraw
    name_of = recogniser if isinstance(recogniser, str) else f"{recogniser['name']}, {recogniser['file']}"
    image = Image.new("RGB", SIZE, "white")
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = MARGIN
    x1, y1 = SIZE[0] - right, RATE_PANEL[0] - bottom - 30
    series = {name: _points(run) for name, run in runs.items()}
    sides = [s for dots, crosses, _ in series.values() for s, _ in dots + crosses]
    values = [v for dots, crosses, _ in series.values() for _, v in dots + crosses]
    lo_side = min([16.0] + [s / 1.2 for s in sides])
    hi_side = max([512.0] + [s * 1.2 for s in sides])
    lo_val = min([0.0] + [math.floor(v * 10) / 10 for v in values])

    def px(side, value):
        x = left + (math.log(side) - math.log(lo_side)) / (math.log(hi_side) - math.log(lo_side)) * (x1 - left)
        y = y1 - (value - lo_val) / (1.0 - lo_val) * (y1 - top)
        return x, y
    small, normal = _font(12), _font(15)
    draw.rectangle([left, top, x1, y1], outline="black")
    for tick in (16, 24, 32, 48, 64, 96, 128, 192, 256, 384, 512, 768, 1024):
        if lo_side <= tick <= hi_side:
            x, _ = px(tick, lo_val)
            draw.line([x, y1, x, y1 + 5], fill="black")
            draw.text((x, y1 + 8), str(tick), fill="black", font=small, anchor="mt")
    for edge in (48, 96, 192):
        x, _ = px(edge, lo_val)
        for y in range(top, int(y1), 8):
            draw.line([x, y, x, min(y + 4, y1)], fill=(150, 150, 150))
    for (name, upper), lower in zip(metrics.BUCKETS, (lo_side, 48, 96, 192)):
        mid = math.sqrt(max(lower, lo_side) * min(upper, hi_side))
        draw.text((px(mid, lo_val)[0], top + 6), f"{name} px", fill=GREY, font=small, anchor="mt")
    steps = int(round((1.0 - lo_val) / 0.1))
    for k in range(steps + 1):
        v = lo_val + k * 0.1
        _, y = px(lo_side, v)
        draw.line([left - 5, y, left, y], fill="black")
        draw.text((left - 8, y), f"{v:.1f}", fill="black", font=small, anchor="rm")
    draw.text(((left + x1) / 2, y1 + 30), "face side (pixels, log scale)", fill="black", font=normal, anchor="mt")
    draw.text((left, 12), f"identity similarity vs face size (recogniser: {name_of})", fill="black", font=normal)
    draw.text((12, (top + y1) / 2), "similarity", fill="black", font=normal, anchor="lm")
    empty = 0
    for k, (name, (dots, crosses, line)) in enumerate(series.items()):
        colour = COLOURS[k % len(COLOURS)]
        for side, value in dots:
            x, y = px(side, value)
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], outline=colour)
        for side, value in crosses:
            x, y = px(side, value)
            draw.line([x - 4, y - 4, x + 4, y + 4], fill=colour, width=2)
            draw.line([x - 4, y + 4, x + 4, y - 4], fill=colour, width=2)
        points = [px(s, v) for s, v in line]
        if len(points) > 1:
            draw.line(points, fill=colour, width=3)
        for x, y in points:
            draw.ellipse([x - 5, y - 5, x + 5, y + 5], fill=colour)
        summary = runs[name]["summary"]["all"]
        if not dots and not crosses:  # nothing to draw: say so, in the run's colour, inside the panel
            draw.text(((left + x1) / 2, (top + y1) / 2 + 24 * empty), f"{name}: no face found "
                      f"({summary['found']} of {summary['faces']})", fill=colour, font=normal, anchor="mm")
            empty += 1
        ly = top + 10 + 24 * k
        draw.line([x1 + 15, ly, x1 + 45, ly], fill=colour, width=3)
        draw.text((x1 + 52, ly), name[:18], fill="black", font=normal, anchor="lm")
    _detection_panel(draw, runs, left, x1, (small, normal))
    image.save(path)
    return path
