"""Export: the files the nodes load, with the metadata they read.

- Each ControlNet as a .safetensors in the original ("ldm") ControlNet layout — `input_blocks`,
  `zero_convs`, `input_hint_block`, `middle_block_out`, the layout of lllyasviel's ControlNets —
  which ComfyUI's `load_controlnet` reads by its shapes for any SD-style U-Net. (ComfyUI also
  reads diffusers' layout, but only for U-Nets in its table of standard shapes, so the ldm
  layout is the one that works for every base; A1111/Forge read it too.)
- The ID projector with keys `proj.weight`, `proj.bias`, `norm.weight`, `norm.bias`, for models/realisid.

Every file carries `realisid.*` metadata: the branch description the nodes read
(`BranchDescription.to_metadata()`: role, family, hint / guidance format, working size, margin,
feather, context; the projector's record names the insightface pack it was trained on) and the
training record (base model, step, face sizes, the whole configuration).
"""
from __future__ import annotations

import json
import os
import re

import torch

from realisid_core.models.description import BranchDescription
from realisid_core.signals.guidance import LOCATION_GUIDANCE_FORMAT

from .config import FAMILY_TAGS, Config, load_config

RESNET = {"norm1": "in_layers.0", "conv1": "in_layers.2", "time_emb_proj": "emb_layers.1", "norm2": "out_layers.0",
          "conv2": "out_layers.3", "conv_shortcut": "skip_connection"}
DTYPES = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}
TRAINER = "realisid_train 0.1"


def _count(keys, pattern: str) -> int:
    found = {int(m.group(1)) for k in keys for m in [re.match(pattern, k)] if m}
    return max(found) + 1 if found else 0


