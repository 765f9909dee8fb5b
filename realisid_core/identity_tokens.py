"""Identity tokens: ArcFace embeddings projected to a ControlNet's cross-attention width."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import RealisIDInputError


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

    def check_width(self, width: int, node: str, input_name: str) -> "IdentityTokens":
        if self.width != width:
            raise RealisIDInputError(node, input_name, f"the identity tokens are {self.width} wide but the ControlNet's "
                                     f"cross-attention takes {width}", "use an ID projector made for this ControlNet")
        return self
