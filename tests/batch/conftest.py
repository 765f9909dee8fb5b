"""Fixtures of the batch tests: two real ComfyUI servers with the tiny SD1.5 checkpoint, the fake insightface packs."""
from __future__ import annotations

import pytest

from fixtures.host import host_path, host_present


@pytest.fixture(scope="session")
def batch_checkpoint():
    host = host_path()
    if not host_present(host):
        pytest.skip(f"no ComfyUI host at {host} (set COMFYUI_PATH); the batch client is tested against real servers")
    from fixtures import tiny_models
    return tiny_models.sd15_checkpoint()


@pytest.fixture(scope="module")
def two_servers(batch_checkpoint, tmp_path_factory):
    """Servers A and B on fixed ports (so B can be killed and come back at the same address); stopped after
    the module, so with the other tests' server no more than two run at a time."""
    from batch_servers import BatchServer, start_all
    root = tmp_path_factory.mktemp("batch-servers")
    servers = [BatchServer(host_path(), root / name, batch_checkpoint) for name in ("a", "b")]
    start_all(servers)
    try:
        yield servers
    finally:
        for s in servers:
            s.stop()


@pytest.fixture(scope="session")
def insightface_root():
    pytest.importorskip("insightface")
    pytest.importorskip("onnx")
    pytest.importorskip("onnxruntime")
    from fixtures.fake_insightface import fake_insightface_root
    return fake_insightface_root()
