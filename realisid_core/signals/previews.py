"""The artist's previews: face locations (each face box numbered by person, 1-based, over a layout
picture or a dark frame) and face analysis (boxes, face numbers in reading order, keypoints). The canvas in web/location_canvas.js uses the same colours."""
from __future__ import annotations

from typing import Sequence

import numpy as np
import torch
from PIL import Image, ImageDraw, ImageFont

from ..faces.detected import DetectedFace, left_to_right
from ..faces.pose import FacePose
from ..people.locations import FaceLocations
from ..errors import require
from .hints import placed_points
from .pose_v1 import LAYOUTS, render_pose

# Person k is drawn in PERSON_COLOURS[k - 1]; web/location_text.js holds the same list.
PERSON_COLOURS = ((255, 90, 90), (79, 195, 247), (255, 213, 79), (129, 199, 132),
                  (186, 104, 200), (255, 138, 101), (77, 182, 172), (240, 98, 146))
FRAME_GREY = 32  # the dark frame drawn when there is no layout picture


def person_colour(person: int) -> tuple[int, int, int]:
    """The colour of person `person` (1-based)."""
    return PERSON_COLOURS[(person - 1) % len(PERSON_COLOURS)]


def _font(px: int):
    try:
        return ImageFont.load_default(size=px)
    except TypeError:  # Pillow < 10.1: a fixed bitmap font
        return ImageFont.load_default()


def fit_background(image: torch.Tensor, width: int, height: int) -> torch.Tensor:
    """A ComfyUI IMAGE [B, H, W, C] resized to [B, height, width, 3]. The picture is stretched, not
    cropped: locations are fractions of the picture, so a face at (0.3, 0.4) of the layout stays there."""
    rgb = image[..., :3].movedim(-1, 1).float()
    if rgb.shape[-2:] != (height, width):
        rgb = torch.nn.functional.interpolate(rgb, size=(height, width), mode="bilinear",
                                              align_corners=False, antialias=True)
    return rgb.clamp(0, 1).movedim(1, -1).contiguous()


def label_box(box_px, person: int, width: int, height: int, font_px: int) -> tuple[int, int, int, int]:
    """Where person's number tag goes: inside the box's top-left corner, kept inside the picture."""
    tag_w = round(font_px * (0.75 * len(str(person)) + 0.5))
    tag_h = round(font_px * 1.25)
    x0 = round(min(max(0.0, box_px[0]), width - tag_w))
    y0 = round(min(max(0.0, box_px[1]), height - tag_h))
    return x0, y0, x0 + tag_w, y0 + tag_h


def draw_location_preview(locations: FaceLocations, width: int, height: int,
                          background: torch.Tensor | None = None) -> torch.Tensor:
    """IMAGE [B, height, width, 3]: the face boxes numbered by person over `background` (an IMAGE
    already fitted to width×height, B pictures) or over a dark frame (B = 1)."""
    if background is None:
        frames = np.full((1, height, width, 3), FRAME_GREY, dtype=np.uint8)
    else:
        frames = (background[..., :3].clamp(0, 1) * 255).round().to(torch.uint8).cpu().numpy()
    thickness = max(2, round(max(width, height) / 256))
    font_px = max(10, round(min(width, height) / 24))
    font = _font(font_px)
    boxes = locations.pixel_boxes(width, height).tolist()
    out = []
    for frame in frames:
        picture = Image.fromarray(frame)
        draw = ImageDraw.Draw(picture)
        for i, box in enumerate(boxes):
            person = i + 1
            colour = person_colour(person)
            x0, y0, x1, y1 = (int(round(v)) for v in box)
            draw.rectangle((x0, y0, x1 - 1, y1 - 1), outline=colour, width=thickness)
            tag = label_box(box, person, width, height, font_px)
            draw.rectangle((tag[0], tag[1], tag[2] - 1, tag[3] - 1), fill=colour)
            text = str(person)
            left, top, right, bottom = draw.textbbox((0, 0), text, font=font)
            draw.text(((tag[0] + tag[2] - (right - left)) / 2 - left, (tag[1] + tag[3] - (bottom - top)) / 2 - top),
                      text, fill=(0, 0, 0), font=font)
        out.append(np.asarray(picture))
    return torch.from_numpy(np.stack(out)).float().div(255)


