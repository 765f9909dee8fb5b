"""Memory and time per training step of the standard SD1.5 / SDXL configurations, estimated without a GPU.

The real architectures (SD1.5's and SDXL's U-Net, VAE and text encoders, from their published
configurations) are built on PyTorch's `meta` device — shapes without storage — and the trainer's
own forward (`trainer.predict`: both branches with the engine's crop/paste, the frozen U-Net) and
backward run on them:

- FLOPs are counted by `torch.utils.flop_counter.FlopCounterMode` (forward, backward including the
  recomputation of gradient checkpointing, the VAE encoder and the text encoders);
- activation memory is the bytes of the tensors autograd saves for the backward pass (parameters
  excluded), with attention as memory-efficient SDPA saves it (the GPU kernels don't keep the
  attention matrix); with gradient checkpointing, plus the largest checkpointed block's activations,
  recomputed during the backward pass;
- static memory is counted from the parameters: frozen weights in the weight dtype, trainable ones
  in fp32 with their gradient, AdamW's two moments and autocast's half-precision copy.

Time = FLOPs / (utilisation × the card's dense bf16 peak), utilisation 0.15-0.35: U-Net training is
full of memory-bound work (group norms, element-wise ops, small attention at low resolution) that
keeps it well below matmul-bound utilisation. Data loading is not counted (it runs in workers). These are estimates, not measurements: measure on your card with the
`seconds` and `memory_gb` columns of the training log.
"""
from __future__ import annotations

import contextlib
from dataclasses import replace

import torch

from realisid_core.families import to_cells, to_pixels

from .config import Config

SD15_UNET = dict(sample_size=64, block_out_channels=(320, 640, 1280, 1280), layers_per_block=2, attention_head_dim=8,
                 cross_attention_dim=768, down_block_types=("CrossAttnDownBlock2D",) * 3 + ("DownBlock2D",),
                 up_block_types=("UpBlock2D",) + ("CrossAttnUpBlock2D",) * 3)
SDXL_UNET = dict(sample_size=128, block_out_channels=(320, 640, 1280), layers_per_block=2,
                 attention_head_dim=(5, 10, 20), transformer_layers_per_block=(1, 2, 10), cross_attention_dim=2048,
                 down_block_types=("DownBlock2D", "CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                 up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D", "UpBlock2D"), use_linear_projection=True,
                 addition_embed_type="text_time", addition_time_embed_dim=256,
                 projection_class_embeddings_input_dim=2816)
SD_VAE = dict(block_out_channels=(128, 256, 512, 512), down_block_types=("DownEncoderBlock2D",) * 4,
              up_block_types=("UpDecoderBlock2D",) * 4, layers_per_block=2, latent_channels=4)
CLIP_L = dict(vocab_size=49408, hidden_size=768, intermediate_size=3072, num_hidden_layers=12, num_attention_heads=12,
              max_position_embeddings=77, projection_dim=768, hidden_act="quick_gelu")
CLIP_BIGG = dict(vocab_size=49408, hidden_size=1280, intermediate_size=5120, num_hidden_layers=32,
                 num_attention_heads=20, max_position_embeddings=77, projection_dim=1280, hidden_act="gelu")
CARDS = {"A100 80GB": 312e12, "H100 SXM": 989e12}  # dense bf16 tensor-core peak, FLOP/s
UTILISATION = (0.15, 0.35)  # share of the peak a diffusers-style training step sustains
GiB = 2 ** 30


@contextlib.contextmanager
def efficient_attention():
    """SDPA as the GPU's memory-efficient kernel (saves q, k, v, output, log-sum-exp; not the attention matrix),
    which also has meta kernels and FLOP formulas."""
    import torch.nn.functional as F
    original = F.scaled_dot_product_attention

    def sdpa(q, k, v, attn_mask=None, dropout_p=0.0, is_causal=False, scale=None, **_):
        return torch.ops.aten._scaled_dot_product_efficient_attention(q, k, v, attn_mask, True, dropout_p, is_causal,
                                                                     scale=scale)[0]
    F.scaled_dot_product_attention = sdpa
    try:
        yield
    finally:
        F.scaled_dot_product_attention = original


