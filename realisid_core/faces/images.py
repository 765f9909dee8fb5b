"""Pictures as face analysis wants them: 3-channel uint8 BGR, whatever the node was given."""
from __future__ import annotations

import numpy as np
import torch

from ..errors import RealisIDInputError
from .detected import photo_name

MIN_SIDE = 8  # below this no detector input size gives a face enough pixels to be found


def image_to_bgr_uint8(image: torch.Tensor | np.ndarray, input_name: str, index: int = 0,
                       count: int | None = None) -> np.ndarray:
    """One picture [H, W, C] (or [H, W] grayscale), floats in 0-1, to a contiguous [H, W, 3] uint8 BGR array.

    `index` (0-based) of `count` pictures names it in messages as users count: "photo 1 of 3".
    Grayscale is repeated over three channels; alpha (RGBA, gray+alpha) is dropped, the colour kept.
    """
    a = image.detach().cpu().float().numpy() if isinstance(image, torch.Tensor) else np.asarray(image, dtype=np.float32)
    if a.ndim == 2:
        a = a[..., None]
    if a.ndim != 3 or a.shape[-1] not in (1, 2, 3, 4):
        raise RealisIDInputError(input_name=input_name,
                                 problem=f"{photo_name(index, count)} has shape {tuple(a.shape)}, not height × width × channels (1-4)",
                                 fix="connect an IMAGE (e.g. from Load Image)")
    height, width = a.shape[:2]
    if min(height, width) < MIN_SIDE:
        raise RealisIDInputError(input_name=input_name,
                                 problem=f"{photo_name(index, count)} is only {width}×{height} pixels, too small to find a face in",
                                 fix=f"use a picture at least {MIN_SIDE} pixels on each side (faces are best above 64 pixels)")
    channels = a.shape[-1]
    rgb = a[..., :1].repeat(3, -1) if channels in (1, 2) else a[..., :3]
    rgb = np.nan_to_num(rgb, nan=0.0, posinf=1.0, neginf=0.0)
    return np.ascontiguousarray((rgb[..., ::-1].clip(0, 1) * 255 + 0.5).astype(np.uint8))


def images_to_bgr_uint8(images: torch.Tensor, input_name: str) -> list[np.ndarray]:
    """A ComfyUI IMAGE batch [B, H, W, C] (or a single [H, W, C]) to a list of uint8 BGR pictures."""
    if images.ndim == 3 and images.shape[-1] in (1, 2, 3, 4):
        images = images[None]
    if images.ndim == 3:  # a MASK-like [B, H, W] grayscale batch
        images = images[..., None]
    if images.ndim != 4 or images.shape[0] == 0:
        raise RealisIDInputError(input_name=input_name,
                                 problem=f"expected a batch of pictures [B, H, W, C], got shape {tuple(images.shape)}",
                                 fix="connect an IMAGE (e.g. from Load Image)")
    return [image_to_bgr_uint8(images[i], input_name, i, images.shape[0]) for i in range(images.shape[0])]
