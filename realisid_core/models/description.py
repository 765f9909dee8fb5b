"""What a branch ControlNet was trained on: its description, read from the file or a table of known formats.

Files the trainer exports carry it as safetensors metadata (`realisid.*` keys); third-party
weights get it from `KNOWN_CONTROLNETS`, chosen by the loader. The apply nodes take their
defaults from it (working size, margin, hint format) and refuse mismatches, so a ControlNet
never receives a hint format it was not trained on.
"""
from __future__ import annotations

import json
from dataclasses import asdict, dataclass, replace

from ..signals.guidance import LOCATION_GUIDANCE_FORMAT
from ..signals.hints import HINT_FORMATS

METADATA_KEY = "realisid.description"
ROLES = ("local", "global")
CONTEXTS = ("identity", "text")


@dataclass(frozen=True)
class BranchDescription:
    """role: 'local' (face crops) or 'global' (whole picture); family: 'SD1.5' or 'SDXL';
    hint_format (local) or guidance_format (global); working_size (latent cells) and margin the
    local branch was trained at; context: what it attends to ('identity' tokens or the 'text');
    name: how the artist knows it (for messages)."""

    role: str
    family: str
    hint_format: str | None = None
    guidance_format: str | None = None
    working_size: int | None = None
    margin: float | None = None
    context: str = "identity"
    name: str = "RealisID branch"
    version: int = 1

    def __post_init__(self):
        if self.role not in ROLES:
            raise ValueError(f"role must be one of {ROLES}, got '{self.role}'")
        if self.context not in CONTEXTS:
            raise ValueError(f"context must be one of {CONTEXTS}, got '{self.context}'")
        if self.role == "local" and self.hint_format not in HINT_FORMATS:
            raise ValueError(f"a local branch needs a known hint format ({', '.join(HINT_FORMATS)}), "
                             f"got '{self.hint_format}'")
        if self.role == "global" and self.guidance_format not in (LOCATION_GUIDANCE_FORMAT,):
            raise ValueError(f"a global branch needs guidance format '{LOCATION_GUIDANCE_FORMAT}', "
                             f"got '{self.guidance_format}'")

    def to_metadata(self) -> dict[str, str]:
        """safetensors metadata (string values) carrying this description."""
        return {METADATA_KEY: json.dumps(asdict(self), sort_keys=True)}

    @classmethod
    def from_metadata(cls, metadata: dict[str, str] | None) -> "BranchDescription | None":
        """The description stored by `to_metadata`, or None when the file has none."""
        if not metadata or METADATA_KEY not in metadata:
            return None
        fields = json.loads(metadata[METADATA_KEY])
        known = set(cls.__dataclass_fields__)
        return cls(**{k: v for k, v in fields.items() if k in known})

    def with_name(self, name: str) -> "BranchDescription":
        return replace(self, name=name)


INSTANTID_IDENTITYNET = BranchDescription(
    role="local", family="SDXL", hint_format="instantid-kps", working_size=128, margin=2.0, context="identity",
    name="InstantID IdentityNet")

# kind (as the loader offers it) → description of third-party weights without RealisID metadata
KNOWN_CONTROLNETS = {"InstantID IdentityNet": INSTANTID_IDENTITYNET}
# file-name fragments that identify a known ControlNet when the loader's kind is 'auto'
KNOWN_NAME_HINTS = {"instantid": "InstantID IdentityNet", "identitynet": "InstantID IdentityNet"}


def guess_known_kind(path: str) -> str | None:
    """The known kind a file's path names (e.g. …/instantid/…), or None."""
    lowered = path.replace("\\", "/").lower()
    return next((kind for hint, kind in KNOWN_NAME_HINTS.items() if hint in lowered), None)

from . import infuse as _flux_kinds  # noqa: E402,F401 — registers InfiniteYou's InfuseNet (FLUX facts live there)
