"""Detected faces (the FACES type) and how a node picks among them.

Reading order. Wherever the pack numbers faces or mask regions (person 1, person 2, …), it
counts them in one stated, stable order: left to right by the centre of the box; boxes whose
centres lie within COLUMN_TOLERANCE × the narrower box's width of the leftmost box of a
column are one column, counted top to bottom. The order depends only on the boxes, never on
the order a detector returned them in. People and photos are numbered from 1 in messages
and previews ("person 2", "photo 1 of 3"); a node's `index` input stays 0-based (index 0 is
face 1).
"""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from ..errors import RealisIDInputError

SELECTIONS = ("all, left to right", "largest", "by index")
COLUMN_TOLERANCE = 0.25  # centres closer than this × the narrower box's width: one column, read top to bottom


@dataclass(frozen=True)
class DetectedFace:
    """One face found in one picture; coordinates in that picture's pixels.

    box (x0, y0, x1, y1); keypoints [5, 2] (eyes, nose, mouth corners as the subject's
    right then left); landmarks_2d_106 [106, 2] and landmarks_3d_68 [68, 3] (iBUG order, z in
    pixels) where the pack has the model; pose (pitch, yaw, roll) in degrees from the 3-D
    landmarks; embedding [512] L2-normalised and embedding_norm the raw recogniser output's
    length (InstantID's projector takes the raw vector); pack: the insightface pack that found it.
    """

    image_index: int
    image_width: int
    image_height: int
    box: np.ndarray
    score: float
    keypoints: np.ndarray
    landmarks_2d_106: np.ndarray | None = None
    landmarks_3d_68: np.ndarray | None = None
    pose: np.ndarray | None = None
    embedding: np.ndarray | None = None
    embedding_norm: float | None = None
    pack: str | None = None

    @property
    def area(self) -> float:
        x0, y0, x1, y1 = (float(v) for v in self.box)
        return max(0.0, x1 - x0) * max(0.0, y1 - y0)

    @property
    def centre_x(self) -> float:
        return float(self.box[0] + self.box[2]) / 2

    @property
    def centre_y(self) -> float:
        return float(self.box[1] + self.box[3]) / 2

    @property
    def width(self) -> float:
        return max(0.0, float(self.box[2] - self.box[0]))


@dataclass(frozen=True)
class Faces:
    """Faces of a batch of pictures, grouped by picture and in reading order within each."""

    faces: tuple[DetectedFace, ...]
    image_sizes: tuple[tuple[int, int], ...] = field(default=())  # (width, height) per picture

    @property
    def count(self) -> int:
        return len(self.faces)

    def in_image(self, index: int) -> list[DetectedFace]:
        return [f for f in self.faces if f.image_index == index]


def reading_order(centres_x, centres_y, widths, tolerance: float = COLUMN_TOLERANCE) -> list[int]:
    """Indices of boxes in reading order (see the module doc): columns left to right, each top to bottom.

    Boxes are taken left to right by centre x; a box joins the current column when its centre
    is within `tolerance` × min(its width, the column's first box's width) of that first box's
    centre, else it starts the next column. Exact ties fall back to y, then to input order.
    """
    cx, cy, w = ([float(v) for v in seq] for seq in (centres_x, centres_y, widths))
    order, columns, column = sorted(range(len(cx)), key=lambda i: (cx[i], cy[i], i)), [], []
    for i in order:
        if column and cx[i] - cx[column[0]] > tolerance * min(w[column[0]], w[i]):
            columns.append(column)
            column = []
        column.append(i)
    if column:
        columns.append(column)
    return [i for col in columns for i in sorted(col, key=lambda j: (cy[j], cx[j], j))]


def left_to_right(faces: list[DetectedFace]) -> list[DetectedFace]:
    """Faces grouped by picture (first picture first), each picture's faces in reading order."""
    out = []
    for image in sorted({f.image_index for f in faces}):
        mine = [f for f in faces if f.image_index == image]
        out += [mine[i] for i in reading_order([f.centre_x for f in mine], [f.centre_y for f in mine],
                                               [f.width for f in mine])]
    return out


def photo_name(index: int, count: int | None = None) -> str:
    """A 0-based picture index as users count photos: 'photo 2 of 3' (or 'photo 2')."""
    return f"photo {index + 1}" + (f" of {count}" if count else "")


def select_faces(faces_per_image: list[list[DetectedFace]], selection: str, index: int,
                 input_name: str = "selection") -> list[DetectedFace]:
    """Pick faces picture by picture: every face in reading order, the largest one, or face `index` + 1 in
    reading order (`index` is 0-based: 0 is the first face, left to right, a column top to bottom).

    Raises a RealisIDInputError naming the photo (counted from 1) and how many faces it has.
    """
    if selection not in SELECTIONS:
        raise RealisIDInputError(input_name=input_name,
                                 problem=f"unknown selection '{selection}'",
                                 fix=f"choose one of {', '.join(SELECTIONS)}")
    picked = []
    photos = len(faces_per_image)
    for image_index, found in enumerate(faces_per_image):
        ordered = left_to_right(found)
        if not ordered:
            continue
        if selection == SELECTIONS[0]:
            picked += ordered
        elif selection == "largest":
            picked.append(max(ordered, key=lambda f: f.area))
        else:
            n = len(ordered)
            if not 0 <= index < n:
                raise RealisIDInputError(
                    input_name="index", problem=f"index {index} asks for face {index + 1} in reading order, but "
                    f"{photo_name(image_index, photos)} has {n} face{'s' if n != 1 else ''} (index 0 is face 1, "
                    f"index {n - 1} is face {n}; faces counted left to right, a column top to bottom)",
                    fix=f"set index between 0 and {n - 1}, or choose selection 'largest'")
            picked.append(ordered[index])
    return picked

