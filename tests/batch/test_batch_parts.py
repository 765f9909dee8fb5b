"""The batch client's parts without a server: binding by title, the jobs file, the ledger, output names, metrics."""
from __future__ import annotations

import json
import math
import subprocess
import sys

import numpy as np
import pytest

from realisid_batch.comfy_api import execution_seconds, find_marked, rejection_reason
from realisid_batch.errors import BatchError, JobError
from realisid_batch.evaluation import metrics
from realisid_batch.jobs import bind_job, read_jobs
from realisid_batch.ledger import Ledger
from realisid_batch.outputs import local_names, output_files, safe_name
from realisid_batch.workflow import Workflow

REPO_ROOT = __import__("pathlib").Path(__file__).resolve().parents[2]


def _workflow():
    def node(cls, title, **inputs):
        return {"class_type": cls, "inputs": inputs, "_meta": {"title": title}}
    return Workflow({
        "1": node("CheckpointLoaderSimple", "v1.5 checkpoint", ckpt_name="a.safetensors"),
        "2": node("CLIPTextEncode", "prompt", text="x", clip=["1", 1]),
        "3": node("KSampler", "sampler", seed=1, cfg=7.5, steps=20, add_noise=True, model=["1", 0]),
        "4": node("LoadImage", "person 1 photo", image="a.png"),
        "5": node("SaveImage", "save", filename_prefix="x"),
        "6": node("SaveImage", "save", filename_prefix="y"),
    })


def test_values_are_bound_by_title_and_converted_to_the_workflows_types(tmp_path):
    wf = _workflow()
    (tmp_path / "photos").mkdir()
    (tmp_path / "photos" / "ada.png").write_bytes(b"png")
    b = {x.key: x for x in bind_job({"sampler.seed": "42", "sampler.cfg": "3", "sampler.add_noise": "no",
                                     "prompt.text": 5, "v1.5 checkpoint.ckpt_name": "b.safetensors",
                                     "person 1 photo.image": "photos/ada.png"}, wf, tmp_path)}
    assert b["sampler.seed"].value == 42 and b["sampler.cfg"].value == 3.0 and b["sampler.add_noise"].value is False
    assert b["prompt.text"].value == "5" and b["v1.5 checkpoint.ckpt_name"].node_id == "1"
    assert b["person 1 photo.image"].local_image == str((tmp_path / "photos" / "ada.png").resolve())
    graph = wf.build(list(b.values()), {b["person 1 photo.image"].local_image: "realisid_batch/abc_ada.png"})
    assert graph["3"]["inputs"]["seed"] == 42 and graph["4"]["inputs"]["image"] == "realisid_batch/abc_ada.png"
    assert wf.graph["3"]["inputs"]["seed"] == 1  # the workflow itself is untouched
    # a bare name that is no local file is a file already on the server
    assert wf.bind("person 1 photo.image", "on_server.png", tmp_path).local_image is None


@pytest.mark.parametrize("key, value, message", [
    ("sampler.seed", "7.5", "sampler.seed: '7.5' is not an integer"),
    ("sampler.cfg", "high", "sampler.cfg: 'high' is not a number"),
    ("sampler.add_noise", "maybe", "sampler.add_noise: 'maybe' is not true or false"),
    ("sampler", "1", "'sampler' is not '<node title>.<input name>'"),
    ("sampelr.seed", "1", "unknown node title 'sampelr' in 'sampelr.seed': did you mean 'sampler'?"),
    ("sampler.sed", "1", "node 'sampler' (KSampler) has no input 'sed': did you mean 'seed'?"),
    ("save.filename_prefix", "z", "'save.filename_prefix': 2 nodes are titled 'save' (ids 5, 6); give them distinct titles"),
    ("person 1 photo.image", "photos/none.png", "missing image for person 1 photo.image"),
])
def test_a_bad_value_names_the_problem(tmp_path, key, value, message):
    with pytest.raises(JobError, match=None) as err:
        _workflow().bind(key, value, tmp_path)
    assert message in str(err.value)


def test_a_ui_format_workflow_is_refused_with_the_fix():
    with pytest.raises(BatchError, match="Export \\(API\\)"):
        Workflow({"nodes": [], "links": [], "version": 0.4})


