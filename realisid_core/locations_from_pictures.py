"""Face locations read from pictures: the faces of a layout photo, or the regions of a mask."""
from __future__ import annotations

import numpy as np
import torch

from .errors import RealisIDInputError
from .faces import Faces, left_to_right
from .locations import FaceLocations
from .optional import require


def locations_from_faces(faces: Faces, image_index: int, node: str, input_name: str = "faces") -> FaceLocations:
    """The boxes of one layout photo's faces, left to right ("person 1 where face 1 is")."""
    images = sorted({f.image_index for f in faces.faces})
    found = left_to_right(faces.in_image(image_index))
    if not found:
        where = f"faces were found in images {images}" if images else "no face was found in any image"
        raise RealisIDInputError(node, "image_index", f"image {image_index} of the layout has no face ({where})",
                                 "use a layout photo with faces, or set image_index to an image that has them")
    first = found[0]
    boxes = np.stack([f.box for f in found])
    return FaceLocations.from_pixel_boxes(boxes, first.image_width, first.image_height).validated(node, input_name)


def locations_from_mask(mask: torch.Tensor, node: str, input_name: str = "mask",
                        min_area: float = 0.0005) -> FaceLocations:
    """One location per connected region of a MASK ([H, W] or the first of [B, H, W]), left to right.

    Each region's bounding box is its location; regions under `min_area` of the picture are specks and ignored.
    """
    cv2 = require("cv2", node, "opencv-python")
    m = mask.detach().cpu().float()
    if m.ndim == 3:
        m = m[0]
    if m.ndim != 2:
        raise RealisIDInputError(node, input_name, f"expected a MASK [H, W] or [B, H, W], got shape {tuple(mask.shape)}",
                                 "connect a MASK (e.g. from Load Image's alpha or a mask editor)")
    height, width = m.shape
    count, _, stats, _ = cv2.connectedComponentsWithStats((m.numpy() > 0.5).astype(np.uint8), connectivity=8)
    regions = [s for s in stats[1:] if s[cv2.CC_STAT_AREA] >= min_area * height * width]
    if not regions:
        raise RealisIDInputError(node, input_name, "the mask has no region (nothing above 0.5)",
                                 "paint one blob per face where the faces should go")
    regions.sort(key=lambda s: s[cv2.CC_STAT_LEFT] + s[cv2.CC_STAT_WIDTH] / 2)
    boxes = [[s[0], s[1], s[0] + s[2], s[1] + s[3]] for s in regions]
    return FaceLocations.from_pixel_boxes(boxes, width, height).validated(node, input_name)
