"""Shared test set-up: the repository on sys.path for realisid_core, and the ComfyUI host.

The host is found through COMFYUI_PATH, else ~/comfy/ComfyUI. Integration tests use the
`comfy_host` fixture and are skipped, with the reason printed, when no host is found.
"""
import os
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[1]
HOST = Path(os.environ.get("COMFYUI_PATH", "~/comfy/ComfyUI")).expanduser().resolve()
HOST_PRESENT = (HOST / "main.py").is_file() and (HOST / "comfy" / "controlnet.py").is_file()
NO_HOST_REASON = (f"no ComfyUI host at {HOST} (set COMFYUI_PATH to a ComfyUI checkout); "
                  "integration tests need a real ComfyUI")

# The host goes first: ComfyUI's own top-level `nodes` module must win over this repo's `nodes/` package.
if HOST_PRESENT and str(HOST) not in sys.path:
    sys.path.insert(0, str(HOST))
if HOST_PRESENT:
    import comfy.cli_args  # in-process ComfyUI runs on the CPU, as the test server does with --cpu

    comfy.cli_args.args.cpu = True
for path in (REPO, REPO / "tests"):  # realisid_core; the tests' own `fixtures` package
    if str(path) not in sys.path:
        sys.path.append(str(path))


def pytest_report_header(config):
    return f"ComfyUI host: {HOST if HOST_PRESENT else 'not found — ' + NO_HOST_REASON}"


def pytest_collection_modifyitems(config, items):
    if HOST_PRESENT:
        return
    skip = pytest.mark.skip(reason=NO_HOST_REASON)
    for item in items:
        if "integration" in item.nodeid.split("/"):
            item.add_marker(skip)


def pytest_terminal_summary(terminalreporter):
    if not HOST_PRESENT:
        terminalreporter.write_line(f"SKIPPED integration tests: {NO_HOST_REASON}", yellow=True)


@pytest.fixture(scope="session")
def tiny():
    """Generated random-weight models in real formats, by role (paths); built once and cached."""
    if not HOST_PRESENT:
        pytest.skip(NO_HOST_REASON)
    from fixtures import tiny_models
    return {"sd15": tiny_models.sd15_checkpoint(), "sd15_cn": tiny_models.sd15_controlnet(),
            "sd15_cn_b": tiny_models.sd15_controlnet(seed=11), "sd15_cn_c": tiny_models.sd15_controlnet(seed=12),
            "sdxl": tiny_models.sdxl_unet(), "sdxl_cn": tiny_models.sdxl_controlnet()}


@pytest.fixture(scope="session")
def server(tiny, tmp_path_factory):
    """A real ComfyUI server (--cpu, 127.0.0.1) with the pack installed and the tiny models in its folders."""
    from fixtures.comfy_server import start_server
    models = {"checkpoints/tiny_sd15.safetensors": tiny["sd15"],
              "diffusion_models/tiny_sdxl_vega.safetensors": tiny["sdxl"],
              **{f"controlnet/tiny_{role}.safetensors": tiny[role]
                 for role in ("sd15_cn", "sd15_cn_b", "sd15_cn_c", "sdxl_cn")}}
    srv = start_server(HOST, tmp_path_factory.mktemp("comfyui"), models)
    try:
        yield srv
    finally:
        srv.stop()