def test_the_jobs_file_csv_and_jsonl(tmp_path):
    wf = _workflow()
    csv = tmp_path / "jobs.csv"
    csv.write_text("id,sampler.seed,prompt.text,_note\na,1,hello,x\n,2,,y\nc,3\nd,4,x,y,extra\n")
    rows = read_jobs(csv, wf)
    assert [(r.id, r.values, r.error) for r in rows[:2]] == [
        ("a", {"sampler.seed": "1", "prompt.text": "hello"}, None), ("row-0002", {"sampler.seed": "2"}, None)]
    assert rows[2].error == "malformed row 3 (line 4): 2 fields where the header has 4"
    assert rows[3].error == "malformed row 4 (line 5): 5 fields where the header has 4"
    with pytest.raises(BatchError, match="column 'seed.seed': unknown node title 'seed'"):
        (tmp_path / "bad.csv").write_text("seed.seed\n1\n")
        read_jobs(tmp_path / "bad.csv", wf)
    jsonl = tmp_path / "jobs.jsonl"
    jsonl.write_text('{"id": "x", "sampler.seed": 3, "prompt.text": null}\n\n[1]\n{"sampler.seed": 4}\n')
    rows = read_jobs(jsonl, wf)
    assert [(r.id, r.values, r.error) for r in rows] == [("x", {"sampler.seed": 3}, None),
                                                          ("row-0002", {}, "malformed line 3: not a JSON object"),
                                                          ("row-0003", {"sampler.seed": 4}, None)]


def test_a_repeated_job_id_fails_that_row_alone(tmp_path):
    """It used to stop the whole run (exit 2, nothing queued); docs/batch.md promises a bad row fails alone."""
    wf = _workflow()
    (tmp_path / "dup.csv").write_text("id,sampler.seed\na,1\nA,2\nb,3\na,4\n")
    rows = read_jobs(tmp_path / "dup.csv", wf)
    assert [(r.id, r.error is None) for r in rows] == [("a", True), ("A#row2", False), ("b", True), ("a#row4", False)]
    assert rows[1].error.startswith("job id 'A' (row 2) repeats the id of row 1") and "id of its own" in rows[1].error
    assert rows[3].error.startswith("job id 'a' (row 4) repeats the id of row 1")
    ledger = Ledger(tmp_path / "ledger.sqlite")
    ledger.sync([(r.id, r.row, r.values, r.error) for r in rows])
    assert {j.id: j.state for j in ledger.jobs()} == {"a": "pending", "A#row2": "failed", "b": "pending",
                                                      "a#row4": "failed"}
    assert ledger.job("a").values == {"sampler.seed": "1"}
    ledger.close()
    jsonl = tmp_path / "dup.jsonl"
    jsonl.write_text('{"id": "x"}\n{"id": "x"}\n{"id": "x#row2"}\n')
    assert [r.id for r in read_jobs(jsonl, wf)] == ["x", "x#row2", "x#row2#row3"]


def test_output_names_come_from_the_job_id():
    titles = {"9": "save", "12": "face crop", "13": "save"}
    outputs = {"12": {"images": [{"filename": "c_00001_.png", "subfolder": "", "type": "output"},
                                 {"filename": "c_00002_.png", "subfolder": "", "type": "output"}]},
               "9": {"images": [{"filename": "a_00001_.PNG", "subfolder": "s", "type": "output"},
                                {"filename": "p.png", "subfolder": "", "type": "temp"}]},
               "13": {"images": [{"filename": "b.webp", "type": "output"}], "text": ["not a file"]}}
    files = output_files(outputs, titles)
    assert [f["node"] for f in files] == ["9", "12", "12", "13"]
    assert local_names("ada/beach 1", files) == ["ada_beach_1_save.png", "ada_beach_1_face_crop.png",
                                                 "ada_beach_1_face_crop_2.png", "ada_beach_1_save-13.webp"]
    assert local_names("j1", files[:1]) == ["j1.png"]
    assert safe_name("../x") == "x"


