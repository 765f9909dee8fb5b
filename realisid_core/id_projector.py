"""ID projector: ArcFace embeddings → K identity tokens of the local ControlNet's context width.

Weights are a safetensors file with `proj.weight` [K·D, E], `proj.bias` [K·D], `norm.weight`
[D], `norm.bias` [D] (IP-Adapter's ImageProjModel layout; a common prefix such as
`id_proj.` or `image_proj.` is accepted). K and D are read from the shapes.
"""
from __future__ import annotations

import os

import torch
from torch import nn

from .errors import RealisIDInputError
from .identity import Identity
from .identity_tokens import IdentityTokens
from .model_cache import SharedModels

PREFIXES = ("", "id_proj.", "image_proj.", "projector.")
KEYS = ("proj.weight", "proj.bias", "norm.weight", "norm.bias")


class IDProjector(nn.Module):
    """Linear E → K·D, reshaped to K tokens, each LayerNorm-ed."""

    def __init__(self, embedding_width: int, tokens: int, width: int):
        super().__init__()
        self.tokens, self.width = tokens, width
        self.proj = nn.Linear(embedding_width, tokens * width)
        self.norm = nn.LayerNorm(width)

    @property
    def embedding_width(self) -> int:
        return self.proj.in_features

    def forward(self, embeddings: torch.Tensor) -> torch.Tensor:
        return self.norm(self.proj(embeddings).reshape(-1, self.tokens, self.width))


def projector_from_state_dict(state: dict[str, torch.Tensor], name: str, node: str) -> IDProjector:
    """Build the projector whose shapes the state dict has; errors name the file and the keys expected."""
    for prefix in PREFIXES:
        if all(prefix + k in state for k in KEYS):
            sd = {k: state[prefix + k] for k in KEYS}
            break
    else:
        raise RealisIDInputError(node, "projector", f"{name} is not a RealisID ID projector (keys {', '.join(KEYS)} not found)",
                                 "choose an ID projector file from models/realisid")
    weight, norm = sd["proj.weight"], sd["norm.weight"]
    if weight.ndim != 2 or norm.ndim != 1 or weight.shape[0] % norm.shape[0]:
        raise RealisIDInputError(node, "projector", f"{name} has inconsistent shapes: proj.weight {tuple(weight.shape)}, "
                                 f"norm.weight {tuple(norm.shape)}", "re-export the projector (proj.weight must be [K·D, E])")
    projector = IDProjector(weight.shape[1], weight.shape[0] // norm.shape[0], norm.shape[0])
    projector.load_state_dict({k: v.float() for k, v in sd.items()})
    return projector.eval().requires_grad_(False)


_projectors = SharedModels()


def load_projector(path: str, node: str = "RealisID ID Projector Loader") -> IDProjector:
    """The projector in a safetensors file, loaded once per (file, modification time) on the CPU."""
    from safetensors.torch import load_file

    key = (os.path.realpath(path), os.path.getmtime(path))
    return _projectors.get(key, lambda: projector_from_state_dict(load_file(path, device="cpu"), os.path.basename(path),
                                                                  node), f"ID projector {os.path.basename(path)}")


def project(projector: torch.nn.Module, identity: Identity, node: str, device=None, raw: bool = False) -> IdentityTokens:
    """Identity tokens [N, K, D] for N identities and the null tokens (a zero embedding), computed on
    `device`, returned on the CPU in float32. `raw`: feed the recogniser's raw vectors (InstantID's
    projector) instead of the normalised ones (RealisID's)."""
    if identity.embeddings.shape[-1] != projector.embedding_width:
        raise RealisIDInputError(node, "identity", f"the identity has {identity.embeddings.shape[-1]}-wide embeddings "
                                 f"but the projector takes {projector.embedding_width}", "use a projector made for ArcFace embeddings")
    device = device or next(projector.parameters()).device
    vectors = identity.raw() if raw else identity.embeddings
    dtype = next(projector.parameters()).dtype
    with torch.no_grad():
        both = projector(torch.cat([vectors, torch.zeros_like(vectors[:1])]).to(device=device, dtype=dtype))
    both = both.to("cpu", torch.float32)
    return IdentityTokens(both[:-1], both[-1:])
