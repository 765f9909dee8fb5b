"""Identity tokens: ArcFace embeddings projected to a ControlNet's cross-attention width."""
from __future__ import annotations

from dataclasses import dataclass

import torch

from .errors import RealisIDInputError


@dataclass(frozen=True)
class IdentityTokens:
    """tokens [N, K, D]: N identities (one per face, in face order), K tokens of width D."""

    tokens: torch.Tensor

    def __post_init__(self):
        if self.tokens.ndim != 3:
            raise ValueError(f"IdentityTokens.tokens must be [N, K, D], got {tuple(self.tokens.shape)}")

    @property
    def count(self) -> int:
        return int(self.tokens.shape[0])

    @property
    def width(self) -> int:
        return int(self.tokens.shape[-1])

    def for_faces(self, faces: int, node: str, input_name: str) -> torch.Tensor:
        """[faces, K, D]: one identity per face; a single identity is shared by every face."""
        if self.count == faces:
            return self.tokens
        if self.count == 1:
            return self.tokens.expand(faces, -1, -1)
        raise RealisIDInputError(node, input_name, f"{self.count} identities were given for {faces} face locations",
                                 f"give one identity per face ({faces}), or a single identity for all of them")

    def check_width(self, width: int, node: str, input_name: str) -> "IdentityTokens":
        if self.width != width:
            raise RealisIDInputError(node, input_name, f"the identity tokens are {self.width} wide but the ControlNet's "
                                     f"cross-attention takes {width}", "use an ID projector made for this ControlNet")
        return self
