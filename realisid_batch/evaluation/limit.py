"""The limit of measurement: at which face size the recogniser still finds and recognises a person.

A real photo's face is shrunk (the whole photo scaled so the face's side, the square root of its
box area, becomes N px), put at the centre of a grey canvas (at least 640 px, four face sides),
and analysed again: was a face
found where the shrunk face is (IoU ≥ 0.3), and how like the face at its original size is it
(self-similarity, in the recogniser's similarity)? Sizes above the photo's own face are up-scaled
from it, so they measure the recogniser on an up-scaled face, not on more detail.

The evaluation asks the same question of each person's reference for each face: the reference
shrunk to the intended box and put there in a picture of the same size. Where even the
reference is not found or not recognised there, the face's identity is *not measurable* at that
size (reported as such, never as a wrong identity).
"""
from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from . import metrics

SIZES = (16, 24, 32, 48, 64, 96, 128, 256)
FOUND_IOU = 0.3
GREY = 128


def place(bgr: np.ndarray, box, target, width: int, height: int, onto: np.ndarray | None = None) -> tuple[np.ndarray, tuple]:
    """The photo scaled (Lanczos) so its face `box` becomes the size of the `target` box and put on a grey
    `width`×`height` canvas (or over a copy of `onto`) with the face's centre on the target's: the canvas
    and the face's box on it."""
    from PIL import Image
    scale = metrics.face_side(target) / metrics.face_side(box)
    h, w = bgr.shape[:2]
    nw, nh = max(1, round(w * scale)), max(1, round(h * scale))
    scaled = np.asarray(Image.fromarray(np.ascontiguousarray(bgr)).resize((nw, nh), Image.LANCZOS))
    sx, sy = nw / w, nh / h
    x0, y0, x1, y1 = (float(v) for v in box)
    ox = int(round((target[0] + target[2]) / 2 - (x0 + x1) / 2 * sx))
    oy = int(round((target[1] + target[3]) / 2 - (y0 + y1) / 2 * sy))
    canvas = np.full((height, width, 3), GREY, np.uint8) if onto is None else onto.copy()
    ya, yb, xa, xb = max(0, oy), min(height, oy + nh), max(0, ox), min(width, ox + nw)
    if ya < yb and xa < xb:
        canvas[ya:yb, xa:xb] = scaled[ya - oy:yb - oy, xa - ox:xb - ox]
    return canvas, (x0 * sx + ox, y0 * sy + oy, x1 * sx + ox, y1 * sy + oy)


def window(side: float) -> tuple[tuple, int]:
    """A face box of `side` at the centre of a square canvas with room around it (≥ 640 px, a multiple of 64)."""
    canvas = int(64 * math.ceil(max(640, 4 * side) / 64))
    c = canvas / 2
    return (c - side / 2, c - side / 2, c + side / 2, c + side / 2), canvas


@dataclass(frozen=True)
class Probe:
    side: int
    found: bool
    self_similarity: float | None
    recognised: bool | None  # self-similarity at or above the recogniser's same-person threshold (None: it has none)

    @property
    def measurable(self) -> bool:
        return self.found and self.recognised is not False

    def as_dict(self) -> dict:
        return {"side": self.side, "found": self.found, "recognised": self.recognised,
                "self_similarity": None if self.self_similarity is None else round(self.self_similarity, 4)}


def probe(reader, bgr: np.ndarray, face, side: int, target=None, size: tuple[int, int] | None = None) -> Probe:
    """Shrink `face` of the photo to `side` px, at `target` in a picture of `size` (width, height) — by
    default alone at the centre of a window — and look for it again with the same reader."""
    if target is None:
        target, canvas_side = window(side)
        size = (canvas_side, canvas_side)
    canvas, expected = place(bgr, face.box, target, *size)
    found = reader.analyse(canvas)
    overlaps = [metrics.iou(expected, f.box) for f in found]
    if not overlaps or max(overlaps) < FOUND_IOU:
        return Probe(side, False, None, None)
    seen = found[int(np.argmax(overlaps))]
    value = reader.similarity(seen.embedding, face.embedding)
    threshold = reader.describe().get("same_person_threshold")
    return Probe(side, True, value, None if threshold is None else value >= threshold)


def limit_table(reader, photos: dict[str, np.ndarray], sizes=SIZES) -> dict:
    """Every face of every photo (scoring at least the reader's confident_score) shrunk to every size: per
    face and size the probe, per size the detection rate, the recognised rate and the self-similarity's
    mean and minimum."""
    faces, rows = [], []
    for name, bgr in photos.items():
        found = sorted((f for f in reader.analyse(bgr) if f.score >= reader.confident_score), key=lambda f: float(f.box[0]))
        for k, face in enumerate(found, 1):
            probes = [probe(reader, bgr, face, side) for side in sizes]
            faces.append({"photo": name, "face": k, "original_side": round(metrics.face_side(face.box), 1),
                          "probes": [p.as_dict() for p in probes]})
    for i, side in enumerate(sizes):
        at = [f["probes"][i] for f in faces]
        values = [p["self_similarity"] for p in at if p["self_similarity"] is not None]
        judged = [p for p in at if p["recognised"] is not None]
        rows.append({"side": side, "faces": len(at), "found": sum(p["found"] for p in at),
                     "detection_rate": sum(p["found"] for p in at) / len(at) if at else None,
                     "recognised_rate": sum(bool(p["recognised"]) for p in judged) / len(at) if judged else None,
                     "self_similarity_mean": metrics.mean(values), "self_similarity_min": min(values) if values else None,
                     "upscaled": sum(side > f["original_side"] for f in faces)})
    return {"recogniser": reader.describe(), "sizes": list(sizes), "faces": faces, "rows": rows}


def markdown(table: dict) -> str:
    rec = table["recogniser"]
    threshold = rec.get("same_person_threshold")
    lines = [f"Recogniser: **{rec['name']}** ({rec['file']}), detector: {rec['detector']}; similarity: "
             f"{rec['similarity']}. {len(table['faces'])} faces.", "",
             "| face side (px) | found | detection rate | recognised" + (f" (≥ {threshold:g})" if threshold is not None else "")
             + " | self-similarity mean | self-similarity min | faces up-scaled |", "|---:|---:|---:|---:|---:|---:|---:|"]

    def num(v, fmt="{:.3f}"):
        return "—" if v is None else fmt.format(v)
    for r in table["rows"]:
        lines.append(f"| {r['side']} | {r['found']} / {r['faces']} | {num(r['detection_rate'], '{:.0%}')} | "
                     f"{num(r['recognised_rate'], '{:.0%}')} | {num(r['self_similarity_mean'])} | "
                     f"{num(r['self_similarity_min'])} | {r['upscaled']} |")
    return "\n".join(lines)
