"""Find the ComfyUI host, import it on the CPU or GPU, and load this pack through ComfyUI's own loader."""
from __future__ import annotations

import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
if str(REPO) not in sys.path:  # realisid_core; tools.host, the host loader the tests use too
    sys.path.append(str(REPO))

from tools.host import host_path, host_present, use_host  # noqa: E402


class HostNotFound(RuntimeError):
    pass


def import_host(device: str) -> Path:
    """Import ComfyUI (on the CPU when asked) or say where it was looked for."""
    host = host_path()
    if not host_present(host):
        raise HostNotFound(f"no ComfyUI host at {host}: set COMFYUI_PATH to a ComfyUI checkout "
                           "(the benchmark uses ComfyUI's own U-Net, ControlNet and loaders)")
    use_host(host, cpu=device == "cpu")
    return host


def pack_module(name: str):
    """A submodule of the pack (e.g. 'nodes.controls'), imported as ComfyUI imports custom nodes."""
    from tools.host import pack_module as load  # ComfyUI's own load_custom_node
    return load(name)
