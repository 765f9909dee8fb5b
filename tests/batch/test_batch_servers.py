"""The batch client against two real ComfyUI servers: crashes of a server and of the client, bad jobs, Ctrl-C.

Every test reads the ledger the way `status` does (another process, WAL) and checks the output
folder file by file: each job's picture exactly once, nothing else.
"""
from __future__ import annotations

import json
import signal
import subprocess
import sys
import time

from PIL import Image

from batch_servers import (REPO, client, ledger_rows, run_client, stop_process, wait_for, workflow, write_json,
                           write_photos)

LEDGER = "realisid_batch.sqlite"
BOOKKEEPING = {LEDGER, LEDGER + "-wal", LEDGER + "-shm", LEDGER + ".lock", "report.csv"}


def _jobs_csv(folder, n, photos):
    lines = ["id,person 1 photo.image,sampler.seed,_note"]
    lines += [f"job-{i:02d},photos/{photos[i % len(photos)].name},{100 + i},free text" for i in range(n)]
    path = folder / "jobs.csv"
    path.write_text("\n".join(lines) + "\n")
    return path


def _done_count(ledger):
    rows = ledger_rows(ledger, "SELECT COUNT(*) FROM jobs WHERE state = 'done'")
    return rows[0][0] if rows else 0


def _pictures(output):
    return sorted(p.name for p in output.iterdir() if p.name not in BOOKKEEPING)


def _history_sizes(servers):
    return [len(s.history()) for s in servers]


def test_jobs_survive_a_server_crash_and_a_client_crash(two_servers, tmp_path):
    a, b = two_servers
    photos = write_photos(tmp_path / "photos")
    wf = write_json(tmp_path / "workflow.json", workflow(pace=1.0))
    n = 24
    jobs = _jobs_csv(tmp_path, n, photos)
    out = tmp_path / "out"
    ledger = out / LEDGER
    log = tmp_path / "client.log"
    args = ["run", "-w", str(wf), "-j", str(jobs), "-o", str(out), "-s", a.url, "-s", b.url, "--per-server", "2",
            "--poll", "0.5"]

    first = client(args, log)
    try:
        # a server crashes with jobs on it: they move to the other one
        wait_for(lambda: _done_count(ledger) >= 2, 120, "2 jobs done", first, log)
        b.kill()
        moved = wait_for(lambda: ledger_rows(ledger, "SELECT job_id FROM events WHERE state = 'pending' AND detail LIKE "
                                             "'%went down%'"), 60, "B's jobs moved", first, log)
        assert moved, "server B had jobs queued when it was killed; they must be moved"
        status = subprocess.run([sys.executable, "-m", "realisid_batch", "status", str(out)], cwd=REPO,
                                capture_output=True, text=True, timeout=60)  # another process, while the run writes
        assert status.returncode == 0 and status.stdout.startswith("done "), status.stderr
        assert "total 24" in status.stdout.splitlines()[0]
        restarted_at = time.time()
        b.start()  # same port: the client notices and uses it again
        wait_for(lambda: ledger_rows(ledger, "SELECT 1 FROM events WHERE state = 'done' AND server = ? AND at > ?",
                                     (b.url, restarted_at)), 120, "a job done on B after its restart", first, log)
        assert _done_count(ledger) < n, "the run ended before the client could be killed: make the jobs slower"
        # the client crashes with jobs on both servers; they finish while it is dead
        on_servers = ledger_rows(ledger, "SELECT id, server FROM jobs WHERE state IN ('queued', 'running')")
        first.kill()
        first.wait(timeout=30)
    finally:
        stop_process(first)
    assert on_servers, "jobs were on the servers when the client was killed"
    wait_for(lambda: a.queue_size() == 0 and b.queue_size() == 0, 120, "the servers to finish the orphaned jobs")

    assert run_client(args, log, timeout=240) == 0, log.read_text()[-4000:]

    # every job ended exactly once, with its one picture
    states = dict(ledger_rows(ledger, "SELECT id, state FROM jobs"))
    assert states == {f"job-{i:02d}": "done" for i in range(n)}
    done_events = ledger_rows(ledger, "SELECT job_id, COUNT(*) FROM events WHERE state = 'done' GROUP BY job_id")
    assert sorted(done_events) == [(f"job-{i:02d}", 1) for i in range(n)]
    assert _pictures(out) == [f"job-{i:02d}.png" for i in range(n)]
    for i in range(n):
        with Image.open(out / f"job-{i:02d}.png") as im:
            assert im.size == (32, 32)
    outputs = ledger_rows(ledger, "SELECT outputs FROM jobs")
    assert all(len(json.loads(o)) == 1 for (o,) in outputs)
    # the restarted client collected outputs finished while it was dead
    recovered = ledger_rows(ledger, "SELECT job_id FROM events WHERE state = 'done' AND detail LIKE '%earlier run%'")
    assert recovered, log.read_text()[-3000:]
    servers_used = {s for (s,) in ledger_rows(ledger, "SELECT server FROM jobs")}
    assert servers_used == {a.url, b.url}
    # the photos were uploaded, each once per server, under names made from their content
    for server in two_servers:
        uploaded = sorted(p.name for p in (server.root / "input" / "realisid_batch").iterdir())
        assert sorted(name.split("_", 1)[1] for name in uploaded) == [p.name for p in photos]
        assert all(len(name.split("_", 1)[0]) == 16 for name in uploaded)

    # a second run queues nothing
    before = _history_sizes(two_servers)
    queued_before = ledger_rows(ledger, "SELECT COUNT(*) FROM events WHERE state = 'queued'")
    log2 = tmp_path / "second.log"
    assert run_client(args, log2) == 0
    assert "nothing to do" in log2.read_text()
    assert _history_sizes(two_servers) == before
    assert ledger_rows(ledger, "SELECT COUNT(*) FROM events WHERE state = 'queued'") == queued_before
    assert _pictures(out) == [f"job-{i:02d}.png" for i in range(n)]


