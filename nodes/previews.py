"""Previews shown on a node itself (as PreviewImage shows them), so a graph needs no preview-only branch."""
import os
import random
import string

import numpy as np
from PIL import Image

import folder_paths


def save_temp_images(images, prefix: str = "RealisID_preview") -> list[dict]:
    """Save IMAGE pictures [B, H, W, 3] into ComfyUI's temp folder as PreviewImage does; their UI entries."""
    prefix = f"{prefix}_{''.join(random.choice(string.ascii_lowercase) for _ in range(5))}"
    folder, name, counter, subfolder, _ = folder_paths.get_save_image_path(
        prefix, folder_paths.get_temp_directory(), images.shape[2], images.shape[1])
    entries = []
    for i, image in enumerate(images):
        file = f"{name}_{counter + i:05}_.png"
        pixels = np.clip(image.cpu().numpy() * 255.0, 0, 255).round().astype(np.uint8)
        Image.fromarray(pixels).save(os.path.join(folder, file), compress_level=1)
        entries.append({"filename": file, "subfolder": subfolder, "type": "temp"})
    return entries


def with_preview(result: tuple, preview, **ui) -> dict:
    """A node's return value that also shows `preview` (an IMAGE) on the node."""
    return {"ui": {"images": save_temp_images(preview), **ui}, "result": result}
