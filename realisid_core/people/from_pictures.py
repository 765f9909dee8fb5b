"""Face locations read from pictures: the faces of a layout photo, or the regions of a mask."""
from __future__ import annotations

import numpy as np
import torch

from ..errors import RealisIDInputError
from ..faces.detected import Faces, left_to_right, photo_name, reading_order
from .locations import FaceLocations
from ..errors import require


def locations_from_faces(faces: Faces, image_index: int, input_name: str = "faces") -> FaceLocations:
    """The boxes of one layout photo's faces in reading order ("person 1 where face 1 is"; see `faces`).

    `image_index` is 0-based (the node input); messages count photos from 1."""
    images = sorted({f.image_index for f in faces.faces})
    found = left_to_right(faces.in_image(image_index))
    if not found:
        count = len(faces.image_sizes) or None
        where = (f"faces were found in {', '.join(photo_name(i) for i in images)} (image_index "
                 f"{', '.join(str(i) for i in images)})") if images else "no face was found in any photo"
        raise RealisIDInputError(input_name="image_index", problem=f"{photo_name(image_index, count)} of the layout "
                                 f"(image_index {image_index}) has no face; {where}",
                                 fix="use a layout photo with faces, or set image_index to a photo that has them "
                                 "(image_index 0 is photo 1)")
    first = found[0]
    boxes = np.stack([f.box for f in found])
    return FaceLocations.from_pixel_boxes(boxes, first.image_width, first.image_height).validated(input_name)


def locations_from_mask(mask: torch.Tensor, input_name: str = "mask",
                        min_area: float = 0.0005) -> FaceLocations:
    """One location per connected region of a MASK ([H, W] or the first of [B, H, W]), in reading order
    (left to right, a column top to bottom, as faces are counted: see `faces`).

    Each region's bounding box is its location; regions under `min_area` of the picture are specks and
    ignored. A mask whose only regions are specks is refused saying so (how many, the largest).
    """
    cv2 = require("cv2", "opencv-python")
    m = mask.detach().cpu().float()
    if m.ndim == 3:
        m = m[0]
    if m.ndim != 2:
        raise RealisIDInputError(input_name=input_name,
                                 problem=f"expected a MASK [H, W] or [B, H, W], got shape {tuple(mask.shape)}",
                                 fix="connect a MASK (e.g. from Load Image's alpha or a mask editor)")
    height, width = m.shape
    count, _, stats, _ = cv2.connectedComponentsWithStats((m.numpy() > 0.5).astype(np.uint8), connectivity=8)
    smallest = min_area * height * width
    regions = [s for s in stats[1:] if s[cv2.CC_STAT_AREA] >= smallest]
    if not regions:
        if count <= 1:
            raise RealisIDInputError(input_name=input_name, problem="the mask has no region (nothing above 0.5)",
                                     fix="paint one blob per face where the faces should go")
        dropped = count - 1
        largest = int(max(s[cv2.CC_STAT_AREA] for s in stats[1:]))
        raise RealisIDInputError(
            input_name=input_name, problem=f"the mask's {dropped} region{'s' if dropped != 1 else ''} "
            f"{'were all' if dropped != 1 else 'was'} dropped as smaller than min_area ({min_area:g} of the "
            f"{width}×{height} picture = {smallest:.0f} pixels; the largest region has {largest} pixels, "
            f"{largest / (height * width):.2g} of the picture)",
            fix=f"paint bigger blobs, one per face, or lower min_area below {largest / (height * width):.2g}")
    order = reading_order([s[0] + s[2] / 2 for s in regions], [s[1] + s[3] / 2 for s in regions],
                          [s[2] for s in regions])
    boxes = [[s[0], s[1], s[0] + s[2], s[1] + s[3]] for s in (regions[i] for i in order)]
    return FaceLocations.from_pixel_boxes(boxes, width, height).validated(input_name)
