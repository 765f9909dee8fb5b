"""The people file: for each picture, the people meant to be in it.

JSONL, one picture a line:

    {"picture": "ada-beach", "people": [
        {"name": "ada", "reference": "photos/ada.jpg", "box": [412, 160, 476, 224], "pose": "poses/left.jpg"},
        {"name": "bo", "reference": "photos/bo.jpg", "location": "0.72 0.62 0.2", "held_out": "photos/bo-2.jpg"}]}

`picture` is a job id of a batch run (or a file name in the run's folder); `reference` the
person's identity photo (its largest face); `box` the intended face box in pixels (x0, y0, x1,
y1), or `location` in the pack's text form (`cx cy size`, size a fraction of the shorter side,
or `cx cy w h`); `pose` (optional) the picture whose largest face drove pose and expression;
`held_out` (optional) another photo of the person, never shown to the generator (MultiID-Bench's
ground truth: similarity to it, and the copy-paste score, need it).
Paths are relative to the people file.
"""
from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

from ..errors import BatchError


@dataclass(frozen=True)
class Person:
    name: str
    reference: Path
    box: tuple | None = None
    location: tuple | None = None  # (cx, cy, size) or (cx, cy, w, h), fractions of the picture
    pose: Path | None = None
    held_out: Path | None = None

    def intended_box(self, width: int, height: int) -> tuple | None:
        """The intended face box in pixels of a `width`×`height` picture."""
        if self.box is not None:
            return self.box
        if self.location is None:
            return None
        if len(self.location) == 3:
            cx, cy, size = self.location
            w = h = size * min(width, height)
        else:
            cx, cy, fw, fh = self.location
            w, h = fw * width, fh * height
        return (cx * width - w / 2, cy * height - h / 2, cx * width + w / 2, cy * height + h / 2)


@dataclass(frozen=True)
class PictureSpec:
    picture: str
    people: tuple[Person, ...]


def _numbers(value, where: str, counts: tuple[int, ...]) -> tuple:
    if isinstance(value, str):
        value = value.split("#", 1)[0].replace(",", " ").split()
    try:
        numbers = tuple(float(v) for v in value)
    except (TypeError, ValueError):
        raise BatchError(f"{where}: {value!r} is not a list of numbers") from None
    if len(numbers) not in counts:
        raise BatchError(f"{where}: give {' or '.join(map(str, counts))} numbers, not {len(numbers)}")
    return numbers


def read_people(path: str | Path) -> list[PictureSpec]:
    path = Path(path)
    if not path.is_file():
        raise BatchError(f"people file {path} does not exist")
    base = path.parent
    specs = []
    for line_no, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip():
            continue
        where = f"{path.name} line {line_no}"
        try:
            record = json.loads(line)
        except ValueError as exc:
            raise BatchError(f"{where}: not valid JSON ({exc})") from None
        if not isinstance(record, dict) or "picture" not in record or not isinstance(record.get("people"), list):
            raise BatchError(f'{where}: expected {{"picture": …, "people": [{{"name", "reference", "box" or "location", "pose"}}]}}')
        people = []
        for k, p in enumerate(record["people"], 1):
            here = f"{where}, person {k}"
            if not isinstance(p, dict) or not p.get("reference"):
                raise BatchError(f"{here}: each person needs a 'reference' photo")
            box = _numbers(p["box"], f"{here} box", (4,)) if p.get("box") is not None else None
            loc = _numbers(p["location"], f"{here} location", (3, 4)) if p.get("location") is not None else None
            people.append(Person(str(p.get("name") or f"person {k}"), base / p["reference"], box, loc,
                                 base / p["pose"] if p.get("pose") else None,
                                 base / p["held_out"] if p.get("held_out") else None))
        names = [p.name for p in people]
        if len(set(names)) != len(names):
            raise BatchError(f"{where}: people of one picture need different names ({', '.join(names)})")
        specs.append(PictureSpec(str(record["picture"]), tuple(people)))
    if not specs:
        raise BatchError(f"people file {path} lists no pictures")
    return specs
