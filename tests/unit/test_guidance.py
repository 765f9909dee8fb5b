"""Location guidance format realisid-location-v1."""
import torch

from realisid_core.signals.guidance import LOCATION_GUIDANCE_FORMAT, render_location_guidance
from realisid_core.people.locations import parse_locations


def test_guidance_draws_one_white_ellipse_per_face_on_black():
    locs = parse_locations("0.25 0.5 0.3\n0.75 0.5 0.2 0.4", 200, 100)
    img = render_location_guidance(locs, 200, 100)
    assert LOCATION_GUIDANCE_FORMAT == "realisid-location-v1"
    assert img.shape == (1, 100, 200, 3) and img.dtype == torch.float32
    assert torch.equal(img[..., 0], img[..., 1]) and torch.equal(img[..., 0], img[..., 2])
    g = img[0, :, :, 0]
    assert g[50, 50] == 1 and g[50, 150] == 1 and g[5, 5] == 0 and g[50, 100] == 0
    # face 1 is a circle of diameter 30 px: area π·15² (antialiased edge)
    assert abs(g[:, :100].sum().item() - torch.pi * 15 ** 2) < 0.02 * torch.pi * 15 ** 2
    # face 2 is an ellipse 40 × 40 px (w 0.2 of 200, h 0.4 of 100)
    assert abs(g[:, 100:].sum().item() - torch.pi * 20 * 20) < 0.02 * torch.pi * 400


def test_overlapping_faces_take_the_maximum():
    locs = parse_locations("0.5 0.5 0.4\n0.52 0.5 0.4", 64, 64)
    assert render_location_guidance(locs, 64, 64).max() == 1
