"""One run per ledger at a time: an OS file lock, released by the OS even when the client is killed."""
from __future__ import annotations

import os
from pathlib import Path

from .errors import BatchError

try:
    import fcntl
except ImportError:  # Windows
    fcntl = None


class RunLock:
    def __init__(self, ledger_path: Path):
        self.path = Path(str(ledger_path) + ".lock")
        self.file = None

    def __enter__(self):
        self.file = open(self.path, "a+")
        if fcntl is not None:
            try:
                fcntl.flock(self.file.fileno(), fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError:
                self.file.seek(0)
                holder = self.file.read().strip() or "?"
                self.file.close()
                raise BatchError(f"another run (process {holder}) is using the ledger {self.path.with_suffix('')}; "
                                 "wait for it, or stop it first (use `status` to watch it)") from None
        self.file.seek(0)
        self.file.truncate()
        self.file.write(str(os.getpid()))
        self.file.flush()
        return self

    def __exit__(self, *exc):
        if self.file:
            if fcntl is not None:
                fcntl.flock(self.file.fileno(), fcntl.LOCK_UN)
            self.file.close()