def test_bad_jobs_fail_with_their_reason_and_the_rest_are_done(two_servers, tmp_path):
    a, b = two_servers
    photos = write_photos(tmp_path / "photos")
    wf = write_json(tmp_path / "workflow.json", workflow())
    good = {"person 1 photo.image": f"photos/{photos[0].name}"}
    rows = [
        {"id": "good-1", **good, "sampler.seed": 1, "prompt.text": "a portrait"},
        "{not json",
        {"id": "missing-photo", "person 1 photo.image": "photos/nobody.png"},
        {"id": "unknown-title", **good, "sampler 2.seed": 3},
        {"id": "unknown-input", **good, "sampler.seeds": 3},
        {"id": "bad-value", **good, "sampler.seed": "seven"},
        {"id": "rejected", **good, "checkpoint.ckpt_name": "no_such_model.safetensors"},
        {"id": "good-2", **good, "sampler.seed": 2, "_comment": "ignored"},
        [1, 2],
    ]
    jobs = tmp_path / "jobs.jsonl"
    jobs.write_text("\n".join(r if isinstance(r, str) else json.dumps(r) for r in rows) + "\n")
    out = tmp_path / "out"
    log = tmp_path / "client.log"
    code = run_client(["run", "-w", str(wf), "-j", str(jobs), "-o", str(out), "-s", a.url, "-s", b.url], log)
    text = log.read_text()
    assert code == 1, text[-3000:]
    reasons = dict(ledger_rows(out / LEDGER, "SELECT id, reason FROM jobs WHERE state = 'failed'"))
    assert set(reasons) == {"row-0002", "missing-photo", "unknown-title", "unknown-input", "bad-value", "rejected",
                            "row-0009"}, reasons
    assert reasons["row-0002"].startswith("malformed line 2: not valid JSON")
    assert reasons["row-0009"] == "malformed line 9: not a JSON object"
    assert reasons["missing-photo"].startswith("missing image for person 1 photo.image") and "nobody.png" in reasons["missing-photo"]
    assert "unknown node title 'sampler 2'" in reasons["unknown-title"] and "did you mean 'sampler'" in reasons["unknown-title"]
    assert "has no input 'seeds'" in reasons["unknown-input"] and "did you mean 'seed'" in reasons["unknown-input"]
    assert reasons["bad-value"] == "sampler.seed: 'seven' is not an integer"
    assert reasons["rejected"].startswith("rejected by the server") and "node 'checkpoint'" in reasons["rejected"]
    assert "no_such_model.safetensors" in reasons["rejected"]
    # only the rejected one ever reached a server; the others failed before anything was queued
    queued = {j for (j,) in ledger_rows(out / LEDGER, "SELECT job_id FROM events WHERE state = 'queued'")}
    assert queued == {"good-1", "good-2", "rejected"}
    assert _pictures(out) == ["good-1.png", "good-2.png"]
    assert "failed, by reason:" in text and "1 × rejected by the server" in text and "2 × malformed row" in text

    # status, from another process, says the same
    status = subprocess.run([sys.executable, "-m", "realisid_batch", "status", str(out)], cwd=REPO,
                            capture_output=True, text=True, timeout=60)
    assert status.returncode == 0
    assert status.stdout.startswith("done 2 · running 0 (queued 0, executing 0) · failed 7 · left 0 · total 9")
    assert "missing-photo: missing image" in status.stdout


def test_an_unknown_csv_column_stops_the_run_before_anything_is_queued(two_servers, tmp_path):
    a, _ = two_servers
    photos = write_photos(tmp_path / "photos", 1)
    wf = write_json(tmp_path / "workflow.json", workflow())
    jobs = tmp_path / "jobs.csv"
    jobs.write_text(f"id,person 1 photo.image,seed.seed\nx,photos/{photos[0].name},1\n")
    before = len(a.history())
    log = tmp_path / "client.log"
    code = run_client(["run", "-w", str(wf), "-j", str(jobs), "-o", str(tmp_path / "out"), "-s", a.url], log)
    text = log.read_text()
    assert code == 2
    assert "column 'seed.seed': unknown node title 'seed'" in text and "sampler" in text
    assert len(a.history()) == before
    assert not (tmp_path / "out" / LEDGER).exists()


