"""What the ledger says, for people: the end-of-run summary, `status`, and a per-job CSV."""
from __future__ import annotations

import csv
import json
import statistics
from collections import Counter
from pathlib import Path

from .ledger import JobRecord, Ledger

PER_JOB_LINES = 40  # above this many jobs the summary gives statistics and the CSV the rest


def status_line(counts: dict[str, int]) -> str:
    total = sum(counts.values())
    on_servers = counts["queued"] + counts["running"]
    return (f"done {counts['done']} · running {on_servers} (queued {counts['queued']}, executing {counts['running']}) · "
            f"failed {counts['failed']} · left {counts['pending']} · total {total}")


KINDS = (("malformed", "malformed row"), ("missing image", "missing image"), ("unknown node title", "unknown title"),
         ("rejected by the server", "rejected by the server"), ("execution error", "execution error on the server"),
         ("interrupted", "interrupted on the server"))


def _reason_head(reason: str | None) -> str:
    """The kind of a failure, to count failures by."""
    text = reason or "?"
    for start, kind in KINDS:
        if text.startswith(start):
            return kind
    return "unknown input" if " has no input " in text else text[:100]


def failures(jobs: list[JobRecord]) -> list[str]:
    return [f"  {j.id}: {j.reason}" for j in jobs if j.state == "failed"]


def time_stats(jobs: list[JobRecord]) -> str:
    times = [j.seconds for j in jobs if j.state == "done" and j.seconds is not None]
    if not times:
        return "time per job: no finished jobs"
    return (f"time per job (run time on the server): mean {statistics.mean(times):.1f} s, "
            f"median {statistics.median(times):.1f} s, min {min(times):.1f} s, max {max(times):.1f} s "
            f"over {len(times)} jobs")


def summary(ledger: Ledger, report_csv: Path | None = None) -> str:
    """The end of a run: succeeded, failed and why (grouped), and the time per job."""
    jobs = ledger.jobs()
    counts = ledger.counts()
    lines = [f"succeeded {counts['done']}, failed {counts['failed']}, not finished "
             f"{counts['pending'] + counts['queued'] + counts['running']} (of {len(jobs)})"]
    failed = [j for j in jobs if j.state == "failed"]
    if failed:
        lines.append("failed, by reason:")
        for reason, n in Counter(_reason_head(j.reason) for j in failed).most_common():
            lines.append(f"  {n} × {reason}")
        lines.append("failed jobs:")
        lines += failures(jobs)[:PER_JOB_LINES]
    if len(jobs) <= PER_JOB_LINES:
        lines.append("time per job:")
        for j in jobs:
            if j.state == "done":
                took = "?" if j.seconds is None else f"{j.seconds:.1f} s"
                lines.append(f"  {j.id}: {took} on {j.server} ({j.attempts} attempt{'s' * (j.attempts != 1)})")
    lines.append(time_stats(jobs))
    if report_csv:
        write_csv(jobs, report_csv)
        lines.append(f"every job: {report_csv}")
    return "\n".join(lines)


def write_csv(jobs: list[JobRecord], path: Path) -> None:
    with open(path, "w", newline="", encoding="utf-8") as f:
        w = csv.writer(f)
        w.writerow(["id", "state", "server", "attempts", "seconds", "outputs", "reason"])
        for j in jobs:
            w.writerow([j.id, j.state, j.server or "", j.attempts, "" if j.seconds is None else f"{j.seconds:.2f}",
                        " ".join(o["file"] for o in j.outputs), j.reason or ""])


def status(ledger: Ledger, every_job: bool = False, as_json: bool = False) -> str:
    """`status`: done / running / failed / left, the failures, and optionally every job."""
    counts = ledger.counts()
    jobs = ledger.jobs()
    if as_json:
        return json.dumps({"counts": counts, "jobs": [
            {"id": j.id, "state": j.state, "server": j.server, "prompt_id": j.prompt_id, "attempts": j.attempts,
             "seconds": j.seconds, "outputs": [o["file"] for o in j.outputs], "reason": j.reason} for j in jobs]},
            indent=1)
    lines = [status_line(counts)]
    running = [j for j in jobs if j.state in ("queued", "running")]
    for j in running:
        lines.append(f"  {j.state:8} {j.id} on {j.server} as {j.prompt_id}")
    if counts["failed"]:
        lines.append("failed:")
        lines += failures(jobs)
    if every_job:
        lines.append("jobs:")
        for j in jobs:
            took = "" if j.seconds is None else f" {j.seconds:.1f} s"
            files = f" -> {', '.join(o['file'] for o in j.outputs)}" if j.outputs else ""
            lines.append(f"  {j.id}: {j.state}{took}{files}")
    lines.append(time_stats(jobs))
    return "\n".join(lines)
