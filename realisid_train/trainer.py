"""The training loop: frozen base, trainable branches and projector, accelerate, checkpoints, resume.

One optimizer step = `gradient_accumulation_steps` micro-batches of `batch_size` samples per
process. Each micro-batch: VAE-encode the composed pictures, add noise at random timesteps (the
base's DDPM schedule), run the branches on the noisy latent (local: crops of it; global: all of
it), add their residuals to the frozen U-Net and regress its prediction (ε or v, as the base was
trained) on the picture's cells (the fill around a zoomed-out photo is left out).

Resume restores everything a step depends on: the branches' and projector's weights, the
optimizer, the LR schedule, the step, the random generators (Python, NumPy, torch, CUDA — saved
by accelerate — and the trainer's own noise generator) and the position in the data stream, so a
resumed run computes the same losses as an uninterrupted one.
"""
from __future__ import annotations

import contextlib
import csv
import logging
import os
import shutil
import time
from dataclasses import dataclass, field

import torch
import torch.nn.functional as F

from realisid_core.families import to_pixels

from .branches import Branches, local_plan, size_time_ids
from .checkpoints import (checkpoint_folder, find_checkpoint, list_checkpoints,
                          write_trainer_state)
from .config import Config, ConfigError, load_config, save_config
from .models import DTYPES, build_branches, load_base, read_family

log = logging.getLogger("realisid_train")
LOG_COLUMNS = ("step", "loss", "lr", "grad_norm", "grad_norm_local", "grad_norm_global", "grad_norm_projector",
               "face_scale_mean", "identity_dropped", "seconds", "memory_gb")
# settings a checkpoint must share with the configuration that resumes it
RESUME_MUST_MATCH = (("base", "model"), ("base", "family"), ("local", "enabled"), ("global_", "enabled"),
                     ("global_", "context"), ("identity", "tokens"), ("identity", "embedding_width"),
                     ("train", "seed"), ("train", "batch_size"), ("train", "gradient_accumulation_steps"))


def predict(unet, branches, x_t, timesteps, embeddings, drop_identity, text, pooled, plans, local_hint, global_hint,
            weight_dtype):
    """The frozen U-Net's prediction for x_t with the branches' residuals added to its skip connections and
    middle block (SDXL: `pooled` text and the picture's size as its added conditioning)."""
    down, mid = branches(x_t, timesteps, embeddings, drop_identity, text, pooled, plans, local_hint, global_hint)
    added = None
    if pooled is not None:
        height, width = x_t.shape[-2:]
        added = {"text_embeds": pooled,
                 "time_ids": size_time_ids(to_pixels(height), to_pixels(width), len(x_t), x_t.device, pooled.dtype)}
    return unet(x_t.to(weight_dtype), timesteps, encoder_hidden_states=text,
                down_block_additional_residuals=[d.to(weight_dtype) for d in down],
                mid_block_additional_residual=mid.to(weight_dtype), added_cond_kwargs=added, return_dict=False)[0]


class TrainState:
    """The trainer's own state in a checkpoint (registered with accelerate): step, samples read, noise generator."""

    def __init__(self, generator: torch.Generator):
        self.step = 0
        self.samples = 0
        self.generator = generator

    def state_dict(self) -> dict:
        return {"step": self.step, "samples": self.samples, "generator": self.generator.get_state()}

    def load_state_dict(self, state: dict) -> None:
        self.step, self.samples = int(state["step"]), int(state["samples"])
        self.generator.set_state(state["generator"])


@dataclass
class StepRecord:
    step: int
    loss: float
    values: dict = field(default_factory=dict)


def _grad_norm(module) -> float:
    if module is None:
        return float("nan")
    grads = [p.grad.detach().float().norm() for p in module.parameters() if p.grad is not None]
    return float(torch.stack(grads).norm()) if grads else 0.0