def test_ctrl_c_leaves_a_consistent_ledger_and_the_next_run_finishes(two_servers, tmp_path):
    """Also with servers that pick their own prompt ids (older ComfyUI): the client records theirs."""
    a, b = two_servers
    photos = write_photos(tmp_path / "photos", 2)
    wf = write_json(tmp_path / "workflow.json", workflow(pace=0.3, old_server=True))
    n = 6
    jobs = _jobs_csv(tmp_path, n, photos)
    out = tmp_path / "out"
    ledger = out / LEDGER
    log = tmp_path / "client.log"
    args = ["run", "-w", str(wf), "-j", str(jobs), "-o", str(out), "-s", a.url, "-s", b.url, "--poll", "0.5"]
    proc = client(args, log)
    try:
        wait_for(lambda: _done_count(ledger) >= 1, 120, "a job done", proc, log)
        proc.send_signal(signal.SIGINT)
        assert proc.wait(timeout=60) == 130, log.read_text()[-3000:]
    finally:
        stop_process(proc)
    assert "stopped (Ctrl-C): the ledger is consistent" in log.read_text()
    for job_id, state, server, prompt_id in ledger_rows(ledger, "SELECT id, state, server, prompt_id FROM jobs"):
        assert state in ("pending", "queued", "running", "done"), (job_id, state)
        assert (server is not None and prompt_id is not None) == (state != "pending"), (job_id, state, server, prompt_id)
    assert run_client(args, log) == 0, log.read_text()[-3000:]
    assert dict(ledger_rows(ledger, "SELECT id, state FROM jobs")) == {f"job-{i:02d}": "done" for i in range(n)}
    assert _pictures(out) == [f"job-{i:02d}.png" for i in range(n)]
    # every prompt went under the server's own id, recorded next to ours
    renamed = ledger_rows(ledger, "SELECT job_id, prompt_id, detail FROM events WHERE detail LIKE 'server id for %'")
    assert {j for j, _, _ in renamed} == {f"job-{i:02d}" for i in range(n)}
    assert all(detail.split()[-1] != prompt_id for _, prompt_id, detail in renamed)
    done = dict(ledger_rows(ledger, "SELECT id, prompt_id FROM jobs"))
    histories = {**a.history(), **b.history()}
    assert all(histories[p]["prompt"][3]["realisid_batch"]["job"] == j for j, p in done.items())


def test_a_server_missing_a_model_is_reported_once_and_every_job_finishes_on_the_other(two_servers, tmp_path):
    """B lacks the workflow's checkpoint: it rejects every job at once. Its jobs go to A, B is reported once as set
    up wrong (with ComfyUI's words), no job fails. Alone, B stops the run (exit 3) and fails no job."""
    a, b = two_servers
    photos = write_photos(tmp_path / "photos", 2)
    wf = write_json(tmp_path / "workflow.json", workflow())
    n = 6
    jobs = _jobs_csv(tmp_path, n, photos)
    out = tmp_path / "out"
    log = tmp_path / "client.log"
    with b.without_model():
        code = run_client(["run", "-w", str(wf), "-j", str(jobs), "-o", str(out), "-s", b.url, "-s", a.url,
                           "--poll", "0.5"], log)
        text = log.read_text()
        assert code == 0, text[-4000:]
        assert dict(ledger_rows(out / LEDGER, "SELECT id, state FROM jobs")) == {f"job-{i:02d}": "done" for i in range(n)}
        assert {s for (s,) in ledger_rows(out / LEDGER, "SELECT server FROM jobs")} == {a.url}
        assert text.count(f"server {b.url} is set up wrong") == 1, text[-4000:]
        report = next(line for line in text.splitlines() if f"server {b.url} is set up wrong" in line)
        assert "tiny_sd15.safetensors" in report and "node 'checkpoint'" in report, report
        assert "FAILED" not in text
        assert _pictures(out) == [f"job-{i:02d}.png" for i in range(n)]

        alone = tmp_path / "alone"
        log2 = tmp_path / "alone.log"
        code = run_client(["run", "-w", str(wf), "-j", str(jobs), "-o", str(alone), "-s", b.url], log2)
        text = log2.read_text()
        assert code == 3, text[-4000:]
        assert text.count(f"server {b.url} is set up wrong") == 1 and "every server is set up wrong" in text
        assert set(dict(ledger_rows(alone / LEDGER, "SELECT id, state FROM jobs")).values()) == {"pending"}
    # fixed, the same command finishes the jobs
    assert run_client(["run", "-w", str(wf), "-j", str(jobs), "-o", str(alone), "-s", b.url], log2) == 0
