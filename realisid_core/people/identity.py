"""Identities (the REALISID_IDENTITY type): ArcFace embeddings, one per person, and identity tokens:
the embeddings projected to a ControlNet's cross-attention width."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from ..errors import RealisIDInputError


@dataclass(frozen=True)
class Identity:
    """embeddings [N, E]: N people, each L2-normalised; norms [N]: the length of the recogniser's
    raw vectors (InstantID's projector was trained on raw vectors; RealisID's on normalised ones);
    pack: the insightface pack that made them (None when unknown)."""

    embeddings: torch.Tensor
    norms: torch.Tensor | None = None
    pack: str | None = None

    def __post_init__(self):
        if self.embeddings.ndim != 2:
            raise ValueError(f"Identity.embeddings must be [N, E], got {tuple(self.embeddings.shape)}")
        if self.norms is not None and tuple(self.norms.shape) != (self.embeddings.shape[0],):
            raise ValueError(f"Identity.norms must be [N], got {tuple(self.norms.shape)}")

    @property
    def count(self) -> int:
        return int(self.embeddings.shape[0])

    def raw(self) -> torch.Tensor:
        """[N, E] vectors at the recogniser's own length (the normalised ones where it is unknown)."""
        return self.embeddings if self.norms is None else self.embeddings * self.norms[:, None]

    def person(self, index: int) -> "Identity":
        """Person `index` (0-based) alone."""
        return Identity(self.embeddings[index:index + 1],
                        None if self.norms is None else self.norms[index:index + 1], self.pack)


def unit(vectors: torch.Tensor) -> torch.Tensor:
    return vectors / vectors.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def mean_identity(embeddings: torch.Tensor, input_name: str, norms=None,
                  pack: str | None = None) -> Identity:
    """One person from several photos' embeddings [M, E].

    The direction is the mean of the normalised embeddings, renormalised: each photo counts the
    same, whatever its recogniser length (a sharp photo gives a longer raw vector, and a plain
    mean of raw vectors would let it dominate). The length is the photos' mean raw length, so a
    projector trained on raw vectors (InstantID) gets a vector of the size it knows.
    """
    embeddings = torch.as_tensor(embeddings, dtype=torch.float32)
    if embeddings.ndim != 2 or embeddings.shape[0] == 0:
        raise RealisIDInputError(input_name=input_name, problem="no face embedding to make an identity from",
                                 fix="give at least one photo in which a face is found")
    mean = unit(embeddings).mean(0, keepdim=True)
    if float(mean.norm()) < 1e-6:
        raise RealisIDInputError(input_name=input_name,
                                 problem="the photos' embeddings cancel out (they look like opposite people)",
                                 fix="use photos of one person")
    length = None if norms is None else torch.as_tensor(norms, dtype=torch.float32).reshape(-1).mean().reshape(1)
    return Identity(unit(mean), length, pack)


def common_pack(packs, input_name: str = "identity") -> str | None:
    """The one insightface pack (recogniser) of several identities or faces; None when any is unknown.
    Two known packs are refused: the embeddings of two recognisers mean different things."""
    packs = list(packs)
    known = sorted({p for p in packs if p is not None})
    if len(known) > 1:
        which = ", ".join(f"identity {k}: {p}" for k, p in enumerate(packs, 1) if p is not None)
        raise RealisIDInputError(input_name=input_name, problem=f"the identities were made with different "
                                 f"face-analysis packs ({which}): each pack's recogniser makes its own kind of "
                                 "embedding, and a projector understands only the one it was trained on",
                                 fix="make every identity with the same pack in RealisID Face Analysis Loader "
                                     f"(the one the projector was trained on: {' or '.join(known)})")
    return known[0] if known and None not in packs else None


def join_identities(identities: list[Identity], input_name: str = "identity") -> Identity:
    """Several identities in order (person 1 first), with their common pack (mixing packs is refused)."""
    widths = {i.embeddings.shape[-1] for i in identities}
    if len(widths) != 1:
        raise RealisIDInputError(input_name=input_name,
                                 problem=f"the identities have different embedding widths {sorted(widths)}",
                                 fix="make every identity with the same face-analysis pack")
    pack = common_pack([i.pack for i in identities], input_name)
    norms = None if any(i.norms is None for i in identities) else torch.cat([i.norms for i in identities])
    return Identity(torch.cat([i.embeddings for i in identities]), norms, pack)


@dataclass(frozen=True)
class IdentityTokens:
    """tokens [N, K, D]: N identities (person order), K tokens of width D; null [1, K, D]: the
    projector's tokens for a zero embedding, the "no identity" that CFG's unconditional side gets
    (InstantID's convention, and what training drops identity to). None when unknown (tokens made
    elsewhere): the unconditional side then cannot be given a null identity and the branch refuses."""

    tokens: torch.Tensor
    null: torch.Tensor | None = None

    def __post_init__(self):
        if self.tokens.ndim != 3:
            raise ValueError(f"IdentityTokens.tokens must be [N, K, D], got {tuple(self.tokens.shape)}")
        if self.null is not None and tuple(self.null.shape) != (1, *self.tokens.shape[1:]):
            raise ValueError(f"IdentityTokens.null must be [1, K, D] = {(1, *self.tokens.shape[1:])}, "
                             f"got {tuple(self.null.shape)}")

    @property
    def count(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def width(self) -> int:
        return int(self.tokens.shape[-1])

    def person(self, index: int) -> "IdentityTokens":
        """Identity `index` (0-based) alone, with the same null tokens."""
        return IdentityTokens(self.tokens[index:index + 1], self.null)

    def as_one_context(self) -> "IdentityTokens":
        """Everyone's tokens side by side as one context [1, N·K, D] (the global branch's), with the null
        tokens repeated to match."""
        if self.null is None:
            raise ValueError("identity tokens without a null identity cannot make a CFG context")
        return IdentityTokens(self.tokens.reshape(1, -1, self.width), self.null.repeat(1, self.count, 1))

    def check_width(self, width: int, input_name: str) -> "IdentityTokens":
        if self.width != width:
            raise RealisIDInputError(input_name=input_name,
                                     problem=f"the identity tokens are {self.width} wide but the ControlNet's "
                                     f"cross-attention takes {width}", fix="use an ID projector made for this ControlNet")
        return self
