"""People (the REALISID_PEOPLE type): who goes where, looking how, in an explicit order.

A person = identity (embedding from photos, or ready identity tokens) + place (a face box) +
pose-expression (geometry) + their own strength. Person k is the k-th of the list the artist
built; nothing here counts faces from the left.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import torch

from ..errors import RealisIDInputError
from ..faces.pose import FacePose, frontal_pose
from .identity import Identity
from .identity import IdentityTokens
from .locations import MAX_FACES, FaceLocations, same_aspect

MAX_PEOPLE = MAX_FACES


@dataclass(frozen=True)
class Place:
    """box (cx, cy, w, h) as fractions of the picture; frame: the (width, height) it was made for,
    None for a box typed as four fractions (it fits any picture); source: where it came from, for messages."""

    box: tuple[float, float, float, float]
    frame: tuple[int, int] | None
    source: str


@dataclass(frozen=True)
class Person:
    place: Place
    identity: Identity | None = None
    tokens: IdentityTokens | None = None
    pose: FacePose | None = None
    strength: float = 1.0

    def __post_init__(self):
        if self.identity is not None and self.identity.count != 1:
            raise ValueError(f"a Person has one identity, got {self.identity.count}")
        if self.tokens is not None and self.tokens.count != 1:
            raise ValueError(f"a Person has one set of identity tokens, got {self.tokens.count}")


@dataclass(frozen=True)
class People:
    persons: tuple[Person, ...]

    @property
    def count(self) -> int:
        return len(self.persons)

    def __add__(self, other: "People") -> "People":
        return People(self.persons + other.persons)

    def locations(self, input_name: str = "people") -> FaceLocations:
        """Everyone's place as FaceLocations (person order), for a picture of the places' shape.

        Places from pictures of different shapes are refused; boxes typed as fractions fit any shape.
        """
        if not self.persons:
            raise RealisIDInputError(input_name=input_name,
                                     problem="no people were given", fix="connect at least one RealisID Person")
        if self.count > MAX_PEOPLE:
            raise RealisIDInputError(input_name=input_name,
                                     problem=f"{self.count} people were given, at most {MAX_PEOPLE} fit in one picture",
                                     fix=f"remove people until there are {MAX_PEOPLE} or fewer")
        framed = [(k, p.place) for k, p in enumerate(self.persons, 1) if p.place.frame is not None]
        width, height = framed[0][1].frame if framed else (0, 0)
        for k, place in framed[1:]:
            w, h = place.frame
            if not same_aspect(w, h, width, height):
                raise RealisIDInputError(input_name=input_name,
                                         problem=f"person {k}'s place comes from a {w}×{h} picture "
                                         f"({place.source}) but person {framed[0][0]}'s from a {width}×{height} one "
                                         f"({framed[0][1].source}), another shape",
                                         fix="take every person's place from pictures of the same shape as the one you generate")
        boxes = torch.tensor([p.place.box for p in self.persons], dtype=torch.float64)
        sources = tuple(p.place.source for p in self.persons)
        return FaceLocations(boxes, width, height, sources).validated(input_name)

    def poses(self) -> list[FacePose]:
        """Each person's pose; a person without a pose source faces the camera, neutral."""
        return [p.pose if p.pose is not None else frontal_pose() for p in self.persons]

    def strengths(self) -> torch.Tensor:
        return torch.tensor([p.strength for p in self.persons], dtype=torch.float32)

    @property
    def has_identity(self) -> bool:
        """Whether any person has an identity (from photos or ready tokens)."""
        return any(p.tokens is not None or p.identity is not None for p in self.persons)

    def identity_tokens(self, project, input_name: str = "people") -> IdentityTokens | None:
        """Everyone's identity tokens [F, K, D] with the null tokens, or None when nobody has an identity.

        `project(identity) -> IdentityTokens` turns a person's embedding into tokens (None: no
        projector connected). Everyone must have an identity once anyone has one: the local branch
        gives every face the same kind of context.
        """
        have = [p.tokens is not None or p.identity is not None for p in self.persons]
        if not any(have):
            return None
        if not all(have):
            missing = ", ".join(str(k) for k, h in enumerate(have, 1) if not h)
            raise RealisIDInputError(input_name=input_name,
                                     problem=f"person {missing} has no identity while others have one",
                                     fix="give every person an identity (photos or identity tokens), or none of them")
        sets = []
        for k, person in enumerate(self.persons, 1):
            tokens = person.tokens
            if tokens is None:
                tokens = project(person.identity)
                if tokens is None:
                    raise RealisIDInputError(input_name="id_projector",
                                             problem=f"person {k}'s identity comes from photos, "
                                             "which need a projector to become identity tokens",
                                             fix="connect the ID projector that belongs to this ControlNet")
            sets.append(tokens)
        widths = {t.width for t in sets}
        counts = {t.tokens.shape[1] for t in sets}
        if len(widths) > 1 or len(counts) > 1:
            raise RealisIDInputError(input_name=input_name, problem="the people's identity tokens differ in size "
                                     f"(widths {sorted(widths)}, token counts {sorted(counts)})",
                                     fix="make every person's identity tokens with the same projector")
        nulls = [t.null for t in sets]
        if any(n is None for n in nulls):
            raise RealisIDInputError(input_name=input_name,
                                     problem="some identity tokens carry no null identity for CFG's "
                                     "unconditional side", fix="make identity tokens with RealisID Identity Tokens")
        return IdentityTokens(torch.cat([t.tokens for t in sets]), nulls[0])


def people_from_locations(locations: FaceLocations, identity: Identity | None = None,
                          tokens: IdentityTokens | None = None, poses: list[FacePose] | None = None) -> People:
    """One person per location, in the locations' order (line k of Location Guidance = person k)."""
    frame = (locations.width, locations.height) if locations.width and locations.height else None
    persons = []
    for f, box in enumerate(locations.boxes.tolist()):
        persons.append(Person(
            Place(tuple(box), frame, locations.source(f)),
            identity=None if identity is None else identity.person(f if identity.count > 1 else 0),
            tokens=None if tokens is None else tokens.person(f if tokens.count > 1 else 0),
            pose=None if poses is None else poses[f if len(poses) > 1 else 0]))
    return People(tuple(persons))


def with_strength(person: Person, strength: float) -> Person:
    """The person with another strength."""
    return replace(person, strength=float(strength))


def box_from_fractions(values, input_name: str) -> tuple[float, float, float, float]:
    """A (cx, cy, w, h) box from four fractions (a sequence, or text separated by spaces or commas); errors
    name the input and the first word that is not a number."""
    words = values.replace(",", " ").split() if isinstance(values, str) else list(values)
    how = ("write the face box as 4 numbers: centre x, centre y, width, height, fractions of the picture "
           "(e.g. 0.5 0.4 0.3 0.3)")
    numbers = []
    for word in words:
        try:
            numbers.append(float(word))
        except (TypeError, ValueError, OverflowError):
            shown = str(word) if len(str(word)) <= 40 else str(word)[:37] + "..."
            raise RealisIDInputError(input_name=input_name, problem=f"'{shown}' is not a number",
                                     fix=how) from None
    if len(numbers) != 4:
        raise RealisIDInputError(input_name=input_name, problem=f"expected 4 numbers 'cx cy w h', got "
                                 f"{len(numbers)}" + (f" ({' '.join(f'{v:g}' for v in numbers[:6])})" if numbers else ""),
                                 fix=how)
    box = FaceLocations(torch.tensor([numbers], dtype=torch.float64), 0, 0).validated(input_name)
    return tuple(box.boxes[0].tolist())
