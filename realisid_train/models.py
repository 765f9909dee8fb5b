"""The frozen base model (diffusers components) and the trainable branches built from it."""
from __future__ import annotations

import logging
import os
from dataclasses import dataclass

import torch

from realisid_core.families import family
from realisid_core.models.projector import IDProjector

from .branches import Branches
from .config import Config, ConfigError

log = logging.getLogger("realisid_train")
DTYPES = {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16, "no": torch.float32}


def cast(module: torch.nn.Module, device, dtype: torch.dtype) -> torch.nn.Module:
    """Move and cast a model (torch's own `to`: diffusers' warns about float32 modules on every cast, even when
    a model has none)."""
    return torch.nn.Module.to(module, device=device, dtype=dtype)


def family_of_unet(unet_config) -> str | None:
    """SDXL for a text-time U-Net, SD1.5 for one with 768-wide cross-attention, else None."""
    if unet_config.get("addition_embed_type") == "text_time":
        return "SDXL"
    if unet_config.get("cross_attention_dim") == family("SD1.5").context_width:
        return "SD1.5"
    return None


@dataclass
class Base:
    """The frozen parts: U-Net, VAE, text encoder(s) with tokenizer(s), the noise schedule."""

    family: str
    unet: torch.nn.Module
    vae: torch.nn.Module
    text_encoders: list
    tokenizers: list
    scheduler: object

    def modules(self) -> list[torch.nn.Module]:
        return [self.unet, self.vae, *self.text_encoders]

    def to(self, device, weight_dtype: torch.dtype, vae_dtype: torch.dtype) -> "Base":
        cast(self.unet, device, weight_dtype)
        cast(self.vae, device, vae_dtype)
        for encoder in self.text_encoders:
            cast(encoder, device, weight_dtype)
        return self

    @torch.no_grad()
    def encode_text(self, captions: list[str], device) -> tuple[torch.Tensor, torch.Tensor | None]:
        """(context [B, 77, D], pooled [B, 1280] for SDXL else None), as diffusers' pipelines encode prompts."""
        if self.family == "SD1.5":
            tok = self.tokenizers[0]
            ids = tok(captions, padding="max_length", max_length=tok.model_max_length, truncation=True,
                      return_tensors="pt").input_ids.to(device)
            return self.text_encoders[0](ids)[0], None
        hidden, pooled = [], None
        for tok, encoder in zip(self.tokenizers, self.text_encoders):
            ids = tok(captions, padding="max_length", max_length=tok.model_max_length, truncation=True,
                      return_tensors="pt").input_ids.to(device)
            out = encoder(ids, output_hidden_states=True)
            hidden.append(out.hidden_states[-2])
            pooled = out[0]  # the last encoder's projected pooled output (text_embeds)
        return torch.cat(hidden, dim=-1), pooled


def read_family(config: Config) -> str:
    """The base model's family: as configured, or read from its U-Net's config."""
    from .base_folder import check_base_folder, load_error
    if config.base.family != "auto":
        return config.base.family
    from diffusers import UNet2DConditionModel
    location = check_base_folder(config, None)
    try:
        unet_config = UNet2DConditionModel.load_config(location, subfolder="unet", revision=config.base.revision or None)
    except Exception as exc:  # diffusers / huggingface_hub errors: reported with the part named
        raise load_error("unet/config.json (the U-Net's configuration)", config.base.model, exc) from None
    family = family_of_unet(unet_config)
    if family is None:
        raise ConfigError(f"cannot tell the family of {config.base.model} from its U-Net (cross-attention width "
                          f"{unet_config.get('cross_attention_dim')}): set base.family to SD1.5 or SDXL")
    return family


def load_base(config: Config) -> Base:
    """Load the base model's components, frozen, in float32 on the CPU (build the branches from this U-Net,
    then `Base.to` the device and dtypes)."""
    from diffusers import AutoencoderKL, DDPMScheduler, UNet2DConditionModel
    from transformers import AutoTokenizer, CLIPTextModel, CLIPTextModelWithProjection

    from .base_folder import check_base_folder, load_error

    b = config.base
    model = check_base_folder(config, b.family)
    common = {"revision": b.revision or None}
    weights = dict(common, variant=b.variant or None)

    def load(cls, part, **kwargs):
        try:
            return cls.from_pretrained(model, subfolder=part, **kwargs)
        except Exception as exc:  # diffusers / transformers / huggingface_hub errors: reported with the part named
            raise load_error(f"{part}/", b.model, exc) from None

    unet = load(UNet2DConditionModel, "unet", **weights)
    if b.vae:
        try:
            vae = AutoencoderKL.from_pretrained(os.path.expanduser(b.vae), **common)
        except Exception as exc:
            raise load_error(f"the VAE base.vae = {b.vae!r}", b.model, exc) from None
    else:
        vae = load(AutoencoderKL, "vae", **weights)
    scheduler = load(DDPMScheduler, "scheduler", **common)
    if b.family == "SDXL":
        tokenizers = [load(AutoTokenizer, s, **common) for s in ("tokenizer", "tokenizer_2")]
        encoders = [load(CLIPTextModel, "text_encoder", **weights),
                    load(CLIPTextModelWithProjection, "text_encoder_2", **weights)]
    else:
        tokenizers = [load(AutoTokenizer, "tokenizer", **common)]
        encoders = [load(CLIPTextModel, "text_encoder", **weights)]
    found = family_of_unet(unet.config)
    if found is not None and found != b.family:
        raise ConfigError(f"base.family is {b.family} but {b.model} is an {found} model")
    base = Base(b.family, unet, vae, encoders, tokenizers, scheduler)
    for module in base.modules():
        module.requires_grad_(False)
        module.eval()
    return base


def build_branches(config: Config, unet) -> Branches:
    """The projector and the enabled ControlNets, each ControlNet initialised from the U-Net's encoder."""
    from diffusers import ControlNetModel

    width = unet.config.cross_attention_dim
    projector = IDProjector(config.identity.embedding_width, config.identity.tokens, width)
    local = ControlNetModel.from_unet(unet) if config.local.enabled else None
    global_ = ControlNetModel.from_unet(unet) if config.global_.enabled else None
    for net in (local, global_):
        if net is not None:
            cast(net, None, torch.float32)
            net.train()
    projector.train()
    return Branches(projector, local, global_, config.global_.context)
