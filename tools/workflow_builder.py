"""A small builder for example workflows laid out by hand: API graph, node places, groups, notes, models."""
from __future__ import annotations

from dataclasses import dataclass, field


@dataclass
class NodeRef:
    id: str

    def out(self, slot: int) -> list:
        return [self.id, slot]


@dataclass
class Workflow:
    """One example: its API graph plus what only the UI file carries (places, sizes, groups, notes, models)."""

    name: str
    api: dict = field(default_factory=dict)
    layout: dict = field(default_factory=dict)   # node id → {"pos": [x, y], "size": [w, h] | None}
    groups: list = field(default_factory=list)   # {"title", "bounding": [x, y, w, h], "color"}
    notes: list = field(default_factory=list)    # {"text", "pos", "size"}
    models: dict = field(default_factory=dict)   # node id → [{"name", "url", "directory"}]

    def node(self, class_type: str, title: str | None = None, at=(0, 0), size=None, models=None, **inputs) -> NodeRef:
        """Add a node at `at` (x, y) with its inputs; `title` names it for people and for batch binding."""
        node_id = str(len(self.api) + 1)
        entry = {"class_type": class_type, "inputs": {k: v for k, v in inputs.items() if v is not None}}
        if title:
            entry["_meta"] = {"title": title}
        self.api[node_id] = entry
        self.layout[node_id] = {"pos": list(at), "size": list(size) if size else None}
        if models:
            self.models[node_id] = models
        return NodeRef(node_id)

    def group(self, title: str, x: float, y: float, width: float, height: float, color: str, note: str):
        """A titled group with a note at its top saying what to change in it."""
        self.groups.append({"title": title, "bounding": [x, y, width, height], "color": color})
        self.notes.append({"text": note, "pos": [x + 10, y + 40], "size": [width - 20, 110]})
