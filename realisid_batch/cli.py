"""`python -m realisid_batch run | status | evaluate | limit`: the command line.

Exit codes: 0 everything succeeded; 1 some jobs failed (evaluate: some people could not be
measured, their reference photo has no face); 2 the command's input is wrong (nothing was
queued); 3 no server answered for too long, or every server is set up wrong (the jobs wait in the
ledger); 130 stopped with Ctrl-C (the ledger is consistent; run the same command again to go on).
"""
from __future__ import annotations

import argparse
import asyncio
import sys
from pathlib import Path

from .errors import BatchError, JobError

EXIT_OK, EXIT_FAILED, EXIT_INPUT, EXIT_NO_SERVER, EXIT_INTERRUPTED = 0, 1, 2, 3, 130


def _parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="python -m realisid_batch", description=__doc__.split("\n")[0])
    sub = p.add_subparsers(dest="command", required=True)

    run = sub.add_parser("run", help="send a jobs file through a workflow on one or more ComfyUI servers")
    run.add_argument("--workflow", "-w", required=True, help="API-format workflow (ComfyUI: Workflow > Export (API))")
    run.add_argument("--jobs", "-j", required=True, help="jobs file, .csv or .jsonl; columns '<node title>.<input>'")
    run.add_argument("--server", "-s", action="append", default=None,
                     help="ComfyUI server address (repeat for several; default http://127.0.0.1:8188)")
    run.add_argument("--output", "-o", required=True, help="folder for the pictures (and the ledger)")
    run.add_argument("--ledger", help="ledger file (default <output>/realisid_batch.sqlite)")
    run.add_argument("--per-server", type=int, default=2, help="prompts kept queued on each server (default 2)")
    run.add_argument("--retry-failed", action="store_true", help="run the jobs that failed last time again")
    run.add_argument("--upload-input", action="append", default=[], metavar="TITLE.INPUT",
                     help="another input whose local file paths are uploaded (LoadImage 'image' always is)")
    run.add_argument("--poll", type=float, default=1.0, help="seconds between looks at each server (default 1)")
    run.add_argument("--down-grace", type=float, default=10.0,
                     help="seconds a server may not answer before its jobs move (refused connections: at once)")
    run.add_argument("--give-up-after", type=float, default=600.0, help="stop when no server answered this long")
    run.add_argument("--quiet", "-q", action="store_true", help="no progress bar or job lines, only the summary")

    st = sub.add_parser("status", help="what a run's ledger says (works while the run goes)")
    st.add_argument("where", help="the run's output folder, or its ledger file")
    st.add_argument("--jobs", action="store_true", help="list every job")
    st.add_argument("--json", action="store_true", help="as JSON")

    ev = sub.add_parser("evaluate", help="identity, place, pose and expression of the pictures, by face size")
    ev.add_argument("--people", required=True, help="JSONL: per picture, the intended people (see docs/batch.md, section 4. Evaluate)")
    ev.add_argument("--run", action="append", required=True, metavar="[NAME=]FOLDER",
                    help="a folder of pictures (a batch output folder or any); repeat to compare runs")
    ev.add_argument("--out", required=True, help="folder for evaluation.json, evaluation.md, identity_vs_face_size.png")
    _recogniser_arguments(ev)
    ev.add_argument("--min-iou", type=float, default=0.1, help="a face counts as found at its place above this IoU")

    lim = sub.add_parser("limit", help="the face size below which the recogniser cannot find or recognise a person")
    lim.add_argument("--photo", action="append", default=[], metavar="FILE",
                     help="a real photo (repeat; default: the photos that ship in insightface and scikit-image)")
    lim.add_argument("--sizes", default=",".join(str(s) for s in (16, 24, 32, 48, 64, 96, 128, 256)),
                     help="face sides in pixels to shrink each face to (default 16,24,32,48,64,96,128,256)")
    lim.add_argument("--out", help="folder for limit.json and limit.md")
    _recogniser_arguments(lim)
    return p


def _recogniser_arguments(p) -> None:
    p.add_argument("--recogniser", default="auto",
                   help="what measures: dlib (dlib's ResNet, another family than ArcFace), or an insightface pack "
                        "(default: an installed pack other than --conditioning-pack)")
    p.add_argument("--conditioning-pack", default="antelopev2", help="the pack the pictures were conditioned with")
    p.add_argument("--insightface", action="append", default=[], metavar="FOLDER",
                   help="insightface folder holding models/<pack> (default: ComfyUI's models/insightface, ~/.insightface)")
    p.add_argument("--provider", default="auto", help="onnxruntime provider: auto, CUDA, ROCm, CoreML, CPU")
    p.add_argument("--detector", choices=["hog", "cnn"], default="hog", help="with --recogniser dlib: dlib's detector")
    p.add_argument("--upsample", type=int, default=1, choices=range(0, 4), metavar="{0..3}",
                   help="with --recogniser dlib: times the picture is doubled before detection (1: faces from ~40 px)")


