"""One stated reading order for faces and mask regions, and people and photos counted from 1 (issue 11 item 15)."""
import itertools

import numpy as np
import pytest
import torch

from realisid_core.errors import RealisIDInputError
from realisid_core.faces.detected import DetectedFace, Faces, left_to_right, reading_order, select_faces
from realisid_core.people.from_pictures import locations_from_faces


def face(cx, cy, side=80, index=0, size=(800, 600)):
    box = np.array([cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2], np.float32)
    return DetectedFace(index, size[0], size[1], box, 0.9, np.zeros((5, 2), np.float32))


# two columns of three faces; the detector's centres wobble by a pixel or two within a column
COLUMNS = [face(201, 100), face(200, 250), face(199, 400),   # column 1: top, middle, bottom
           face(498, 110), face(501, 260), face(500, 410)]   # column 2


def test_columns_are_read_top_to_bottom_whatever_order_the_detector_gave():
    for perm in itertools.permutations(range(6)):
        shuffled = [COLUMNS[i] for i in perm]
        assert left_to_right(shuffled) == COLUMNS


def test_faces_apart_by_more_than_the_tolerance_are_read_left_to_right():
    left_low, right_high = face(100, 500), face(100 + 0.3 * 80, 100)  # 0.3 face widths apart: two columns
    assert left_to_right([right_high, left_low]) == [left_low, right_high]
    same_column = face(100 + 0.2 * 80, 100)                             # 0.2 face widths: one column
    assert left_to_right([left_low, same_column]) == [same_column, left_low]


def test_reading_order_groups_pictures_first():
    a, b = face(500, 100, index=0), face(100, 100, index=1)
    assert left_to_right([b, a]) == [a, b]
    assert reading_order([], [], []) == []


def test_select_by_index_counts_photos_and_faces_from_one():
    photos = [[face(100, 100)], [face(100, 100, index=1), face(400, 100, index=1)], []]
    assert select_faces(photos[1:2], "by index", 1)[0].centre_x == 400
    with pytest.raises(RealisIDInputError, match=r"input 'index': index 1 asks for face 2 in reading order, but "
                                                 r"photo 1 of 3 has 1 face \(index 0 is face 1.*"
                                                 r"Fix: set index between 0 and 0"):
        select_faces(photos, "by index", 1)
    message = str(pytest.raises(RealisIDInputError, select_faces, photos, "by index", 2).value)
    assert "photo 1 of 3" in message and "image 0" not in message


def test_a_layout_photo_without_faces_is_named_as_photo_n():
    faces = Faces((face(100, 100, index=0), face(100, 100, index=2)), ((800, 600),) * 3)
    with pytest.raises(RealisIDInputError, match=r"'image_index': photo 2 of 3 of the layout \(image_index 1\) has no "
                                                 r"face; faces were found in photo 1, photo 3 \(image_index 0, 2\)"):
        locations_from_faces(faces, 1)
    # a column of faces in the layout photo: person 1 is the top one
    column = Faces((face(400, 450), face(401, 150)), ((800, 600),))
    assert locations_from_faces(column, 0).boxes[:, 1].tolist() == [150 / 600, 450 / 600]


def test_mask_regions_in_a_column_are_read_top_to_bottom():
    pytest.importorskip("cv2")
    from realisid_core.people.from_pictures import locations_from_mask
    mask = torch.zeros(300, 400)
    mask[200:260, 100:160] = 1.0   # bottom blob, its centre a pixel left of the top one's
    mask[40:100, 101:161] = 1.0    # top blob
    mask[120:180, 300:360] = 1.0   # a second column
    locations = locations_from_mask(mask)
    assert [round(float(v) * 300) for v in locations.boxes[:, 1]] == [70, 230, 150]


def test_preview_numbers_faces_from_one(monkeypatch):
    cv2 = pytest.importorskip("cv2")
    from realisid_core.signals.previews import draw_faces
    labels = []
    real = cv2.putText
    monkeypatch.setattr(cv2, "putText", lambda img, text, *a, **k: (labels.append(text), real(img, text, *a, **k))[1])
    draw_faces(np.zeros((600, 800, 3), np.uint8), [COLUMNS[2], COLUMNS[0]])
    assert [t.split()[0] for t in labels] == ["1", "2"]
