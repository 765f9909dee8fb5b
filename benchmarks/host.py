"""Find the ComfyUI host, import it on the CPU or GPU, and load this pack through ComfyUI's own loader."""
from __future__ import annotations

import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


class HostNotFound(RuntimeError):
    pass


def host_path() -> Path:
    return Path(os.environ.get("COMFYUI_PATH", "~/comfy/ComfyUI")).expanduser().resolve()


def import_host(device: str) -> Path:
    """Put ComfyUI first on sys.path (its `nodes` module must win over this repo's `nodes/`),
    select the CPU before comfy.model_management is imported when asked, then the repo after it."""
    host = host_path()
    if not ((host / "main.py").is_file() and (host / "comfy" / "controlnet.py").is_file()):
        raise HostNotFound(f"no ComfyUI host at {host}: set COMFYUI_PATH to a ComfyUI checkout "
                           "(the benchmark uses ComfyUI's own U-Net, ControlNet and loaders)")
    if str(host) not in sys.path:
        sys.path.insert(0, str(host))
    import comfy.cli_args
    if device == "cpu":
        if "comfy.model_management" in sys.modules and not comfy.cli_args.args.cpu:
            raise RuntimeError("comfy.model_management was imported before the CPU was selected")
        comfy.cli_args.args.cpu = True
    for path in (REPO, REPO / "tests"):  # realisid_core; the tests' fake insightface packs
        if str(path) not in sys.path:
            sys.path.append(str(path))
    return host


def pack_module(name: str):
    """A submodule of the pack (e.g. 'nodes.controls'), imported as ComfyUI imports custom nodes."""
    from fixtures.host import pack_module as load  # the tests' loader: ComfyUI's own load_custom_node
    return load(name)
