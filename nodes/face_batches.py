"""Face analysis over an IMAGE batch (with progress and interruption), each photo's largest face, and previews
stacked into one batch: shared by the identity nodes."""
import torch

import comfy.model_management
import comfy.utils

from ..realisid_core.errors import RealisIDInputError
from ..realisid_core.faces.images import images_to_bgr_uint8
from ..realisid_core.signals.previews import draw_faces


def analyze_batch(analyzer, images, threshold=0.5):
    """Faces of every picture of an IMAGE batch, with progress and interruption."""
    pictures = images_to_bgr_uint8(images, "images")
    progress = comfy.utils.ProgressBar(len(pictures))
    found = []
    for i, picture in enumerate(pictures):
        comfy.model_management.throw_exception_if_processing_interrupted()
        found.append(analyzer.analyze(picture, image_index=i, threshold=threshold))
        progress.update(1)
    return pictures, found


def stack_previews(previews):
    """One IMAGE batch; pictures of different sizes are padded to the largest."""
    h = max(p.shape[0] for p in previews)
    w = max(p.shape[1] for p in previews)
    out = torch.zeros(len(previews), h, w, 3)
    for i, p in enumerate(previews):
        out[i, :p.shape[0], :p.shape[1]] = p
    return out


def largest_faces(analyzer, images, photo_without_face: str):
    """(picture, its largest face) for each photo of ONE person, and the previews (the chosen face green). A photo
    without a face is refused, or left out when `photo_without_face` is 'skip'; no face at all is refused."""
    pictures, found = analyze_batch(analyzer, images)
    used, previews = [], []
    for i, faces in enumerate(found):
        largest = max(faces, key=lambda f: f.area) if faces else None
        if largest is None and photo_without_face != "skip":
            raise RealisIDInputError(input_name="images", problem=f"no face was found in photo {i + 1} of {len(found)}",
                                     fix="remove that photo, use one with a clearly visible face, or set "
                                         "photo_without_face to 'skip'")
        if largest is not None:
            used.append((pictures[i], largest))
        previews.append(draw_faces(pictures[i], faces, {id(largest)} if largest is not None else set()))
    if not used:
        raise RealisIDInputError(input_name="images", problem=f"no face was found in any of the {len(found)} photos",
                                 fix="use photos with a clearly visible face")
    return used, stack_previews([torch.from_numpy(p).float() / 255 for p in previews])
