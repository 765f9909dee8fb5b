"""People, poses as geometry, hint formats and branch descriptions: the engine under the artist's graph."""
import math

import numpy as np
import pytest
import torch

from realisid_core.models.description import INSTANTID_IDENTITYNET, BranchDescription, ControlNetShapes, known_kind_from_shapes
from realisid_core.errors import RealisIDInputError
from realisid_core.faces.pose import FacePose, frontal_pose
from realisid_core.branches.geometry import regions_from_locations
from realisid_core.signals.hints import (INSTANTID_COLOURS, draw_instantid_keypoints, placed_points,
                                        render_branch_hints)
from realisid_core.people.identity import IdentityTokens
from realisid_core.people.locations import FaceLocations
from realisid_core.people.people import People, Person, Place

KPS = np.array([[40.0, 45.0], [62.0, 44.0], [51.0, 58.0], [42.0, 72.0], [60.0, 71.0]])
BOX = (30.0, 30.0, 72.0, 85.0)


def person(box, frame=(128, 96), tokens=None, strength=1.0, source="test"):
    return Person(Place(box, frame, source), tokens=tokens, strength=strength)


def test_a_pose_put_on_a_box_keeps_its_shape_centre_to_centre_longer_side_to_longer_side():
    pose = FacePose.from_points(KPS, BOX)
    placed = pose.placed(5, 200.0, 100.0, 110.0)  # the same box twice the size (longer side 55 → 110)
    expected = (KPS - [(BOX[0] + BOX[2]) / 2, (BOX[1] + BOX[3]) / 2]) * 2 + [200, 100]
    np.testing.assert_allclose(placed, expected, atol=1e-9)


def test_a_mirrored_pose_is_the_pose_of_the_mirrored_face():
    width = 100.0
    mirrored_points = KPS[[1, 0, 2, 4, 3]].copy()
    mirrored_points[:, 0] = width - mirrored_points[:, 0]
    mirrored_box = (width - BOX[2], BOX[1], width - BOX[0], BOX[3])
    np.testing.assert_allclose(FacePose.from_points(KPS, BOX).mirrored().keypoints,
                               FacePose.from_points(mirrored_points, mirrored_box).keypoints, atol=1e-12)


def test_frontal_pose_is_a_symmetric_face_with_68_landmarks():
    pose = frontal_pose()
    assert pose.landmarks_68.shape == (68, 3) and pose.keypoints.shape == (5, 2)
    np.testing.assert_allclose(pose.mirrored().keypoints, pose.keypoints, atol=0.02)
    assert pose.keypoints[0, 1] < pose.keypoints[2, 1] < pose.keypoints[3, 1]  # eyes above nose above mouth


def test_instantid_drawing_at_1024_is_instantids():
    """Fixed sizes at a 1024-pixel hint: discs of radius 10 in full colour, limbs of half-width 4 dimmed to 0.6."""
    points = np.array([[300.0, 400.0], [700.0, 400.0], [500.0, 600.0], [350.0, 800.0], [650.0, 800.0]])
    hint = draw_instantid_keypoints(points, 1024)
    for (x, y), colour in zip(points, INSTANTID_COLOURS):
        assert tuple(hint[int(y), int(x)]) == colour
        assert tuple(hint[int(y), int(x) + 10]) == colour and tuple(hint[int(y), int(x) + 12]) != colour
    # the middle of the left-eye limb: dimmed red, 4 pixels either side of the line, nothing at 7
    mid = ((points[0] + points[2]) / 2).astype(int)
    assert tuple(hint[mid[1], mid[0]]) == (153, 0, 0)
    normal = np.array([points[2][1] - points[0][1], points[0][0] - points[2][0]])
    normal /= np.linalg.norm(normal)
    far = (mid + 7 * normal).astype(int)
    assert tuple(hint[far[1], far[0]]) == (0, 0, 0)


def test_instantid_sizes_scale_with_the_hint_as_on_a_1024_portrait():
    points = np.array([[30.0, 40.0], [70.0, 40.0], [50.0, 60.0], [35.0, 80.0], [65.0, 80.0]]) * 2.56
    small = draw_instantid_keypoints(points, 256)
    lit = (small == np.array(INSTANTID_COLOURS[2])).all(-1)
    assert 4 <= lit.sum() <= 40  # a disc of radius 10 × 256/1024 ≈ 3 pixels, not 10


