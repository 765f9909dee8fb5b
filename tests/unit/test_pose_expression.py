"""Pose-expression hints on real landmark geometry (insightface's 3-D mean face): retargeting, mirroring, rendering."""
import numpy as np
import pytest
import torch

pytest.importorskip("cv2")
pytest.importorskip("insightface")

from fixtures.fake_insightface import mean_face_68  # noqa: E402
from realisid_core.branches.geometry import regions_from_locations  # noqa: E402
from realisid_core.people.locations import FaceLocations  # noqa: E402
from fixtures.pose_frames import pose_hints, retarget, to_crop_frame  # noqa: E402
from realisid_core.faces.pose import head_pose_68, mirror_box, mirror_points  # noqa: E402
from realisid_core.signals.pose_v1 import LAYOUTS, PARTS_68, render_pose  # noqa: E402


def rotation(yaw=0.0, pitch=0.0):
    a, b = np.radians(yaw), np.radians(pitch)
    ry = np.array([[np.cos(a), 0, np.sin(a)], [0, 1, 0], [-np.sin(a), 0, np.cos(a)]])
    rx = np.array([[1, 0, 0], [0, np.cos(b), -np.sin(b)], [0, np.sin(b), np.cos(b)]])
    return ry @ rx


def driving_face(yaw=25.0, open_mouth=0.0, centre=(300.0, 220.0), scale=90.0):
    """A real face shape posed in a 600×480 photo: mean face, mouth opened, rotated, projected."""
    shape = mean_face_68().astype(np.float64)
    shape[57:60, 1] += open_mouth
    shape[65:68, 1] += open_mouth
    points = shape @ rotation(yaw).T * scale
    points[:, :2] += centre
    xy = points[:, :2]
    box = np.array([*xy.min(0), *xy.max(0)])
    return points, box


def similarity_residual(a, b):
    """How far b is from the best similarity transform of a (2-D, relative to b's size)."""
    a, b = a[:, :2] - a[:, :2].mean(0), b[:, :2] - b[:, :2].mean(0)
    ca, cb = a[:, 0] + 1j * a[:, 1], b[:, 0] + 1j * b[:, 1]
    z = (np.conj(ca) @ cb) / (np.conj(ca) @ ca)
    return np.abs(z * ca - cb).max() / np.abs(cb).max()


LOCATIONS = FaceLocations(torch.tensor([[0.25, 0.4, 0.18, 0.22], [0.72, 0.55, 0.08, 0.1]], dtype=torch.float64), 1024, 768)


def test_retargeted_landmarks_land_in_their_crop_with_the_expression_intact():
    points, box = driving_face(yaw=20, open_mouth=0.12)
    hints, placed = pose_hints([points, points], [box, box], LOCATIONS, 512, 1.6)
    regions = regions_from_locations(LOCATIONS, 768, 1024, 1.6)
    targets = LOCATIONS.pixel_boxes().numpy()
    for f in range(2):
        frame = to_crop_frame(placed[f], float(regions.x0[f]), float(regions.y0[f]), float(regions.side[f]), 512)
        assert (frame > 0).all() and (frame < 512).all()
        assert similarity_residual(points, placed[f]) < 1e-9  # only moved and scaled
        # the mouth opening relative to the face's size is the driving face's
        opening = lambda p: (p[66, 1] - p[62, 1]) / (p[8, 1] - p[27, 1])  # noqa: E731
        assert opening(placed[f]) == pytest.approx(opening(points), rel=1e-9)
        centre = placed[f][:, :2].min(0) / 2 + placed[f][:, :2].max(0) / 2
        assert np.allclose(centre, [(targets[f][0] + targets[f][2]) / 2, (targets[f][1] + targets[f][3]) / 2], atol=1e-6)
    assert hints.shape == (2, 512, 512, 3) and hints.dtype == np.uint8
    assert all((h.sum(-1) > 0).mean() > 0.005 for h in hints)  # lines were drawn in each hint


def test_the_hint_of_a_small_and_a_large_location_is_the_same_picture():
    points, box = driving_face(yaw=-15)
    square = FaceLocations(torch.tensor([[0.3, 0.3, 0.1, 0.1], [0.6, 0.6, 0.4, 0.4]], dtype=torch.float64), 800, 800)
    hints, _ = pose_hints([points] * 2, [box] * 2, square, 256, 1.6)
    assert np.abs(hints[0].astype(int) - hints[1].astype(int)).mean() < 1.0  # scale robustness: same crop content


def test_a_mirrored_driving_face_mirrors_the_yaw():
    points, box = driving_face(yaw=28)
    mirrored = mirror_points(points, 600)
    mbox = mirror_box(box, 600)
    target = LOCATIONS.pixel_boxes().numpy()[0]
    yaw = head_pose_68(retarget(points, box, target))[1]
    yaw_mirrored = head_pose_68(retarget(mirrored, mbox, target))[1]
    assert yaw == pytest.approx(28, abs=0.5)
    assert yaw_mirrored == pytest.approx(-28, abs=4)  # the mean face itself is ~2° asymmetric
    assert np.allclose(mirror_points(mirrored, 600), points)


def test_renderer_colours_each_part_where_its_points_are():
    points, box = driving_face(yaw=0, open_mouth=0.1)
    frame = to_crop_frame(points, box[0] - 20, box[1] - 20, max(box[2] - box[0], box[3] - box[1]) + 40, 512)
    hint = render_pose(frame, 512)
    for name, start, end, _, colour in PARTS_68:
        x, y = np.round(frame[start]).astype(int)
        patch = hint[y - 2:y + 3, x - 2:x + 3].reshape(-1, 3)
        assert (np.abs(patch.astype(int) - colour).sum(-1) < 60).any(), name
    assert (hint[:8, :8] == 0).all()  # background stays black
    five = render_pose(frame[[36, 45, 30, 48, 54]], 512, LAYOUTS[1])
    assert (five[int(frame[30, 1]), int(frame[30, 0])] > 0).any()
    with pytest.raises(ValueError, match="needs 68 points"):
        render_pose(frame[:5], 512)


def test_renderer_is_versioned_and_deterministic():
    from realisid_core.signals.pose_v1 import RENDERER_VERSION
    points, box = driving_face()
    a, _ = pose_hints([points], [box], FaceLocations(LOCATIONS.boxes[:1], 1024, 768), 256)
    b, _ = pose_hints([points], [box], FaceLocations(LOCATIONS.boxes[:1], 1024, 768), 256)
    assert RENDERER_VERSION == 1 and np.array_equal(a, b)
