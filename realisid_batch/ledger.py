"""The ledger: every job's state in SQLite, one transaction per state change.

States: pending (not on any server) → queued (sent to server S as prompt P) → running (P started)
→ done (outputs downloaded) | failed (with the reason). A job taken back from a server (the
server went down or forgot it) returns to pending; its old prompt is kept in `abandoned` so it
can be cancelled if that server turns out to still have it. Transitions name the prompt they
are about, so news of an old prompt can never finish a job that has moved on. WAL mode lets
`status` read while a run writes.
"""
from __future__ import annotations

import json
import sqlite3
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

from .errors import BatchError

SCHEMA_VERSION = 1
DEFAULT_NAME = "realisid_batch.sqlite"
ACTIVE = ("queued", "running")
TERMINAL = ("done", "failed")

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS jobs (
    id TEXT PRIMARY KEY,
    seq INTEGER NOT NULL,
    job_values TEXT NOT NULL,
    state TEXT NOT NULL CHECK (state IN ('pending', 'queued', 'running', 'done', 'failed')),
    server TEXT, prompt_id TEXT, attempts INTEGER NOT NULL DEFAULT 0,
    reason TEXT, outputs TEXT,
    submitted_at REAL, started_at REAL, finished_at REAL, server_seconds REAL, updated_at REAL NOT NULL);
CREATE TABLE IF NOT EXISTS events (
    n INTEGER PRIMARY KEY AUTOINCREMENT, job_id TEXT NOT NULL, at REAL NOT NULL,
    state TEXT NOT NULL, server TEXT, prompt_id TEXT, detail TEXT);
CREATE TABLE IF NOT EXISTS abandoned (
    server TEXT NOT NULL, prompt_id TEXT NOT NULL, job_id TEXT NOT NULL, at REAL NOT NULL,
    PRIMARY KEY (server, prompt_id));
CREATE INDEX IF NOT EXISTS jobs_state ON jobs (state);
CREATE INDEX IF NOT EXISTS events_job ON events (job_id);
"""


@dataclass(frozen=True)
class JobRecord:
    """One row of the ledger."""

    id: str
    seq: int
    values: dict
    state: str
    server: str | None
    prompt_id: str | None
    attempts: int
    reason: str | None
    outputs: list
    submitted_at: float | None
    started_at: float | None
    finished_at: float | None
    server_seconds: float | None = None

    @property
    def seconds(self) -> float | None:
        """The job's run time: as the server measured it, else from its start (or queueing) to its outputs downloaded."""
        if self.server_seconds is not None:
            return self.server_seconds
        start = self.started_at or self.submitted_at
        return None if self.finished_at is None or start is None else self.finished_at - start


@dataclass
class SyncReport:
    added: int = 0
    invalid: int = 0
    retried: int = 0
    changed_done: list = None


def ledger_path(output_dir: str | Path, ledger: str | Path | None = None) -> Path:
    return Path(ledger) if ledger else Path(output_dir) / DEFAULT_NAME


