"""Retargeting, mirroring and rendering on landmarks a real model found on real photos.

scikit-image's astronaut and insightface's group photo t1.jpg go through mediapipe's face mesh
(in its own environment, see fixtures/real_landmarks.py): the geometry is a detected face's,
not a template's.
"""
from pathlib import Path

import numpy as np
import pytest

from fixtures import real_landmarks
from realisid_core.branches.geometry import regions_from_locations
from realisid_core.people.locations import FaceLocations
from fixtures.pose_frames import pose_hints, retarget, to_crop_frame
from realisid_core.faces.pose import mirror_points
from realisid_core.signals.pose_v1 import LAYOUTS, KEYPOINT_COLOURS

pytestmark = pytest.mark.skipif(not real_landmarks.available(), reason=real_landmarks.MISSING)
skimage_data = pytest.importorskip("skimage.data")


@pytest.fixture(scope="module")
def astronaut():
    photo = skimage_data.astronaut()
    found = real_landmarks.face_mesh(photo=photo, mirrored=photo[:, ::-1])
    assert len(found["photo"]) == 1 and len(found["mirrored"]) == 1
    return photo, found["photo"][0], found["mirrored"][0]


def yaw_proxy(kps):
    """Nose offset from the eyes' midpoint, in inter-eye distances: the sign says which way the head turns."""
    mid = (kps[0] + kps[1]) / 2
    return (kps[2, 0] - mid[0]) / np.linalg.norm(kps[1] - kps[0])


def test_mirroring_a_detected_face_matches_the_face_detected_in_the_mirrored_photo(astronaut):
    photo, mesh, mirrored_mesh = astronaut
    width = photo.shape[1]
    ours = mirror_points(real_landmarks.five_keypoints(mesh), width)
    detected = real_landmarks.five_keypoints(mirrored_mesh)
    eye_distance = np.linalg.norm(detected[1] - detected[0])
    assert np.abs(ours - detected).max() < 0.1 * eye_distance
    assert abs(yaw_proxy(real_landmarks.five_keypoints(mesh))) > 0.02  # the astronaut looks slightly aside
    assert np.sign(yaw_proxy(ours)) == -np.sign(yaw_proxy(real_landmarks.five_keypoints(mesh)))


def test_a_detected_face_retargeted_to_a_small_location_keeps_its_geometry(astronaut):
    photo, mesh, _ = astronaut
    source = real_landmarks.box(mesh)
    locations = FaceLocations.from_pixel_boxes([[600, 300, 660, 372]], 1024, 640)  # a 60-px face in a wide shot
    target = locations.pixel_boxes().numpy()[0]
    moved = retarget(mesh, source, target)
    region = regions_from_locations(locations, 640, 1024, 1.6)
    in_crop = to_crop_frame(moved, float(region.x0[0]), float(region.y0[0]), float(region.side[0]), 512)
    assert in_crop.min() >= 0 and in_crop.max() <= 512
    a, b = mesh[:, :2] - mesh[:, :2].mean(0), moved[:, :2] - moved[:, :2].mean(0)
    scale = np.linalg.norm(b) / np.linalg.norm(a)
    assert np.abs(a * scale - b).max() < 1e-9 * np.abs(b).max() + 1e-9
    mouth_open = np.linalg.norm(mesh[13, :2] - mesh[14, :2]) / np.linalg.norm(mesh[33, :2] - mesh[263, :2])
    moved_open = np.linalg.norm(moved[13, :2] - moved[14, :2]) / np.linalg.norm(moved[33, :2] - moved[263, :2])
    assert moved_open == pytest.approx(mouth_open)


def test_keypoint_hints_of_a_detected_face_draw_each_point_in_its_colour(astronaut):
    _, mesh, _ = astronaut
    keypoints = real_landmarks.five_keypoints(mesh)
    locations = FaceLocations.from_pixel_boxes([[100, 100, 200, 220], [400, 150, 440, 200]], 640, 480)
    hints, placed = pose_hints([keypoints] * 2, [real_landmarks.box(mesh)] * 2, locations, 256, 1.6, LAYOUTS[1])
    regions = regions_from_locations(locations, 480, 640, 1.6)
    for f in range(2):
        frame = to_crop_frame(placed[f], float(regions.x0[f]), float(regions.y0[f]), float(regions.side[f]), 256)
        for (x, y), colour in zip(frame, KEYPOINT_COLOURS):
            assert tuple(hints[f, int(round(y)), int(round(x))]) == colour


def test_faces_found_in_the_group_photo_get_one_hint_each():
    import cv2
    photo = cv2.imread(str(Path(__import__("insightface").__file__).parent / "data" / "images" / "t1.jpg"))[..., ::-1]
    meshes = real_landmarks.face_mesh(group=photo)["group"]
    assert len(meshes) >= 3  # six people; mediapipe's full-range detector finds three of them
    boxes = [real_landmarks.box(m) for m in meshes]
    locations = FaceLocations.from_pixel_boxes(boxes, photo.shape[1], photo.shape[0])
    hints, placed = pose_hints(meshes_to_keypoints(meshes), boxes, locations, 128, 1.6, LAYOUTS[1])
    assert hints.shape == (len(meshes), 128, 128, 3)
    for f, points in enumerate(placed):
        np.testing.assert_allclose(points, meshes_to_keypoints(meshes)[f], atol=1e-6)  # own box: unchanged


def meshes_to_keypoints(meshes):
    return [real_landmarks.five_keypoints(m) for m in meshes]
