"""Pose & Expression from real 68-point landmarks: dlib's iBUG predictor on the packaged photos (t1.jpg's six
people, the astronaut, the Tom Hanks portrait), drawn by the pack's own renderer in a crop frame."""
from __future__ import annotations

import functools

import numpy as np
import pytest

from fixtures import real_faces

pytestmark = pytest.mark.skipif(not real_faces.AVAILABLE, reason=real_faces.MISSING)

PARTS = {"jaw": range(0, 17), "right eye": range(36, 42), "left eye": range(42, 48), "outer lips": range(48, 60)}


def landmarks(face) -> np.ndarray:
    return np.asarray(face.landmarks_3d_68, np.float64)[:, :2]


@functools.lru_cache(maxsize=None)
def mirrored_faces(name):
    """The faces dlib finds in the mirrored photo, left to right."""
    from realisid_batch.evaluation.faces import DlibReader
    reader = real_faces.reader()
    found = [f for f in reader.analyse(np.ascontiguousarray(real_faces.photos()[name][:, ::-1]))
             if f.score >= DlibReader.confident_score]
    return tuple(sorted(found, key=lambda f: float(f.box[0])))


def yaw_proxy(points):
    """Nose tip's offset from the eyes' midpoint, in inter-eye distances (its sign: which way the head turns)."""
    right, left = points[36:42].mean(0), points[42:48].mean(0)
    return (points[30, 0] - (right[0] + left[0]) / 2) / np.linalg.norm(left - right)


@pytest.mark.parametrize("photo", ["t1", "astronaut", "hanks"])
def test_the_renderer_draws_eyes_mouth_and_jaw_where_the_photo_has_them(photo):
    from fixtures.pose_frames import pose_hints, to_crop_frame
    from realisid_core.branches.geometry import regions_from_locations
    from realisid_core.people.locations import FaceLocations
    from realisid_core.signals.pose_v1 import LAYOUTS, PARTS_68
    faces = real_faces.faces(photo)
    bgr = real_faces.photos()[photo]
    boxes = [f.box for f in faces]
    # each face drawn at its own place: the hint is the photo's own landmarks in the crop frame
    locations = FaceLocations.from_pixel_boxes(boxes, bgr.shape[1], bgr.shape[0])
    hints, placed = pose_hints([landmarks(f) for f in faces], boxes, locations, 256, 1.6, LAYOUTS[0])
    regions = regions_from_locations(locations, bgr.shape[0], bgr.shape[1], 1.6)
    colours = {name: colour for name, _, _, _, colour in PARTS_68}
    order = [name for name, *_ in PARTS_68]
    for f, face in enumerate(faces):
        np.testing.assert_allclose(placed[f], landmarks(face), atol=1e-6)  # own box: the points stay
        frame = to_crop_frame(landmarks(face), float(regions.x0[f]), float(regions.y0[f]), float(regions.side[f]), 256)
        for part, indices in PARTS.items():
            # the part's colour, or a part drawn after it over it (a closed mouth: the inner lips on the outer)
            allowed = np.array([colours[name] for name in order[order.index(part):]])
            hits = 0
            for x, y in frame[list(indices)]:
                xi, yi = int(round(x)), int(round(y))
                near = hints[f, max(0, yi - 2):yi + 3, max(0, xi - 2):xi + 3].reshape(-1, 1, 3).astype(int)
                hits += bool((np.abs(near - allowed[None]).max(axis=-1) < 60).any())
            assert hits >= 0.9 * len(indices), (photo, f, part, hits)
        # and nothing of a part far from its landmarks: the eye colour's pixels sit around the eye points
        eye = (np.abs(hints[f].astype(int) - colours["right eye"]).max(axis=-1) < 10)
        ys, xs = np.nonzero(eye)
        centre = frame[36:42].mean(0)
        assert np.hypot(xs.mean() - centre[0], ys.mean() - centre[1]) < 3


@pytest.mark.parametrize("photo", ["t1", "astronaut", "hanks"])
def test_mirroring_real_landmarks_gives_the_mirrored_photo_s_landmarks(photo):
    from realisid_core.faces.pose import mirror_points
    width = real_faces.photos()[photo].shape[1]
    faces, mirrored = real_faces.faces(photo), mirrored_faces(photo)[::-1]  # the mirror reverses left to right
    assert len(faces) == len(mirrored)
    for face, other in zip(faces, mirrored):
        ours, detected = mirror_points(landmarks(face), width), landmarks(other)
        eye_distance = np.linalg.norm(detected[42:48].mean(0) - detected[36:42].mean(0))
        assert np.abs(ours - detected).mean() < 0.06 * eye_distance
        # the subject's right eye (36-41) is on the picture's left in both photos: the parts were swapped
        assert ours[36:42, 0].mean() < ours[42:48, 0].mean() and detected[36:42, 0].mean() < detected[42:48, 0].mean()
        assert np.sign(yaw_proxy(ours)) == -np.sign(yaw_proxy(landmarks(face))) or abs(yaw_proxy(ours)) < 0.02


def test_head_pose_of_real_faces_frontal_near_zero_and_mirrored_turns_the_other_way():
    from realisid_batch.evaluation.dlib_faces import face_pose
    astronaut = real_faces.faces("astronaut")[0]
    pitch, yaw, roll = face_pose(landmarks(astronaut))
    assert abs(yaw_proxy(landmarks(astronaut))) < 0.02 and abs(yaw) < 5  # a frontal face
    turned = 0
    for photo in ("t1", "hanks", "astronaut"):
        for face, other in zip(real_faces.faces(photo), mirrored_faces(photo)[::-1]):
            yaw, yaw_mirrored = face_pose(landmarks(face))[1], face_pose(landmarks(other))[1]
            assert abs(yaw + yaw_mirrored) < 5
            if abs(yaw) > 5:  # a turned head: the pose's yaw and the nose's offset agree on the side
                assert np.sign(yaw) == np.sign(yaw_proxy(landmarks(face)))
                turned += 1
    assert turned >= 5  # t1's people and Tom Hanks look aside