def test_the_ledger_guards_every_change(tmp_path):
    ledger = Ledger(tmp_path / "l.sqlite")
    report = ledger.sync([("a", 1, {"s.s": 1}, None), ("b", 2, {}, "malformed row 2"), ("c", 3, {}, None)])
    assert (report.added, report.invalid) == (3, 1)
    assert ledger.counts() == {"pending": 2, "queued": 0, "running": 0, "done": 0, "failed": 1}
    assert ledger.mark_queued("a", "http://s1", "p1") and not ledger.mark_queued("a", "http://s1", "p2")
    assert ledger.mark_running("a", "p1") and not ledger.mark_running("a", "other")
    assert ledger.requeue("a", "p1", "server down", abandon=True)
    assert ledger.abandoned("http://s1")[0][:2] == ("p1", "a")
    assert not ledger.mark_done("a", "p1", [])  # news of the old prompt never finishes the job
    assert ledger.mark_queued("a", "http://s2", "p3") and ledger.mark_done("a", "p3", [{"file": "a.png"}], server_seconds=1.5)
    assert not ledger.mark_failed("a", "late error", "p3")  # done is final
    job = ledger.job("a")
    assert (job.state, job.server, job.attempts, job.seconds, job.outputs) == ("done", "http://s2", 2, 1.5, [{"file": "a.png"}])
    assert [e["state"] for e in ledger.events("a")] == ["pending", "queued", "running", "pending", "queued", "done"]
    # a second sync keeps finished jobs; retry brings failed ones back (or fails them again if still bad)
    ledger.sync([("a", 1, {"s.s": 2}, None), ("b", 2, {}, "malformed row 2"), ("c", 3, {}, None)])
    assert ledger.job("a").state == "done" and ledger.job("b").state == "failed"
    ledger.mark_queued("c", "http://s1", "p4")
    ledger.mark_failed("c", "rejected by the server: x", "p4")
    ledger.sync([("c", 3, {}, None)], retry_failed=True)
    assert ledger.job("c").state == "pending" and ledger.job("c").reason is None
    ledger.close()


def test_status_reads_the_ledger_from_another_process_while_it_is_written(tmp_path):
    ledger = Ledger(tmp_path / "realisid_batch.sqlite")
    ledger.sync([(f"j{i}", i, {}, None) for i in range(5)])
    ledger.mark_queued("j0", "http://s", "p0")
    ledger.mark_done("j0", "p0", [{"file": "j0.png"}])
    ledger.mark_queued("j1", "http://s", "p1")
    ledger.mark_failed("j2", "missing image for x.image: /y.png does not exist")
    ledger.conn.execute("BEGIN IMMEDIATE")  # a writer holds a transaction open: readers still see the last commit
    ledger.conn.execute("UPDATE jobs SET state = 'done' WHERE id = 'j3'")
    try:
        out = subprocess.run([sys.executable, "-m", "realisid_batch", "status", str(tmp_path), "--jobs"], cwd=REPO_ROOT,
                             capture_output=True, text=True, timeout=60)
    finally:
        ledger.conn.execute("ROLLBACK")
        ledger.close()
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert lines[0] == "done 1 · running 1 (queued 1, executing 0) · failed 1 · left 2 · total 5"
    assert "  queued   j1 on http://s as p1" in lines and "  j2: missing image for x.image: /y.png does not exist" in lines
    assert any(line.startswith("  j0: done ") and line.endswith(" s -> j0.png") for line in lines)


def test_server_answers_are_read_into_reasons_and_times():
    titles = {"1": "checkpoint"}
    body = {"error": {"type": "prompt_outputs_failed_validation", "message": "Prompt outputs failed validation",
                      "details": ""},
            "node_errors": {"1": {"errors": [{"type": "value_not_in_list", "message": "Value not in list",
                                              "details": "ckpt_name: 'x' not in []"}], "class_type": "CheckpointLoaderSimple"}}}
    assert rejection_reason(body, titles) == ("rejected by the server: Prompt outputs failed validation; node 'checkpoint' "
                                              "(CheckpointLoaderSimple): Value not in list: ckpt_name: 'x' not in []")
    entry = {"status": {"status_str": "success", "messages": [["execution_start", {"timestamp": 1000}],
                                                              ["execution_success", {"timestamp": 3500}]]}}
    assert execution_seconds(entry) == 2.5
    # a server that ignores client prompt ids: our prompt is found by the marker in its extra_data
    items = [[0, "server-id-1", {}, {"client_id": "c"}], [1, "server-id-2", {}, {"realisid_batch": {"job": "a", "prompt": "ours"}}]]
    assert find_marked(items, "ours") == "server-id-2" and find_marked(items, "other") is None


