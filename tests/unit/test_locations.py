"""Face locations: parsing, pixel boxes, and the errors for bad numbers."""
import math

import pytest
import torch

from realisid_core.errors import RealisIDInputError
from realisid_core.people.locations import FaceLocations, parse_locations


def test_parse_square_and_rectangular_faces():
    locs = parse_locations("0.5 0.4 0.2  # the bride\n\n0.8, 0.6, 0.1, 0.3", 1000, 500)
    assert locs.count == 2
    torch.testing.assert_close(locs.boxes[0], torch.tensor([0.5, 0.4, 0.1, 0.2], dtype=torch.float64))
    px = locs.pixel_boxes()
    assert px[0].tolist() == pytest.approx([450, 150, 550, 250])  # square: 100 px both ways


def test_pixel_boxes_round_trip():
    boxes = torch.tensor([[10, 20, 110, 140], [300, 50, 340, 100]], dtype=torch.float64)
    locs = FaceLocations.from_pixel_boxes(boxes, 400, 300)
    torch.testing.assert_close(locs.pixel_boxes(), boxes)


@pytest.mark.parametrize("text,needle", [
    ("1.8 0.5 0.2", "entirely outside"),
    ("-0.5 0.5 0.2", "entirely outside"),
    ("0.5 0.5 0", "zero or negative size"),
    ("0.5 0.5 -0.1", "zero or negative size"),
    ("0.5 nan 0.2", "not a number"),
    ("0.5 0.5 inf", "not a number"),
    ("0.5 0.5", "has 2 numbers"),
    ("half half 0.2", "not a list of numbers"),
    ("", "no face locations"),
    ("\n".join(["0.5 0.5 0.1"] * 9), "at most 8"),
])
def test_bad_locations_name_node_input_and_fix(text, needle):
    with pytest.raises(RealisIDInputError) as err:
        parse_locations(text, 512, 512, input_name="locations")
    message = str(err.value)
    assert needle in message
    assert message.startswith("input 'locations'") and "Fix:" in message  # the node adds its name


def test_face_crossing_the_border_is_accepted():
    assert parse_locations("0.02 0.98 0.2", 512, 512).count == 1
    assert math.isclose(parse_locations("0.5 0.5 0.2", 512, 512).boxes[0, 2].item(), 0.2)
