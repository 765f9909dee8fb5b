"""One ComfyUI server's HTTP API, as the batch client uses it (aiohttp).

Failures are sorted into two kinds: `ServerDown` (no answer, connection refused or reset, a
5xx on a read) — the job is not to blame and goes elsewhere — and `Rejected` (the server
answered and refused this job: a 400 from /prompt, a refused upload) — the job fails with the
server's own words, or, from /prompt, is tried on another server first (verdicts.py).
"""
from __future__ import annotations

import asyncio
import json
import mimetypes
from pathlib import Path

import aiohttp

from .images import UPLOAD_SUBFOLDER

MARKER = "realisid_batch"  # key in a prompt's extra_data: {job, prompt} so a resubmission is recognised


class ServerDown(Exception):
    """The server did not answer; `refused` when nothing listens at its address (its process is gone)."""

    def __init__(self, url: str, what: str, refused: bool = False):
        super().__init__(f"{url}: {what}")
        self.refused = refused


class Rejected(Exception):
    """The server answered and refused this job."""


def normalise_url(url: str) -> str:
    url = url.strip().rstrip("/")
    return url if "://" in url else f"http://{url}"


def _short(value, limit: int = 300) -> str:
    text = value if isinstance(value, str) else json.dumps(value)
    return text if len(text) <= limit else text[:limit] + "…"


def rejection_reason(body: dict, titles: dict[str, str]) -> str:
    """The words of a 400 from /prompt: the error, then each node's errors, nodes named by title."""
    error = body.get("error") or {}
    parts = [error.get("message", "") if isinstance(error, dict) else str(error)]
    if isinstance(error, dict) and error.get("details"):
        parts[0] += f": {error['details']}"
    for node_id, info in (body.get("node_errors") or {}).items():
        for e in info.get("errors", []):
            text = e.get("message", "")
            if e.get("details"):
                text += f": {e['details']}"
            parts.append(f"node '{titles.get(node_id, node_id)}' ({info.get('class_type', '?')}): {text}")
    return "rejected by the server: " + _short("; ".join(p for p in parts if p) or json.dumps(body), 800)


def execution_failure(entry: dict, titles: dict[str, str]) -> str:
    """Why a finished prompt did not succeed, from its history entry."""
    messages = (entry.get("status") or {}).get("messages") or []
    for kind, data in messages:
        if kind == "execution_error":
            node = data.get("node_id")
            return (f"execution error in node '{titles.get(str(node), node)}' ({data.get('node_type', '?')}): "
                    f"{data.get('exception_type', 'error')}: {_short(data.get('exception_message', ''), 600)}")
        if kind == "execution_interrupted":
            return "interrupted on the server (someone pressed Cancel there, or it was stopped)"
    return f"the server reports status '{(entry.get('status') or {}).get('status_str')}'"


def execution_seconds(entry: dict) -> float | None:
    """How long the server took to run a prompt, from its own timestamps in the history entry."""
    stamps = {kind: data.get("timestamp") for kind, data in (entry.get("status") or {}).get("messages") or []
              if isinstance(data, dict)}
    start = stamps.get("execution_start")
    end = stamps.get("execution_success") or stamps.get("execution_error") or stamps.get("execution_interrupted")
    return None if start is None or end is None else max(0.0, (end - start) / 1000)


def find_marked(items: list, token: str) -> str | None:
    """The server's id of the prompt carrying our marker `token`, among queue items or history prompts
    ([number, prompt_id, prompt, extra_data, …]); for servers that ignore client-chosen prompt ids."""
    for item in items:
        if isinstance(item, (list, tuple)) and len(item) > 3 and isinstance(item[3], dict):
            if (item[3].get(MARKER) or {}).get("prompt") == token:
                return str(item[1])
    return None