def test_branch_hints_land_in_each_crop_frame():
    """The nose of each placed pose is drawn where the crop square maps it, for any grid (cells or pixels)."""
    locations = FaceLocations(torch.tensor([[0.3, 0.4, 0.2, 0.25], [0.75, 0.7, 0.1, 0.12]], dtype=torch.float64), 128, 96)
    pose = FacePose.from_points(KPS, BOX)
    for height, width in ((12, 16), (96, 128)):
        regions = regions_from_locations(locations, height, width, 2.0)
        hints = render_branch_hints("instantid-kps", [pose, pose], locations.boxes.numpy(), regions, height, width, 1024)
        placed = placed_points([pose, pose], locations.boxes.numpy(), height, width, 5)
        for f in range(2):
            nose = (placed[f][2] - [float(regions.x0[f]), float(regions.y0[f])]) * 1024 / float(regions.side[f])
            assert tuple(hints[f][int(nose[1]), int(nose[0])]) == INSTANTID_COLOURS[2]
    # a pose without 68 landmarks cannot be drawn in a 68-landmark format
    with pytest.raises(ValueError, match="no 68 landmarks"):
        render_branch_hints("realisid-pose-v1-68", [pose], locations.boxes[:1].numpy(), regions, 96, 128, 64)
    with pytest.raises(ValueError, match="unknown hint format"):
        render_branch_hints("canny", [pose], locations.boxes[:1].numpy(), regions, 96, 128, 64)


def test_branch_descriptions_travel_as_metadata_and_refuse_nonsense():
    local = BranchDescription("local", "SD1.5", hint_format="realisid-pose-v1-68", working_size=64, margin=1.6)
    assert BranchDescription.from_metadata(local.to_metadata()) == local
    assert BranchDescription.from_metadata({"format": "pt"}) is None
    with pytest.raises(ValueError, match="known hint format"):
        BranchDescription("local", "SD1.5", hint_format="canny")
    with pytest.raises(ValueError, match="guidance format"):
        BranchDescription("global", "SD1.5")
    assert known_kind_from_shapes(ControlNetShapes(2048, 3)) == "InstantID IdentityNet"
    assert known_kind_from_shapes(ControlNetShapes(768, 3)) is None
    assert INSTANTID_IDENTITYNET.hint_format == "instantid-kps" and INSTANTID_IDENTITYNET.working_size == 128


def test_people_keep_their_order_and_refuse_places_from_pictures_of_other_shapes():
    people = People((person((0.7, 0.5, 0.1, 0.1)), person((0.2, 0.5, 0.1, 0.1), frame=None), person((0.5, 0.5, 0.2, 0.2))))
    locations = people.locations()
    assert locations.boxes[:, 0].tolist() == [0.7, 0.2, 0.5] and (locations.width, locations.height) == (128, 96)
    odd = People((person((0.5, 0.5, 0.1, 0.1), source="Location Guidance"),
                  person((0.5, 0.5, 0.1, 0.1), frame=(100, 100), source="the mask")))
    with pytest.raises(RealisIDInputError, match=r"person 2's place comes from a 100×100 picture \(the mask\)"):
        odd.locations()
    with pytest.raises(RealisIDInputError, match="at most 8"):
        People(tuple(person((0.5, 0.5, 0.05, 0.05)) for _ in range(9))).locations()


def test_people_identities_all_or_none_with_their_null():
    t = IdentityTokens(torch.randn(1, 4, 8), torch.zeros(1, 4, 8))
    mixed = People((person((0.3, 0.5, 0.1, 0.1), tokens=t), person((0.7, 0.5, 0.1, 0.1))))
    with pytest.raises(RealisIDInputError, match="person 2 has no identity while others have one"):
        mixed.identity_tokens(lambda i: None)
    both = People((person((0.3, 0.5, 0.1, 0.1), tokens=t), person((0.7, 0.5, 0.1, 0.1), tokens=t)))
    joined = both.identity_tokens(lambda i: None)
    assert joined.tokens.shape == (2, 4, 8) and torch.equal(joined.null, t.null)
    no_null = People((person((0.3, 0.5, 0.1, 0.1), tokens=IdentityTokens(torch.randn(1, 4, 8))),))
    with pytest.raises(RealisIDInputError, match="no null identity"):
        no_null.identity_tokens(lambda i: None)
    assert People((person((0.3, 0.5, 0.1, 0.1)),)).identity_tokens(lambda i: None) is None
    assert math.isclose(float(both.strengths()[0]), 1.0)
