"""The run: jobs spread over servers, followed to the end, every change written to the ledger first.

Each server has a loop that keeps `per_server` prompts queued there, listens to its websocket
for progress and completion, and checks its prompts against the server's queue and history:

- in the queue: still waiting or running;
- in the history: finished — outputs downloaded (done) or the error recorded (failed);
- in neither: the server forgot it (it restarted, or the prompt never arrived): queued again.

The queue is read before the history, so a prompt finishing between the two reads is still
seen. A server that refuses connections (its process is gone) has its prompts moved to the
others at once; one that stops answering, after `down_grace` seconds. A moved prompt is
remembered and cancelled should its old server turn out to have it. A server that answers
again is used again. Jobs found on servers in the ledger at start (a client that crashed)
are followed the same way, so outputs that finished meanwhile are collected from the history.
"""
from __future__ import annotations

import asyncio
import json
import time
import uuid
from collections import deque
from dataclasses import dataclass, field
from pathlib import Path

import aiohttp

from .comfy_api import (ComfyServer, Rejected, ServerDown, execution_failure, execution_seconds, find_marked,
                        normalise_url)
from .errors import JobError
from .images import upload_name
from .jobs import bind_job
from .ledger import ACTIVE, Ledger
from .outputs import local_names, output_files, write_atomic
from .progress import Display
from .verdicts import Verdicts
from .workflow import Workflow

ABANDONED_KEEP_S = 120  # how long a moved prompt may still turn up on its old server (a POST in flight)


@dataclass
class Options:
    per_server: int = 2
    poll: float = 1.0
    down_grace: float = 10.0
    give_up_after: float = 600.0
    image_inputs: frozenset = frozenset()
    waiting_note_every: float = 30.0  # while no server answers: how often to say so (the first note at once)


class GaveUp(Exception):
    """No server answered for `give_up_after` seconds while jobs were left."""


class ServersBroken(GaveUp):
    """Every server is set up wrong (fails every job with the same error): the jobs wait in the ledger."""


@dataclass
class Link:
    """One server as this run sees it."""

    api: ComfyServer
    depth: int
    inflight: dict = field(default_factory=dict)  # prompt id -> job id
    up: bool = False
    down_since: float | None = None
    honours_ids: bool | None = None
    uploads: dict = field(default_factory=dict)  # local path -> name on the server
    wake: asyncio.Event = field(default_factory=asyncio.Event)
    listener: asyncio.Task | None = None
    said_down: bool = False
    down_at: float | None = None       # wall clock, for the waiting note
    last_error: str = "not answered yet"

    @property
    def url(self) -> str:
        return self.api.url