def controlnet_to_ldm(state: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """A diffusers ControlNetModel state dict in the original ControlNet key layout (every key mapped, or an error)."""
    keys = list(state)
    layers = _count(keys, r"down_blocks\.0\.resnets\.(\d+)\.")
    hint_blocks = _count(keys, r"controlnet_cond_embedding\.blocks\.(\d+)\.")
    if not layers or "controlnet_cond_embedding.conv_in.weight" not in state:
        raise ValueError("not a diffusers ControlNet state dict (no down_blocks.0.resnets / controlnet_cond_embedding)")

    def block(level: int, index: int) -> int:
        return 1 + level * (layers + 1) + index

    rules = [
        (r"conv_in\.(.+)", lambda m: f"input_blocks.0.0.{m[1]}"),
        (r"time_embedding\.linear_1\.(.+)", lambda m: f"time_embed.0.{m[1]}"),
        (r"time_embedding\.linear_2\.(.+)", lambda m: f"time_embed.2.{m[1]}"),
        (r"(?:add|class)_embedding\.linear_1\.(.+)", lambda m: f"label_emb.0.0.{m[1]}"),
        (r"(?:add|class)_embedding\.linear_2\.(.+)", lambda m: f"label_emb.0.2.{m[1]}"),
        (r"controlnet_cond_embedding\.conv_in\.(.+)", lambda m: f"input_hint_block.0.{m[1]}"),
        (r"controlnet_cond_embedding\.blocks\.(\d+)\.(.+)", lambda m: f"input_hint_block.{2 * (int(m[1]) + 1)}.{m[2]}"),
        (r"controlnet_cond_embedding\.conv_out\.(.+)", lambda m: f"input_hint_block.{2 * (hint_blocks + 1)}.{m[1]}"),
        (r"down_blocks\.(\d+)\.resnets\.(\d+)\.([a-z_0-9]+)\.(.+)",
         lambda m: f"input_blocks.{block(int(m[1]), int(m[2]))}.0.{RESNET[m[3]]}.{m[4]}"),
        (r"down_blocks\.(\d+)\.attentions\.(\d+)\.(.+)", lambda m: f"input_blocks.{block(int(m[1]), int(m[2]))}.1.{m[3]}"),
        (r"down_blocks\.(\d+)\.downsamplers\.0\.conv\.(.+)", lambda m: f"input_blocks.{block(int(m[1]), layers)}.0.op.{m[2]}"),
        (r"mid_block\.resnets\.(\d+)\.([a-z_0-9]+)\.(.+)",
         lambda m: f"middle_block.{2 * int(m[1])}.{RESNET[m[2]]}.{m[3]}"),
        (r"mid_block\.attentions\.0\.(.+)", lambda m: f"middle_block.1.{m[1]}"),
        (r"controlnet_down_blocks\.(\d+)\.(.+)", lambda m: f"zero_convs.{m[1]}.0.{m[2]}"),
        (r"controlnet_mid_block\.(.+)", lambda m: f"middle_block_out.0.{m[1]}"),
    ]
    compiled = [(re.compile(p + r"$"), f) for p, f in rules]
    out = {}
    for key, value in state.items():
        for pattern, rename in compiled:
            m = pattern.match(key)
            if m:
                try:
                    new = rename(m)
                except KeyError:
                    raise ValueError(f"ControlNet key {key} has no place in the original ControlNet layout") from None
                if new in out:
                    raise ValueError(f"two ControlNet keys map to {new}")
                out[new] = value
                break
        else:
            raise ValueError(f"ControlNet key {key} has no place in the original ControlNet layout")
    if not any(k.startswith("mid_block.attentions.0.") for k in keys):
        raise ValueError("only ControlNets whose middle block has attention (SD1.5, SDXL) can be exported")
    return out


def family_tag(family: str) -> str:
    return FAMILY_TAGS.get(family, family.lower().replace(".", ""))


def describe(config: Config, role: str, step: int) -> BranchDescription:
    """What a trained branch of `config` was trained on, as the nodes read it."""
    family = config.base.family
    if role == "local":
        return BranchDescription("local", family, hint_format=config.local.hint_format,
                                 working_size=config.local.working_size, margin=config.local.margin,
                                 feather=config.local.feather, context="identity",
                                 name=f"RealisID local branch ({family}, step {step})")
    return BranchDescription("global", family, guidance_format=LOCATION_GUIDANCE_FORMAT, context=config.global_.context,
                             name=f"RealisID global branch ({family}, step {step})")


def recogniser_pack(config: Config) -> str | None:
    """The insightface pack `prepare` analysed the training photos with (its prepare.json beside the
    manifest), which the ID projector was trained on; None when that record is not found."""
    from .manifest import STATE, read_json
    try:
        state = read_json(os.path.join(os.path.dirname(os.path.abspath(config.data.manifest)), STATE)) or {}
        pack = (state.get("settings") or {}).get("pack")
    except (OSError, ValueError, AttributeError):  # no readable record: the pack stays unknown
        return None
    return pack if isinstance(pack, str) else None


def training_metadata(config: Config, step: int, role: str) -> dict[str, str]:
    """The training record every exported file carries (strings, as safetensors metadata must be)."""
    from .config import dumps
    record = {"trainer": TRAINER, "role": role, "family": config.base.family, "base_model": config.base.model,
              "step": step, "resolution": config.data.resolution,
              "face_scale": {"min": config.data.face_scale_min, "max": config.data.face_scale_max,
                             "distribution": config.data.face_scale_distribution},
              "identity": {"tokens": config.identity.tokens, "embedding_width": config.identity.embedding_width,
                           "embedding": "ArcFace, L2-normalised", "dropout": config.identity.dropout,
                           "null": "projector(zero embedding)"}}
    return {"realisid.training": json.dumps(record, sort_keys=True), "realisid.config": dumps(config),
            "realisid.family": config.base.family, "realisid.base_model": config.base.model}


def export_names(config: Config) -> dict[str, str]:
    """File names (relative to a ComfyUI models folder) of each exported part."""
    name, tag = config.export.name, family_tag(config.base.family)
    return {"local": f"controlnet/{name}_local_{tag}.safetensors",
            "global": f"controlnet/{name}_global_{tag}.safetensors",
            "projector": f"realisid/{name}_id_projector_{tag}.safetensors"}


def _save(tensors: dict[str, torch.Tensor], path: str, metadata: dict[str, str], dtype: torch.dtype) -> None:
    from safetensors.torch import save_file
    os.makedirs(os.path.dirname(path) or ".", exist_ok=True)
    tmp = f"{path}.partial"
    save_file({k: v.detach().to("cpu", dtype).contiguous() for k, v in tensors.items()}, tmp, metadata=metadata)
    os.replace(tmp, path)


def export_branches(config: Config, step: int, projector_state: dict | None, local_state: dict | None,
                    global_state: dict | None, out_dir: str, dtype: str | None = None) -> dict[str, str]:
    """Write the exported files under `out_dir` (a ComfyUI models folder layout); returns role → path.
    `projector_state` None: no branch attends to the identity, no projector is written."""
    dt = DTYPES[dtype or config.export.dtype]
    names, written = export_names(config), {}
    for role, state in (("local", local_state), ("global", global_state)):
        if state is None:
            continue
        metadata = {**describe(config, role, step).to_metadata(), **training_metadata(config, step, role)}
        written[role] = os.path.join(out_dir, names[role])
        _save(controlnet_to_ldm(state), written[role], metadata, dt)
    if projector_state is None:
        return written
    proj = {k: projector_state[k] for k in ("proj.weight", "proj.bias", "norm.weight", "norm.bias")}
    pairs = {"local": os.path.basename(names["local"]) if local_state is not None else None,
             "global": os.path.basename(names["global"]) if global_state is not None else None}
    metadata = {"realisid.projector": json.dumps({
        "family": config.base.family, "tokens": config.identity.tokens, "width": int(proj["norm.weight"].shape[0]),
        "embedding_width": config.identity.embedding_width, "embedding": "ArcFace, L2-normalised",
        "pack": recogniser_pack(config), "controlnets": pairs}, sort_keys=True),
        **training_metadata(config, step, "projector")}
    written["projector"] = os.path.join(out_dir, names["projector"])
    _save(proj, written["projector"], metadata, torch.float32 if dt == torch.float32 else dt)
    return written


def export_checkpoint(checkpoint: str, out_dir: str, dtype: str | None = None, name: str | None = None) -> dict[str, str]:
    """Export a training checkpoint folder (or a run folder: its latest checkpoint)."""
    from safetensors.torch import load_file

    from .checkpoints import find_checkpoint, read_trainer_state

    folder = find_checkpoint(checkpoint)
    config = load_config(os.path.join(folder, "config.toml"), check=False)  # as it was trained
    if name:
        from dataclasses import replace
        config = replace(config, export=replace(config.export, name=name))
    state = read_trainer_state(folder)

    def part(sub):
        path = os.path.join(folder, sub, "diffusion_pytorch_model.safetensors")
        return load_file(path) if os.path.exists(path) else None
    uses_identity = config.local.enabled or config.global_.context == "identity"
    projector = load_file(os.path.join(folder, "projector.safetensors")) if uses_identity else None
    return export_branches(config, state["step"], projector, part("local_controlnet"), part("global_controlnet"),
                           out_dir, dtype)
