"""Training checkpoints on disk: where they are and which one is complete.

A checkpoint folder `<output_dir>/checkpoints/step-NNNNNNNN/` holds accelerate's state
(optimizer, LR scheduler, random generators of every library, the trainer's own state), the
trainable parts in their own formats (`projector.safetensors`, `local_controlnet/` and
`global_controlnet/` as diffusers ControlNet folders), `config.toml` (the resolved configuration
it was trained with) and `trainer_state.json`, written last: a folder without it is incomplete
(interrupted while saving) and never resumed from.
"""
from __future__ import annotations

import json
import os
import re

CHECKPOINTS = "checkpoints"
TRAINER_STATE = "trainer_state.json"
_STEP = re.compile(r"^step-(\d+)$")


def checkpoint_folder(output_dir: str, step: int) -> str:
    return os.path.join(output_dir, CHECKPOINTS, f"step-{step:08d}")


def is_complete(folder: str) -> bool:
    return os.path.isfile(os.path.join(folder, TRAINER_STATE)) and os.path.isfile(os.path.join(folder, "config.toml"))


def list_checkpoints(output_dir: str) -> list[tuple[int, str]]:
    """(step, folder) of the complete checkpoints of a run, oldest first."""
    root = os.path.join(output_dir, CHECKPOINTS)
    if not os.path.isdir(root):
        return []
    found = []
    for name in os.listdir(root):
        m = _STEP.match(name)
        folder = os.path.join(root, name)
        if m and is_complete(folder):
            found.append((int(m.group(1)), folder))
    return sorted(found)


def find_checkpoint(path: str) -> str:
    """A checkpoint folder: `path` itself, or the latest complete checkpoint of the run folder `path`."""
    if is_complete(path):
        return path
    found = list_checkpoints(path)
    if not found:
        raise FileNotFoundError(f"{path} is neither a complete checkpoint nor a run folder with checkpoints "
                                f"(<run>/{CHECKPOINTS}/step-N/{TRAINER_STATE})")
    return found[-1][1]


def read_trainer_state(folder: str) -> dict:
    with open(os.path.join(folder, TRAINER_STATE), encoding="utf-8") as f:
        return json.load(f)


def write_trainer_state(folder: str, state: dict) -> None:
    tmp = os.path.join(folder, f"{TRAINER_STATE}.partial")
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(state, f, indent=2)
    os.replace(tmp, os.path.join(folder, TRAINER_STATE))
