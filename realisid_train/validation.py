"""Every trainer setting checked before anything is loaded: range, finiteness, and settings that contradict.

Each refusal is a ConfigError naming the TOML key, the value it has and what to set instead, so a
run never starts with a setting that would train backwards (a negative learning rate), never
(a zero one), or stop after hours (a seed numpy cannot take).
"""
from __future__ import annotations

import math
import re

from realisid_core.models.description import MARGIN_RANGE

from .config import (EXPORT_DTYPES, FAMILIES, GLOBAL_CONTEXTS, LR_SCHEDULERS, MIXED_PRECISION, SCALE_DISTRIBUTIONS,
                     VAE_DTYPES, Config, ConfigError)

ARCFACE_WIDTH = 512      # both insightface packs (antelopev2, buffalo_l) give 512-wide embeddings
MAX_TOKENS = 77          # the identity tokens sit beside a 77-token prompt in the nodes
MAX_SEED = 2**32 - 1024  # numpy seeds (accelerate's set_seed: seed + process index) must stay below 2**32
MAX_RESOLUTION = 4096
SCHEDULES_WITHOUT_WARMUP = ("constant",)
_SAFE_NAME = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")


def refuse(key: str, value, problem: str, fix: str):
    raise ConfigError(f"{key} = {value!r}: {problem}; {fix}")


def _finite(config: Config) -> None:
    """NaN passes every comparison, so every float is checked for it (and for infinity) first."""
    for section, values in config.to_dict().items():
        for key, value in values.items():
            if isinstance(value, float) and not math.isfinite(value):
                if (section, key) == ("train", "max_grad_norm") and value == math.inf:
                    continue  # inf: no clipping, as torch reads it
                refuse(f"{section}.{key}", value, "not a finite number", "give an ordinary number")


def _one_of(key, value, allowed, extra: str = ""):
    if value not in allowed:
        refuse(key, value, "not a known value", f"set one of {', '.join(map(repr, allowed))}{extra}")


def _range(key, value, low=None, high=None, low_open=False, high_open=False, fix: str = ""):
    """`value` within [low, high] (open ends where asked); refused with the range and `fix`."""
    below = low is not None and (value <= low if low_open else value < low)
    above = high is not None and (value >= high if high_open else value > high)
    if below or above:
        left = "" if low is None else f"{'more than' if low_open else 'at least'} {low}"
        right = "" if high is None else f"{'less than' if high_open else 'at most'} {high}"
        wanted = " and ".join(p for p in (left, right) if p)
        refuse(key, value, f"out of range (expected {wanted})", fix or f"set a value {wanted}")


def _path(key, value, what: str):
    if not value.strip():
        refuse(key, value, f"empty: {what} is needed", f"set {key} to {what}")


def _base(c: Config) -> None:
    b = c.base
    _path("base.model", b.model, "a diffusers folder or a Hugging Face id")
    _one_of("base.family", b.family, ("auto",) + FAMILIES)
    _one_of("base.vae_dtype", b.vae_dtype, VAE_DTYPES)


def _data(c: Config) -> None:
    d = c.data
    _path("data.manifest", d.manifest, "the manifest.jsonl `prepare` wrote")
    if d.resolution:
        _range("data.resolution", d.resolution, 64, MAX_RESOLUTION,
               fix="set a multiple of 64 from 64 to 4096, or 0 for the family's (512 SD1.5, 1024 SDXL)")
        if d.resolution % 64:
            refuse("data.resolution", d.resolution, "not a multiple of 64",
                   f"set {d.resolution // 64 * 64 or 64} or {(d.resolution // 64 + 1) * 64} (or 0 for the family's)")
    _range("data.face_scale_min", d.face_scale_min, 0, 1, low_open=True, high_open=True,
           fix="set a fraction of the picture side, e.g. 0.05")
    _range("data.face_scale_max", d.face_scale_max, 0, 1, low_open=True, high_open=True,
           fix="set a fraction of the picture side, e.g. 0.60")
    if d.face_scale_min > d.face_scale_max:
        refuse("data.face_scale_min", d.face_scale_min, f"larger than data.face_scale_max = {d.face_scale_max}",
               "swap them, or lower face_scale_min (0 < min ≤ max < 1)")
    _one_of("data.face_scale_distribution", d.face_scale_distribution, SCALE_DISTRIBUTIONS)
    _range("data.max_upscale", d.max_upscale, 1, 16, fix="set at least 1 (1 never enlarges a photo), e.g. 2")
    for key in ("flip", "caption_dropout"):
        _range(f"data.{key}", getattr(d, key), 0, 1, fix="set a share between 0 and 1")
    _range("data.num_workers", d.num_workers, 0, 256, fix="set 0 (load in the training process) or a few processes")


