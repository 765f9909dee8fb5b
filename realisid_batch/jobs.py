"""The jobs file: one job per CSV row or JSONL line, its values keyed `<node title>.<input name>`.

Special keys: `id` (the job's name, used for its output files; default `row-0001`, …); keys
starting with `_` are notes and ignored. An empty CSV cell or a JSON null keeps the workflow's
own value. A CSV column is checked once for the whole file: an unknown title there stops the
run before anything is queued. A bad row or line fails only its own job.
"""
from __future__ import annotations

import csv
import json
from dataclasses import dataclass, field
from pathlib import Path

from .errors import BatchError, JobError
from .outputs import safe_name
from .workflow import Binding, Workflow


@dataclass
class JobRow:
    """One job as read: its id, where it is in the file, its raw values, and why it cannot run (if so)."""

    id: str
    row: int
    values: dict = field(default_factory=dict)
    error: str | None = None


def _is_note(key: str) -> bool:
    return key.startswith("_")


def _read_csv(path: Path, workflow: Workflow) -> list[JobRow]:
    with path.open(newline="", encoding="utf-8-sig") as f:
        reader = csv.DictReader(f)
        header = reader.fieldnames or []
        if not header:
            raise BatchError(f"jobs file {path} is empty: its first line must name the columns")
        for key in header:
            if key != "id" and not _is_note(key):
                try:
                    workflow.target(key)
                except JobError as exc:
                    raise BatchError(f"jobs file {path}, column '{key}': {exc}") from None
        rows = []
        for n, record in enumerate(reader, 1):
            job_id = (record.get("id") or "").strip() or f"row-{n:04d}"
            job = JobRow(job_id, n)
            if None in record or any(v is None for v in record.values()):
                extras = record.pop(None, None)
                fields = len(header) + len(extras) if extras else sum(v is not None for v in record.values())
                job.error = (f"malformed row {n} (line {reader.line_num}): {fields} fields where the header has "
                             f"{len(header)}")
            else:
                job.values = {k: v for k, v in record.items() if k != "id" and not _is_note(k) and v != ""}
            rows.append(job)
    return rows


def _read_jsonl(path: Path) -> list[JobRow]:
    rows = []
    n = 0
    for line_no, line in enumerate(path.read_text(encoding="utf-8-sig").splitlines(), 1):
        if not line.strip():
            continue
        n += 1
        job = JobRow(f"row-{n:04d}", n)
        try:
            record = json.loads(line)
        except ValueError as exc:
            job.error = f"malformed line {line_no}: not valid JSON ({exc})"
            rows.append(job)
            continue
        if not isinstance(record, dict):
            job.error = f"malformed line {line_no}: not a JSON object"
        else:
            if record.get("id") not in (None, ""):
                job.id = str(record["id"]).strip()
            job.values = {k: v for k, v in record.items() if k != "id" and not _is_note(k) and v is not None}
        rows.append(job)
    return rows


def _unused_id(wanted: str, seen: dict[str, int]) -> str:
    job_id, n = wanted, 1
    while safe_name(job_id).lower() in seen:
        n += 1
        job_id = f"{wanted}-{n}"
    return job_id


def read_jobs(path: str | Path, workflow: Workflow) -> list[JobRow]:
    """Every job of a CSV or JSONL file; BatchError for problems of the whole file (an unknown CSV column). A row
    repeating an earlier row's id fails alone, under the id `<id>#row<N>`."""
    path = Path(path)
    if not path.is_file():
        raise BatchError(f"jobs file {path} does not exist")
    suffix = path.suffix.lower()
    if suffix == ".csv":
        rows = _read_csv(path, workflow)
    elif suffix in (".jsonl", ".ndjson", ".json"):
        rows = _read_jsonl(path)
    else:
        raise BatchError(f"jobs file {path}: give a .csv or .jsonl file")
    seen: dict[str, int] = {}
    for job in rows:
        key = safe_name(job.id).lower()
        if key in seen:  # this row alone fails; it gets a ledger id of its own (the first row keeps the id)
            repeated = job.id
            job.id = _unused_id(f"{repeated}#row{job.row}", seen)
            job.error = job.error or (
                f"job id '{repeated}' (row {job.row}) repeats the id of row {seen[key]}: ids name the output files, "
                "so they must differ (also in upper/lower case); give this row an id of its own")
            key = safe_name(job.id).lower()
        seen[key] = job.row
    return rows


def bind_job(values: dict, workflow: Workflow, base_dir: Path, image_inputs: frozenset = frozenset()) -> list[Binding]:
    """A job's values checked against the workflow; JobError for the first problem."""
    return [workflow.bind(key, value, base_dir, image_inputs) for key, value in values.items()]
