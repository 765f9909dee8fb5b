"""ID projector: ArcFace embeddings → K identity tokens of the local ControlNet's context width.

Weights are a safetensors file with `proj.weight` [K·D, E], `proj.bias` [K·D], `norm.weight`
[D], `norm.bias` [D] (IP-Adapter's ImageProjModel layout; a common prefix such as
`id_proj.` or `image_proj.` is accepted). K and D are read from the shapes.
"""
from __future__ import annotations

import json
import os
import struct

import torch
from torch import nn

from ..errors import RealisIDInputError
from ..people.identity import Identity
from ..people.identity import IdentityTokens
from ..cache import SharedModels

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


def projector_from_state_dict(state: dict[str, torch.Tensor], name: str) -> IDProjector:
    """Build the projector whose shapes the state dict has; errors name the file and the keys expected."""
    for prefix in PREFIXES:
        if all(prefix + k in state for k in KEYS):
            sd = {k: state[prefix + k] for k in KEYS}
            break
    else:
        raise RealisIDInputError(input_name="projector",
                                 problem=f"{name} is not a RealisID ID projector (keys {', '.join(KEYS)} not found)",
                                 fix="choose an ID projector file from models/realisid")
    weight, norm = sd["proj.weight"], sd["norm.weight"]
    if weight.ndim != 2 or norm.ndim != 1 or weight.shape[0] % norm.shape[0]:
        raise RealisIDInputError(input_name="projector",
                                 problem=f"{name} has inconsistent shapes: proj.weight {tuple(weight.shape)}, "
                                 f"norm.weight {tuple(norm.shape)}", fix="re-export the projector (proj.weight must be [K·D, E])")
    projector = IDProjector(weight.shape[1], weight.shape[0] // norm.shape[0], norm.shape[0])
    projector.load_state_dict({k: v.float() for k, v in sd.items()})
    return projector.eval().requires_grad_(False)


_projectors = SharedModels()


PICKLE_FIX = ("convert it to .safetensors (RealisID never loads pickle files: opening one can run code) "
              "or choose an ID projector .safetensors file in models/realisid")
READ_FIX = "download or export the ID projector again and choose that .safetensors file in models/realisid"
_MAX_HEADER = 100 * 2**20  # safetensors' own limit on the JSON header


def safetensors_problem(path: str) -> str | None:
    """Why `path` cannot be a complete safetensors file (read from its first bytes and size), or None.

    A safetensors file is an 8-byte little-endian header length N, N bytes of JSON naming
    each tensor's byte range, then the data those ranges cover.
    """
    size = os.path.getsize(path)
    with open(path, "rb") as f:
        head = f.read(8)
        if head[:4] == b"PK\x03\x04" or (len(head) >= 2 and head[0] == 0x80 and 2 <= head[1] <= 5):
            return "is a PyTorch pickle checkpoint (torch.save, .pt/.ckpt/.bin), not a safetensors file"
        if size == 0:
            return "is empty (0 bytes): not a safetensors file, or a download that never started"
        if len(head) < 8:
            return f"is {size} bytes, too short for a safetensors file (truncated)"
        (header_len,) = struct.unpack("<Q", head)
        if header_len > _MAX_HEADER or header_len < 2:
            return (f"is not a safetensors file (its first bytes {head[:8]!r} are no safetensors header; "
                    f"a safetensors file starts with its header's length)")
        if 8 + header_len > size:
            return (f"is truncated: its header says {header_len:,} bytes of metadata follow but the file has only "
                    f"{size - 8:,} bytes after the first 8")
        raw = f.read(header_len)
    try:
        header = json.loads(raw)
    except (UnicodeDecodeError, json.JSONDecodeError):
        return "is not a safetensors file, or is corrupt (its header is not the JSON a safetensors file starts with)"
    if not isinstance(header, dict):
        return "is corrupt (its safetensors header is not a table of tensors)"
    end = max((v["data_offsets"][1] for k, v in header.items()
               if k != "__metadata__" and isinstance(v, dict) and len(v.get("data_offsets", ())) == 2), default=0)
    if 8 + header_len + end > size:
        return (f"is truncated: its tensors need {8 + header_len + end:,} bytes but the file has {size:,} "
                f"(an interrupted download or copy)")
    return None


def read_safetensors(path: str, node: str, input_name: str) -> dict[str, torch.Tensor]:
    """The tensors of a safetensors file on the CPU; errors name the file, what is wrong and the fix."""
    from safetensors.torch import load_file

    name = os.path.basename(path)
    problem = safetensors_problem(path)
    if problem is not None:
        raise RealisIDInputError(input_name, f"{name} {problem}",
                                 PICKLE_FIX if "pickle" in problem else READ_FIX)
    try:
        return load_file(path, device="cpu")
    except Exception as e:  # safetensors' own error for anything the header check did not see
        raise RealisIDInputError(input_name, f"{name} could not be read as a safetensors file ({e})",
                                 READ_FIX) from e


def load_projector(path: str) -> IDProjector:
    """The projector in a safetensors file, loaded once per (file, modification time) on the CPU.

    A file that is not a complete safetensors file (a pickle checkpoint, a truncated or corrupt
    download) is refused with a RealisIDInputError naming the file, the problem and the fix."""
    key = (os.path.realpath(path), os.path.getmtime(path))
    return _projectors.get(key, lambda: projector_from_state_dict(read_safetensors(path, None, "projector_name"),
                                                                  os.path.basename(path)),
                           f"ID projector {os.path.basename(path)}")


def project(projector: torch.nn.Module, identity: Identity, device=None, raw: bool = False) -> IdentityTokens:
    """Identity tokens [N, K, D] for N identities and the null tokens (a zero embedding), computed on
    `device`, returned on the CPU in float32. `raw`: feed the recogniser's raw vectors (InstantID's
    projector) instead of the normalised ones (RealisID's)."""
    if identity.embeddings.shape[-1] != projector.embedding_width:
        raise RealisIDInputError(input_name="identity",
                                 problem=f"the identity has {identity.embeddings.shape[-1]}-wide embeddings "
                                 f"but the projector takes {projector.embedding_width}", fix="use a projector made for ArcFace embeddings")
    device = device or next(projector.parameters()).device
    vectors = identity.raw() if raw else identity.embeddings
    dtype = next(projector.parameters()).dtype
    with torch.no_grad():
        both = projector(torch.cat([vectors, torch.zeros_like(vectors[:1])]).to(device=device, dtype=dtype))
    both = both.to("cpu", torch.float32)
    return IdentityTokens(both[:-1], both[-1:])
