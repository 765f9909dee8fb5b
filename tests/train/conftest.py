"""Fixtures of the trainer's tests: tiny base models, photos with "faces" the test insightface packs find,
a prepared data folder, and a tiny training configuration that runs in seconds on a CPU."""
from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pytest

pytest.importorskip("diffusers")
pytest.importorskip("accelerate")

from train_helpers import (DROPPED, KEPT, astronaut_bgr, insightface_image, save_tiny_sd15,  # noqa: E402,F401
                           save_tiny_sdxl, tiny_config, write_photo)


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


def make_photos(folder: Path) -> Path:
    """Real photos from insightface's and scikit-image's packages, with the test packs' "faces" painted in:
    four with one face (one captioned), a group photo, a photo without a face, a tiny face, a corrupt file."""
    import cv2
    from skimage import data

    from fixtures.fake_insightface import paint_face
    astronaut = astronaut_bgr()
    write_photo(folder / "astronaut.png", paint_face(astronaut, 384, 128, 60))
    (folder / "astronaut.txt").write_text("an astronaut in a white suit\n", encoding="utf-8")
    write_photo(folder / "astronaut_left.png", paint_face(astronaut, 128, 256, 56))
    tom = cv2.resize(insightface_image("Tom_Hanks_54745.png"), (448, 448), interpolation=cv2.INTER_CUBIC)
    write_photo(folder / "tom.png", paint_face(tom, 224, 224, 50))
    chelsea = np.ascontiguousarray(data.chelsea()[..., ::-1])  # 451×300: detector scale 640/451
    write_photo(folder / "people" / "chelsea.jpg", paint_face(chelsea, 225.5, 135.3, 48))
    group = insightface_image("t1.jpg")  # 1280×886, several people: detector scale 0.5
    for cx, cy in ((320, 448), (640, 448), (960, 320)):
        group = paint_face(group, cx, cy, 128)
    write_photo(folder / "group.jpg", group)
    write_photo(folder / "no_face.jpg", np.ascontiguousarray(data.coffee()[..., ::-1]))
    small = cv2.resize(astronaut, (256, 256), interpolation=cv2.INTER_AREA)  # detector scale 2.5: a 26 px face
    write_photo(folder / "small_face.png", paint_face(small, 128, 128, 26))
    (folder / "corrupt.jpg").write_bytes(b"\xff\xd8\xff\xe0\x00\x10JFIF\x00 truncated here")
    return folder


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


@pytest.fixture
def fresh_dir(tmp_path):
    def make(name):
        path = tmp_path / name
        shutil.rmtree(path, ignore_errors=True)
        return path
    return make
