"""Time and memory of one training step at the real shapes, through the trainer's own code.

The real SD1.5 U-Net (diffusers, random weights, frozen, in the weight dtype) and the branches
`realisid_train.models.build_branches` makes from it (local and global ControlNets and the ID
projector, fp32, trained) run `realisid_train.trainer.predict` forward, backward and an AdamW
step, on the inputs `realisid_train.estimate` counts (one face, the default resolution and
working size), with gradient checkpointing and bf16 autocast on a GPU as the trainer's defaults.
Data loading, the VAE and the text encoders are not run (the trainer's data workers do that).
The counted figure beside it is `realisid_train.estimate.estimate` for the same step.
"""
from __future__ import annotations

import statistics
import time
from dataclasses import replace

import torch

from . import timing

# a toy U-Net of the SD1.5 layout, for the CPU smoke run (the tests' tiny trainer models)
TOY_UNET = dict(sample_size=8, block_out_channels=(32, 32), layers_per_block=1,
                down_block_types=("CrossAttnDownBlock2D", "CrossAttnDownBlock2D"),
                up_block_types=("CrossAttnUpBlock2D", "CrossAttnUpBlock2D"), cross_attention_dim=32,
                attention_head_dim=4, norm_num_groups=8)


def _memory_reset(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)
        torch.cuda.empty_cache()
        torch.cuda.reset_peak_memory_stats(device)


def train_steps(device: torch.device, toy: bool, steps: int = 3, batch_size: int = 1, log=lambda msg: None) -> dict:
    """Seconds per step (median of `steps` after one warm-up) and peak memory, beside the counted estimate."""
    from diffusers import UNet2DConditionModel

    from realisid_train.branches import local_plan
    from realisid_train.config import Config
    from realisid_train.estimate import SD15_UNET, estimate
    from realisid_train.models import build_branches, cast
    from realisid_train.trainer import predict

    gpu = device.type == "cuda"
    half = torch.bfloat16 if gpu else torch.float32
    config = Config()
    config = replace(config, train=replace(config.train, mixed_precision="bf16" if gpu else "no"))
    if toy:
        config = replace(config, data=replace(config.data, resolution=64), local=replace(config.local, working_size=8))
    config = config.resolve("SD1.5")
    size, crop = config.data.resolution, config.local.working_size
    latent = size // 8
    log(f"training step: {'toy' if toy else 'SD1.5'} U-Net at {size}² px, working size {crop}, batch {batch_size}, {device}")
    torch.manual_seed(0)
    _memory_reset(device)
    unet = UNet2DConditionModel(**(TOY_UNET if toy else SD15_UNET))
    branches = build_branches(config, unet)
    cast(unet, device, half).requires_grad_(False)
    branches.to(device)
    unet.enable_gradient_checkpointing()
    for net in (branches.local, branches.global_):
        if net is not None:
            net.enable_gradient_checkpointing()
    optimizer = torch.optim.AdamW([p for p in branches.parameters() if p.requires_grad], lr=1e-5)
    gen = torch.Generator().manual_seed(1)

    def rand(*shape):
        return torch.randn(*shape, generator=gen).to(device)
    width = unet.config.cross_attention_dim
    boxes = torch.tensor([[0.5, 0.4, 0.2, 0.25]], dtype=torch.float64).numpy()
    inputs = (rand(batch_size, 4, latent, latent), torch.randint(0, 1000, (batch_size,), generator=gen).to(device),
              rand(batch_size, config.identity.embedding_width), torch.zeros(batch_size, dtype=torch.bool, device=device),
              rand(batch_size, 77, width), None,
              [local_plan(boxes, config.local, latent, latent, torch.float32, device)] * batch_size,
              rand(batch_size, 3, crop * 8, crop * 8).clamp(0, 1), rand(batch_size, 3, size, size).clamp(0, 1))
    target = rand(batch_size, 4, latent, latent)
    static = torch.cuda.memory_allocated(device) if gpu else None

    def step():
        with torch.autocast(device.type, dtype=half, enabled=gpu):
            loss = torch.nn.functional.mse_loss(predict(unet, branches, *inputs, half).float(), target)
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
    seconds = []
    for k in range(steps + 1):  # the first step allocates the optimizer's moments: a warm-up
        timing.sync(device)
        start = time.perf_counter()
        step()
        timing.sync(device)
        if k:
            seconds.append(time.perf_counter() - start)
    out = {"family": "toy (SD1.5 layout)" if toy else "SD1.5", "resolution": size, "working_size": crop,
           "batch_size": batch_size, "steps": steps, "dtype": str(half), "gradient_checkpointing": True,
           "seconds_per_step": statistics.median(seconds), "runs_s": seconds,
           "trained_parameters_M": sum(p.numel() for p in branches.parameters() if p.requires_grad) / 1e6}
    if gpu:
        out["peak_memory_GiB"] = torch.cuda.max_memory_allocated(device) / 2 ** 30
        out["static_memory_GiB"] = static / 2 ** 30
    if not toy:
        log("training step: the counted estimate (realisid_train.estimate, on meta)")
        counted = estimate("SD1.5", batch_size=batch_size, mixed_precision="bf16")
        out["counted"] = {k: counted[k] for k in ("memory_total_GiB", "memory_activations_GiB", "tflops_per_step")}
        out["counted"]["seconds_per_step_H100"] = counted["seconds_per_step"]["H100 SXM"]
    del unet, branches, optimizer
    _memory_reset(device)
    return out
