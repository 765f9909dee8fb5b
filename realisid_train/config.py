"""The trainer's configuration: one TOML file with every setting, saved beside each checkpoint.

Sections and keys are the dataclasses below (section `global` is `Config.global_` in Python).
Unknown keys and values of the wrong type are refused with the list of valid keys, so a typo
never silently trains with a default. `auto` values are resolved once the base model is known
(`resolve`), and the resolved configuration is what is saved with the checkpoints.
"""
from __future__ import annotations

import json
import math
import sys
from dataclasses import asdict, dataclass, field, fields, replace

if sys.version_info >= (3, 11):
    import tomllib
else:  # pragma: no cover - exercised on Python 3.10 only
    import tomli as tomllib

from realisid_core.families import family

FAMILIES = ("SD1.5", "SDXL")
FAMILY_TAGS = {"SD1.5": "sd15", "SDXL": "sdxl"}
DEFAULT_RESOLUTION = {name: family(name).resolution for name in FAMILIES}
DEFAULT_WORKING_SIZE = {name: family(name).default_working_size for name in FAMILIES}  # latent cells
MIXED_PRECISION = ("no", "fp16", "bf16")
SCALE_DISTRIBUTIONS = ("log-uniform", "uniform")
GLOBAL_CONTEXTS = ("text", "identity")
LR_SCHEDULERS = ("constant", "constant_with_warmup", "linear", "cosine", "cosine_with_restarts", "polynomial")
EXPORT_DTYPES = ("fp16", "bf16", "fp32")
VAE_DTYPES = ("auto", "fp32", "fp16", "bf16")


class ConfigError(ValueError):
    """A configuration file or override that cannot be used; the message says what to change."""


@dataclass
class BaseSection:
    """The frozen base model (a diffusers folder or Hugging Face id) and its family."""

    model: str = "stable-diffusion-v1-5/stable-diffusion-v1-5"
    family: str = "auto"          # auto (from the U-Net) | SD1.5 | SDXL
    revision: str = ""
    variant: str = ""             # e.g. "fp16" to read the fp16 weight files of a Hub model
    vae: str = ""                 # another VAE (folder or id), e.g. madebyollin/sdxl-vae-fp16-fix
    vae_dtype: str = "auto"       # auto: fp32 for SDXL (its VAE overflows in fp16), the weight dtype otherwise


@dataclass
class DataSection:
    """Where the prepared data is and how training pictures are composed from it."""

    manifest: str = "data/manifest.jsonl"   # written by `python -m realisid_train prepare`
    photos: str = ""                        # the photo folder; "" = the one `prepare` recorded
    resolution: int = 0                     # training picture side in pixels; 0 = 512 (SD1.5) / 1024 (SDXL)
    face_scale_min: float = 0.05            # face box's longer side / picture side
    face_scale_max: float = 0.60
    face_scale_distribution: str = "log-uniform"
    max_upscale: float = 2.0                # never enlarge a photo more than this (scales beyond are re-drawn)
    flip: float = 0.5                       # probability of a horizontal mirror (pose mirrored with it)
    caption_dropout: float = 0.05           # share of samples trained with the empty prompt
    default_caption: str = "a photo of a person"
    loss_on_padding: bool = False           # also learn the fill around a zoomed-out photo
    num_workers: int = 2


@dataclass
class LocalSection:
    """The local branch: a ControlNet on each face's crop of the noisy latent."""

    enabled: bool = True
    hint_format: str = "realisid-pose-v1-68"   # or realisid-pose-v1-5 (the 5 detector keypoints)
    working_size: int = 0                      # crop side in latent cells; 0 = 64 (SD1.5) / 128 (SDXL)
    margin: float = 1.6                        # crop side / face box's longer side
    feather: float = 0.15                      # fraction of the crop blended out at its edge when pasting


@dataclass
class GlobalSection:
    """The global branch: a ControlNet on the whole latent, the location guidance as hint."""

    enabled: bool = True
    context: str = "text"                      # text (the prompt) | identity (the projector's tokens)


@dataclass
class IdentitySection:
    """The ID projector (ArcFace embedding → tokens) and identity dropout."""

    tokens: int = 4
    embedding_width: int = 512
    dropout: float = 0.1          # share of samples given the null identity: the projector of a zero embedding


@dataclass
class TrainSection:
    output_dir: str = "runs/realisid"
    seed: int = 0
    max_steps: int = 20000
    batch_size: int = 4
    gradient_accumulation_steps: int = 1
    learning_rate: float = 1e-5               # the ControlNets
    projector_learning_rate: float = 1e-4
    lr_scheduler: str = "constant_with_warmup"
    lr_warmup_steps: int = 500
    adam_beta1: float = 0.9
    adam_beta2: float = 0.999
    adam_weight_decay: float = 1e-2
    adam_epsilon: float = 1e-8
    max_grad_norm: float = 1.0
    mixed_precision: str = "fp16"             # no | fp16 | bf16
    gradient_checkpointing: bool = True
    allow_tf32: bool = True
    checkpoint_every: int = 1000
    checkpoints_total_limit: int = 3          # 0 keeps every checkpoint
    resume: str = "latest"                    # latest | none | a checkpoint folder
    log_every: int = 10                       # progress-bar refresh; the CSV log gets every step
    cpu: bool = False                         # train on the CPU even when a GPU is there (tests)


@dataclass
class ExportSection:
    name: str = "realisid"        # file names: <name>_local_<family>.safetensors, ...
    dtype: str = "fp16"


