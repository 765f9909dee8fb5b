"""The PNG plot: identity similarity against face size, one line per run (drawn with Pillow, no plotting library).

x: face side in pixels, log scale, with the bucket edges dashed; dots: every found face;
line: each bucket's mean, placed at the mean side of its faces.
"""
from __future__ import annotations

import math
from pathlib import Path

from . import metrics

COLOURS = ((31, 119, 180), (214, 39, 40), (44, 160, 44), (148, 103, 189), (255, 127, 14), (23, 190, 207))
SIZE = (900, 560)
MARGIN = (100, 50, 190, 70)  # left, top, right, bottom


def _font(size: int):
    from PIL import ImageFont
    try:
        return ImageFont.load_default(size=size)
    except TypeError:  # Pillow < 10.1
        return ImageFont.load_default()


def _points(run: dict) -> tuple[list, list]:
    faces = [f for p in run["pictures"] for f in p["faces"] if f["found"] and f["face_side"] and f["identity"] is not None]
    dots = [(f["face_side"], f["identity"]) for f in faces]
    line = []
    for name, _ in metrics.BUCKETS:
        group = [f for f in faces if f["bucket"] == name]
        if group:
            line.append((metrics.mean(f["face_side"] for f in group), metrics.mean(f["identity"] for f in group)))
    return dots, line


def plot(runs: dict[str, dict], path: Path, recogniser: str) -> Path:
    from PIL import Image, ImageDraw
    image = Image.new("RGB", SIZE, "white")
    draw = ImageDraw.Draw(image)
    left, top, right, bottom = MARGIN
    x1, y1 = SIZE[0] - right, SIZE[1] - bottom
    series = {name: _points(run) for name, run in runs.items()}
    sides = [s for dots, _ in series.values() for s, _ in dots]
    values = [v for dots, _ in series.values() for _, v in dots]
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
        for y in range(top, y1, 8):
            draw.line([x, y, x, min(y + 4, y1)], fill=(150, 150, 150))
    for (name, upper), lower in zip(metrics.BUCKETS, (lo_side, 48, 96, 192)):
        mid = math.sqrt(max(lower, lo_side) * min(upper, hi_side))
        draw.text((px(mid, lo_val)[0], top + 6), f"{name} px", fill=(110, 110, 110), font=small, anchor="mt")
    steps = int(round((1.0 - lo_val) / 0.1))
    for k in range(steps + 1):
        v = lo_val + k * 0.1
        _, y = px(lo_side, v)
        draw.line([left - 5, y, left, y], fill="black")
        draw.text((left - 8, y), f"{v:.1f}", fill="black", font=small, anchor="rm")
    draw.text(((left + x1) / 2, y1 + 30), "face side (pixels, log scale)", fill="black", font=normal, anchor="mt")
    draw.text((left, 12), f"identity similarity vs face size (recogniser: {recogniser})", fill="black", font=normal)
    draw.text((12, (top + y1) / 2), "cosine", fill="black", font=normal, anchor="lm")
    for k, (name, (dots, line)) in enumerate(series.items()):
        colour = COLOURS[k % len(COLOURS)]
        for side, value in dots:
            x, y = px(side, value)
            draw.ellipse([x - 3, y - 3, x + 3, y + 3], outline=colour)
        points = [px(s, v) for s, v in line]
        if len(points) > 1:
            draw.line(points, fill=colour, width=3)
        for x, y in points:
            draw.ellipse([x - 5, y - 5, x + 5, y + 5], fill=colour)
        ly = top + 10 + 24 * k
        draw.line([x1 + 15, ly, x1 + 45, ly], fill=colour, width=3)
        draw.text((x1 + 52, ly), name[:18], fill="black", font=normal, anchor="lm")
    image.save(path)
    return path
