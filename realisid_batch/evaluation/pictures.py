"""Finding a picture of the people file in a run's folder: through the batch ledger, by file name, or by job id."""
from __future__ import annotations

import glob
from pathlib import Path

from ..ledger import DEFAULT_NAME, Ledger

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".webp", ".bmp", ".tif", ".tiff"}


class RunFolder:
    """The pictures of one run: a batch output folder (with its ledger) or any folder of pictures."""

    def __init__(self, name: str, folder: Path):
        self.name, self.folder = name, Path(folder)
        ledger = self.folder / DEFAULT_NAME
        self.ledger = Ledger(ledger, readonly=True) if ledger.is_file() else None

    def files(self, picture: str) -> list[Path]:
        """The files of a picture id: a batch job's outputs, the file itself, or files named `<id>.*` / `<id>_*`."""
        if self.ledger is not None:
            job = self.ledger.job(picture)
            if job is not None and job.state == "done":
                return [self.folder / o["file"] for o in job.outputs if (self.folder / o["file"]).is_file()]
        direct = self.folder / picture
        if direct.is_file():
            return [direct]
        stem = glob.escape(picture)
        found = sorted(set(self.folder.glob(stem + ".*")) | set(self.folder.glob(stem + "_*")))
        return [p for p in found if p.suffix.lower() in IMAGE_SUFFIXES and p.is_file()]

    def close(self):
        if self.ledger is not None:
            self.ledger.close()


def parse_run(text: str) -> tuple[str, Path]:
    """'name=folder' or 'folder' (named after the folder)."""
    name, eq, folder = text.partition("=")
    if not eq:
        folder, name = text, Path(text).name
    return name, Path(folder)
