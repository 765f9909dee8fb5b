"""Detected faces (the FACES type) and how a node picks among them."""
from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from .errors import RealisIDInputError

SELECTIONS = ("all, left to right", "largest", "by index")


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


@dataclass(frozen=True)
class Faces:
    """Faces of a batch of pictures, grouped by picture and ordered left to right within each."""

    faces: tuple[DetectedFace, ...]
    image_sizes: tuple[tuple[int, int], ...] = field(default=())  # (width, height) per picture

    @property
    def count(self) -> int:
        return len(self.faces)

    def in_image(self, index: int) -> list[DetectedFace]:
        return [f for f in self.faces if f.image_index == index]


def left_to_right(faces: list[DetectedFace]) -> list[DetectedFace]:
    return sorted(faces, key=lambda f: (f.image_index, f.centre_x))


def select_faces(faces_per_image: list[list[DetectedFace]], selection: str, index: int,
                 node: str, input_name: str = "selection") -> list[DetectedFace]:
    """Pick faces picture by picture: every face left to right, the largest one, or the `index`-th from the left.

    Raises a RealisIDInputError naming the picture that has no face, or how many faces it has.
    """
    if selection not in SELECTIONS:
        raise RealisIDInputError(node, input_name, f"unknown selection '{selection}'", f"choose one of {', '.join(SELECTIONS)}")
    picked = []
    for image_index, found in enumerate(faces_per_image):
        ordered = left_to_right(found)
        if not ordered:
            continue
        if selection == SELECTIONS[0]:
            picked += ordered
        elif selection == "largest":
            picked.append(max(ordered, key=lambda f: f.area))
        else:
            if not 0 <= index < len(ordered):
                raise RealisIDInputError(node, "index", f"face index {index} is out of range: image {image_index} has "
                                         f"{len(ordered)} face{'s' if len(ordered) != 1 else ''} (indices 0 to {len(ordered) - 1}, left to right)",
                                         f"set index between 0 and {len(ordered) - 1}, or choose selection 'largest'")
            picked.append(ordered[index])
    return picked


def faces_for_targets(faces: Faces, targets: int, node: str, input_name: str) -> list[DetectedFace]:
    """One face per target: the faces in order when there are `targets` of them, one face shared by all."""
    if faces.count == targets:
        return list(faces.faces)
    if faces.count == 1:
        return [faces.faces[0]] * targets
    raise RealisIDInputError(node, input_name, f"{faces.count} faces were given for {targets} face locations",
                             f"give one face per location ({targets}) or a single face for all of them "
                             "(Face Analysis selection 'largest' or 'by index')")
