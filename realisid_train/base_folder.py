"""The base model's folder checked part by part before diffusers reads it.

diffusers names only the top folder when a part is missing, and takes a local path that does not
exist for a Hugging Face id; here a missing part, or a path that is not there, is named first.
"""
from __future__ import annotations

import glob
import os
import re

from .config import Config, ConfigError

HUB_ID = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*/[A-Za-z0-9][A-Za-z0-9._-]*$")
# part folder -> (what it is, files of which one must be there)
PARTS = {
    "unet": ("the U-Net", ("config.json",), ("diffusion_pytorch_model*.safetensors", "diffusion_pytorch_model*.bin")),
    "vae": ("the VAE", ("config.json",), ("diffusion_pytorch_model*.safetensors", "diffusion_pytorch_model*.bin")),
    "scheduler": ("the noise schedule", ("scheduler_config.json",), ()),
    "text_encoder": ("the CLIP text encoder", ("config.json",), ("model*.safetensors", "pytorch_model*.bin")),
    "tokenizer": ("the CLIP tokenizer", ("tokenizer_config.json",), ("vocab.json", "tokenizer.json")),
    "text_encoder_2": ("SDXL's second text encoder", ("config.json",), ("model*.safetensors", "pytorch_model*.bin")),
    "tokenizer_2": ("SDXL's second tokenizer", ("tokenizer_config.json",), ("vocab.json", "tokenizer.json")),
}
SDXL_ONLY = ("text_encoder_2", "tokenizer_2")


def looks_local(model: str) -> bool:
    """A path rather than a Hub id ('org/name'): absolute, ~, ./, ../, backslashes, or more than one '/'."""
    return (os.path.isabs(model) or model.startswith(("~", ".", "\\")) or "\\" in model
            or not HUB_ID.match(model))


def model_location(model: str) -> str:
    """`base.model` as diffusers should get it: a local folder (~ expanded) or a Hub id; ConfigError for a local
    path that does not exist."""
    expanded = os.path.expanduser(model)
    if os.path.isdir(expanded):
        return expanded
    if os.path.exists(expanded):
        raise ConfigError(f"base.model = {model!r}: a file, not a folder; give the diffusers folder (with unet/, vae/, "
                          "text_encoder/, tokenizer/, scheduler/) or a Hugging Face id such as "
                          "\"stable-diffusion-v1-5/stable-diffusion-v1-5\"")
    parent = os.path.dirname(expanded.rstrip("/\\"))
    if looks_local(model) or (parent and os.path.isdir(parent)):
        near = f" ({parent} exists: is the last part misspelt?)" if parent and os.path.isdir(parent) else ""
        raise ConfigError(f"base.model = {model!r}: no such folder{near}; give the path of a diffusers folder, "
                          "or a Hugging Face id such as \"stable-diffusion-v1-5/stable-diffusion-v1-5\"")
    return model  # a Hub id


def missing_parts(folder: str, parts, variant: str = "") -> list[str]:
    """'unet/ (the U-Net): no config.json' for each part of `parts` the folder lacks or has incomplete."""
    problems = []
    for part in parts:
        what, configs, weights = PARTS[part]
        where = os.path.join(folder, part)
        if not os.path.isdir(where):
            problems.append(f"{part}/ ({what}) is missing")
            continue
        absent = [c for c in configs if not os.path.isfile(os.path.join(where, c))]
        if absent:
            problems.append(f"{part}/ ({what}) has no {' or '.join(absent)}")
            continue
        if weights and not any(glob.glob(os.path.join(where, w)) for w in weights):
            problems.append(f"{part}/ ({what}) has no {' or '.join(weights)}")
        elif variant and weights and part not in ("tokenizer", "tokenizer_2") and \
                not any(glob.glob(os.path.join(where, w.replace("*", f"*.{variant}"))) for w in weights):
            problems.append(f"{part}/ ({what}) has no weights of variant '{variant}'")
    return problems


def check_base_folder(config: Config, family: str | None) -> str:
    """The location of the base model (see `model_location`); for a local folder, ConfigError naming every
    part it lacks (`family` None: the parts every family has; SDXL's second encoder once the family is known)."""
    b = config.base
    location = model_location(b.model)
    if not os.path.isdir(location):
        return location
    parts = [p for p in PARTS if p not in SDXL_ONLY or family == "SDXL"]
    if b.vae:
        parts.remove("vae")
    problems = missing_parts(location, parts, b.variant)
    if problems:
        raise ConfigError(f"base.model = {b.model!r} is not a complete diffusers {family or 'SD'} folder: "
                          f"{'; '.join(problems)}; copy the whole model folder again (every subfolder), or give its "
                          "Hugging Face id")
    return location


def load_error(part: str, model: str, exc: Exception) -> ConfigError:
    """A diffusers / transformers loading error of one part as a ConfigError naming the part."""
    first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
    return ConfigError(f"base.model = {model!r}: {part} could not be loaded ({type(exc).__name__}: {first[:400]}); "
                       "check that the folder or Hugging Face id is a diffusers SD1.5/SDXL model (or give the id "
                       "with base.revision / base.variant that exist)")
