"""What a branch ControlNet was trained on: its description, read from the file or a table of known formats.

Files the trainer exports carry it as safetensors metadata (`realisid.description`, JSON); third-party
weights get it from `KNOWN_CONTROLNETS`, chosen by the loader from the file's shapes. The apply nodes
take their defaults from it (working size, margin, hint format) and refuse mismatches, so a ControlNet
never receives a hint format it was not trained on.

A description is checked field by field wherever it comes from (`description_problem`): a file a user
edited or downloaded gets a RealisIDInputError naming the file, the field, what is wrong and the fix,
never a raw exception or a silent acceptance (docs/engine.md, "What a wrong value gets").
"""
from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass, replace

from ..branches.budget import WORKING_SIZES
from ..errors import RealisIDInputError
from ..families import FAMILIES
from ..signals.guidance import LOCATION_GUIDANCE_FORMAT
from ..signals.hints import HINT_FORMATS

METADATA_KEY = "realisid.description"
ROLES = ("local", "global")
CONTEXTS = ("identity", "text")
VERSION = 1
# cross-attention (context) width of each family's U-Net and ControlNet
CONTEXT_WIDTHS = {name: f.context_width for name, f in FAMILIES.items()}
MARGIN_RANGE = (1.0, 4.0)    # crop side / face box side: the crop holds the whole box, and at most 4× it
FEATHER_RANGE = (0.0, 0.5)   # fraction of the crop blended out at each edge (0.5: the whole crop is a ramp)
MIN_WORKING_SIZE = 8         # latent cells: one multiple of the 8-cell step (small test and debug branches)
NAME_LIMIT = 200
FIX = ("re-export the branch with python -m realisid_train export, or download it again; a third-party "
       "ControlNet without a RealisID description is chosen in RealisID Load ControlNet's 'kind'")


@dataclass(frozen=True)
class BranchDescription:
    """role: 'local' (face crops) or 'global' (whole picture); family: 'SD1.5', 'SD2' or 'SDXL';
    hint_format (local) or guidance_format (global); working_size (latent cells), margin and feather
    the local branch was trained at (feather None: not recorded, the node's default); context: what it
    attends to ('identity' tokens or the 'text'); name: how the artist knows it (for messages)."""

    role: str
    family: str
    hint_format: str | None = None
    guidance_format: str | None = None
    working_size: int | None = None
    margin: float | None = None
    context: str = "identity"
    name: str = "RealisID branch"
    version: int = VERSION
    feather: float | None = None

    def __post_init__(self):
        problem = description_problem(asdict(self))
        if problem is not None:
            field, what = problem
            raise RealisIDInputError(input_name="description", problem=f"field '{field}' {what}", fix=FIX)

    def to_metadata(self) -> dict[str, str]:
        """safetensors metadata (string values) carrying this description (a feather of None is left out)."""
        fields = {k: v for k, v in asdict(self).items() if not (k == "feather" and v is None)}
        return {METADATA_KEY: json.dumps(fields, sort_keys=True)}

    @classmethod
    def from_metadata(cls, metadata: dict[str, str] | None, source: str = "the file",
                      input_name: str = "control_net_name") -> "BranchDescription | None":
        """The description stored by `to_metadata`, or None when the file has none; a RealisIDInputError
        naming `source`, the field and the fix when it is not a valid description. Unknown fields are
        ignored (a newer exporter may add some)."""
        if not metadata or METADATA_KEY not in metadata:
            return None
        where = f"{source}'s RealisID description (safetensors metadata '{METADATA_KEY}')"

        def refuse(problem: str):
            return RealisIDInputError(input_name=input_name, problem=f"{where} {problem}", fix=FIX)
        raw = metadata[METADATA_KEY]
        try:
            fields = json.loads(raw) if isinstance(raw, str) else None
        except (json.JSONDecodeError, RecursionError):
            fields = None
        if not isinstance(fields, dict):
            raise refuse(f"is not a JSON object of fields (it starts {str(raw)[:60]!r})")
        known = {k: v for k, v in fields.items() if k in cls.__dataclass_fields__}
        for required in ("role", "family"):
            if required not in known:
                raise refuse(f"has no '{required}' field")
        problem = description_problem({**_defaults(), **known})
        if problem is not None:
            raise refuse(f"field '{problem[0]}' {problem[1]}")
        return cls(**known)

    def with_name(self, name: str) -> "BranchDescription":
        return replace(self, name=name)


def _defaults() -> dict:
    return {k: f.default for k, f in BranchDescription.__dataclass_fields__.items() if k not in ("role", "family")}


def _number(v) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def _one_of(v, allowed) -> str | None:
    if not isinstance(v, str):
        return f"is {_shown(v)}, not a text; expected one of {', '.join(allowed)}"
    if v not in allowed:
        return f"is '{v[:60]}'; expected one of {', '.join(allowed)}"
    return None


def _shown(v) -> str:
    text = json.dumps(v) if isinstance(v, (dict, list, str, int, float, bool, type(None))) else repr(v)
    return text if len(text) <= 60 else text[:57] + "..."


