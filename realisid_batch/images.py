"""Pictures a job gives to image inputs: local files to upload, or names already on the server.

A value that is a path (absolute, or with a folder in it) or names a file beside the jobs file is
a local picture: it must exist, and it is uploaded under a name made from its content, so the
same photo used by a hundred jobs is stored once and two photos called `face.png` never clash.
A bare name that is no local file is passed on as a file in the server's input folder.
"""
from __future__ import annotations

import hashlib
import os
from pathlib import Path

from .errors import JobError

UPLOAD_SUBFOLDER = "realisid_batch"


def resolve_image(value: str, base_dir: Path, key: str) -> tuple[str | None, str]:
    """(absolute local path or None, value to keep) for an image input; JobError when a local picture is missing."""
    text = value.strip()
    if not text:
        raise JobError(f"{key}: no picture given")
    path = Path(text).expanduser()
    if not path.is_absolute():
        path = base_dir / path
    looks_like_path = os.path.isabs(text) or "/" in text or os.sep in text or text.startswith("~")
    if path.is_file():
        return str(path.resolve()), text
    if looks_like_path:
        raise JobError(f"missing image for {key}: {path} does not exist (paths are relative to the jobs file's folder)")
    return None, text


def file_digest(path: str) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def upload_name(path: str) -> str:
    """The name a local picture is stored under on the server: its content hash, then its own name."""
    return f"{file_digest(path)[:16]}_{Path(path).name}"
