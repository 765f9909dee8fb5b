"""Errors for bad user input, worded so an artist knows what to change, and optional packages imported
when a node runs, with an error that says what to install. Messages carry a manual "RealisID: " prefix
where they are logged, because ComfyUI's log format does not print the logger name."""
from __future__ import annotations

import importlib


class RealisIDInputError(ValueError):
    """Bad input: names the input, the problem and the fix, and the node in the artist's graph once the
    adapter that called the engine has said which (`with_node`). The engine never names a node."""

    def __init__(self, input_name: str, problem: str, fix: str, node: str | None = None):
        self.node = node
        self.input_name = input_name
        self.problem = problem
        self.fix = fix
        super().__init__(self._message())

    def _message(self) -> str:
        where = f"{self.node}: " if self.node else ""
        return f"{where}input '{self.input_name}': {self.problem}. Fix: {self.fix}"

    def with_node(self, node: str) -> "RealisIDInputError":
        """This error attributed to `node` (the node in the artist's graph); an error that already names a
        node keeps it."""
        if not self.node:
            self.node = node
            self.args = (self._message(),)
        return self


class MissingDependencyError(ImportError):
    """A node needs a package that is not installed in ComfyUI's Python; `with_node` names the node."""

    def __init__(self, package: str, reason: str, node: str | None = None):
        self.package, self.reason, self.node = package, reason, node
        super().__init__(self._message())

    def _message(self) -> str:
        who = self.node or "RealisID"
        return (f"{who} needs the Python package '{self.package}', which is not installed ({self.reason}). "
                f"Fix: install it into ComfyUI's Python: python -m pip install {self.package} "
                f"(or pip install -r requirements.txt in the ComfyUI-RealisID folder), then restart ComfyUI.")

    def with_node(self, node: str) -> "MissingDependencyError":
        """This error attributed to `node`, unless it already names one."""
        if not self.node:
            self.node = node
            self.args = (self._message(),)
            self.msg = self.args[0]
        return self


def require(module: str, pip_name: str | None = None):
    """Import `module` or raise a MissingDependencyError naming the pip command (the adapter names the node)."""
    try:
        return importlib.import_module(module)
    except ImportError as exc:
        raise MissingDependencyError(pip_name or module, str(exc)) from exc
