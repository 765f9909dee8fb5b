"""Fixtures of the trainer's tests: tiny base models, photos with "faces" the test insightface packs find,
a prepared data folder (helpers and the tiny training configuration are in train_helpers.py)."""
from __future__ import annotations

import pytest

pytest.importorskip("diffusers")
pytest.importorskip("accelerate")

from train_helpers import make_photos, save_tiny_sd15, save_tiny_sdxl  # noqa: E402


@pytest.fixture(scope="module", autouse=True)
def one_torch_thread():
    """The tiny models run faster on one thread than on threads fighting over a shared CPU (REALISID_TEST_THREADS)."""
    import os

    import torch
    before = torch.get_num_threads()
    torch.set_num_threads(int(os.environ.get("REALISID_TEST_THREADS", "1")))
    yield
    torch.set_num_threads(before)


@pytest.fixture(autouse=True)
def fresh_accelerator_state():
    """accelerate keeps one AcceleratorState per process (a training run is a process); tests make several."""
    yield
    from accelerate.state import AcceleratorState
    AcceleratorState._reset_state()


@pytest.fixture(scope="session")
def insightface_root():
    pytest.importorskip("insightface")
    pytest.importorskip("onnx")
    from fixtures.fake_insightface import fake_insightface_root
    return fake_insightface_root()


@pytest.fixture(scope="session")
def prepared(tmp_path_factory, insightface_root):
    """(photos folder, data folder, summary) after preparing the test photos with min face size 40 px."""
    from realisid_train.prepare import PrepareSettings, prepare
    photos = make_photos(tmp_path_factory.mktemp("photos"))
    data = tmp_path_factory.mktemp("data")
    summary = prepare(str(photos), str(data), insightface_root, PrepareSettings(min_face_size=40, workers=2),
                      progress=False)
    return photos, data, summary


@pytest.fixture(scope="session")
def tiny_sd15(tmp_path_factory):
    return save_tiny_sd15(tmp_path_factory.mktemp("tiny_sd15"))


@pytest.fixture(scope="session")
def tiny_sdxl(tmp_path_factory):
    return save_tiny_sdxl(tmp_path_factory.mktemp("tiny_sdxl"))
