"""ID projector: ArcFace embeddings → K identity tokens of the local ControlNet's context width.

Weights are a safetensors file with `proj.weight` [K·D, E], `proj.bias` [K·D], `norm.weight`
[D], `norm.bias` [D] (IP-Adapter's ImageProjModel layout; a common prefix such as
`id_proj.` or `image_proj.` is accepted). K and D are read from the shapes. The file's
`realisid.projector` metadata (JSON, written by the trainer's export) names the insightface `pack`
whose embeddings it was trained on; identities made with another pack are refused (`check_pack`).
"""
from __future__ import annotations

import json
import logging
import os

import torch
from torch import nn

from ..errors import RealisIDInputError
from ..people.identity import Identity
from ..people.identity import IdentityTokens
from ..cache import SharedModels
from .files import check_file, read_safetensors, safetensors_header

log = logging.getLogger("RealisID")

PREFIXES = ("", "id_proj.", "image_proj.", "projector.")
KEYS = ("proj.weight", "proj.bias", "norm.weight", "norm.bias")


class IDProjector(nn.Module):
    """Linear E → K·D, reshaped to K tokens, each LayerNorm-ed."""

    def __init__(self, embedding_width: int, tokens: int, width: int, pack: str | None = None):
        super().__init__()
        self.tokens, self.width = tokens, width
        self.pack = pack  # the insightface pack whose embeddings it was trained on (None: unknown)
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
    if weight.ndim != 2 or norm.ndim != 1 or 0 in weight.shape or 0 in norm.shape or weight.shape[0] % norm.shape[0] \
            or tuple(sd["proj.bias"].shape) != weight.shape[:1] or sd["norm.bias"].shape != norm.shape:
        raise RealisIDInputError("projector", f"{name} has inconsistent shapes: proj.weight {tuple(weight.shape)}, "
                                 f"norm.weight {tuple(norm.shape)}, proj.bias {tuple(sd['proj.bias'].shape)}, norm.bias "
                                 f"{tuple(sd['norm.bias'].shape)}",
                                 "re-export the projector (proj.weight [K·D, E], proj.bias [K·D], norm [D])")
    projector = IDProjector(weight.shape[1], weight.shape[0] // norm.shape[0], norm.shape[0])
    projector.load_state_dict({k: v.float() for k, v in sd.items()})
    return projector.eval().requires_grad_(False)


_projectors = SharedModels()


PICKLE_FIX = ("convert it to .safetensors (RealisID never loads pickle files: opening one can run code) "
              "or choose an ID projector .safetensors file in models/realisid")
READ_FIX = "download or export the ID projector again and choose that .safetensors file in models/realisid"
METADATA_KEY = "realisid.projector"


def recogniser_pack(metadata: dict[str, str], name: str) -> str | None:
    """The insightface pack whose embeddings the projector was trained on (its `realisid.projector`
    metadata's 'pack'), or None when the file does not say (a third-party or older projector)."""
    if METADATA_KEY not in metadata:
        return None
    try:
        record = json.loads(metadata[METADATA_KEY])
    except (json.JSONDecodeError, RecursionError):
        record = None
    if not isinstance(record, dict):
        raise RealisIDInputError(input_name="projector_name", problem=f"{name}'s metadata '{METADATA_KEY}' is not "
                                 "a JSON object of fields", fix=READ_FIX)
    pack = record.get("pack")
    if pack is not None and (not isinstance(pack, str) or not pack.strip() or len(pack) > 100):
        raise RealisIDInputError(input_name="projector_name", problem=f"{name}'s metadata '{METADATA_KEY}' field "
                                 f"'pack' is {json.dumps(pack)[:60]}, not the name of an insightface pack", fix=READ_FIX)
    return pack


def read_projector_file(path: str) -> IDProjector:
    """The projector in a safetensors file, with the pack it was trained on (see `recogniser_pack`)."""
    name = os.path.basename(path)
    _, metadata = safetensors_header(path, "projector_name", READ_FIX, pickle_fix=PICKLE_FIX)
    pack = recogniser_pack(metadata, name)
    projector = projector_from_state_dict(read_safetensors(path, "projector_name", READ_FIX, pickle_fix=PICKLE_FIX),
                                          name)
    projector.pack = pack
    return projector


def load_projector(path: str) -> IDProjector:
    """The projector in a safetensors file, loaded once per (file, modification time) on the CPU.

    A file that is not a complete safetensors file (a pickle checkpoint, a truncated or corrupt
    download) is refused with a RealisIDInputError naming the file, the problem and the fix."""
    check_file(path, "projector_name", READ_FIX)
    key = (os.path.realpath(path), os.path.getmtime(path))
    return _projectors.get(key, lambda: read_projector_file(path), f"ID projector {os.path.basename(path)}")


def check_pack(identity: Identity, trained_on: str | None) -> None:
    """Refuse identities made by another recogniser than the one the projector was trained on (another
    insightface pack's vectors mean nothing to it); unknown on either side passes (with a log line)."""
    if trained_on is None:
        return
    if identity.pack is None:
        log.warning("RealisID: %s: the identity does not say which face-analysis pack made it; the ID projector "
                    "was trained on %s embeddings", trained_on)
    elif identity.pack != trained_on:
        raise RealisIDInputError(input_name="identity", problem=f"the identity was made with the "
                                 f"{identity.pack} pack, but the ID projector was trained on {trained_on} embeddings "
                                 "(another recogniser: its vectors would mean nothing to the projector)",
                                 fix=f"choose '{trained_on}' in RealisID Face Analysis Loader for the identities")


def project(projector: torch.nn.Module, identity: Identity, device=None, raw: bool = False) -> IdentityTokens:
    """Identity tokens [N, K, D] for N identities and the null tokens (a zero embedding), computed on
    `device`, returned on the CPU in float32. `raw`: feed the recogniser's raw vectors (InstantID's
    projector) instead of the normalised ones (RealisID's)."""
    if identity.embeddings.shape[-1] != projector.embedding_width:
        raise RealisIDInputError("identity", f"the identity has {identity.embeddings.shape[-1]}-wide embeddings "
                                 f"but the projector takes {projector.embedding_width}", "use a projector made for ArcFace embeddings")
    check_pack(identity, getattr(projector, "pack", None))
    device = device or next(projector.parameters()).device
    vectors = identity.raw() if raw else identity.embeddings
    dtype = next(projector.parameters()).dtype
    with torch.no_grad():
        both = projector(torch.cat([vectors, torch.zeros_like(vectors[:1])]).to(device=device, dtype=dtype))
    both = both.to("cpu", torch.float32)
    return IdentityTokens(both[:-1], both[-1:])
