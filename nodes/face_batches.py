"""Face analysis over an IMAGE batch (with progress and interruption) and previews stacked into one batch:
shared by the identity nodes."""
import torch

import comfy.model_management
import comfy.utils

from ..realisid_core.faces.images import images_to_bgr_uint8


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