def _local(c: Config) -> None:
    from realisid_core.branches.budget import WORKING_SIZES
    from realisid_core.signals.hints import HINT_FORMATS

    lo = c.local
    _one_of("local.hint_format", lo.hint_format, list(HINT_FORMATS))
    families = (c.base.family,) if c.base.family in FAMILIES else FAMILIES
    high = max(WORKING_SIZES[f].high for f in families if f in WORKING_SIZES)
    if lo.working_size:
        fix = f"set a multiple of 8 from 8 to {high} (or 0 for the family's: 64 SD1.5, 128 SDXL)"
        _range("local.working_size", lo.working_size, 8, high,
               fix=fix + "; the nodes run a local branch only at up to this size")
        if lo.working_size % 8:
            refuse("local.working_size", lo.working_size, "not a multiple of 8 latent cells", fix)
    _range("local.margin", lo.margin, *MARGIN_RANGE,
           fix=f"set {MARGIN_RANGE[0]:g} to {MARGIN_RANGE[1]:g} (the crop holds the whole face box; the nodes "
               "load no branch with a wider margin), e.g. 1.6")
    _range("local.feather", lo.feather, 0, 0.5, fix="set a fraction of the crop from 0 to 0.5, e.g. 0.15")


def _identity_and_global(c: Config) -> None:
    _one_of("global.context", c.global_.context, GLOBAL_CONTEXTS)
    if not (c.local.enabled or c.global_.enabled):
        raise ConfigError("local.enabled = false and global.enabled = false: there is nothing to train; "
                          "set one of them to true")
    i = c.identity
    _range("identity.tokens", i.tokens, 1, MAX_TOKENS, fix="set a few tokens, e.g. 4")
    if i.embedding_width != ARCFACE_WIDTH:
        refuse("identity.embedding_width", i.embedding_width, "not the width of the prepared embeddings",
               f"set {ARCFACE_WIDTH} (antelopev2 and buffalo_l both give 512-wide ArcFace embeddings)")
    _range("identity.dropout", i.dropout, 0, 1, fix="set a share between 0 and 1, e.g. 0.1")


def _optimizer(t) -> None:
    for key in ("learning_rate", "projector_learning_rate"):
        _range(f"train.{key}", getattr(t, key), 0, 1, low_open=True, high_open=True,
               fix="set a small positive rate (e.g. 1e-5 for the ControlNets, 1e-4 for the projector); "
                   "0 or less trains nothing or backwards")
    _range("train.adam_beta1", t.adam_beta1, 0, 1, high_open=True, fix="set a value from 0 to below 1, e.g. 0.9")
    _range("train.adam_beta2", t.adam_beta2, 0, 1, high_open=True, fix="set a value from 0 to below 1, e.g. 0.999")
    _range("train.adam_weight_decay", t.adam_weight_decay, 0, 1, high_open=True,
           fix="set 0 (none) or a small decay, e.g. 0.01")
    _range("train.adam_epsilon", t.adam_epsilon, 0, 1, low_open=True, high_open=True,
           fix="set a tiny positive number, e.g. 1e-8")
    _range("train.max_grad_norm", t.max_grad_norm, 0, low_open=True,
           fix="set a positive norm, e.g. 1.0 (inf: no clipping)")