class Trainer:
    """Build with a Config, then `run()`; `micro_step(batch)` is one forward/backward (tests use it directly)."""

    def __init__(self, config: Config, progress: bool = True):
        from accelerate import Accelerator
        from accelerate.utils import ProjectConfiguration, set_seed

        from .validation import check_before_training, validate

        self.progress = progress
        validate(config)  # a Config built in Python has not been through load_config's checks
        self.config = config = config.resolve(read_family(config))
        validate(config)  # the family's sizes, now that they are known
        check_before_training(config)
        t = config.train
        os.makedirs(t.output_dir, exist_ok=True)
        self.accelerator = Accelerator(
            mixed_precision=t.mixed_precision, cpu=t.cpu,
            project_config=ProjectConfiguration(project_dir=t.output_dir))
        acc = self.accelerator
        set_seed(t.seed + acc.process_index)
        if t.allow_tf32 and torch.cuda.is_available():
            torch.backends.cuda.matmul.allow_tf32 = True
            torch.backends.cudnn.allow_tf32 = True
        self.weight_dtype = DTYPES[t.mixed_precision]
        self.vae_dtype = DTYPES[config.base.vae_dtype]

        self.base = load_base(config)
        branches = build_branches(config, self.base.unet)
        self.base.to(acc.device, self.weight_dtype, self.vae_dtype)
        if t.gradient_checkpointing:
            self.base.unet.enable_gradient_checkpointing()
            self.base.unet.train()  # diffusers before 0.32 checkpoints only in train mode (SD U-Nets have no dropout)
            for net in (branches.local, branches.global_):
                if net is not None:
                    net.enable_gradient_checkpointing()
        self.prediction_type = self.base.scheduler.config.prediction_type
        if self.prediction_type not in ("epsilon", "v_prediction"):
            raise ConfigError(f"the base's scheduler predicts '{self.prediction_type}'; only epsilon and "
                              "v_prediction models can be trained")

        nets = [n for n in (branches.local, branches.global_) if n is not None]
        groups = [{"params": [p for n in nets for p in n.parameters()], "lr": t.learning_rate}]
        if branches.uses_identity:
            groups.append({"params": list(branches.projector.parameters()), "lr": t.projector_learning_rate})
        else:  # a global branch on the prompt alone: no projector to train (and none exported)
            branches.projector.requires_grad_(False)
        optimizer = torch.optim.AdamW(groups, betas=(t.adam_beta1, t.adam_beta2), weight_decay=t.adam_weight_decay,
                                      eps=t.adam_epsilon)
        from diffusers.optimization import get_scheduler
        scheduler = get_scheduler(t.lr_scheduler, optimizer, num_warmup_steps=t.lr_warmup_steps * acc.num_processes,
                                  num_training_steps=t.max_steps * acc.num_processes)
        self.branches, self.optimizer, self.lr_scheduler = acc.prepare(branches, optimizer, scheduler)
        device = acc.device
        self.generator = torch.Generator(device=device).manual_seed(t.seed * 1000 + acc.process_index)
        self.state = TrainState(self.generator)
        acc.register_for_checkpointing(self.state)
        acc.register_save_state_pre_hook(self._save_parts)
        acc.register_load_state_pre_hook(self._load_parts)
        self.resumed_from = self._resume()
        self.log_path = os.path.join(t.output_dir, "logs", "loss.csv")
        if acc.is_main_process:  # one writer (every process shares output_dir)
            save_config(config, os.path.join(t.output_dir, "config.toml"))

    # -- parts in their own formats inside accelerate's checkpoint ------------------------------------
    @property
    def parts(self) -> Branches:
        return self.accelerator.unwrap_model(self.branches)

    def _save_parts(self, models, weights, output_dir):
        from safetensors.torch import save_file
        if self.accelerator.is_main_process:
            parts = self.parts
            save_file({k: v.detach().contiguous() for k, v in parts.projector.state_dict().items()},
                      os.path.join(output_dir, "projector.safetensors"))
            for name, net in (("local_controlnet", parts.local), ("global_controlnet", parts.global_)):
                if net is not None:
                    net.save_pretrained(os.path.join(output_dir, name))
        while weights:  # saved above; accelerate would save them again
            weights.pop()

    def _load_parts(self, models, input_dir):
        from safetensors.torch import load_file
        parts = self.parts
        parts.projector.load_state_dict(load_file(os.path.join(input_dir, "projector.safetensors")))
        for name, net in (("local_controlnet", parts.local), ("global_controlnet", parts.global_)):
            if net is not None:
                net.load_state_dict(load_file(os.path.join(input_dir, name, "diffusion_pytorch_model.safetensors")))
        while models:
            models.pop()

    def _resume(self) -> str | None:
        t = self.config.train
        if t.resume == "none":
            if list_checkpoints(t.output_dir):
                log.warning("train.resume is 'none' but %s has checkpoints: they will be overwritten as training "
                            "reaches their steps", t.output_dir)
            return None
        if t.resume == "latest":
            found = list_checkpoints(t.output_dir)
            if not found:
                return None
            folder = found[-1][1]
        else:
            folder = find_checkpoint(t.resume)
        saved = load_config(os.path.join(folder, "config.toml"), check=False)  # as it was trained
        for section, key in RESUME_MUST_MATCH:
            a, b = getattr(getattr(saved, section), key), getattr(getattr(self.config, section), key)
            if a != b:
                raise ConfigError(f"cannot resume from {folder}: it was trained with {section.rstrip('_')}.{key} = "
                                  f"{a!r}, the configuration says {b!r} (start a new output_dir, or set train.resume "
                                  "= \"none\")")
        self.accelerator.load_state(folder)
        # the optimizer's saved learning rates follow the schedule of the saved configuration; re-evaluate this
        # configuration's schedule at the restored step (they differ when train.max_steps was raised to go on)
        schedule = getattr(self.lr_scheduler, "scheduler", self.lr_scheduler)  # a LambdaLR (diffusers' schedules)
        for group, rate, base in zip(self.optimizer.param_groups, schedule.lr_lambdas, schedule.base_lrs):
            group["lr"] = base * rate(schedule.last_epoch)
        schedule._last_lr = [group["lr"] for group in self.optimizer.param_groups]
        if saved.train.max_steps != self.config.train.max_steps:
            log.info("train.max_steps is %d now (%d in the checkpoint): the learning-rate schedule is this "
                     "configuration's", self.config.train.max_steps, saved.train.max_steps)
        log.info("resumed from %s (step %d)", folder, self.state.step)
        return folder

    # -- one micro-batch --------------------------------------------------------------------------------
    def micro_step(self, batch: dict, backward: bool = True, scale: float = 1.0) -> torch.Tensor:
        """Forward (and backward, loss × `scale`) of one micro-batch; returns the unscaled loss."""
        c, acc, base = self.config, self.accelerator, self.base
        device, gen = acc.device, self.generator
        pixels = batch["pixels"].to(device, self.vae_dtype)
        batch_size = pixels.shape[0]
        with torch.no_grad():
            latents = base.vae.encode(pixels).latent_dist.sample(generator=gen).float()
            shift = getattr(base.vae.config, "shift_factor", None) or 0.0
            latents = (latents - shift) * base.vae.config.scaling_factor
            noise = torch.randn(latents.shape, generator=gen, device=gen.device).to(device)
            timesteps = torch.randint(0, base.scheduler.config.num_train_timesteps, (batch_size,), generator=gen,
                                      device=gen.device).to(device)
            x_t = base.scheduler.add_noise(latents, noise, timesteps)
            text, pooled = base.encode_text(list(batch["caption"]), device)
        height, width = x_t.shape[-2:]
        plans = None
        if c.local.enabled:
            boxes = batch["box"].numpy()
            plans = [local_plan(boxes[i:i + 1], c.local, height, width, torch.float32, device)
                     for i in range(batch_size)]
        with acc.autocast():
            prediction = predict(base.unet, self.branches, x_t, timesteps, batch["embedding"].to(device),
                                 batch["drop_identity"].to(device), text, pooled, plans,
                                 batch["local_hint"].to(device) if c.local.enabled else None,
                                 batch["global_hint"].to(device) if c.global_.enabled else None, self.weight_dtype)
        target = noise if self.prediction_type == "epsilon" else base.scheduler.get_velocity(latents, noise, timesteps)
        error = (prediction.float() - target.float()) ** 2
        if c.data.loss_on_padding:
            loss = error.mean()
        else:
            weight = F.avg_pool2d(batch["coverage"].to(device).float(), 8)
            loss = (error * weight).sum() / (weight.sum() * error.shape[1]).clamp_min(1e-6)
        if backward:
            acc.backward(loss * scale)
        return loss.detach()

    # -- the loop ---------------------------------------------------------------------------------------
    def data(self, start_microbatch: int):
        from .dataset import TrainingStream, stream_loader
        acc = self.accelerator
        stream = TrainingStream(self.config)
        return stream, stream_loader(stream, self.config.train.batch_size, start_microbatch, acc.process_index,
                                     acc.num_processes, self.config.data.num_workers)

    def optimizer_step(self, batches) -> StepRecord:
        """One optimizer step over `gradient_accumulation_steps` micro-batches from the iterator `batches`."""
        t, acc = self.config.train, self.accelerator
        accum = t.gradient_accumulation_steps
        started = time.perf_counter()
        losses, scales, dropped = [], [], []
        for micro in range(accum):
            batch = next(batches)
            sync = contextlib.nullcontext() if micro == accum - 1 else acc.no_sync(self.branches)
            with sync:
                losses.append(self.micro_step(batch, scale=1.0 / accum))
            scales.append(batch["face_scale"].float().mean())
            dropped.append(batch["drop_identity"].float().mean())
            self.state.samples += len(batch["index"]) * acc.num_processes
        total_norm = acc.clip_grad_norm_(self.branches.parameters(), t.max_grad_norm)
        parts = self.parts
        values = {"grad_norm": float(total_norm), "grad_norm_local": _grad_norm(parts.local),
                  "grad_norm_global": _grad_norm(parts.global_), "grad_norm_projector": _grad_norm(parts.projector),
                  "lr": self.lr_scheduler.get_last_lr()[0]}
        self.optimizer.step()
        self.lr_scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        self.state.step += 1
        loss = acc.reduce(torch.stack(losses).mean(), reduction="mean")
        values.update(face_scale_mean=float(torch.stack(scales).mean()), identity_dropped=float(torch.stack(dropped).mean()),
                      seconds=time.perf_counter() - started,
                      memory_gb=torch.cuda.max_memory_allocated() / 2**30 if torch.cuda.is_available() else "")
        return StepRecord(self.state.step, float(loss), values)

    def save_checkpoint(self) -> str:
        t, acc = self.config.train, self.accelerator
        folder = checkpoint_folder(t.output_dir, self.state.step)
        if acc.is_main_process and os.path.exists(folder):
            shutil.rmtree(folder)  # an incomplete or superseded save of the same step
        acc.wait_for_everyone()
        acc.save_state(folder)
        if acc.is_main_process:
            save_config(self.config, os.path.join(folder, "config.toml"))
            write_trainer_state(folder, {"step": self.state.step, "samples": self.state.samples,
                                         "family": self.config.base.family, "base_model": self.config.base.model})
            if t.checkpoints_total_limit:
                for _, old in list_checkpoints(t.output_dir)[:-t.checkpoints_total_limit]:
                    shutil.rmtree(old, ignore_errors=True)
        acc.wait_for_everyone()
        return folder

    def _open_log(self):
        os.makedirs(os.path.dirname(self.log_path), exist_ok=True)
        rows = []
        if os.path.exists(self.log_path):  # keep what led to the resumed step, drop what came after it
            with open(self.log_path, newline="") as f:
                rows = [r for r in csv.DictReader(f) if int(r["step"]) <= self.state.step]
        f = open(self.log_path, "w", newline="")
        writer = csv.DictWriter(f, fieldnames=LOG_COLUMNS, extrasaction="ignore")
        writer.writeheader()
        writer.writerows(rows)
        f.flush()
        return f, writer

    def run(self, until: int | None = None) -> list[StepRecord]:
        """Train to train.max_steps (from the resumed step), checkpointing every train.checkpoint_every steps.
        `until` stops earlier, at that step, as an interruption would (the schedule stays max_steps long)."""
        from tqdm.auto import tqdm

        t, acc = self.config.train, self.accelerator
        per_micro = t.batch_size * acc.num_processes
        if self.state.samples % per_micro:
            log.warning("the checkpoint read %d samples, not a whole number of micro-batches of %d",
                        self.state.samples, per_micro)
        _, loader = self.data(self.state.samples // per_micro)
        batches = iter(loader)
        records = []
        f, writer = self._open_log() if acc.is_main_process else (None, None)
        bar = tqdm(total=t.max_steps, initial=self.state.step, unit="step", desc="training",
                   disable=not (self.progress and acc.is_main_process))
        try:
            while self.state.step < min(t.max_steps, until or t.max_steps):
                record = self.optimizer_step(batches)
                records.append(record)
                if writer is not None:
                    writer.writerow({"step": record.step, "loss": f"{record.loss:.6g}", **{
                        k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in record.values.items()}})
                    f.flush()
                bar.update(1)
                if record.step % t.log_every == 0 or record.step == t.max_steps:
                    bar.set_postfix(loss=f"{record.loss:.4f}", lr=f"{record.values['lr']:.2e}")
                if record.step % t.checkpoint_every == 0 or record.step == t.max_steps:
                    self.save_checkpoint()
        finally:
            bar.close()
            if f is not None:
                f.close()
        return records