class ComfyServer:
    """Requests to one server; every method raises ServerDown or Rejected, never a raw aiohttp error."""

    def __init__(self, url: str, session: aiohttp.ClientSession, client_id: str, timeout: float = 30.0):
        self.url = normalise_url(url)
        self.session = session
        self.client_id = client_id
        self.timeout = aiohttp.ClientTimeout(total=timeout, sock_connect=5)

    @property
    def ws_url(self) -> str:
        return self.url.replace("http", "ws", 1) + f"/ws?clientId={self.client_id}"

    async def _call(self, method: str, path: str, read: str = "json", **kwargs):
        try:
            async with self.session.request(method, self.url + path, timeout=self.timeout, **kwargs) as r:
                body = await (r.json(content_type=None) if read == "json" else r.read())
                return r.status, body
        except aiohttp.ClientConnectorError as exc:
            raise ServerDown(self.url, f"cannot connect ({exc.os_error or exc})", refused=True) from None
        except (aiohttp.ClientError, asyncio.TimeoutError, OSError, ValueError) as exc:
            raise ServerDown(self.url, f"{type(exc).__name__}: {exc or 'no answer'}") from None

    async def _get(self, path: str, **kwargs):
        status, body = await self._call("GET", path, **kwargs)
        if status != 200:
            raise ServerDown(self.url, f"GET {path} answered {status}")
        return body

    async def probe(self) -> dict:
        return await self._get("/system_stats")

    async def queue(self) -> tuple[set[str], set[str], list]:
        """(running prompt ids, pending prompt ids, every queue item)."""
        body = await self._get("/queue")
        running, pending = body.get("queue_running", []), body.get("queue_pending", [])
        return {str(i[1]) for i in running}, {str(i[1]) for i in pending}, running + pending

    async def history(self, prompt_id: str) -> dict | None:
        body = await self._get(f"/history/{prompt_id}")
        return body.get(prompt_id)

    async def all_history(self) -> dict:
        return await self._get("/history")

    async def upload_image(self, path: str, name: str) -> str:
        """Upload a local picture into the server's input folder; returns the value a LoadImage takes."""
        form = aiohttp.FormData()
        form.add_field("image", Path(path).read_bytes(), filename=name,
                       content_type=mimetypes.guess_type(name)[0] or "application/octet-stream")
        form.add_field("subfolder", UPLOAD_SUBFOLDER)
        form.add_field("type", "input")
        form.add_field("overwrite", "true")
        status, body = await self._call("POST", "/upload/image", data=form)
        if status >= 500:
            raise ServerDown(self.url, f"upload answered {status}")
        if status != 200 or not isinstance(body, dict) or "name" not in body:
            raise Rejected(f"the server refused the upload of {path} ({status}: {_short(body)})")
        return f"{body['subfolder']}/{body['name']}" if body.get("subfolder") else body["name"]

    async def submit(self, graph: dict, prompt_id: str, job_id: str, titles: dict[str, str]) -> str:
        """Queue a prompt under our id (with our marker in extra_data); returns the id the server uses."""
        payload = {"prompt": graph, "client_id": self.client_id, "prompt_id": prompt_id,
                   "extra_data": {MARKER: {"job": job_id, "prompt": prompt_id}}}
        status, body = await self._call("POST", "/prompt", json=payload)
        if status == 200 and isinstance(body, dict) and "prompt_id" in body:
            return str(body["prompt_id"])
        if 400 <= status < 600 and isinstance(body, dict):
            raise Rejected(rejection_reason(body, titles))
        raise Rejected(f"rejected by the server ({status}): {_short(body)}")

    async def view(self, item: dict) -> bytes:
        params = {"filename": item["filename"], "subfolder": item.get("subfolder", ""), "type": item.get("type", "output")}
        status, body = await self._call("GET", "/view", read="bytes", params=params)
        if status == 404:
            raise Rejected(f"output {item['filename']} is no longer on the server")
        if status != 200:
            raise ServerDown(self.url, f"GET /view answered {status}")
        return body

    async def delete_queued(self, prompt_id: str) -> None:
        await self._call("POST", "/queue", read="bytes", json={"delete": [prompt_id]})

    async def interrupt(self, prompt_id: str) -> None:
        await self._call("POST", "/interrupt", read="bytes", json={"prompt_id": prompt_id})
