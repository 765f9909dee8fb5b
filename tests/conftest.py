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
