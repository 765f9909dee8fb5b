"""The insightface path with packs in the real signatures: routing, detection, retries, landmarks, embeddings, cache, errors."""
import os
import threading
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("insightface")
pytest.importorskip("onnxruntime")
skimage_data = pytest.importorskip("skimage.data")

from fixtures.fake_insightface import fake_insightface_root, paint_face, write_pack  # noqa: E402
from realisid_core.faces import analyzer as face_analyzer  # noqa: E402
from realisid_core.errors import RealisIDInputError  # noqa: E402
from realisid_core.faces.analyzer import get_analyzer, release, release_all, choose_providers  # noqa: E402
from realisid_core.faces.images import images_to_bgr_uint8  # noqa: E402
from realisid_core.faces.packs import PACKS, find_pack_folder  # noqa: E402
from realisid_core.faces.detected import select_faces  # noqa: E402

INSIGHTFACE_IMAGES = Path(__import__("insightface").__file__).parent / "data" / "images"


def astronaut_bgr():
    return np.ascontiguousarray(skimage_data.astronaut()[..., ::-1])


def group_photo_bgr():
    import cv2
    return cv2.imread(str(INSIGHTFACE_IMAGES / "t1.jpg"))


@pytest.fixture(scope="module")
def analyzer():
    root = fake_insightface_root()
    return get_analyzer(find_pack_folder([root], "antelopev2"), "antelopev2", "CPU", 640)


@pytest.mark.parametrize("pack", list(PACKS))
def test_both_packs_route_to_the_right_models(pack):
    root = fake_insightface_root()
    folder = find_pack_folder([root], pack)
    analyzer = get_analyzer(folder, pack, "CPU", 640)
    assert set(analyzer.models) == {"detection", "recognition", "landmark_3d_68", "landmark_2d_106"}
    assert analyzer.active_providers == ["CPUExecutionProvider"]
    if pack == "buffalo_l":  # built in the nested buffalo_l/buffalo_l layout
        assert folder.endswith(os.path.join("buffalo_l", "buffalo_l"))


def test_faces_found_where_they_are_on_a_real_photo(analyzer):
    picture = paint_face(paint_face(astronaut_bgr(), 384, 128, 56), 128, 384, 56)
    faces = analyzer.analyze(picture)
    centres = sorted(((f.box[0] + f.box[2]) / 2, (f.box[1] + f.box[3]) / 2) for f in faces)
    assert len(faces) == 2
    assert np.allclose(centres, [(128, 384), (384, 128)], atol=20)
    for f in faces:
        assert f.landmarks_3d_68.shape == (68, 3) and f.landmarks_2d_106.shape == (106, 2)
        assert f.keypoints.shape == (5, 2) and f.pose.shape == (3,)
        assert abs(float(np.linalg.norm(f.embedding)) - 1) < 1e-5 and f.embedding.shape == (512,)
        x0, y0, x1, y1 = f.box
        assert (f.landmarks_3d_68[:, 0] > x0 - 40).all() and (f.landmarks_3d_68[:, 0] < x1 + 40).all()
    # the embedding comes from the pixels around each face: the two differ, the same face twice does not
    assert float(faces[0].embedding @ faces[1].embedding) < 0.99
    again = analyzer.analyze(picture)
    assert np.allclose(sorted(f.embedding[0] for f in faces), sorted(f.embedding[0] for f in again), atol=1e-5)


def test_close_up_is_found_only_by_retrying_smaller_detection_sizes(analyzer):
    close_up = paint_face(np.full((640, 640, 3), 90, np.uint8), 384, 384, 256)
    boxes, _ = analyzer.models["detection"].detect(close_up, input_size=(640, 640))
    assert boxes.shape[0] == 0  # the 640 pass alone misses it
    faces = analyzer.analyze(close_up)
    assert len(faces) == 1
    x0, y0, x1, y1 = faces[0].box
    assert abs((x0 + x1) / 2 - 384) < 40 and abs((y0 + y1) / 2 - 384) < 40


def test_real_photos_without_a_face_marker_give_no_face(analyzer):
    assert analyzer.analyze(group_photo_bgr()) == []
    assert analyzer.analyze(astronaut_bgr()) == []


def test_grayscale_rgba_and_tiny_pictures_are_handled(analyzer):
    rgb = torch.from_numpy(paint_face(astronaut_bgr(), 256, 256, 56)[..., ::-1].copy()).float() / 255
    gray = rgb.mean(-1, keepdim=True)
    rgba = torch.cat([rgb, torch.ones_like(gray)], -1)
    (as_rgba,) = images_to_bgr_uint8(rgba[None], "images")
    assert len(analyzer.analyze(as_rgba)) == 1
    (as_gray,) = images_to_bgr_uint8(gray[None], "images")
    assert as_gray.shape == (512, 512, 3)
    analyzer.analyze(as_gray)  # magenta is gone in gray: no face, and no crash
    tiny = torch.from_numpy(paint_face(np.zeros((40, 40, 3), np.uint8), 24, 24, 16)[..., ::-1].copy()).float()[None] / 255
    (small,) = images_to_bgr_uint8(tiny, "images")
    assert len(analyzer.analyze(small)) == 1  # detection up-samples it
    with pytest.raises(RealisIDInputError, match=r"photo 1 of 1 is only 4×4 pixels.*Fix:"):
        images_to_bgr_uint8(torch.zeros(1, 4, 4, 3), "images")