class Runner:
    def __init__(self, ledger: Ledger, workflow: Workflow, base_dir: Path, output_dir: Path,
                 servers: list[str], options: Options, display: Display, job_ids: set[str] | None = None):
        self.ledger, self.workflow, self.base_dir, self.output_dir = ledger, workflow, base_dir, output_dir
        self.urls = [normalise_url(u) for u in servers]
        self.options, self.display = options, display
        self.job_ids = job_ids  # the jobs of the jobs file (None: every pending job of the ledger)
        self.titles = {nid: workflow.title(nid) for nid in workflow.graph}
        self.pending: deque[str] = deque()
        self.in_hand: set[str] = set()  # taken from `pending`, not yet on a server (uploading)
        self.links: dict[str, Link] = {}
        self.finished = asyncio.Event()
        self.stats = {"queued": 0, "recovered": 0, "moved": 0, "broken": {}}
        self.verdicts = Verdicts()
        self.from_earlier_run: set[str] = set()  # jobs found on servers at start

    # bookkeeping --------------------------------------------------------------------------
    def _refresh(self) -> None:
        c = self.ledger.counts()
        self.display.counts(c["done"], c["failed"])
        for link in self.links.values():
            if not link.up:
                self.display.server(link.url, "down" if link.said_down else "connecting")
            elif not link.inflight:
                self.display.server(link.url, "idle")
        self.display.draw()
        if not self.pending and not self.in_hand and not self.verdicts.held and \
                not any(link.inflight for link in self.links.values()):
            self.finished.set()
            self._wake_all()

    def _wake_all(self) -> None:
        for link in self.links.values():
            link.wake.set()

    def _take_back(self, link: Link, prompt_id: str, reason: str, abandon: bool) -> None:
        job_id = link.inflight.pop(prompt_id)
        self.from_earlier_run.discard(job_id)
        if self.ledger.requeue(job_id, prompt_id, reason, abandon):
            self.pending.appendleft(job_id)
            self.stats["moved"] += 1
            self.display.line(f"{job_id}: back in line ({reason})")
        self._wake_all()

    # the run ------------------------------------------------------------------------------
    async def run(self) -> dict:
        self.pending.extend(j.id for j in self.ledger.jobs(("pending",)) if self.job_ids is None or j.id in self.job_ids)
        connector = aiohttp.TCPConnector(limit_per_host=4)
        async with aiohttp.ClientSession(connector=connector) as session:
            for url in self.urls:
                self.links[url] = Link(ComfyServer(url, session, self.ledger.client_id), self.options.per_server)
            for job in self.ledger.jobs(ACTIVE):  # on a server when the last run stopped
                url = normalise_url(job.server)
                if url not in self.links:  # a server no longer listed: followed, given no new work
                    self.links[url] = Link(ComfyServer(url, session, self.ledger.client_id), 0)
                self.links[url].inflight[job.prompt_id] = job.id
                self.from_earlier_run.add(job.id)
                self.stats["recovered"] += 1
            self._refresh()
            tasks = [asyncio.create_task(self._serve(link)) for link in self.links.values()]
            watchdog = asyncio.create_task(self._watchdog())
            try:
                done, _ = await asyncio.wait([watchdog, *tasks], return_when=asyncio.FIRST_EXCEPTION)
                for t in done:
                    if t.exception():
                        raise t.exception()
            finally:
                for t in [watchdog, *tasks]:
                    t.cancel()
                for link in self.links.values():
                    if link.listener:
                        link.listener.cancel()
                await asyncio.gather(watchdog, *tasks, *(lk.listener for lk in self.links.values() if lk.listener),
                                     return_exceptions=True)
        return self.stats

    async def _watchdog(self) -> None:
        """Ends the run when everything is finished; gives up when no server has answered for too long, saying
        what it waits for while it waits."""
        unreachable_since = noted = None
        while not self.finished.is_set():
            await asyncio.sleep(0.5)
            self._settle()
            self._refresh()
            if self.finished.is_set():
                break
            self._stop_if_every_server_is_broken()
            needed = [link for link in self.links.values()
                      if (link.depth and not self.verdicts.is_broken(link.url)) or link.inflight]
            now = time.monotonic()
            if any(link.up for link in needed):
                if noted is not None:
                    self.display.notice("a server answers: going on")
                unreachable_since = noted = None
                continue
            if unreachable_since is None:
                unreachable_since = now
            waited = now - unreachable_since
            if waited > self.options.give_up_after:
                raise GaveUp(f"no server answered for {self.options.give_up_after:.0f} s "
                             f"({', '.join(self.links)}); start them and run again: nothing is lost")
            if noted is None or now - noted >= self.options.waiting_note_every:
                noted = now
                self.display.notice(self._waiting_note(needed, waited))

    def _waiting_note(self, links: list[Link], waited: float) -> str:
        def since(link):
            return time.strftime("%H:%M:%S", time.localtime(link.down_at)) if link.down_at else "the start"
        servers = "; ".join(f"{link.url} (down since {since(link)}: {link.last_error})" for link in links)
        left = self.options.give_up_after - waited
        return (f"waiting for a server, none answers: {servers}; {self.ledger.counts()['pending']} jobs waiting; "
                f"giving up in {left:.0f} s (--give-up-after {self.options.give_up_after:.0f}); start a server, or "
                "press Ctrl-C (nothing is lost)")

    async def _nap(self, link: Link, seconds: float) -> None:
        try:
            await asyncio.wait_for(link.wake.wait(), seconds)
        except asyncio.TimeoutError:
            pass
        link.wake.clear()

    async def _serve(self, link: Link) -> None:
        backoff = 0.25
        while not self.finished.is_set():
            if (link.depth == 0 or self.verdicts.is_broken(link.url)) and not link.inflight:
                return  # a recovery-only or set-up-wrong server with nothing left of ours
            try:
                if not link.up:
                    await link.api.probe()
                    await self._came_up(link)
                    backoff = 0.25
                await self._check(link)
                await self._fill(link)
                await self._nap(link, self.options.poll)
            except ServerDown as exc:
                self._went_down(link, exc)
                await self._nap(link, backoff)
                backoff = min(backoff * 2, 4.0)

    # server up and down -------------------------------------------------------------------
    async def _came_up(self, link: Link) -> None:
        link.up, link.down_since, link.down_at = True, None, None
        if link.said_down:
            self.display.line(f"server {link.url} answers again: back in use")
        link.said_down = False
        link.listener = asyncio.create_task(self._listen(link))
        self._refresh()

    def _went_down(self, link: Link, exc: ServerDown) -> None:
        now = time.monotonic()
        if link.up or not link.said_down:
            self.display.line(f"server {link.url} does not answer: {exc}")
        link.up, link.said_down = False, True
        link.down_since = link.down_since or now
        link.down_at = link.down_at or time.time()
        link.last_error = str(exc).split(": ", 1)[-1]
        link.uploads.clear()  # it may come back with an empty input folder
        if link.listener:
            link.listener.cancel()
            link.listener = None
        if link.inflight and (exc.refused or now - link.down_since >= self.options.down_grace):
            for prompt_id in list(link.inflight):
                self._take_back(link, prompt_id, f"server {link.url} went down", abandon=True)
        self._refresh()

    # the websocket: progress, and a nudge when a prompt ends ------------------------------------
    async def _listen(self, link: Link) -> None:
        while link.up:
            try:
                async with link.api.session.ws_connect(link.api.ws_url, heartbeat=20) as ws:
                    async for msg in ws:
                        if msg.type == aiohttp.WSMsgType.TEXT:
                            self._on_message(link, json.loads(msg.data))
            except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError):
                pass
            link.wake.set()  # the socket closed: let the loop look at the server
            await asyncio.sleep(1.0)

    def _on_message(self, link: Link, msg: dict) -> None:
        kind, data = msg.get("type"), msg.get("data") or {}
        prompt_id = str(data.get("prompt_id"))
        job_id = link.inflight.get(prompt_id)
        if job_id is None:
            return
        if kind == "execution_start":
            if self.ledger.mark_running(job_id, prompt_id):
                self.display.server(link.url, f"{job_id} started")
        elif kind == "executing" and data.get("node") is not None:
            self.display.server(link.url, f"{job_id} {self.titles.get(str(data['node']), data['node'])}")
        elif kind == "progress":
            node = self.titles.get(str(data.get("node")), data.get("node"))
            self.display.server(link.url, f"{job_id} {node} {data.get('value')}/{data.get('max')}")
        elif kind in ("execution_success", "execution_error", "execution_interrupted") or \
                (kind == "executing" and data.get("node") is None):
            link.wake.set()
        self.display.draw()

    # queueing -----------------------------------------------------------------------------
    async def _fill(self, link: Link) -> None:
        while link.up and len(link.inflight) < link.depth and not self.verdicts.is_broken(link.url):
            job_id = self._next_for(link)
            if job_id is None:
                return
            self.in_hand.add(job_id)
            try:
                await self._submit(link, job_id)
            except ServerDown:
                if job_id not in link.inflight.values():
                    self.pending.appendleft(job_id)  # not sent: still pending in the ledger too
                raise
            finally:
                self.in_hand.discard(job_id)

    async def _submit(self, link: Link, job_id: str) -> None:
        job = self.ledger.job(job_id)
        if job is None or job.state != "pending":
            return
        try:
            bindings = bind_job(job.values, self.workflow, self.base_dir, self.options.image_inputs)
        except JobError as exc:
            self._fail(job_id, str(exc))
            return
        uploaded = {}
        for b in bindings:
            if b.local_image is None or b.local_image in uploaded:
                continue
            if not Path(b.local_image).is_file():
                self._fail(job_id, f"missing image for {b.key}: {b.local_image} is gone")
                return
            if b.local_image not in link.uploads:
                try:
                    link.uploads[b.local_image] = await link.api.upload_image(b.local_image, upload_name(b.local_image))
                except Rejected as exc:
                    self._fail(job_id, str(exc))
                    return
            uploaded[b.local_image] = link.uploads[b.local_image]
        graph = self.workflow.build(bindings, uploaded)
        prompt_id = str(uuid.uuid4())
        if not self.ledger.mark_queued(job_id, link.url, prompt_id):  # written before it is sent
            return
        link.inflight[prompt_id] = job_id
        self.stats["queued"] += 1
        try:
            server_id = await link.api.submit(graph, prompt_id, job_id, self.titles)
        except Rejected as exc:
            link.inflight.pop(prompt_id, None)
            self._failed_on(link, job_id, str(exc), prompt_id)
            return
        link.honours_ids = server_id == prompt_id
        if server_id != prompt_id:  # an older server that picks its own ids
            self.ledger.rename_prompt(job_id, prompt_id, server_id)
            link.inflight[server_id] = link.inflight.pop(prompt_id)
        self.display.server(link.url, f"{job_id} queued")

    # whose fault a failure is (verdicts.py) ---------------------------------------------------
    def _next_for(self, link: Link) -> str | None:
        """The first pending job this server may take (not one it failed), taken out of the line."""
        for i, job_id in enumerate(self.pending):
            if self.verdicts.can_take(link.url, job_id):
                del self.pending[i]
                return job_id
        return None

    def _takers(self, job_id: str, up_only: bool = True) -> list[Link]:
        return [lk for lk in self.links.values()
                if lk.depth and (lk.up or not up_only) and self.verdicts.can_take(lk.url, job_id)]

    def _failed_on(self, link: Link, job_id: str, reason: str, prompt_id: str) -> None:
        """`link` failed the job: it goes to a server that has not tried it, or waits for the verdict on `link`."""
        v = self.verdicts
        v.failed(link.url, job_id, reason)
        others = [lk for lk in self.links.values() if lk is not link and lk.depth and not v.is_broken(lk.url)]
        if not self.ledger.requeue(job_id, prompt_id, f"failed on {link.url}: {reason}", abandon=False):
            return  # the job has moved on since
        if v.check(link.url, others_exist=bool(others)):
            self._report_broken(link, elsewhere=False)
        if self._takers(job_id):
            self.pending.appendleft(job_id)
            if not v.is_broken(link.url):
                again = len(v.server(link.url).streak) > 1
                self.display.line(f"{job_id}: failed on {link.url}" + (" with the same error" if again else "") +
                                  ", trying another server" + ("" if again else f" ({reason[:200]})"))
        else:
            v.held[job_id] = link.url
        self._settle()

    def _report_broken(self, link: Link, elsewhere: bool) -> None:
        """Once per server: it fails every job with one error; the jobs it failed go back in line."""
        reason = self.verdicts.server(link.url).broken
        self.stats["broken"][link.url] = reason
        count = len(self.verdicts.server(link.url).streak)
        proof = "the same jobs run on another server" if elsewhere else "and it has run no job in this run"
        self.display.notice(f"server {link.url} is set up wrong: it failed {count} jobs in a row with the same error "
                            f"({proof}); it gets no more jobs in this run, the jobs it failed are not counted as "
                            f"failed. Fix the server (the error names what it lacks) and run again. The error: {reason}")
        for job_id, url in list(self.verdicts.held.items()):
            if url == link.url:
                del self.verdicts.held[job_id]
                self.pending.appendleft(job_id)
        self._wake_all()

    def _stalled(self) -> bool:
        return not self.in_hand and not any(lk.inflight for lk in self.links.values()) and \
            not any(self._takers(job_id) for job_id in self.pending)

    def _settle(self) -> None:
        """Jobs no server can take any more are held; a held job goes back in line when a server can take it,
        fails when a working server failed it (or nothing is left to learn), and waits while only servers set
        up wrong have tried it."""
        v = self.verdicts
        for job_id in [j for j in self.pending if j in v.tried and not self._takers(j)]:
            self.pending.remove(job_id)
            v.held[job_id] = next(iter(v.tried[job_id]))
        for job_id in list(v.held):
            if self._takers(job_id):
                del v.held[job_id]
                self.pending.append(job_id)
                self._wake_all()
            elif v.blamed_on_job(job_id) or (self._stalled() and not v.tried_only_by_broken(job_id)):
                del v.held[job_id]
                self._fail(job_id, v.reason(job_id))

    def _stop_if_every_server_is_broken(self) -> None:
        usable = [lk for lk in self.links.values() if lk.depth and not self.verdicts.is_broken(lk.url)]
        if not usable and (self.pending or self.verdicts.held) and not any(lk.inflight for lk in self.links.values()):
            raise ServersBroken("every server is set up wrong (each failed every job with the same error, above); "
                                f"{len(self.pending) + len(self.verdicts.held)} jobs wait in the ledger: fix the "
                                "servers and run the same command again")

    def _fail(self, job_id: str, reason: str, prompt_id: str | None = None) -> None:
        if self.ledger.mark_failed(job_id, reason, prompt_id):
            self.display.line(f"{job_id}: FAILED: {reason}")
        self._refresh()

    # following prompts ---------------------------------------------------------------------
    async def _check(self, link: Link) -> None:
        """Compare this server's prompts of ours with its queue, then its history."""
        abandoned = self.ledger.abandoned(link.url)
        if not link.inflight and not abandoned:
            return
        running, waiting, items = await link.api.queue()
        for prompt_id in list(link.inflight):
            job_id = link.inflight[prompt_id]
            if prompt_id in running:
                if self.ledger.mark_running(job_id, prompt_id):
                    self.display.server(link.url, f"{job_id} running")
                continue
            if prompt_id in waiting:
                continue
            entry = await link.api.history(prompt_id)
            if entry is None and not link.honours_ids and await self._find_renamed(link, prompt_id, items):
                continue
            if entry is None:
                self._take_back(link, prompt_id, f"server {link.url} no longer has its prompt (restarted?)", abandon=True)
                continue
            await self._collect(link, prompt_id, entry)
        await self._cancel_abandoned(link, abandoned, running, waiting)

    async def _find_renamed(self, link: Link, prompt_id: str, items: list) -> bool:
        """For servers that ignore our prompt ids: find our prompt by its marker and record the server's id
        (collecting it if it finished); False when the server has no such prompt."""
        real = find_marked(items, prompt_id)
        entry = None
        if real is None:
            history = await link.api.all_history()
            real = find_marked([h.get("prompt") for h in history.values()], prompt_id)
            entry = history.get(real) if real else None
        if real is None:
            return False
        job_id = link.inflight.pop(prompt_id)
        self.ledger.rename_prompt(job_id, prompt_id, real)
        link.inflight[real] = job_id
        if entry is not None:
            await self._collect(link, real, entry)
        return True

    async def _collect(self, link: Link, prompt_id: str, entry: dict) -> None:
        """A finished prompt: its outputs downloaded and the job done, or its error recorded."""
        job_id = link.inflight[prompt_id]
        status = entry.get("status") or {}
        if status.get("status_str") not in (None, "success") or (not status and not entry.get("outputs")):
            link.inflight.pop(prompt_id)
            self._failed_on(link, job_id, execution_failure(entry, self.titles), prompt_id)
            return
        files = output_files(entry.get("outputs") or {}, self.titles)
        names = local_names(job_id, files)
        try:
            for item, name in zip(files, names):
                write_atomic(self.output_dir / name, await link.api.view(item))
        except Rejected as exc:
            link.inflight.pop(prompt_id)
            self._fail(job_id, str(exc), prompt_id)
            return
        outputs = [{"file": name, "node": f["node"], "title": f["title"], "server_file": f["filename"]}
                   for f, name in zip(files, names)]
        detail = "; ".join(d for d in (
            "picked up from an earlier run" if job_id in self.from_earlier_run else "",
            "" if files else "no output files (the workflow has no Save Image node?)") if d) or None
        link.inflight.pop(prompt_id)
        if self.ledger.mark_done(job_id, prompt_id, outputs, detail, execution_seconds(entry)):
            for url in self.verdicts.succeeded(link.url, job_id):
                self._report_broken(self.links[url], elsewhere=True)
            job = self.ledger.job(job_id)
            took = f" in {job.seconds:.1f} s" if job.seconds is not None else ""
            self.display.line(f"{job_id}: done on {link.url}{took} -> {', '.join(names) or 'no files'}")
        self.display.server(link.url, "idle" if not link.inflight else self.display.servers.get(link.url, ""))
        self._refresh()

    async def _cancel_abandoned(self, link: Link, abandoned: list, running: set, waiting: set) -> None:
        """Prompts moved away from this server that it still has: cancelled, so they do not run twice."""
        now = time.time()
        for prompt_id, job_id, at in abandoned:
            if prompt_id in waiting:
                await link.api.delete_queued(prompt_id)
                self.display.line(f"{job_id}: cancelled its old prompt on {link.url} (the job was moved)")
            elif prompt_id in running:
                await link.api.interrupt(prompt_id)
                self.display.line(f"{job_id}: stopped its old prompt on {link.url} (the job was moved)")
            else:
                if now - at < ABANDONED_KEEP_S and await link.api.history(prompt_id) is None:
                    continue  # may still arrive (a POST the server was still reading)
            self.ledger.forget_abandoned(link.url, prompt_id)
