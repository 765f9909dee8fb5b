"""Errors attributed to the node in the artist's graph: the engine raises RealisIDInputError without a
node; the adapter that called it says which node it was."""
from __future__ import annotations

import contextlib
import functools

from ..realisid_core.errors import MissingDependencyError, RealisIDInputError


@contextlib.contextmanager
def attributed(node: str):
    """Errors raised inside name `node` (unless they already name one)."""
    try:
        yield
    except (RealisIDInputError, MissingDependencyError) as exc:
        raise exc.with_node(node)


def attribute_errors(node_classes: dict, display_names: dict) -> None:
    """Wrap every node's FUNCTION so its errors name the node by its display name."""
    for node_id, cls in node_classes.items():
        name = display_names.get(node_id, node_id)
        function = getattr(cls, cls.FUNCTION)
        if getattr(function, "realisid_node", None) == name:
            continue

        @functools.wraps(function)
        def run(self, *args, _function=function, _name=name, **kwargs):
            with attributed(_name):
                return _function(self, *args, **kwargs)
        run.realisid_node = name
        setattr(cls, cls.FUNCTION, run)