@dataclass
class Config:
    base: BaseSection = field(default_factory=BaseSection)
    data: DataSection = field(default_factory=DataSection)
    local: LocalSection = field(default_factory=LocalSection)
    global_: GlobalSection = field(default_factory=GlobalSection)
    identity: IdentitySection = field(default_factory=IdentitySection)
    train: TrainSection = field(default_factory=TrainSection)
    export: ExportSection = field(default_factory=ExportSection)

    def to_dict(self) -> dict:
        return {_toml_name(f.name): asdict(getattr(self, f.name)) for f in fields(self)}

    def resolve(self, family: str) -> "Config":
        """A copy with every `auto`/0 setting made concrete for a base model of `family`."""
        if family not in FAMILIES:
            raise ConfigError(f"base.family: unknown family '{family}', expected one of {', '.join(FAMILIES)}")
        vae_dtype = self.base.vae_dtype
        if vae_dtype == "auto":
            weight = {"no": "fp32", "fp16": "fp16", "bf16": "bf16"}[self.train.mixed_precision]
            vae_dtype = "fp32" if family == "SDXL" and not self.base.vae else weight
        return replace(
            self,
            base=replace(self.base, family=family, vae_dtype=vae_dtype),
            data=replace(self.data, resolution=self.data.resolution or DEFAULT_RESOLUTION[family]),
            local=replace(self.local, working_size=self.local.working_size or DEFAULT_WORKING_SIZE[family]))


def _toml_name(name: str) -> str:
    return name.rstrip("_")


SECTIONS = {_toml_name(f.name): f for f in fields(Config)}


_TYPE_NAMES = {bool: ("true or false", "true"), int: ("a whole number", "4"), float: ("a number", "0.5"),
               str: ("a string", '"text"')}


def _check_value(section: str, key: str, expected, value):
    """`value` as the type of the setting's default; ConfigError naming the key, the value and the fix."""
    kind = type(expected)
    ok = {bool: lambda v: isinstance(v, bool),
          int: lambda v: isinstance(v, int) and not isinstance(v, bool),
          float: lambda v: isinstance(v, (int, float)) and not isinstance(v, bool),
          str: lambda v: isinstance(v, str)}[kind](value)
    if not ok:
        what, example = _TYPE_NAMES[kind]
        raise ConfigError(f"{section}.{key} must be {what}, got {value!r} ({type(value).__name__}); "
                          f"write it as {what} in the TOML file, e.g. {key} = {example} (default "
                          f"{_toml_value(expected)})")
    return float(value) if kind is float else value


def from_dict(data: dict, check: bool = True) -> Config:
    """A validated Config from nested dicts (a parsed TOML file); missing keys take their defaults. `check`
    False skips the range checks (types are always checked): for configurations saved by earlier versions."""
    sections = {}
    for name, value in data.items():
        if name not in SECTIONS:
            raise ConfigError(f"unknown section [{name}]; the sections are {', '.join(f'[{s}]' for s in SECTIONS)}")
        if not isinstance(value, dict):
            raise ConfigError(f"[{name}] must be a table of settings, got {value!r}")
        cls = SECTIONS[name].default_factory
        defaults = cls()
        known = {f.name: getattr(defaults, f.name) for f in fields(cls)}
        values = {}
        for key, v in value.items():
            if key not in known:
                raise ConfigError(f"unknown setting {name}.{key}; [{name}] has {', '.join(known)}")
            values[key] = _check_value(name, key, known[key], v)
        sections[SECTIONS[name].name] = cls(**values)
    config = Config(**sections)
    if check:
        validate(config)
    return config


def validate(config: Config) -> None:
    """Refuse settings that cannot work, naming the setting, its value and the fix (realisid_train/validation.py)."""
    from .validation import validate as check
    check(config)


def load_config(path: str | None, overrides: list[str] = (), check: bool = True) -> Config:
    """The configuration in a TOML file (defaults where it says nothing), with `section.key=value` overrides."""
    data: dict = {}
    if path:
        try:
            with open(path, "rb") as f:
                data = tomllib.load(f)
        except FileNotFoundError:
            raise ConfigError(f"no configuration file {path}") from None
        except tomllib.TOMLDecodeError as exc:
            raise ConfigError(f"{path} is not valid TOML: {exc}") from None
    for item in overrides:
        key, sep, raw = item.partition("=")
        section, dot, name = key.strip().partition(".")
        if not sep or not dot:
            raise ConfigError(f"override '{item}' must look like section.key=value (e.g. train.max_steps=100)")
        try:
            value = tomllib.loads(f"v = {raw.strip()}")["v"]
        except tomllib.TOMLDecodeError:
            value = raw.strip()  # a bare word: a string
        data.setdefault(section, {})[name] = value
    return from_dict(data, check)


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value, ensure_ascii=False)  # JSON string escapes are valid TOML basic strings
    if isinstance(value, (list, tuple)):
        return "[" + ", ".join(_toml_value(v) for v in value) + "]"
    raise TypeError(f"cannot write {value!r} as TOML")


def dumps(config: Config) -> str:
    """The configuration as TOML text that `load_config` reads back to an equal Config."""
    lines = ["# RealisID trainer configuration (python -m realisid_train train --config this-file)"]
    for section, values in config.to_dict().items():
        lines += ["", f"[{section}]"]
        lines += [f"{key} = {_toml_value(value)}" for key, value in values.items()]
    return "\n".join(lines) + "\n"


def save_config(config: Config, path: str) -> None:
    import os
    tmp = f"{path}.partial"
    with open(tmp, "w", encoding="utf-8") as f:
        f.write(dumps(config))
    os.replace(tmp, path)