def test_metrics_give_the_known_numbers():
    assert metrics.iou([0, 0, 10, 10], [5, 0, 15, 10]) == pytest.approx(1 / 3)
    assert metrics.iou([0, 0, 10, 10], [20, 20, 30, 30]) == 0.0
    assert [metrics.bucket(s) for s in (10, 48, 48.1, 96, 150, 192, 193, 1000)] == \
        ["<=48", "<=48", "48-96", "48-96", "96-192", "96-192", ">192", ">192"]
    assert metrics.face_side([0, 0, 32, 128]) == 64
    assert metrics.angle_difference(179, -179) == pytest.approx(2)
    assert metrics.pose_error((10, 20, -170), (12, -5, 175)) == pytest.approx({"yaw": 25, "pitch": 2, "roll": 15})
    matches = metrics.match_by_box([[0, 0, 10, 10], [100, 100, 110, 110]], [[101, 100, 111, 110], [1, 0, 11, 10]], 0.1)
    assert {i: j for i, (j, _) in matches.items()} == {0: 1, 1: 0}
    assert metrics.match_by_box([[0, 0, 10, 10]], [[9, 9, 19, 19]], 0.1) == {}


def test_expression_error_ignores_place_size_and_roll_and_measures_the_mouth():
    pytest.importorskip("insightface")  # its 3-D mean face is the test face
    pytest.importorskip("onnx")
    from fixtures.fake_insightface import mean_face_68
    face = mean_face_68()[:, :2] * 100
    iod = np.linalg.norm(face[42:48].mean(0) - face[36:42].mean(0))
    a = math.radians(30)
    moved = (face @ np.array([[math.cos(a), math.sin(a)], [-math.sin(a), math.cos(a)]]).T) * 2.5 + [300, -40]
    assert metrics.expression_error(moved, face) == pytest.approx(0, abs=1e-9)
    opened = face.copy()
    opened[48:68, 1] += 0.1 * iod  # the mouth 0.1 inter-ocular distance lower: 20 of the 32 points move
    assert metrics.expression_error(opened, face) == pytest.approx(0.1 * 20 / 32)
    assert metrics.cosine([1, 0], [1, 1]) == pytest.approx(math.sqrt(0.5))


def test_the_people_file(tmp_path):
    from realisid_batch.evaluation.people import read_people
    path = tmp_path / "people.jsonl"
    path.write_text(json.dumps({"picture": "p", "people": [{"name": "a", "reference": "a.png", "location": "0.5 0.25 0.1"},
                                                           {"reference": "b.png", "box": [0, 0, 10, 10], "pose": "q.png"}]}) + "\n")
    spec = read_people(path)[0]
    assert spec.people[0].intended_box(200, 100) == pytest.approx((95, 20, 105, 30))
    assert spec.people[1].name == "person 2" and spec.people[1].pose == tmp_path / "q.png"
    path.write_text('{"picture": "p", "people": [{"reference": "a.png", "box": [1, 2]}]}\n')
    with pytest.raises(BatchError, match="line 1, person 1 box: give 4 numbers, not 2"):
        read_people(path)


def test_the_progress_bar_on_a_terminal_and_plain_lines_without_one():
    import io

    from realisid_batch.progress import Display

    class Terminal(io.StringIO):
        def isatty(self):
            return True
    out, err = io.StringIO(), Terminal()
    display = Display(4, out=out, err=err)
    display.counts(2, 1)
    display.server("http://127.0.0.1:8188", "job-3 sampler 5/20")
    display.line("job-2: done")
    display.close()
    assert "[##################......] 3/4 (2 done, 1 failed)  127.0.0.1:8188: job-3 sampler 5/20" in err.getvalue()
    assert out.getvalue().rstrip().endswith("job-2: done")
    plain_out, plain_err = io.StringIO(), io.StringIO()
    display = Display(4, out=plain_out, err=plain_err)
    display.line("job-1: done")
    display.draw()
    assert plain_err.getvalue() == "" and "job-1: done" in plain_out.getvalue()


