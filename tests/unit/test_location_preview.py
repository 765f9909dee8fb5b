"""The Location Guidance preview: face boxes numbered by person, over a layout picture or a dark frame."""
import torch

from realisid_core.signals.previews import (FRAME_GREY, PERSON_COLOURS, draw_location_preview, fit_background,
                                            label_box)
from realisid_core.people.locations import parse_locations

W, H = 384, 256
A, B = "0.25 0.5 0.3", "0.75 0.45 0.2 0.4"


def pixels(image):
    return (image[0] * 255).round().to(torch.int64)


def dark(pixels):
    """The number's pixels in a tag: near black (the tag itself is a bright person colour)."""
    return pixels.sum(-1) < 200


def tag(locations, k, font_px=max(10, round(min(W, H) / 24))):
    return label_box(locations.pixel_boxes().tolist()[k - 1], k, W, H, font_px)


def test_boxes_in_person_colours_over_a_dark_frame():
    locs = parse_locations(f"{A}\n{B}", W, H)
    image = draw_location_preview(locs, W, H)
    assert image.shape == (1, H, W, 3) and image.dtype == torch.float32
    px = pixels(image)
    for k, (x0, y0, x1, y1) in enumerate(locs.pixel_boxes().round().to(torch.int64).tolist(), 1):
        mid_y = (y0 + y1) // 2
        assert px[mid_y, x0].tolist() == list(PERSON_COLOURS[k - 1])      # left edge
        assert px[mid_y, x1 - 1].tolist() == list(PERSON_COLOURS[k - 1])  # right edge
        assert px[mid_y, (x0 + x1) // 2].tolist() == [FRAME_GREY] * 3     # inside: the frame shows through
    assert px[5, 5].tolist() == [FRAME_GREY] * 3


def test_numbers_follow_the_line_order_not_the_place():
    ab = pixels(draw_location_preview(parse_locations(f"{A}\n{B}", W, H), W, H))
    ba = pixels(draw_location_preview(parse_locations(f"{B}\n{A}", W, H), W, H))
    locs_ab = parse_locations(f"{A}\n{B}", W, H)
    x0, y0, x1, y1 = tag(locs_ab, 1)            # A's tag when A is person 1
    label_1 = ab[y0:y1, x0:x1]
    assert (label_1 == torch.tensor(PERSON_COLOURS[0])).all(-1).float().mean() > 0.5  # a tag in person 1's colour
    assert dark(label_1).sum() >= 6                                                    # with a black number on it
    locs_ba = parse_locations(f"{B}\n{A}", W, H)
    bx0, by0, bx1, by1 = tag(locs_ba, 1)        # B's tag when B is person 1
    # B as person 1 carries the same "1" (same glyph pixels) that A carried; A now carries "2".
    glyph = lambda img, t: dark(img[t[1]:t[3], t[0]:t[2]])
    assert torch.equal(glyph(ab, tag(locs_ab, 1)), glyph(ba, tag(locs_ba, 1)))
    assert not torch.equal(glyph(ab, tag(locs_ab, 1)), glyph(ba, tag(locs_ba, 2)))
    assert ba[(by0 + by1) // 2, bx0].tolist() == list(PERSON_COLOURS[0])


def test_layout_picture_is_stretched_to_the_frame_and_shows_through():
    layout = torch.zeros(2, 100, 50, 4)
    layout[..., 1] = 1.0  # green, with an alpha channel that is dropped
    fitted = fit_background(layout, W, H)
    assert fitted.shape == (2, H, W, 3)
    image = draw_location_preview(parse_locations(A, W, H), W, H, fitted)
    assert image.shape == (2, H, W, 3)
    assert (image[1, 5, 5] * 255).round().tolist() == [0, 255, 0]


def test_label_stays_inside_the_picture_for_a_face_at_the_corner():
    locs = parse_locations("0.99 0.99 0.2", W, H)
    x0, y0, x1, y1 = tag(locs, 1)
    assert 0 <= x0 < x1 <= W and 0 <= y0 < y1 <= H
