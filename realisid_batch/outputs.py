"""Output files: the names a job's pictures get (from the job id) and writing them atomically.

One file: `<job id>.<ext>`. Several: `<job id>_<node title>.<ext>`, with `_2`, `_3`, … for more
files of one node. The same job always gets the same names, so a job downloaded twice (after a
crash) overwrites its own files instead of adding copies.
"""
from __future__ import annotations

import os
import re
from pathlib import Path

_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")
PART_SUFFIX = ".part"


def safe_name(text: str) -> str:
    """A file-name-safe form of a job id or node title."""
    name = _UNSAFE.sub("_", text.strip()).strip("._") or "job"
    return name[:120]


def output_files(history_outputs: dict, titles: dict[str, str], kinds: tuple[str, ...] = ("output",)) -> list[dict]:
    """The files a finished prompt wrote, in node order: [{node, title, filename, subfolder, type}]."""
    found = []

    def order(node_id):
        return (0, int(node_id), "") if str(node_id).isdigit() else (1, 0, str(node_id))
    for node_id in sorted(history_outputs, key=order):
        for items in history_outputs[node_id].values():
            if not isinstance(items, list):
                continue
            for item in items:
                if isinstance(item, dict) and "filename" in item and item.get("type", "output") in kinds:
                    found.append({"node": str(node_id), "title": titles.get(str(node_id), str(node_id)),
                                  "filename": item["filename"], "subfolder": item.get("subfolder", ""),
                                  "type": item.get("type", "output")})
    return found


def local_names(job_id: str, files: list[dict]) -> list[str]:
    """Local file names for a job's files (same order)."""
    base = safe_name(job_id)
    if len(files) == 1:
        return [base + Path(files[0]["filename"]).suffix.lower()]
    per_node: dict[str, int] = {}
    titles_used: dict[str, str] = {}
    names = []
    for f in files:
        title = safe_name(f["title"])
        if titles_used.setdefault(title, f["node"]) != f["node"]:
            title = f"{title}-{safe_name(f['node'])}"  # two nodes with one title
        per_node[f["node"]] = per_node.get(f["node"], 0) + 1
        k = per_node[f["node"]]
        names.append(f"{base}_{title}{'' if k == 1 else f'_{k}'}{Path(f['filename']).suffix.lower()}")
    return names


def write_atomic(path: Path, data: bytes) -> None:
    """Write through a temporary file and rename, so a file is either whole or absent."""
    tmp = path.with_name(path.name + PART_SUFFIX)
    try:
        with open(tmp, "wb") as f:
            f.write(data)
            f.flush()
            os.fsync(f.fileno())
        os.replace(tmp, path)
    finally:
        if tmp.exists():
            tmp.unlink()


def remove_partial(folder: Path) -> int:
    """Delete downloads a killed client left half-written; returns how many."""
    stale = list(folder.glob("*" + PART_SUFFIX))
    for p in stale:
        p.unlink(missing_ok=True)
    return len(stale)