class SavedBytes:
    """Bytes autograd saves for backward (parameters excluded), in total and per named block."""

    def __init__(self, parameters):
        self.ids = {id(p) for p in parameters}
        self.total, self.block, self.blocks = 0, None, {}

    def pack(self, t):
        if id(t) not in self.ids:
            size = t.numel() * t.element_size()
            self.total += size
            if self.block is not None:
                self.blocks[self.block] = self.blocks.get(self.block, 0) + size
        return t

    def watch(self, name, module):
        module.register_forward_pre_hook(lambda *_: setattr(self, "block", name))
        module.register_forward_hook(lambda *_: setattr(self, "block", None))


def checkpointed_blocks(model) -> dict:
    """The blocks diffusers wraps in gradient checkpointing (down / mid / up blocks)."""
    blocks = {f"down{i}": b for i, b in enumerate(model.down_blocks)}
    if getattr(model, "mid_block", None) is not None:
        blocks["mid"] = model.mid_block
    blocks.update({f"up{i}": b for i, b in enumerate(getattr(model, "up_blocks", []))})
    return blocks


def count(module) -> int:
    return sum(p.numel() for p in module.parameters())


def estimate(family: str = "SD1.5", batch_size: int = 4, local: bool = True, global_: bool = True,
             gradient_checkpointing: bool = True, mixed_precision: str = "bf16", resolution: int = 0,
             working_size: int = 0) -> dict:
    """Parameters, memory (GiB) and FLOPs of one training step (one micro-batch) of `family` — see module doc."""
    from diffusers import AutoencoderKL, UNet2DConditionModel
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPTextModelWithProjection
    from torch.utils.flop_counter import FlopCounterMode

    from .branches import local_plan
    from .models import build_branches, cast
    from .trainer import predict

    c = Config()
    c = replace(c, base=replace(c.base, family=family), train=replace(c.train, mixed_precision=mixed_precision),
                data=replace(c.data, resolution=resolution), local=replace(c.local, enabled=local,
                                                                             working_size=working_size),
                global_=replace(c.global_, enabled=global_)).resolve(family)
    half = torch.bfloat16 if mixed_precision == "bf16" else torch.float16 if mixed_precision == "fp16" else torch.float32
    wbytes = torch.tensor([], dtype=half).element_size()
    size, latent, crop = c.data.resolution, to_cells(c.data.resolution), c.local.working_size
    with torch.device("meta"):
        unet = UNet2DConditionModel(**(SDXL_UNET if family == "SDXL" else SD15_UNET))
        branches = build_branches(c, unet)
        vae = AutoencoderKL(**SD_VAE)
        encoders = [CLIPTextModel(CLIPTextConfig(**CLIP_L))]
        if family == "SDXL":
            encoders.append(CLIPTextModelWithProjection(CLIPTextConfig(**CLIP_BIGG)))
    nets = [n for n in (branches.local, branches.global_) if n is not None]
    trainable = sum(count(n) for n in nets) + (count(branches.projector) if branches.uses_identity else 0)
    cast(unet, "meta", half).requires_grad_(False)
    cast(branches, "meta", half)  # autocast runs the fp32 branches in half precision: activations are half
    if gradient_checkpointing:
        unet.enable_gradient_checkpointing()
        for n in nets:
            n.enable_gradient_checkpointing()

    def meta(*shape, dtype=half):
        return torch.empty(*shape, device="meta", dtype=dtype)
    text_width = unet.config.cross_attention_dim
    x_t = meta(batch_size, 4, latent, latent)
    timesteps = torch.zeros(batch_size, dtype=torch.long, device="meta")
    boxes = torch.tensor([[0.5, 0.4, 0.2, 0.25]], dtype=torch.float64).numpy()
    plans = [local_plan(boxes, c.local, latent, latent, half, "meta")] * batch_size if local else None
    inputs = (x_t, timesteps, meta(batch_size, c.identity.embedding_width), torch.zeros(batch_size, dtype=torch.bool,
                                                                                        device="meta"),
              meta(batch_size, 77, text_width), meta(batch_size, 1280) if family == "SDXL" else None, plans,
              meta(batch_size, 3, to_pixels(crop), to_pixels(crop)) if local else None,
              meta(batch_size, 3, size, size) if global_ else None)
    saved = SavedBytes(list(unet.parameters()) + list(branches.parameters()))
    with efficient_attention():
        with FlopCounterMode(display=False) as forward_flops, torch.autograd.graph.saved_tensors_hooks(saved.pack,
                                                                                                       lambda t: t):
            loss = predict(unet, branches, *inputs, half).float().pow(2).mean()
        with FlopCounterMode(display=False) as backward_flops:
            loss.backward()
        # the largest block recomputed in the backward pass: each block's saved bytes without checkpointing
        per_block = 0
        if gradient_checkpointing:
            unet.disable_gradient_checkpointing()
            for n in nets:
                n.disable_gradient_checkpointing()
            blocks = SavedBytes(saved.ids)
            for prefix, model in [("unet", unet)] + [(f"net{i}", n) for i, n in enumerate(nets)]:
                for name, block in checkpointed_blocks(model).items():
                    blocks.watch(f"{prefix}.{name}", block)
            with torch.autograd.graph.saved_tensors_hooks(blocks.pack, lambda t: t):
                predict(unet, branches, *inputs, half)
            per_block = max(blocks.blocks.values(), default=0)
        vae_dtype = torch.float32 if c.base.vae_dtype == "fp32" else half
        cast(vae, "meta", vae_dtype)
        with FlopCounterMode(display=False) as encode_flops, torch.no_grad():
            vae.encode(meta(batch_size, 3, size, size, dtype=vae_dtype))
            for encoder in encoders:
                cast(encoder, "meta", half)
                encoder(torch.zeros(batch_size, 77, dtype=torch.long, device="meta"), output_hidden_states=True)

    frozen = (count(unet) + sum(count(e) for e in encoders)) * wbytes + count(vae) * (4 if vae_dtype == torch.float32
                                                                                      else wbytes)
    optimizer = trainable * (4 + 4 + 8 + (wbytes if half != torch.float32 else 0))
    activations = saved.total + per_block
    flops = forward_flops.get_total_flops() + backward_flops.get_total_flops() + encode_flops.get_total_flops()
    return {
        "family": family, "batch_size": batch_size, "resolution": size, "working_size": crop,
        "branches": "+".join(n for n, on in (("local", local), ("global", global_)) if on),
        "gradient_checkpointing": gradient_checkpointing, "mixed_precision": mixed_precision,
        "parameters_frozen_M": (count(unet) + count(vae) + sum(count(e) for e in encoders)) / 1e6,
        "parameters_trained_M": trainable / 1e6,
        "memory_frozen_GiB": frozen / GiB, "memory_trained_GiB": optimizer / GiB,
        "memory_activations_GiB": activations / GiB, "memory_total_GiB": (frozen + optimizer + activations) / GiB,
        "tflops_per_step": flops / 1e12,
        "seconds_per_step": {card: tuple(flops / (u * peak) for u in UTILISATION) for card, peak in CARDS.items()},
    }


def table(rows: list[dict]) -> str:
    """A Markdown table of estimates."""
    head = ("| base | batch | branches | grad. ckpt | trained (M) | weights+optimizer | activations | total | "
            "TFLOP/step | " + " | ".join(f"s/step {card}" for card in CARDS) + " |")
    lines = [head, "|" + "---|" * (9 + len(CARDS))]
    for r in rows:
        times = " | ".join(f"{lo:.3g}-{hi:.3g}" for hi, lo in r["seconds_per_step"].values())
        lines.append(f"| {r['family']} {r['resolution']}px | {r['batch_size']} | {r['branches']} | "
                     f"{'on' if r['gradient_checkpointing'] else 'off'} | {r['parameters_trained_M']:.0f} | "
                     f"{r['memory_frozen_GiB'] + r['memory_trained_GiB']:.1f} GiB | "
                     f"{r['memory_activations_GiB']:.1f} GiB | {r['memory_total_GiB']:.1f} GiB | "
                     f"{r['tflops_per_step']:.1f} | {times} |")
    return "\n".join(lines)