def test_selection_largest_by_index_and_left_to_right(analyzer):
    picture = paint_face(paint_face(np.full((512, 512, 3), 60, np.uint8), 384, 128, 60), 128, 384, 48)
    found = [analyzer.analyze(picture)]
    everyone = select_faces(found, "all, left to right", 0)
    assert [f.centre_x < 256 for f in everyone] == [True, False]
    assert select_faces(found, "largest", 0)[0].centre_x > 256
    assert select_faces(found, "by index", 1)[0].centre_x > 256
    with pytest.raises(RealisIDInputError, match=r"'index'.*photo 1 of 1 has 2 faces.*Fix: set index between 0 and 1"):
        select_faces(found, "by index", 2)


def test_one_shared_analyzer_per_key_and_release():
    root = fake_insightface_root()
    folder = find_pack_folder([root], "antelopev2")
    results = []
    threads = [threading.Thread(target=lambda: results.append(get_analyzer(folder, "antelopev2", "CPU", 320)))
               for _ in range(4)]
    [t.start() for t in threads]
    [t.join() for t in threads]
    assert len({id(a) for a in results}) == 1
    assert get_analyzer(folder, "antelopev2", "CPU", 640) is not results[0]  # another detection size, another copy
    assert release(results[0].key) and not release(results[0].key)
    assert get_analyzer(folder, "antelopev2", "CPU", 320) is not results[0]
    assert release_all() >= 1 and face_analyzer.cached_analyzers() == []


def test_gpu_provider_falling_back_to_cpu_is_said_loudly(caplog):
    root = fake_insightface_root()
    folder = find_pack_folder([root], "antelopev2")
    with caplog.at_level("WARNING", logger="RealisID"):
        analyzer = get_analyzer(folder, "antelopev2", "CUDA", 160)
    assert analyzer.active_providers == ["CPUExecutionProvider"]
    assert any("asked for CUDAExecutionProvider" in r.message and "onnxruntime-gpu" in r.message for r in caplog.records)
    caplog.clear()
    with caplog.at_level("WARNING", logger="RealisID"):
        again = get_analyzer(folder, "antelopev2", "CUDA", 320)  # another analyzer, same fall-back: said once
    assert not [r for r in caplog.records if "asked for CUDAExecutionProvider" in r.message]
    release(again.key)
    assert choose_providers("auto", ["CPUExecutionProvider"]) == ["CPUExecutionProvider"]
    assert choose_providers("auto", ["ROCMExecutionProvider", "CPUExecutionProvider"])[0] == "ROCMExecutionProvider"
    release(analyzer.key)


def test_both_onnxruntime_builds_installed_is_named_with_the_fix(caplog, monkeypatch):
    monkeypatch.setattr(face_analyzer, "onnxruntime_distributions", lambda: ["onnxruntime", "onnxruntime-gpu"])
    with caplog.at_level("WARNING", logger="RealisID"):
        face_analyzer._warn_cpu_fallback("CUDAExecutionProvider", ["CPUExecutionProvider"], "f", ["CPUExecutionProvider"])
    message = caplog.records[-1].message
    assert "onnxruntime and onnxruntime-gpu are all installed" in message
    assert "pip uninstall -y onnxruntime onnxruntime-gpu && python -m pip install onnxruntime-gpu" in message


def test_missing_pack_names_folder_and_files(tmp_path):
    with pytest.raises(RealisIDInputError) as err:
        find_pack_folder([str(tmp_path)], "antelopev2")
    message = str(err.value)
    assert str(tmp_path / "models" / "antelopev2") in message and "scrfd_10g_bnkps.onnx" in message and "glintr100.onnx" in message
    write_pack(str(tmp_path), "buffalo_l", nested=True, skip=("w600k_r50.onnx",))
    with pytest.raises(RealisIDInputError, match=r"buffalo_l.*incomplete: w600k_r50.onnx missing.*Fix: put"):
        find_pack_folder([str(tmp_path)], "buffalo_l")


def test_a_file_that_is_not_the_expected_model_is_named(tmp_path):
    folder = write_pack(str(tmp_path), "antelopev2")
    os.replace(os.path.join(folder, "2d106det.onnx"), os.path.join(folder, "glintr100.onnx"))
    from fixtures.fake_insightface import build_landmarks
    build_landmarks(os.path.join(folder, "2d106det.onnx"), np.zeros(212, np.float32), seed=0)
    with pytest.raises(RealisIDInputError, match=r"glintr100.onnx should be the pack's recognition model but is a 'landmark_2d_106'"):
        get_analyzer(folder, "antelopev2", "CPU", 640)


def test_an_analyzer_nothing_uses_is_freed():
    """ComfyUI's node cache holds the loader's output; once it lets go, the shared copy goes too."""
    import gc
    import weakref
    analyzer = get_analyzer(os.path.join(fake_insightface_root(), "models", "antelopev2"), "antelopev2", "CPU", 320)
    key, ref = analyzer.key, weakref.ref(analyzer)
    del analyzer
    gc.collect()
    assert ref() is None and key not in face_analyzer.cached_analyzers()
