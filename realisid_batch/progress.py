"""What a run shows: one overall progress bar (on a terminal) and a line per job event.

The bar is redrawn in place on stderr; job lines go to stdout, above it. Without a terminal
(a log file, CI) there is no bar, only the lines.
"""
from __future__ import annotations

import shutil
import sys
import time


class Display:
    def __init__(self, total: int, quiet: bool = False, out=None, err=None):
        self.total = total
        self.quiet = quiet
        self.out = out or sys.stdout
        self.err = err or sys.stderr
        self.bar = hasattr(self.err, "isatty") and self.err.isatty() and not quiet
        self.start = time.monotonic()
        self._drawn = False
        self.done = self.failed = 0
        self.servers: dict[str, str] = {}

    def _clear(self):
        if self._drawn:
            self.err.write("\r\033[K")
            self._drawn = False

    def line(self, text: str) -> None:
        """A job's news, on a line of its own."""
        if self.quiet:
            return
        self._clear()
        elapsed = time.monotonic() - self.start
        self.out.write(f"[{elapsed:7.1f}s] {text}\n")
        self.out.flush()
        self.draw()

    def notice(self, text: str) -> None:
        """News about the run itself (no server answers): on stderr, also with --quiet."""
        self._clear()
        elapsed = time.monotonic() - self.start
        self.err.write(f"[{elapsed:7.1f}s] {text}\n")
        self.err.flush()
        self.draw()

    def server(self, url: str, text: str) -> None:
        """What one server is doing now (shown after the bar)."""
        self.servers[url] = text

    def counts(self, done: int, failed: int) -> None:
        self.done, self.failed = done, failed

    def draw(self) -> None:
        if not self.bar:
            return
        width = shutil.get_terminal_size((100, 20)).columns
        finished = self.done + self.failed
        frac = finished / self.total if self.total else 1.0
        slots = 24
        filled = int(round(frac * slots))
        servers = " | ".join(f"{u.split('://')[-1]}: {t}" for u, t in self.servers.items())
        text = (f"[{'#' * filled}{'.' * (slots - filled)}] {finished}/{self.total} "
                f"({self.done} done, {self.failed} failed)  {servers}")
        self.err.write("\r\033[K" + text[:width - 1])
        self.err.flush()
        self._drawn = True

    def close(self) -> None:
        self._clear()
        if self.bar:
            self.err.flush()
