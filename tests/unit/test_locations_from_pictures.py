"""Face locations from a layout photo's faces and from a MASK's regions."""
import numpy as np
import pytest
import torch

pytest.importorskip("cv2")

from realisid_core.errors import RealisIDInputError  # noqa: E402
from realisid_core.faces.detected import DetectedFace, Faces  # noqa: E402
from realisid_core.people.from_pictures import locations_from_faces, locations_from_mask  # noqa: E402


def face(box, index=0, size=(800, 600)):
    return DetectedFace(index, size[0], size[1], np.array(box, np.float32), 0.9, np.zeros((5, 2), np.float32))


def test_layout_photo_faces_become_locations_left_to_right():
    faces = Faces((face([500, 100, 600, 220]), face([100, 200, 180, 300]), face([0, 0, 10, 10], index=1)))
    locations = locations_from_faces(faces, 0)
    assert (locations.width, locations.height, locations.count) == (800, 600, 2)
    assert torch.allclose(locations.boxes[0], torch.tensor([140 / 800, 250 / 600, 80 / 800, 100 / 600], dtype=torch.float64))
    assert torch.allclose(locations.pixel_boxes()[1], torch.tensor([500.0, 100, 600, 220], dtype=torch.float64))
    with pytest.raises(RealisIDInputError, match=r"'image_index': photo 3 of the layout \(image_index 2\) has no face; faces were found in "
                                                 r"photo 1, photo 2 \(image_index 0, 1\)"):
        locations_from_faces(faces, 2)


def test_mask_regions_become_locations_and_specks_are_ignored():
    mask = torch.zeros(2, 300, 400)
    mask[0, 50:150, 250:330] = 1.0   # right blob
    mask[0, 100:160, 20:80] = 1.0    # left blob
    mask[0, 5, 5] = 1.0              # a speck
    locations = locations_from_mask(mask)
    assert locations.count == 2 and (locations.width, locations.height) == (400, 300)
    assert torch.allclose(locations.pixel_boxes(), torch.tensor([[20.0, 100, 80, 160], [250, 50, 330, 150]], dtype=torch.float64))
    with pytest.raises(RealisIDInputError, match=r"^input 'mask': the mask has no region"):
        locations_from_mask(torch.zeros(64, 64))


def test_a_mask_of_only_specks_says_they_were_dropped_as_smaller_than_min_area():
    mask = torch.zeros(200, 300)
    mask[10:14, 10:14] = 1.0      # 16 pixels
    mask[100:105, 200:206] = 1.0  # 30 pixels: the largest
    with pytest.raises(RealisIDInputError, match=r"input 'mask': the mask's 2 regions were all dropped as smaller than "
                                                 r"min_area \(0.001 of the 300×200 picture = 60 pixels; the largest "
                                                 r"region has 30 pixels, 0.0005 of the picture\).*Fix: paint bigger "
                                                 r"blobs, one per face, or lower min_area below 0.0005"):
        locations_from_mask(mask, min_area=0.001)
    one = torch.zeros(200, 300)
    one[10:14, 10:14] = 1.0
    with pytest.raises(RealisIDInputError, match=r"the mask's 1 region was dropped as smaller than min_area"):
        locations_from_mask(one, min_area=0.001)
    assert locations_from_mask(mask, min_area=0.0001).count == 2
