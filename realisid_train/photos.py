"""Photos on disk: which files are photos, how they are read (the same way in preparation and training)."""
from __future__ import annotations

import os
from dataclasses import dataclass

import numpy as np

PHOTO_EXTENSIONS = (".jpg", ".jpeg", ".png", ".webp", ".bmp", ".tif", ".tiff")


class UnreadablePhoto(Exception):
    """A file with a photo's name that is not a picture PIL can decode (corrupt, truncated, another format)."""


@dataclass(frozen=True)
class FileSignature:
    """What identifies a version of a photo and its caption: sizes and modification times (ns)."""

    size: int
    mtime_ns: int
    caption_size: int | None
    caption_mtime_ns: int | None

    def as_list(self) -> list:
        return [self.size, self.mtime_ns, self.caption_size, self.caption_mtime_ns]


def caption_path(photo_path: str) -> str:
    return os.path.splitext(photo_path)[0] + ".txt"


def signature(photo_path: str) -> FileSignature:
    st = os.stat(photo_path)
    try:
        cst = os.stat(caption_path(photo_path))
        csize, cmtime = cst.st_size, cst.st_mtime_ns
    except FileNotFoundError:
        csize = cmtime = None
    return FileSignature(st.st_size, st.st_mtime_ns, csize, cmtime)


def read_caption(photo_path: str) -> str | None:
    """The caption in the .txt beside a photo (stripped), or None when there is none."""
    try:
        with open(caption_path(photo_path), encoding="utf-8", errors="replace") as f:
            text = " ".join(f.read().split())
    except FileNotFoundError:
        return None
    return text or None


def list_photos(root: str, exclude: tuple[str, ...] = ()) -> list[str]:
    """Paths of the photos under `root` (recursively, sorted), relative to it, with '/' separators."""
    root = os.path.abspath(root)
    excluded = {os.path.abspath(e) for e in exclude}
    found = []
    for folder, dirs, files in os.walk(root):
        dirs[:] = sorted(d for d in dirs if not d.startswith(".") and os.path.join(folder, d) not in excluded)
        for name in files:
            if name.lower().endswith(PHOTO_EXTENSIONS) and not name.startswith("."):
                found.append(os.path.relpath(os.path.join(folder, name), root).replace(os.sep, "/"))
    return sorted(found)


def load_photo(path: str) -> np.ndarray:
    """A photo as [H, W, 3] uint8 RGB, turned upright by its EXIF orientation; UnreadablePhoto otherwise."""
    from PIL import Image, ImageOps

    try:
        with Image.open(path) as image:
            image = ImageOps.exif_transpose(image)
            image.load()
            rgb = image.convert("RGB")
    except (OSError, SyntaxError, ValueError, Image.DecompressionBombError) as exc:
        raise UnreadablePhoto(f"{type(exc).__name__}: {exc}") from None
    return np.asarray(rgb, dtype=np.uint8)
