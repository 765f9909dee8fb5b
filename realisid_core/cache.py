"""Models shared by every node and workflow in the process: one copy per key, alive while used.

Values are held weakly. A node's output (an analyzer, a ModelPatcher) stays in ComfyUI's node
cache while a workflow needs it, so that cache decides the lifetime: when ComfyUI drops it
("Free model and node cache", `POST /free`, or a workflow that no longer uses it), the model is
freed instead of living on in a private global.
"""
from __future__ import annotations

import logging
import threading
import weakref
from typing import Callable, Hashable, TypeVar

T = TypeVar("T")
log = logging.getLogger("RealisID")


class SharedModels:
    """A thread-safe, weak-valued cache: `get(key, load)` loads once per key while the result is in use."""

    def __init__(self):
        self._models: weakref.WeakValueDictionary = weakref.WeakValueDictionary()
        self._lock = threading.Lock()

    def get(self, key: Hashable, load: Callable[[], T], name: str = "model") -> T:
        """The model for `key`, loaded by `load()` unless a copy is still in use; `name` is for the log."""
        with self._lock:
            model = self._models.get(key)
            if model is None:
                model = load()
                self._models[key] = model
                weakref.finalize(model, log.info, "RealisID: released %s (no node uses it any more)", name)
            return model

    def keys(self) -> list:
        with self._lock:
            return list(self._models.keys())

    def forget(self, matches: Callable[[Hashable], bool]) -> int:
        """Drop the entries whose key matches (the next `get` loads again); returns how many."""
        with self._lock:
            stale = [k for k in self._models.keys() if matches(k)]
            for k in stale:
                del self._models[k]
            return len(stale)