def _closed_port() -> int:
    import socket
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_with_every_server_down_the_run_says_what_it_waits_for_and_for_how_long(tmp_path):
    """It used to wait up to --give-up-after (600 s) without a word."""
    import asyncio
    import io

    from realisid_batch.progress import Display
    from realisid_batch.runner import GaveUp, Options, Runner
    ledger = Ledger(tmp_path / "ledger.sqlite")
    ledger.sync([("j1", 1, {"sampler.seed": "1"}, None), ("j2", 2, {"sampler.seed": "2"}, None)])
    urls = [f"http://127.0.0.1:{_closed_port()}", f"http://127.0.0.1:{_closed_port()}"]
    err = io.StringIO()
    runner = Runner(ledger, _workflow(), tmp_path, tmp_path, urls,
                    Options(give_up_after=2.6, waiting_note_every=1.0), Display(2, quiet=True, out=io.StringIO(), err=err))
    with pytest.raises(GaveUp, match="no server answered for 3 s"):
        asyncio.run(runner.run())
    notes = [line for line in err.getvalue().splitlines() if "waiting for a server" in line]
    assert len(notes) >= 2, err.getvalue()  # at once, then every waiting_note_every seconds
    for url in urls:
        assert f"{url} (down since " in notes[0] and "cannot connect" in notes[0]
    assert "2 jobs waiting" in notes[0] and "giving up in 3 s (--give-up-after 3)" in notes[0]
    import re
    left = [int(re.search(r"giving up in (\d+) s", note).group(1)) for note in notes]
    assert left == sorted(left, reverse=True) and left[-1] < left[0], notes  # counting down
    ledger.close()


def test_the_cli_tells_even_with_quiet_and_exits_3(tmp_path):
    (tmp_path / "wf.json").write_text(json.dumps(_workflow().graph))
    (tmp_path / "jobs.csv").write_text("id,sampler.seed\na,1\n")
    done = subprocess.run([sys.executable, "-m", "realisid_batch", "run", "-w", str(tmp_path / "wf.json"), "-j",
                           str(tmp_path / "jobs.csv"), "-o", str(tmp_path / "out"), "-s",
                           f"127.0.0.1:{_closed_port()}", "--give-up-after", "2", "--quiet"],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)
    assert done.returncode == 3, done.stderr
    assert "waiting for a server, none answers" in done.stderr and "giving up in 2 s" in done.stderr
    assert "stopped: no server answered for 2 s" in done.stderr


def test_whose_fault_a_failure_is():
    from realisid_batch.verdicts import Verdicts
    v = Verdicts(broken_after=3)
    missing = "rejected by the server: node 'checkpoint': Value not in list: ckpt_name: 'm.safetensors' not in []"
    for job in ("j1", "j2", "j3"):
        v.failed("A", job, missing)
        assert not v.check("A", others_exist=True)  # nothing ran elsewhere yet: no verdict
        assert not v.can_take("A", job) and v.can_take("B", job)
    assert v.succeeded("B", "j2") == ["A"] and v.is_broken("A")  # j2 ran on B: A is set up wrong
    assert v.tried_only_by_broken("j1") and not v.blamed_on_job("j1")

    v = Verdicts(broken_after=3)
    v.succeeded("A", "ok-1")
    v.succeeded("B", "ok-2")
    for url in ("A", "B"):  # a job both working servers reject: the job's fault
        v.failed(url, "bad", "rejected: node 'sampler': seed 'x'")
    assert v.blamed_on_job("bad") and v.reason("bad") == "rejected: node 'sampler': seed 'x'"
    v.failed("A", "b2", "one error")
    v.failed("A", "b3", "another error")  # different errors: no streak of one
    v.failed("A", "b4", "one error")
    assert len(v.server("A").streak) == 1 and not v.check("A", others_exist=False)
    assert v.reason("b2") == "one error"

    alone = Verdicts(broken_after=2)
    alone.failed("S", "j1", missing)
    assert not alone.check("S", others_exist=False)
    alone.failed("S", "j2", missing)
    assert alone.check("S", others_exist=False)  # never ran anything, nobody else to ask
    worked = Verdicts(broken_after=2)
    worked.succeeded("S", "j0")
    worked.failed("S", "j1", missing)
    worked.failed("S", "j2", missing)
    assert not worked.check("S", others_exist=False)  # it ran a job: these two jobs are to blame