PREVIEW_LONG_SIDE = 768


def preview_size(locations: FaceLocations) -> tuple[int, int]:
    """(width, height) of a preview: the places' picture shape at a viewable size (square when shapeless)."""
    width, height = (locations.width, locations.height) if locations.has_shape else (1, 1)
    scale = PREVIEW_LONG_SIDE / max(width, height)
    return max(8, round(width * scale)), max(8, round(height * scale))


def draw_people(locations: FaceLocations, poses: Sequence[FacePose | None] | None = None) -> torch.Tensor:
    """IMAGE [1, H, W, 3]: each face box numbered by person, with the person's pose drawn where the
    branch puts it (centre to centre, longer side to longer side), in RealisID's pose drawing."""
    width, height = preview_size(locations)
    canvas = np.full((height, width, 3), FRAME_GREY, np.uint8)
    boxes = locations.boxes.numpy()
    for f, pose in enumerate(poses or ()):
        if pose is None:
            continue
        layout = 68 if pose.landmarks_68 is not None else 5
        points = placed_points([pose], boxes[f:f + 1], height, width, layout)[0]
        # drawn in a square twice the face's size, so lines are as thin relative to the face as in a hint
        side = max(16, int(2 * max(boxes[f, 2] * width, boxes[f, 3] * height)))
        x0, y0 = (int(round(v)) for v in points.mean(0) - side / 2)
        drawn = render_pose(points - [x0, y0], side, LAYOUTS[0] if layout == 68 else LAYOUTS[1])
        cx0, cy0, cx1, cy1 = max(0, x0), max(0, y0), min(width, x0 + side), min(height, y0 + side)
        if cx1 > cx0 and cy1 > cy0:
            window = canvas[cy0:cy1, cx0:cx1]
            np.maximum(window, drawn[cy0 - y0:cy1 - y0, cx0 - x0:cx1 - x0], out=window)
    background = torch.from_numpy(canvas)[None].float() / 255
    return draw_location_preview(locations, width, height, background)


def draw_faces(bgr: np.ndarray, faces: list[DetectedFace], selected: set[int] = frozenset()) -> np.ndarray:
    """[H, W, 3] uint8 RGB: every face's box and number (1 = first in reading order, as messages count
    people; the `index` input is that number − 1); selected faces (by id()) in green, others grey."""
    cv2 = require("cv2", "opencv-python")
    canvas = np.ascontiguousarray(bgr[..., ::-1])
    thickness = max(1, round(max(canvas.shape[:2]) / 400))
    for i, face in enumerate(left_to_right(faces)):
        colour = (0, 220, 0) if id(face) in selected else (160, 160, 160)
        x0, y0, x1, y1 = (int(round(float(v))) for v in face.box)
        cv2.rectangle(canvas, (x0, y0), (x1, y1), colour, thickness)
        cv2.putText(canvas, f"{i + 1} ({face.score:.2f})", (x0, max(12, y0 - 4)), cv2.FONT_HERSHEY_SIMPLEX,
                    0.4 * thickness, colour, thickness, cv2.LINE_AA)
        for k, (x, y) in enumerate(face.keypoints):
            cv2.circle(canvas, (int(round(float(x))), int(round(float(y)))), thickness + 1,
                       (255, 0, 0) if k in (0, 3) else (0, 0, 255), -1, cv2.LINE_AA)
    return canvas


def draw_poses(poses: list[FacePose], side: int) -> torch.Tensor:
    """IMAGE [1, side, n·side, 3]: each pose drawn in a square of its own as the branch places it, numbered."""
    boxes = torch.tensor([[(2 * i + 1) / (2 * len(poses)), 0.5, 0.6 / len(poses), 0.6] for i in range(len(poses))],
                         dtype=torch.float64)
    return draw_people(FaceLocations(boxes, side * len(poses), side), poses)
