"""An API-format ComfyUI workflow whose inputs are bound by node title (`_meta.title`) and input name.

A binding key is `<node title>.<input name>` (the title may itself contain dots: the input is
what follows the last one). Values are converted to the type the workflow already has there,
so a CSV cell "7" becomes the integer a seed needs.
"""
from __future__ import annotations

import copy
import difflib
import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

from .errors import BatchError, JobError
from .images import resolve_image

# (node class, input) pairs whose value is a picture in the server's input folder: local files are uploaded
IMAGE_INPUTS = {("LoadImage", "image"), ("LoadImageMask", "image")}


@dataclass(frozen=True)
class Binding:
    """One value set on one node input for one job."""

    key: str
    node_id: str
    input: str
    value: object
    local_image: str | None = None  # absolute path of a picture to upload, for image inputs given as local files


def split_key(key: str) -> tuple[str, str]:
    """'person 1 photo.image' -> ('person 1 photo', 'image')."""
    title, dot, name = key.rpartition(".")
    if not dot or not title or not name:
        raise JobError(f"'{key}' is not '<node title>.<input name>' (for example 'seed.seed' or 'prompt.text')")
    return title, name


def _is_link(value) -> bool:
    return isinstance(value, list) and len(value) == 2 and isinstance(value[0], str) and isinstance(value[1], int)


def convert(value, like, key: str):
    """`value` (a CSV string or a JSON value) as the type of `like`, the workflow's current value."""
    if isinstance(like, bool):
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in ("true", "1", "yes", "on"):
            return True
        if text in ("false", "0", "no", "off"):
            return False
        raise JobError(f"{key}: '{value}' is not true or false")
    if isinstance(like, int):
        if isinstance(value, bool):
            raise JobError(f"{key}: {value} is not an integer")
        if isinstance(value, float) and value.is_integer():
            return int(value)
        if isinstance(value, int):
            return value
        try:
            return int(str(value).strip())
        except ValueError:
            raise JobError(f"{key}: '{value}' is not an integer") from None
    if isinstance(like, float):
        if isinstance(value, bool):
            raise JobError(f"{key}: {value} is not a number")
        try:
            return float(value)
        except (TypeError, ValueError):
            raise JobError(f"{key}: '{value}' is not a number") from None
    if isinstance(like, str):
        if isinstance(value, (dict, list)):
            raise JobError(f"{key}: expected text, got {json.dumps(value)[:80]}")
        return value if isinstance(value, str) else json.dumps(value)
    if _is_link(like) and isinstance(value, str):  # replacing a connection: a CSV cell may hold JSON
        try:
            return json.loads(value)
        except ValueError:
            return value
    return value


class Workflow:
    """The graph, its titles, and how a job's bindings turn it into the prompt a server runs."""

    def __init__(self, graph: dict, source: str = "the workflow"):
        if not isinstance(graph, dict) or not graph:
            raise BatchError(f"{source} is not an API-format workflow (a JSON object of nodes)")
        if "nodes" in graph and "links" in graph:
            raise BatchError(f"{source} is a UI-format workflow; in ComfyUI use Workflow > Export (API) "
                             "and give that file")
        self.source = source
        self.graph = graph
        self.by_title: dict[str, list[str]] = {}
        for node_id, node in graph.items():
            if not isinstance(node, dict) or "class_type" not in node or not isinstance(node.get("inputs"), dict):
                raise BatchError(f"{source}: node {node_id} has no class_type/inputs; give an API-format "
                                 "workflow (Workflow > Export (API))")
            title = (node.get("_meta") or {}).get("title") or node["class_type"]
            self.by_title.setdefault(title, []).append(node_id)

    @classmethod
    def load(cls, path: str | Path) -> "Workflow":
        path = Path(path)
        try:
            graph = json.loads(path.read_text(encoding="utf-8"))
        except FileNotFoundError:
            raise BatchError(f"workflow {path} does not exist") from None
        except ValueError as exc:
            raise BatchError(f"workflow {path} is not valid JSON: {exc}") from None
        return cls(graph, str(path))

    @property
    def fingerprint(self) -> str:
        return hashlib.sha256(json.dumps(self.graph, sort_keys=True).encode()).hexdigest()[:16]

    def title(self, node_id: str) -> str:
        node = self.graph[node_id]
        return (node.get("_meta") or {}).get("title") or node["class_type"]

    def target(self, key: str) -> tuple[str, str]:
        """The (node id, input) a key names; a JobError that lists what exists when it names nothing."""
        title, name = split_key(key)
        ids = self.by_title.get(title)
        if not ids:
            close = difflib.get_close_matches(title, list(self.by_title), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise JobError(f"unknown node title '{title}' in '{key}': {hint}titles in {self.source}: "
                           f"{', '.join(sorted(self.by_title))} (set a node's title in ComfyUI, then export the API workflow again)")
        if len(ids) > 1:
            raise JobError(f"'{key}': {len(ids)} nodes are titled '{title}' (ids {', '.join(ids)}); give them distinct titles")
        inputs = self.graph[ids[0]]["inputs"]
        if name not in inputs:
            close = difflib.get_close_matches(name, list(inputs), n=1)
            hint = f"did you mean '{close[0]}'? " if close else ""
            raise JobError(f"node '{title}' ({self.graph[ids[0]]['class_type']}) has no input '{name}': {hint}"
                           f"its inputs are {', '.join(inputs)}")
        return ids[0], name

    def is_image_input(self, node_id: str, name: str, extra: frozenset = frozenset()) -> bool:
        return (self.graph[node_id]["class_type"], name) in IMAGE_INPUTS or f"{self.title(node_id)}.{name}" in extra

    def bind(self, key: str, value, base_dir: Path, image_inputs: frozenset = frozenset()) -> Binding:
        """Check and convert one value of one job; JobError says what is wrong."""
        node_id, name = self.target(key)
        if self.is_image_input(node_id, name, image_inputs):
            local, server_name = resolve_image(str(value), base_dir, key)
            return Binding(key, node_id, name, server_name, local)
        return Binding(key, node_id, name, convert(value, self.graph[node_id]["inputs"][name], key))

    def build(self, bindings: list[Binding], uploaded: dict[str, str] | None = None) -> dict:
        """The prompt for one job: a copy of the graph with its values set (uploaded names for local pictures)."""
        graph = copy.deepcopy(self.graph)
        for b in bindings:
            value = b.value
            if b.local_image is not None:
                value = (uploaded or {})[b.local_image]
            graph[b.node_id]["inputs"][b.input] = value
        return graph
