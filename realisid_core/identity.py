"""Identities (the REALISID_IDENTITY type): ArcFace embeddings, one per person."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import RealisIDInputError


@dataclass(frozen=True)
class Identity:
    """embeddings [N, E]: N people (one per face, in face order), each L2-normalised."""

    embeddings: torch.Tensor

    def __post_init__(self):
        if self.embeddings.ndim != 2:
            raise ValueError(f"Identity.embeddings must be [N, E], got {tuple(self.embeddings.shape)}")

    @property
    def count(self) -> int:
        return int(self.embeddings.shape[0])


def unit(vectors: torch.Tensor) -> torch.Tensor:
    return vectors / vectors.norm(dim=-1, keepdim=True).clamp_min(1e-12)


def mean_identity(embeddings: torch.Tensor, node: str, input_name: str) -> Identity:
    """One person from several photos' embeddings [M, E]: the mean of the normalised embeddings, renormalised."""
    embeddings = torch.as_tensor(embeddings, dtype=torch.float32)
    if embeddings.ndim != 2 or embeddings.shape[0] == 0:
        raise RealisIDInputError(node, input_name, "no face embedding to make an identity from",
                                 "give at least one photo in which a face is found")
    mean = unit(embeddings).mean(0, keepdim=True)
    if float(mean.norm()) < 1e-6:
        raise RealisIDInputError(node, input_name, "the photos' embeddings cancel out (they look like opposite people)",
                                 "use photos of one person")
    return Identity(unit(mean))


def join_identities(identities: list[Identity], node: str) -> Identity:
    """Several identities in order, one per face location (person 1 first)."""
    widths = {i.embeddings.shape[-1] for i in identities}
    if len(widths) != 1:
        raise RealisIDInputError(node, "identity", f"the identities have different embedding widths {sorted(widths)}",
                                 "make every identity with the same face-analysis pack")
    return Identity(torch.cat([i.embeddings for i in identities]))