def description_problem(f: dict) -> tuple[str, str] | None:
    """(field, what is wrong with it) for the first invalid field of a description's fields, or None."""
    for field, allowed in (("role", ROLES), ("family", tuple(WORKING_SIZES)), ("context", CONTEXTS)):
        problem = _one_of(f[field], allowed)
        if problem:
            return field, problem
    local = f["role"] == "local"
    fmt_field, kind, formats = (("hint_format", "hint", tuple(HINT_FORMATS)) if local else
                                ("guidance_format", "guidance", (LOCATION_GUIDANCE_FORMAT,)))
    if f[fmt_field] not in formats:
        what = "is missing" if f[fmt_field] is None else f"is {_shown(f[fmt_field])}, not a known {kind} format"
        return fmt_field, f"{what}: a {f['role']} branch needs the {kind} format it was trained on ({', '.join(formats)})"
    size, margin, feather = f["working_size"], f["margin"], f["feather"]
    if local or size is not None:
        sizes = WORKING_SIZES[f["family"]]
        if size is None:
            return "working_size", "is missing: a local branch records the crop side it was trained at"
        if not isinstance(size, int) or isinstance(size, bool):
            return "working_size", f"is {_shown(size)}, not a whole number of latent cells"
        if not MIN_WORKING_SIZE <= size <= sizes.high or size % sizes.step:
            return "working_size", (f"is {size}; a {f['family']} branch works at a multiple of {sizes.step} latent "
                                    f"cells from {MIN_WORKING_SIZE} to {sizes.high} (default {sizes.default})")
    if local or margin is not None:
        if margin is None:
            return "margin", "is missing: a local branch records the crop margin it was trained at"
        if not _number(margin) or not MARGIN_RANGE[0] <= margin <= MARGIN_RANGE[1]:
            return "margin", (f"is {_shown(margin)}; expected a number from {MARGIN_RANGE[0]:g} to "
                              f"{MARGIN_RANGE[1]:g} (crop side / face box side)")
    if feather is not None and (not _number(feather) or not FEATHER_RANGE[0] <= feather <= FEATHER_RANGE[1]):
        return "feather", (f"is {_shown(feather)}; expected a number from {FEATHER_RANGE[0]:g} to "
                           f"{FEATHER_RANGE[1]:g} (the fraction of the crop blended out at its edges), or no field")
    if not isinstance(f["name"], str) or not f["name"].strip() or len(f["name"]) > NAME_LIMIT:
        return "name", f"is {_shown(f['name'])}; expected a non-empty text of at most {NAME_LIMIT} characters"
    if not isinstance(f["version"], int) or isinstance(f["version"], bool) or f["version"] < 1:
        return "version", f"is {_shown(f['version'])}; expected a whole number from 1"
    if f["version"] > VERSION:
        return "version", (f"is {f['version']}: the branch was exported by a newer RealisID (this one reads up to "
                           f"version {VERSION}); update ComfyUI-RealisID")
    return None


INSTANTID_IDENTITYNET = BranchDescription(
    role="local", family="SDXL", hint_format="instantid-kps", working_size=128, margin=2.0, context="identity",
    name="InstantID IdentityNet")

# kind (as the loader offers it) → description of third-party weights without RealisID metadata
KNOWN_CONTROLNETS = {"InstantID IdentityNet": INSTANTID_IDENTITYNET}


# ---- what a ControlNet file's shapes say -----------------------------------------------------------

@dataclass(frozen=True)
class ControlNetShapes:
    """What a ControlNet's tensor shapes say about it: the cross-attention (context) width its attention
    layers take, and the channels of its hint (None where the file has no such tensor)."""

    context_width: int | None
    hint_channels: int | None

    @property
    def family(self) -> str | None:
        return next((f for f, w in CONTEXT_WIDTHS.items() if w == self.context_width), None)

    def describe(self) -> str:
        if self.context_width is None:
            return "a file without cross-attention layers (not an SD ControlNet)"
        family = self.family or "an unknown family"
        return f"a {family} ControlNet (cross-attention width {self.context_width})"


HINT_KEYS = ("controlnet_cond_embedding.conv_in.weight", "input_hint_block.0.weight")


def controlnet_shapes(shapes: dict[str, tuple[int, ...]]) -> ControlNetShapes:
    """The context width and hint channels read from tensor name → shape (diffusers' or the original
    ControlNet layout, with or without a prefix such as `control_model.`)."""
    context = hint = None
    for key, shape in shapes.items():
        if context is None and key.endswith("attn2.to_k.weight") and len(shape) == 2:
            context = int(shape[1])
        if hint is None and key.endswith(HINT_KEYS) and len(shape) == 4:
            hint = int(shape[1])
    return ControlNetShapes(context, hint)


def known_kind_from_shapes(found: ControlNetShapes) -> str | None:
    """The known ControlNet a file without a RealisID description is taken for, from its shapes: an SDXL
    ControlNet with a 3-channel hint is InstantID's IdentityNet (the only third-party branch the pack
    knows; its name does not matter), anything else None."""
    if found.context_width == CONTEXT_WIDTHS["SDXL"] and found.hint_channels == 3:
        return "InstantID IdentityNet"
    return None


def shape_contradiction(described: BranchDescription, found: ControlNetShapes) -> str | None:
    """Why the weights cannot be the branch `described` says (a sentence), or None."""
    want = CONTEXT_WIDTHS[described.family]
    if found.context_width is not None and found.context_width != want:
        return (f"says {described.family} (cross-attention width {want}) but its weights are "
                f"{found.describe()}")
    if found.context_width is None and found.hint_channels is None:
        return f"says {described.family} but the file holds no ControlNet weights"
    return None

