"""The engine's per-call rules the ComfyUI controls apply, without a host: area windows, CFG's two sides,
guidance cut per window, hints in the crop frame, rows put back into a batch, the aspect rule."""
import pytest
import torch

from realisid_core.branches.cfg import identity_context, uncond_rows
from realisid_core.branches.local import LatentWindow, crop_size_ids, full_latent_from_places, latent_windows
from realisid_core.branches.residuals import place_rows
from realisid_core.errors import RealisIDInputError
from realisid_core.faces.pose import frontal_pose
from realisid_core.people.locations import FaceLocations, parse_locations
from realisid_core.signals.guidance import full_guidance, guidance_rows, render_location_guidance
from realisid_core.signals.hints import hints_in_crop_frames, render_branch_hints
from realisid_core.branches.geometry import regions_from_locations

PLACES = parse_locations("0.3 0.4 0.25\n0.8 0.7 0.12", 128, 96)


def test_rows_of_a_whole_latent_are_one_window_and_say_the_whole_size():
    windows, full = latent_windows(None, 3, 12, 16, None, PLACES)
    assert full == (12, 16) and len(windows) == 1
    rows, window = windows[0]
    assert rows.tolist() == [0, 1, 2] and window == LatentWindow.whole(12, 16)
    whole = torch.full((2, 4), -1.0)
    assert latent_windows(whole, 2, 12, 16, None, PLACES)[1] == (12, 16)


def test_area_rows_are_grouped_by_their_area_within_the_whole_latent_kept_by_the_caller():
    areas = torch.tensor([[0.0, 8, 12, 8], [-1, -1, -1, -1], [0, 8, 12, 8]])
    windows, full = latent_windows(areas, 3, 12, 8, (12, 16), PLACES)
    assert full == (12, 16)  # nothing new learnt: the caller's whole size is handed back
    got = {tuple(rows.tolist()): window for rows, window in windows}
    assert got[(0, 2)] == LatentWindow(0, 8, 12, 8, 12, 16) and got[(1,)] == LatentWindow.whole(12, 8)


def test_an_area_without_a_known_whole_latent_takes_the_places_picture_or_is_refused():
    areas = torch.tensor([[0.0, 8, 12, 8]])
    windows, _ = latent_windows(areas, 1, 12, 8, None, PLACES)
    assert windows[0][1].full_height == 12 and windows[0][1].full_width == 16  # 96×128 px
    assert full_latent_from_places(PLACES) == (12, 16)
    typed = FaceLocations(PLACES.boxes, 0, 0)
    with pytest.raises(RealisIDInputError, match="^input 'people': this conditioning covers an area"):
        latent_windows(areas, 1, 12, 8, None, typed)


def test_the_sides_of_cfg_follow_the_samplers_chunks():
    assert uncond_rows([0, 1], 4).tolist() == [False, False, True, True]
    assert uncond_rows(None, 2).tolist() == [False, False]
    with pytest.raises(RuntimeError, match="cannot be split"):
        uncond_rows([0, 1], 3)
    tokens, null = torch.ones(2, 3, 4, 5), torch.zeros(1, 4, 5)
    context = identity_context(tokens, null, torch.tensor([False, True]))
    assert torch.equal(context[0], tokens[0]) and torch.equal(context[1], torch.zeros(3, 4, 5))


def test_guidance_is_drawn_for_the_whole_latent_and_cut_to_each_rows_window():
    window = LatentWindow(0, 8, 12, 8, 12, 16)
    full = full_guidance(PLACES, window)
    assert full.shape == (1, 3, 96, 128)
    assert torch.equal(full, render_location_guidance(PLACES, 128, 96).movedim(-1, 1))
    rows = guidance_rows(full, [(torch.tensor([0, 1]), window)], 2)
    assert rows.shape == (2, 3, 96, 64) and torch.equal(rows[1], full[0, :, :, 64:])


def test_hints_are_drawn_in_each_faces_crop_frame_as_floats():
    poses = [frontal_pose(), frontal_pose()]
    hints = hints_in_crop_frames("realisid-pose-v1-68", poses, PLACES, 12, 16, 1.6, 8)
    regions = regions_from_locations(PLACES, 12, 16, 1.6)
    drawn = render_branch_hints("realisid-pose-v1-68", poses, PLACES.boxes.numpy(), regions, 12, 16, 64)
    assert hints.shape == (2, 3, 64, 64) and hints.dtype == torch.float32
    assert torch.equal(hints, torch.from_numpy(drawn).movedim(-1, 1).float() / 255)


def test_rows_computed_apart_are_put_into_the_whole_batch_with_zeros_elsewhere():
    part = {"output": [torch.ones(1, 2, 3, 3), None], "middle": [torch.full((1, 4, 1, 1), 2.0)]}
    whole = place_rows(None, part, torch.tensor([1]), 3)
    assert whole["output"][0].shape == (3, 2, 3, 3) and whole["output"][1] is None
    assert whole["output"][0][1].eq(1).all() and whole["output"][0][[0, 2]].eq(0).all()
    again = place_rows(whole, {"output": [torch.full((1, 2, 3, 3), 5.0), None], "middle": [torch.zeros(1, 4, 1, 1)]},
                       torch.tensor([2]), 3)
    assert again["output"][0][2].eq(5).all() and again["middle"][0][1].eq(2).all()


def test_a_crop_is_sized_as_a_whole_portrait_of_its_own_size():
    assert crop_size_ids(128) == [1024, 1024, 0, 0, 1024, 1024]


def test_places_of_another_shape_than_the_latent_say_where_they_came_from():
    assert PLACES.aspect_problem(24, 32) is None            # same shape, twice the size
    assert PLACES.aspect_problem(12, 16) is None
    problem = PLACES.aspect_problem(16, 16)
    assert problem.startswith("the faces' places come from the face locations, made for a 128×96 picture, but the "
                              "latent being sampled is 16×16 cells (about 128×128 pixels)")
    assert FaceLocations(PLACES.boxes, 0, 0).aspect_problem(16, 16) is None  # typed fractions fit any shape