def _run(args) -> int:
    from .jobs import bind_job, read_jobs
    from .ledger import Ledger, ledger_path
    from .lock import RunLock
    from .outputs import remove_partial
    from .progress import Display
    from .report import summary
    from .runner import GaveUp, Options, Runner
    from .workflow import Workflow

    workflow = Workflow.load(args.workflow)
    jobs_path = Path(args.jobs).resolve()
    base_dir = jobs_path.parent
    rows = read_jobs(jobs_path, workflow)
    options = Options(per_server=max(1, args.per_server), poll=args.poll, down_grace=args.down_grace,
                      give_up_after=args.give_up_after, image_inputs=frozenset(args.upload_input))
    for key in options.image_inputs:
        try:
            workflow.target(key)
        except JobError as exc:
            raise BatchError(f"--upload-input {key}: {exc}") from None
    checked = []
    for row in rows:  # every job checked before anything is queued
        error = row.error
        if error is None:
            try:
                bind_job(row.values, workflow, base_dir, options.image_inputs)
            except JobError as exc:
                error = str(exc)
        checked.append((row.id, row.row, row.values, error))

    output = Path(args.output)
    output.mkdir(parents=True, exist_ok=True)
    path = ledger_path(output, args.ledger)
    with RunLock(path):
        ledger = Ledger(path)
        remove_partial(output)
        sync = ledger.sync(checked, retry_failed=args.retry_failed)
        known = ledger.meta("workflow")
        if known and known != workflow.fingerprint:
            print("note: the workflow changed since this ledger's first run; finished jobs are kept "
                  "(run with a new --output to redo them)", file=sys.stderr)
        ledger.set_meta("workflow", workflow.fingerprint)
        for job_id in sync.changed_done:
            print(f"note: job {job_id} changed in the jobs file after it was done; its outputs are kept", file=sys.stderr)
        in_file = {row.id for row in rows}
        counts = ledger.counts()
        stray = [j.id for j in ledger.jobs(("pending",)) if j.id not in in_file]
        if stray:
            print(f"note: {len(stray)} pending jobs of the ledger are not in {jobs_path.name} and are left alone "
                  f"({', '.join(stray[:5])}{', …' if len(stray) > 5 else ''})", file=sys.stderr)
        todo = counts["pending"] - len(stray) + counts["queued"] + counts["running"]
        servers = args.server or ["http://127.0.0.1:8188"]
        print(f"{len(rows)} jobs in {jobs_path.name}: {counts['done']} already done, {counts['failed']} failed, "
              f"{todo} to do on {len(servers)} server{'s' * (len(servers) > 1)}"
              + (f" ({sync.invalid} cannot run as written)" if sync.invalid else ""))
        display = Display(len(ledger.jobs()), quiet=args.quiet)
        code = EXIT_OK
        stats = None
        try:
            if todo:
                stats = asyncio.run(Runner(ledger, workflow, base_dir, output, servers, options, display, in_file).run())
            else:
                print("nothing to do: every job is finished (use --retry-failed to run failed ones again)")
        except KeyboardInterrupt:
            code = EXIT_INTERRUPTED
        except GaveUp as exc:
            print(f"stopped: {exc}", file=sys.stderr)
            code = EXIT_NO_SERVER
        finally:
            display.close()
        if stats:
            print(f"queued {stats['queued']} prompts; {stats['recovered']} jobs picked up from an earlier run; "
                  f"{stats['moved']} moves")
            for url, reason in stats["broken"].items():
                print(f"server {url} was set up wrong and got no more jobs after failing each with: {reason}")
        if code == EXIT_INTERRUPTED:
            print("stopped (Ctrl-C): the ledger is consistent; jobs already on servers stay there and are "
                  "collected by the next run of the same command")
        print(summary(ledger, output / "report.csv"))
        counts = ledger.counts()
        ledger.close()
    if code == EXIT_OK and counts["failed"]:
        code = EXIT_FAILED
    return code


def _status(args) -> int:
    from .ledger import DEFAULT_NAME, Ledger
    from .report import status
    where = Path(args.where)
    ledger = Ledger(where / DEFAULT_NAME if where.is_dir() else where, readonly=True)
    print(status(ledger, args.jobs, args.json))
    ledger.close()
    return EXIT_OK


def _evaluate(args) -> int:
    from .evaluation.command import evaluate_command
    return evaluate_command(args)


def _limit(args) -> int:
    from .evaluation.command import limit_command
    return limit_command(args)


def main(argv: list[str] | None = None) -> int:
    args = _parser().parse_args(argv)
    try:
        return {"run": _run, "status": _status, "evaluate": _evaluate, "limit": _limit}[args.command](args)
    except BatchError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return EXIT_INPUT
    except KeyboardInterrupt:  # outside the run itself: every ledger change is a whole transaction or none
        print("stopped (Ctrl-C)", file=sys.stderr)
        return EXIT_INTERRUPTED
