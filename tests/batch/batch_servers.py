"""Real ComfyUI servers for the batch tests (restartable on the same port), the test workflow, and the client
run as its own process (so a test can kill it)."""
from __future__ import annotations

import json
import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from contextlib import contextmanager
from pathlib import Path
from unittest import mock

import requests

from fixtures import comfy_server

REPO = Path(__file__).resolve().parents[2]
TEST_NODES = Path(__file__).resolve().parent / "comfy_nodes"


_PORT = threading.local()  # the port the server being started in this thread gets
_PATCH_LOCK = threading.Lock()
_PATCHES = [0, []]  # how many starts are under way, and the patches they share


@contextmanager
def _launch_patches():
    """While servers start (in threads): comfy_server picks this thread's port, and the server gets one
    CPU thread (two servers and the client share two cores without thrashing)."""
    with _PATCH_LOCK:
        if _PATCHES[0] == 0:
            _PATCHES[1] = [mock.patch.object(comfy_server, "_free_port", side_effect=lambda: _PORT.value),
                           mock.patch.dict(os.environ, {"OMP_NUM_THREADS": "1", "MKL_NUM_THREADS": "1"})]
            for p in _PATCHES[1]:
                p.start()
        _PATCHES[0] += 1
    try:
        yield
    finally:
        with _PATCH_LOCK:
            _PATCHES[0] -= 1
            if _PATCHES[0] == 0:
                for p in reversed(_PATCHES[1]):
                    p.stop()


class BatchServer:
    """A ComfyUI server that can be killed (SIGKILL, like a crash) and started again on the same port."""

    def __init__(self, host: Path, root: Path, checkpoint: Path):
        self.host, self.root, self.checkpoint = host, root, checkpoint
        self.port = comfy_server._free_port()
        self.server: comfy_server.ComfyServer | None = None
        (root / "custom_nodes").mkdir(parents=True, exist_ok=True)
        link = root / "custom_nodes" / "realisid_batch_test_nodes"
        if not link.exists():
            link.symlink_to(TEST_NODES, target_is_directory=True)

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "BatchServer":
        _PORT.value = self.port
        with _launch_patches():
            self.server = comfy_server.start_server(self.host, self.root,
                                                    {"checkpoints/tiny_sd15.safetensors": self.checkpoint})
        return self

    def kill(self) -> None:
        """SIGKILL: the server's queue and history are lost, as in a crash."""
        if self.server and self.server.process.poll() is None:
            self.server.process.kill()
            self.server.process.wait(timeout=30)

    def stop(self) -> None:
        if self.server:
            self.server.stop()

    @contextmanager
    def without_model(self):
        """The checkpoint taken out of the server's models folder (ComfyUI sees it gone at the next /prompt), then
        put back: a server set up wrong, as one missing a model is."""
        link = self.root / "models" / "checkpoints" / "tiny_sd15.safetensors"
        link.unlink()
        try:
            yield
        finally:
            link.symlink_to(self.checkpoint)

    def history(self) -> dict:
        return requests.get(f"{self.url}/history", timeout=30).json()

    def queue_size(self) -> int:
        q = requests.get(f"{self.url}/queue", timeout=30).json()
        return len(q["queue_running"]) + len(q["queue_pending"])

    def log(self) -> str:
        return self.server.log() if self.server else ""


def start_all(servers: list[BatchServer]) -> None:
    """Start servers side by side (each start is mostly waiting for imports)."""
    errors = []

    def go(s):
        try:
            s.start()
        except Exception as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
    threads = [threading.Thread(target=go, args=(s,)) for s in servers]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    if errors:
        for s in servers:
            s.stop()
        raise errors[0]


def workflow(pace: float = 0.0, side: int = 32, old_server: bool = False) -> dict:
    """SD1.5 txt2img at `side`×`side` (1 step) blended with the uploaded photo, paced, saved; every node titled.
    With `old_server`, the test servers ignore the client's prompt ids for it, as ComfyUI before 0.3.4x did."""
    def node(cls, title, **inputs):
        return {"class_type": cls, "inputs": inputs, "_meta": {"title": title}}
    return {
        "1": node("CheckpointLoaderSimple", "checkpoint", ckpt_name="tiny_sd15.safetensors"),
        "2": node("CLIPTextEncode", "prompt", text="a photo of a person", clip=["1", 1]),
        "3": node("CLIPTextEncode", "negative", text="blurry", clip=["1", 1]),
        "4": node("LoadImage", "person 1 photo", image="not-set.png"),
        "5": node("ImageScale", "resize", image=["4", 0], upscale_method="nearest-exact", width=side, height=side,
                  crop="disabled"),
        "6": node("EmptyLatentImage", "size", width=side, height=side, batch_size=1),
        "7": node("KSampler", "sampler", model=["1", 0], seed=1, steps=1, cfg=1.0, sampler_name="euler",
                  scheduler="normal", positive=["2", 0], negative=["3", 0], latent_image=["6", 0], denoise=1.0),
        "8": node("VAEDecode", "decode", samples=["7", 0], vae=["1", 2]),
        "9": node("ImageBlend", "mix", image1=["8", 0], image2=["5", 0], blend_factor=0.5, blend_mode="normal"),
        "10": node("RealisIDBatchTest_Pace", "pace (old server)" if old_server else "pace", images=["9", 0],
                   seconds=pace),
        "11": node("SaveImage", "save", images=["10", 0], filename_prefix="batch"),
    }


def write_photos(folder: Path, n: int = 3) -> list[Path]:
    """Small distinct photos to upload."""
    import numpy as np
    from PIL import Image
    folder.mkdir(parents=True, exist_ok=True)
    paths = []
    for i in range(n):
        rgb = np.zeros((48, 48, 3), np.uint8)
        rgb[..., i % 3] = 60 + 60 * i
        path = folder / f"person{i + 1}.png"
        Image.fromarray(rgb).save(path)
        paths.append(path)
    return paths


def client(args: list[str], log: Path) -> subprocess.Popen:
    """`python -m realisid_batch …` as its own process, output into `log`."""
    env = {**os.environ, "PYTHONUNBUFFERED": "1", "PYTHONPATH": str(REPO)}
    return subprocess.Popen([sys.executable, "-m", "realisid_batch", *args], cwd=REPO, env=env,
                            stdout=log.open("a"), stderr=subprocess.STDOUT)


def run_client(args: list[str], log: Path, timeout: float = 180) -> int:
    proc = client(args, log)
    try:
        return proc.wait(timeout=timeout)
    finally:
        stop_process(proc)


def stop_process(proc: subprocess.Popen, sig=signal.SIGKILL) -> None:
    if proc.poll() is None:
        proc.send_signal(sig)
        try:
            proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def ledger_rows(path: Path, sql: str, args=()) -> list[tuple]:
    """Read the ledger as another process would (a fresh connection each time)."""
    if not path.exists():
        return []
    conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True, timeout=30)
    try:
        return conn.execute(sql, args).fetchall()
    except sqlite3.OperationalError:
        return []
    finally:
        conn.close()


def wait_for(condition, timeout: float, what: str, proc: subprocess.Popen | None = None, log: Path | None = None):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        value = condition()
        if value:
            return value
        if proc is not None and proc.poll() is not None:
            raise AssertionError(f"the client ended ({proc.returncode}) before {what}:\n{log.read_text()[-4000:] if log else ''}")
        time.sleep(0.2)
    raise AssertionError(f"timed out waiting for {what}:\n{log.read_text()[-4000:] if log else ''}")


def write_json(path: Path, value) -> Path:
    path.write_text(json.dumps(value, indent=1))
    return path