class Ledger:
    """The SQLite ledger of one batch (normally `<output folder>/realisid_batch.sqlite`)."""

    def __init__(self, path: str | Path, readonly: bool = False):
        self.path = Path(path)
        if readonly:
            if not self.path.is_file():
                raise BatchError(f"no ledger at {self.path} (give the run's output folder or its --ledger file)")
            self.conn = sqlite3.connect(f"file:{self.path}?mode=ro", uri=True, timeout=30, isolation_level=None)
        else:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            self.conn = sqlite3.connect(str(self.path), timeout=30, isolation_level=None)
            self.conn.execute("PRAGMA journal_mode=WAL")
            self.conn.execute("PRAGMA synchronous=FULL")
            self.conn.executescript(_SCHEMA)  # idempotent: CREATE … IF NOT EXISTS
            with self._tx():
                if self._meta("schema") is None:
                    self._set_meta("schema", str(SCHEMA_VERSION))
                    self._set_meta("client_id", uuid.uuid4().hex)
        self.conn.row_factory = sqlite3.Row
        try:
            version = self._meta("schema")
        except sqlite3.DatabaseError as exc:
            raise BatchError(f"{self.path} is not a batch ledger ({exc})") from None
        if version != str(SCHEMA_VERSION):
            raise BatchError(f"{self.path} is a ledger of format {version}; this client reads format {SCHEMA_VERSION}")

    def close(self):
        self.conn.close()

    @contextmanager
    def _tx(self):
        self.conn.execute("BEGIN IMMEDIATE")
        try:
            yield
        except BaseException:
            self.conn.execute("ROLLBACK")
            raise
        self.conn.execute("COMMIT")

    # meta -------------------------------------------------------------------------------
    def _meta(self, key: str) -> str | None:
        row = self.conn.execute("SELECT value FROM meta WHERE key = ?", (key,)).fetchone()
        return None if row is None else row[0]

    def _set_meta(self, key: str, value: str) -> None:
        self.conn.execute("INSERT OR REPLACE INTO meta (key, value) VALUES (?, ?)", (key, value))

    def meta(self, key: str) -> str | None:
        return self._meta(key)

    def set_meta(self, key: str, value: str) -> None:
        with self._tx():
            self._set_meta(key, value)

    @property
    def client_id(self) -> str:
        """The websocket client id of this batch, the same across restarts (the server sends a prompt's news to it)."""
        return self._meta("client_id")

    # reading ----------------------------------------------------------------------------
    @staticmethod
    def _record(row) -> JobRecord:
        return JobRecord(row["id"], row["seq"], json.loads(row["job_values"]), row["state"], row["server"],
                         row["prompt_id"], row["attempts"], row["reason"], json.loads(row["outputs"] or "[]"),
                         row["submitted_at"], row["started_at"], row["finished_at"], row["server_seconds"])

    def jobs(self, states: tuple[str, ...] | None = None) -> list[JobRecord]:
        if states:
            marks = ",".join("?" * len(states))
            rows = self.conn.execute(f"SELECT * FROM jobs WHERE state IN ({marks}) ORDER BY seq, id", states)
        else:
            rows = self.conn.execute("SELECT * FROM jobs ORDER BY seq, id")
        return [self._record(r) for r in rows]

    def job(self, job_id: str) -> JobRecord | None:
        row = self.conn.execute("SELECT * FROM jobs WHERE id = ?", (job_id,)).fetchone()
        return None if row is None else self._record(row)

    def counts(self) -> dict[str, int]:
        out = {s: 0 for s in ("pending", "queued", "running", "done", "failed")}
        for state, n in self.conn.execute("SELECT state, COUNT(*) FROM jobs GROUP BY state"):
            out[state] = n
        return out

    def events(self, job_id: str | None = None) -> list[dict]:
        sql = "SELECT * FROM events" + (" WHERE job_id = ?" if job_id else "") + " ORDER BY n"
        return [dict(r) for r in self.conn.execute(sql, (job_id,) if job_id else ())]

    def abandoned(self, server: str) -> list[tuple[str, str, float]]:
        """(prompt id, job id, when) of prompts taken back from `server` that it may still hold."""
        return [(r[0], r[1], r[2]) for r in self.conn.execute(
            "SELECT prompt_id, job_id, at FROM abandoned WHERE server = ? ORDER BY at", (server,))]

    # writing ----------------------------------------------------------------------------
    def _event(self, job_id, state, server=None, prompt_id=None, detail=None, at=None):
        self.conn.execute("INSERT INTO events (job_id, at, state, server, prompt_id, detail) VALUES (?, ?, ?, ?, ?, ?)",
                          (job_id, at or time.time(), state, server, prompt_id, detail))

    def sync(self, rows: list[tuple[str, int, dict, str | None]], retry_failed: bool = False) -> SyncReport:
        """Bring the jobs file into the ledger: (id, row, values, error) each. New jobs are added (failed at
        once when they cannot run); finished ones are kept; with `retry_failed`, failed ones go back to pending."""
        report = SyncReport(changed_done=[])
        now = time.time()
        with self._tx():
            for job_id, seq, values, error in rows:
                text = json.dumps(values, sort_keys=True)
                old = self.conn.execute("SELECT state, job_values FROM jobs WHERE id = ?", (job_id,)).fetchone()
                if old is None:
                    state = "failed" if error else "pending"
                    self.conn.execute("INSERT INTO jobs (id, seq, job_values, state, reason, finished_at, updated_at) "
                                      "VALUES (?, ?, ?, ?, ?, ?, ?)",
                                      (job_id, seq, text, state, error, now if error else None, now))
                    self._event(job_id, state, detail=error or "added", at=now)
                    report.added += 1
                    report.invalid += bool(error)
                    continue
                state, old_text = old
                if state == "done":
                    if old_text != text:
                        report.changed_done.append(job_id)
                    continue
                if state in ACTIVE:
                    continue  # on a server: recovered by the run, whatever the file says now
                if state == "failed" and not retry_failed:
                    continue
                if error:
                    self.conn.execute("UPDATE jobs SET seq = ?, job_values = ?, state = 'failed', reason = ?, "
                                      "finished_at = ?, updated_at = ? WHERE id = ?", (seq, text, error, now, now, job_id))
                    if state != "failed":
                        self._event(job_id, "failed", detail=error, at=now)
                    report.invalid += 1
                    continue
                self.conn.execute("UPDATE jobs SET seq = ?, job_values = ?, state = 'pending', reason = NULL, server = NULL, "
                                  "prompt_id = NULL, outputs = NULL, submitted_at = NULL, started_at = NULL, "
                                  "finished_at = NULL, server_seconds = NULL, updated_at = ? WHERE id = ?",
                                  (seq, text, now, job_id))
                if state == "failed":
                    self._event(job_id, "pending", detail="retry", at=now)
                    report.retried += 1
        return report

    def mark_queued(self, job_id: str, server: str, prompt_id: str) -> bool:
        """pending → queued on `server` as `prompt_id` (written before the prompt is sent)."""
        now = time.time()
        with self._tx():
            n = self.conn.execute("UPDATE jobs SET state = 'queued', server = ?, prompt_id = ?, attempts = attempts + 1, "
                                  "submitted_at = ?, started_at = NULL, updated_at = ? WHERE id = ? AND state = 'pending'",
                                  (server, prompt_id, now, now, job_id)).rowcount
            if n:
                self._event(job_id, "queued", server, prompt_id, at=now)
        return bool(n)

    def rename_prompt(self, job_id: str, old: str, new: str) -> bool:
        """The server gave the prompt its own id (it ignores client ids): record that one."""
        with self._tx():
            n = self.conn.execute("UPDATE jobs SET prompt_id = ?, updated_at = ? WHERE id = ? AND prompt_id = ? "
                                  "AND state IN ('queued', 'running')", (new, time.time(), job_id, old)).rowcount
            if n:
                self._event(job_id, "queued", self.job(job_id).server, new, detail=f"server id for {old}")
        return bool(n)

    def mark_running(self, job_id: str, prompt_id: str, at: float | None = None) -> bool:
        now = time.time()
        with self._tx():
            row = self.conn.execute("SELECT server FROM jobs WHERE id = ? AND prompt_id = ? AND state = 'queued'",
                                    (job_id, prompt_id)).fetchone()
            if row:
                self.conn.execute("UPDATE jobs SET state = 'running', started_at = ?, updated_at = ? WHERE id = ?",
                                  (at or now, now, job_id))
                self._event(job_id, "running", row[0], prompt_id, at=now)
        return row is not None

    def mark_done(self, job_id: str, prompt_id: str, outputs: list, detail: str | None = None,
                  server_seconds: float | None = None) -> bool:
        now = time.time()
        with self._tx():
            row = self.conn.execute("SELECT server FROM jobs WHERE id = ? AND prompt_id = ? AND state IN ('queued', 'running')",
                                    (job_id, prompt_id)).fetchone()
            if row:
                self.conn.execute("UPDATE jobs SET state = 'done', outputs = ?, reason = NULL, finished_at = ?, "
                                  "server_seconds = ?, updated_at = ? WHERE id = ?",
                                  (json.dumps(outputs), now, server_seconds, now, job_id))
                self._event(job_id, "done", row[0], prompt_id, detail, at=now)
        return row is not None

    def mark_failed(self, job_id: str, reason: str, prompt_id: str | None = None) -> bool:
        """→ failed with `reason`; with `prompt_id`, only while the job is still that prompt."""
        now = time.time()
        with self._tx():
            if prompt_id is None:
                row = self.conn.execute("SELECT server FROM jobs WHERE id = ? AND state NOT IN ('done', 'failed')",
                                        (job_id,)).fetchone()
            else:
                row = self.conn.execute("SELECT server FROM jobs WHERE id = ? AND prompt_id = ? AND state IN ('queued', 'running')",
                                        (job_id, prompt_id)).fetchone()
            if row:
                self.conn.execute("UPDATE jobs SET state = 'failed', reason = ?, finished_at = ?, updated_at = ? WHERE id = ?",
                                  (reason, now, now, job_id))
                self._event(job_id, "failed", row[0], prompt_id, reason, at=now)
        return row is not None

    def requeue(self, job_id: str, prompt_id: str, reason: str, abandon: bool) -> bool:
        """queued/running → pending; with `abandon`, remember the old prompt to cancel it should its server still have it."""
        now = time.time()
        with self._tx():
            row = self.conn.execute("SELECT server FROM jobs WHERE id = ? AND prompt_id = ? AND state IN ('queued', 'running')",
                                    (job_id, prompt_id)).fetchone()
            if row:
                self.conn.execute("UPDATE jobs SET state = 'pending', server = NULL, prompt_id = NULL, submitted_at = NULL, "
                                  "started_at = NULL, updated_at = ? WHERE id = ?", (now, job_id))
                self._event(job_id, "pending", row[0], prompt_id, reason, at=now)
                if abandon:
                    self.conn.execute("INSERT OR REPLACE INTO abandoned (server, prompt_id, job_id, at) VALUES (?, ?, ?, ?)",
                                      (row[0], prompt_id, job_id, now))
        return row is not None

    def forget_abandoned(self, server: str, prompt_id: str) -> None:
        with self._tx():
            self.conn.execute("DELETE FROM abandoned WHERE server = ? AND prompt_id = ?", (server, prompt_id))
