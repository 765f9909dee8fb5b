"""Optional packages: imported when a node runs, with an error that says what to install."""
from __future__ import annotations

import importlib


class MissingDependencyError(ImportError):
    """A node needs a package that is not installed in ComfyUI's Python."""


def require(module: str, node: str, pip_name: str | None = None):
    """Import `module` or raise a MissingDependencyError naming the node and the pip command."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        pkg = pip_name or module
        raise MissingDependencyError(
            f"{node} needs the Python package '{pkg}', which is not installed ({exc}). "
            f"Fix: install it into ComfyUI's Python: python -m pip install {pkg} "
            f"(or pip install -r requirements.txt in the ComfyUI-RealisID folder), then restart ComfyUI.") from exc
