"""Training pictures: faces at the stated distribution of sizes, exactly where their boxes and poses say."""
from __future__ import annotations

import math
from dataclasses import replace

import numpy as np
import pytest

from train_helpers import tiny_config

MAGENTA = np.array([255, 0, 255])


def test_face_sizes_are_log_uniform_from_5_to_60_percent_of_the_picture_side():
    from realisid_train.augment import ScaleDistribution
    scales = ScaleDistribution()
    rng = np.random.default_rng(0)
    s = np.array([scales.sample(rng) for _ in range(20000)])
    assert s.min() >= 0.05 and s.max() <= 0.60
    octave = math.log(2) / math.log(12)  # the share of each doubling of the size (12 = 0.60 / 0.05)
    assert abs((s < 0.10).mean() - octave) < 0.015
    assert abs(((s >= 0.10) & (s < 0.30)).mean() - math.log(3) / math.log(12)) < 0.015
    assert abs((s >= 0.30).mean() - octave) < 0.015
    assert abs(np.median(s) - scales.quantile(0.5)) < 0.005 and abs(scales.quantile(0.5) - 0.1732) < 1e-3
    assert np.all(np.array([scales.sample(rng, high=0.2) for _ in range(500)]) <= 0.2)


def record_with_face(width=400, height=300, box=(100.0, 120.0, 160.0, 190.0)):
    """A photo with a magenta face box and a record whose keypoints/landmarks are the mean face in that box."""
    from realisid_core.faces.pose import frontal_pose
    from realisid_train.manifest import FaceRecord
    rng = np.random.default_rng(1)
    photo = rng.integers(0, 200, (height, width, 3), dtype=np.uint8)
    photo[..., 1] = np.minimum(photo[..., 1], 120) + 100  # no magenta anywhere else
    x0, y0, x1, y1 = box
    photo[int(y0):int(y1), int(x0):int(x1)] = MAGENTA
    pose = frontal_pose()
    longer = max(x1 - x0, y1 - y0)
    centre = np.array([(x0 + x1) / 2, (y0 + y1) / 2])
    keypoints = pose.keypoints * longer + centre
    landmarks = pose.landmarks_68.copy()
    landmarks[:, :2] = landmarks[:, :2] * longer + centre
    landmarks[:, 2] *= longer
    record = FaceRecord("r", "r.png", width, height, None, np.array(box), 0.9, keypoints, landmarks, None, "s", "r")
    return photo, record


def magenta_box(pixels):
    ys, xs = np.nonzero(np.all(np.abs(pixels.astype(int) - MAGENTA) < 40, axis=-1))
    return np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], float)


@pytest.mark.parametrize("seed", range(12))
def test_the_face_lands_where_its_box_says_with_its_pose_mirrored_on_a_flip(seed):
    from realisid_core.faces.pose import mirror_box, mirror_points
    from realisid_train.augment import compose
    photo, record = record_with_face()
    composed = compose(photo, record, 256, np.random.default_rng(seed), flip=0.5)
    box = composed.box
    assert 0 <= box[0] < box[2] <= 256 and 0 <= box[1] < box[3] <= 256  # the whole face in the picture
    assert abs(max(box[2] - box[0], box[3] - box[1]) / 256 - composed.face_scale) < 1e-9
    if composed.face_scale * 256 >= 8:  # visible enough to measure
        np.testing.assert_allclose(magenta_box(composed.pixels), box, atol=1.5)
    # the pose, put on the composed box, is the record's points moved (and mirrored) with the photo
    source_box = mirror_box(record.box, photo.shape[1]) if composed.flipped else record.box
    points = mirror_points(record.keypoints, photo.shape[1]) if composed.flipped else record.keypoints
    zoom = (box[2] - box[0]) / (source_box[2] - source_box[0])
    expected = (points - source_box[:2]) * zoom + box[:2]
    longer = max(box[2] - box[0], box[3] - box[1])
    placed = composed.pose.placed(5, (box[0] + box[2]) / 2, (box[1] + box[3]) / 2, longer)
    np.testing.assert_allclose(placed, expected, atol=0.05 * longer)
    assert placed[0, 0] < placed[1, 0]  # the subject's right eye stays on the picture's left, flipped or not
    # no photo pixel outside the coverage; the fill is flat
    outside = composed.coverage == 0
    if outside.any():
        assert np.ptp(composed.pixels[outside].reshape(-1, 3), axis=0).max() <= 1


def test_a_small_face_is_never_enlarged_beyond_max_upscale():
    from realisid_train.augment import compose
    photo, record = record_with_face(box=(100.0, 120.0, 120.0, 140.0))  # a 20-pixel face
    for seed in range(30):
        composed = compose(photo, record, 512, np.random.default_rng(seed), max_upscale=2.0)
        assert composed.face_scale <= 2.0 * 20 / 512 + 1e-9


def test_the_stream_is_deterministic_and_draws_hints_where_the_face_is(prepared, tiny_sd15, tmp_path):
    import torch

    from realisid_train.dataset import TrainingStream
    _, data, _ = prepared
    config = tiny_config(tiny_sd15, data, tmp_path).resolve("SD1.5")
    config = replace(config, data=replace(config.data, resolution=128), local=replace(config.local, working_size=16))
    stream = TrainingStream(config)
    assert len(stream) == 4
    a, b = stream[5], stream[5]
    for key in ("pixels", "local_hint", "global_hint", "box", "embedding"):
        assert torch.equal(a[key], b[key])
    assert {stream.record_index(k) for k in range(4)} == {0, 1, 2, 3}  # an epoch visits every photo once
    scales = []
    for k in range(16):
        s = stream[k]
        cx, cy, w, h = s["box"].tolist()
        assert 0 <= cx - w / 2 and cx + w / 2 <= 1 and 0 <= cy - h / 2 and cy + h / 2 <= 1
        assert s["pixels"].shape == (3, 128, 128) and s["local_hint"].shape == (3, 128, 128)
        guidance = s["global_hint"][0]
        ys, xs = int(cy * 128), int(cx * 128)
        assert guidance[ys, xs] == 1 and guidance.mean() < 0.5  # the face's ellipse, nothing elsewhere
        hint = s["local_hint"].sum(0)
        assert hint.sum() > 0
        scales.append(s["face_scale"])
    assert 0.049 <= min(scales) and max(scales) <= 0.61  # the drawn sizes, up to pixel rounding


def test_data_loading_workers_read_the_same_batches(prepared, tiny_sd15, tmp_path):
    """Batches depend on their stream position only: worker processes, and starting mid-stream (resume), read
    the same pictures as one process from the start."""
    import torch

    from realisid_train.dataset import TrainingStream, stream_loader
    _, data, _ = prepared
    stream = TrainingStream(tiny_config(tiny_sd15, data, tmp_path).resolve("SD1.5"))
    single = iter(stream_loader(stream, 2, 0, num_workers=0))
    serial = [next(single) for _ in range(3)]
    parallel = iter(stream_loader(stream, 2, 1, num_workers=2))
    for expected in serial[1:]:
        got = next(parallel)
        for key in ("index", "pixels", "local_hint", "global_hint", "embedding", "drop_identity"):
            assert torch.equal(got[key], expected[key]), key
        assert got["caption"] == expected["caption"]
    del parallel