def _schedule(t) -> None:
    _one_of("train.lr_scheduler", t.lr_scheduler, LR_SCHEDULERS)
    _range("train.lr_warmup_steps", t.lr_warmup_steps, 0, fix="set 0 (no warmup) or a number of steps")
    if t.lr_warmup_steps and t.lr_scheduler in SCHEDULES_WITHOUT_WARMUP:
        refuse("train.lr_warmup_steps", t.lr_warmup_steps, f"but train.lr_scheduler = {t.lr_scheduler!r} has no warmup",
               "set lr_warmup_steps = 0, or lr_scheduler = \"constant_with_warmup\"")
    if t.lr_warmup_steps >= t.max_steps:
        refuse("train.lr_warmup_steps", t.lr_warmup_steps,
               f"not shorter than the training (train.max_steps = {t.max_steps}): the rate would never reach "
               "train.learning_rate", f"set fewer warmup steps than {t.max_steps} (or raise train.max_steps)")


def _train(c: Config) -> None:
    t = c.train
    _path("train.output_dir", t.output_dir, "a folder for checkpoints and logs")
    _range("train.seed", t.seed, 0, MAX_SEED, fix=f"set a whole number from 0 to {MAX_SEED}")
    for key in ("max_steps", "batch_size", "gradient_accumulation_steps", "checkpoint_every", "log_every"):
        _range(f"train.{key}", getattr(t, key), 1, fix="set at least 1")
    _range("train.checkpoints_total_limit", t.checkpoints_total_limit, 0, fix="set 0 (keep all) or how many to keep")
    _optimizer(t)
    _schedule(t)
    _one_of("train.mixed_precision", t.mixed_precision, MIXED_PRECISION)
    if t.cpu and t.mixed_precision == "fp16":
        refuse("train.mixed_precision", t.mixed_precision, "fp16 mixed precision needs a GPU, and train.cpu = true",
               "set mixed_precision = \"no\" or \"bf16\" to train on the CPU")
    if not t.resume.strip():
        refuse("train.resume", t.resume, "empty", "set \"latest\", \"none\" or a checkpoint folder")


def _export(c: Config) -> None:
    if not _SAFE_NAME.match(c.export.name):
        refuse("export.name", c.export.name, "not usable in a file name",
               "use letters, digits, '.', '_' and '-' (no folders or spaces), e.g. \"realisid\"")
    _one_of("export.dtype", c.export.dtype, EXPORT_DTYPES)


def validate(config: Config) -> None:
    """Refuse settings that cannot work (ConfigError naming the key, its value and the fix)."""
    _finite(config)
    for check in (_base, _data, _local, _identity_and_global, _train, _export):
        check(config)


def check_before_training(config: Config) -> None:
    """What only the machine can tell, checked before any model is loaded: the data files are there, and a GPU
    for fp16."""
    import os

    import torch

    d, t = config.data, config.train
    if not os.path.isfile(d.manifest):
        refuse("data.manifest", d.manifest, "no such file",
               "run `python -m realisid_train prepare PHOTOS --out DATA` first and set data.manifest to "
               "DATA/manifest.jsonl")
    if d.photos and not os.path.isdir(d.photos):
        refuse("data.photos", d.photos, "no such folder", "set the photo folder `prepare` analysed, or \"\" for "
               "the one it recorded")
    if os.path.exists(t.output_dir) and not os.path.isdir(t.output_dir):
        refuse("train.output_dir", t.output_dir, "a file, not a folder", "set a folder for the run (new or earlier)")
    if t.resume not in ("latest", "none") and not os.path.exists(t.resume):
        refuse("train.resume", t.resume, "no such checkpoint or run folder",
               "set \"latest\" (the latest of train.output_dir), \"none\", or an existing checkpoint folder")
    if t.mixed_precision == "fp16" and not t.cpu and not torch.cuda.is_available():
        refuse("train.mixed_precision", t.mixed_precision, "fp16 needs a CUDA GPU and none is visible",
               "set mixed_precision = \"bf16\" or \"no\" (and train.cpu = true to train on the CPU)")
