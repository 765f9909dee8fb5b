"""InfiniteYou's published weights for FLUX: InfuseNet (a diffusers FluxControlNetModel) as a local
branch, and its projector `image_proj_model.bin` (InstantID's Resampler, 8 queries, 4096 wide).

FLUX facts the branch needs live here (the SD families' table does not describe transformers):
the token grid is the latent in 2×2 patches, the transformer has 19 double and 38 single blocks,
the text tokens are 4096 wide (T5), the pooled text 768 (CLIP-L). InfuseNet has fewer blocks;
ComfyUI's loader repeats each residual over ceil(19/n) double (and ceil(38/m) single) blocks, as
InfiniteYou's own ComfyUI code does.

Identity: InfiniteYou's Resampler was trained on facexlib's IR-SE50 ArcFace vectors (normalised),
not antelopev2's glintr100 ones; antelopev2 only finds the face and its five keypoints.
"""
from __future__ import annotations

import os


from ..cache import SharedModels
from ..errors import RealisIDInputError
from ..families import FAMILIES
from .description import BranchDescription
from .files import check_file, is_safetensors, read_safetensors, read_torch_pickle
from .resampler import Resampler, resampler_from_state_dict

FAMILY = "FLUX"
DOUBLE_BLOCKS, SINGLE_BLOCKS = 19, 38
HIDDEN = 3072
CONTEXT_WIDTH = FAMILIES[FAMILY].context_width  # T5 tokens; InfiniteYou's identity tokens take their place
POOLED_WIDTH = FAMILIES[FAMILY].pooled_width    # CLIP-L pooled text, still InfuseNet's pooled projection
LATENT_CHANNELS = 16
RECOGNISER = "arcface-ir-se50"  # the Identity.pack value of identities made with facexlib's IR-SE50
GET_IT = ("download it from huggingface.co/ByteDance/InfiniteYou (infu_flux_v1.0/aes_stage2 or sim_stage1) into "
          "models/infinite_you")
# InfiniteYou's pipeline calls InfuseNet with guidance 1.0 (its controlnet_guidance_scale), whatever
# guidance the FLUX transformer gets (3.5 by default).
INFUSENET_GUIDANCE = 1.0

INFUSENET_KIND = "InfiniteYou InfuseNet (FLUX)"
INFINITEYOU_INFUSENET = BranchDescription(
    role="local", family=FAMILY, hint_format="instantid-kps", working_size=128, margin=2.0, context="identity",
    name="InfiniteYou InfuseNet")
# InfiniteYou draws its five keypoints with InstantID's draw_kps (same colours, stick width 4, dimmed
# limbs, radius-10 points: pipelines/pipeline_infu_flux.py), so the hint format is InstantID's.

# crop sides (latent cells) offered for FLUX: whole 2×2 patches; 128 = 1024 px, FLUX's training size
_SIZES = FAMILIES[FAMILY].working_sizes
WORKING_SIZE_LOW, WORKING_SIZE_HIGH, WORKING_SIZE_STEP = _SIZES.low, _SIZES.high, _SIZES.step


def working_size_problem(size: int) -> str | None:
    """Why `size` cannot be InfuseNet's crop side, or None."""
    if not WORKING_SIZE_LOW <= size <= WORKING_SIZE_HIGH or size % WORKING_SIZE_STEP:
        return (f"working size {size} is not one FLUX's local branch runs at ({WORKING_SIZE_LOW} to "
                f"{WORKING_SIZE_HIGH} latent cells in steps of {WORKING_SIZE_STEP})")
    return None


def repeats(blocks: int, residuals: int) -> int:
    """How many of the transformer's blocks each of a ControlNet's residuals serves (ceil(blocks/residuals))."""
    return -(-blocks // residuals)


def crop_bytes(working_size: int, itemsize: int, double: int, single: int, fused_attention: bool) -> int:
    """Estimated memory of one crop's InfuseNet forward plus its kept residuals (counted from shapes, not
    measured): tokens × hidden × ~24 live activations per block, the attention matrix without fused
    attention, and every distinct residual kept until the paste."""
    tokens = (working_size // 2) ** 2
    context = 8
    activations = (tokens + context) * HIDDEN * 24 * itemsize
    if not fused_attention:
        activations += 24 * (tokens + context) ** 2 * itemsize
    kept = (double + single) * tokens * HIDDEN * itemsize + 2 * LATENT_CHANNELS * working_size ** 2 * itemsize
    return activations + kept


def crops_per_forward(working_size: int, itemsize: int, double: int, single: int, free_bytes: int | None,
                      crops: int, fused_attention: bool) -> int:
    """As many crops per InfuseNet forward as half the free memory holds (all of them without a figure), at least 1."""
    if free_bytes is None:
        return max(1, crops)
    fits = int(0.5 * free_bytes // crop_bytes(working_size, itemsize, double, single, fused_attention))
    return max(1, min(crops, fits))


# ---- the projector: image_proj_model.bin ----------------------------------------------------------

PROJECTOR_INPUT = "projector_name"
_projectors = SharedModels()


def read_projector_state(path: str, input_name: str = PROJECTOR_INPUT) -> dict:
    """The Resampler state of `image_proj_model.bin` (a torch pickle read with weights_only: a file
    holding code is refused unrun) or of a .safetensors with `image_proj.` keys."""
    name = os.path.basename(path)
    check_file(path, input_name, GET_IT)
    if is_safetensors(path):
        data = read_safetensors(path, input_name, GET_IT)
        data = {"image_proj": {k.split(".", 1)[1]: v for k, v in data.items() if k.startswith("image_proj.")} or data}
    else:
        data = read_torch_pickle(path, input_name, GET_IT, code_fix=f"use InfiniteYou's original "
                                 f"image_proj_model.bin ({GET_IT})")
    state = data.get("image_proj") if isinstance(data, dict) else None
    if not isinstance(state, dict):
        found = ", ".join(sorted(map(str, data))[:5]) if isinstance(data, dict) else type(data).__name__
        raise RealisIDInputError(input_name=input_name, problem=f"{name} is not InfiniteYou's projector: it "
                                 f"has no 'image_proj' weights (found {found})", fix=GET_IT)
    return state


def projector_from_state(state: dict, name: str, input_name: str = PROJECTOR_INPUT) -> Resampler:
    resampler = resampler_from_state_dict(state, name, input_name)
    if resampler.width != CONTEXT_WIDTH:
        raise RealisIDInputError(input_name=input_name, problem=f"{name} makes {resampler.width}-wide "
                                 f"tokens, but InfuseNet's context is FLUX's {CONTEXT_WIDTH}-wide T5 width (an "
                                 "InstantID ip-adapter.bin, for SDXL, is 2048 wide)", fix=GET_IT)
    return resampler


def load_projector(path: str) -> Resampler:
    """InfiniteYou's Resampler in `path`, loaded once per (file, modification time), CPU float32."""
    key = (os.path.realpath(path), os.path.getmtime(path))
    name = os.path.basename(path)
    return _projectors.get(key, lambda: projector_from_state(read_projector_state(path), name),
                           f"InfiniteYou projector {name}")
