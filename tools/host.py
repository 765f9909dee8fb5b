"""The ComfyUI host (found, put on sys.path, run on the CPU) and the pack loaded in-process through
ComfyUI's own custom-node loader. Used by the workflow generator, the benchmarks and the tests
(which import it through tests/fixtures/host.py)."""
from __future__ import annotations

import asyncio
import functools
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def host_path() -> Path:
    """Where the ComfyUI checkout is: COMFYUI_PATH, else ~/comfy/ComfyUI."""
    return Path(os.environ.get("COMFYUI_PATH", "~/comfy/ComfyUI")).expanduser().resolve()


def host_present(host: Path) -> bool:
    return (host / "main.py").is_file() and (host / "comfy" / "controlnet.py").is_file()


HOST = host_path()
HOST_PRESENT = host_present(HOST)
NO_HOST_REASON = (f"no ComfyUI host at {HOST} (set COMFYUI_PATH to a ComfyUI checkout); "
                  "integration tests need a real ComfyUI")


def use_host(host: Path, cpu: bool = True) -> None:
    """Import ComfyUI from `host`, first on sys.path (its top-level `nodes` module must win over this
    repository's `nodes/` package); with `cpu`, select the CPU as `main.py --cpu` does."""
    if str(host) not in sys.path:
        sys.path.insert(0, str(host))
    import comfy.cli_args
    if cpu:
        if "comfy.model_management" in sys.modules and not comfy.cli_args.args.cpu:
            raise RuntimeError("comfy.model_management was imported before the CPU was selected")
        comfy.cli_args.args.cpu = True


@functools.lru_cache(maxsize=None)
def load_pack():
    """Import the pack as ComfyUI does at start-up; return its module."""
    import nodes  # ComfyUI's nodes.py

    ok = asyncio.run(nodes.load_custom_node(str(REPO)))
    if not ok:
        raise RuntimeError("ComfyUI failed to load the RealisID pack (see the log above)")
    return sys.modules[str(REPO).replace(".", "_x_")]


def pack_module(name: str):
    """A submodule of the loaded pack, e.g. pack_module('nodes.controls')."""
    load_pack()
    return sys.modules[f"{str(REPO).replace('.', '_x_')}.{name}"]


def host_node(name: str, ui: bool = False):
    """An instance of one of ComfyUI's built-in (or this pack's) nodes, by node id; its functions return
    their outputs, or with `ui` what the node returns to ComfyUI (with the previews it shows)."""
    import nodes
    load_pack()
    node = nodes.NODE_CLASS_MAPPINGS[name]()
    return node if ui else _Outputs(node)


class _Outputs:
    """A node instance whose functions return their outputs only (the 'result' of a {'ui', 'result'} return)."""

    def __init__(self, node):
        self._node = node

    def __getattr__(self, name):
        attribute = getattr(self._node, name)
        if not callable(attribute):
            return attribute

        def call(*args, **kwargs):
            returned = attribute(*args, **kwargs)
            return returned["result"] if isinstance(returned, dict) and "result" in returned else returned
        return call
