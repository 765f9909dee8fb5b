"""facexlib's IR-SE50 ArcFace recogniser (`recognition_arcface_ir_se50.pth`), the identity vector
InfiniteYou's projector was trained on, built here in plain torch (facexlib is not needed to run).

The network is a 50-layer improved residual net with squeeze-excitation (units of 64, 128, 256,
512 channels: 3, 4, 14, 3 units, each unit's first convolution strided), a 7×7×512 → 512 linear
head and batch norms; its state-dict keys are facexlib's (`input_layer.*`, `body.N.*`,
`output_layer.*`). Input: the face aligned by insightface's `norm_crop` to 112×112, BGR, in
[-1, 1]; output: the L2-normalised 512-vector (InfiniteYou's `extract_arcface_bgr_embedding`).
"""
from __future__ import annotations

import os

import numpy as np
import torch
from torch import nn

from ..cache import SharedModels
from ..errors import RealisIDInputError
from ..faces.alignment import arcface_matrix, warp
from .infuse import RECOGNISER
from .files import check_file, read_torch_pickle

FILE_NAME = "recognition_arcface_ir_se50.pth"
GET_IT = ("download recognition_arcface_ir_se50.pth from github.com/xinntao/facexlib/releases (v0.1.0) into "
          "models/facexlib")
UNITS = ((64, 64, 3), (64, 128, 4), (128, 256, 14), (256, 512, 3))  # (in, out, units) per stage
SIZE = 112


class SqueezeExcite(nn.Module):
    def __init__(self, channels: int, reduction: int = 16):
        super().__init__()
        self.fc1 = nn.Conv2d(channels, channels // reduction, 1, bias=False)
        self.fc2 = nn.Conv2d(channels // reduction, channels, 1, bias=False)

    def forward(self, x):
        weight = torch.sigmoid(self.fc2(torch.relu(self.fc1(x.mean((2, 3), keepdim=True)))))
        return x * weight


class Unit(nn.Module):
    """One residual unit: BN → 3×3 conv → PReLU → 3×3 conv (strided) → BN → SE, plus the shortcut
    (a strided 1×1 conv + BN where the width changes, else the input subsampled)."""

    def __init__(self, cin: int, cout: int, stride: int):
        super().__init__()
        self.stride = stride
        self.shortcut_layer = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False), nn.BatchNorm2d(cout))
                               if cin != cout else None)
        self.res_layer = nn.Sequential(nn.BatchNorm2d(cin), nn.Conv2d(cin, cout, 3, 1, 1, bias=False), nn.PReLU(cout),
                                       nn.Conv2d(cout, cout, 3, stride, 1, bias=False), nn.BatchNorm2d(cout),
                                       SqueezeExcite(cout))

    def forward(self, x):
        shortcut = x[:, :, ::self.stride, ::self.stride] if self.shortcut_layer is None else self.shortcut_layer(x)
        return self.res_layer(x) + shortcut


class IRSE50(nn.Module):
    """[N, 3, 112, 112] BGR faces in [-1, 1] → [N, 512] unit vectors."""

    def __init__(self):
        super().__init__()
        self.input_layer = nn.Sequential(nn.Conv2d(3, 64, 3, 1, 1, bias=False), nn.BatchNorm2d(64), nn.PReLU(64))
        units = []
        for cin, cout, count in UNITS:
            units.append(Unit(cin, cout, 2))
            units.extend(Unit(cout, cout, 1) for _ in range(count - 1))
        self.body = nn.Sequential(*units)
        # facexlib's head: BN, dropout, flatten, linear, BN (indices 0, 3, 4 hold weights)
        self.output_layer = nn.Sequential(nn.BatchNorm2d(512), nn.Dropout(0.0), nn.Flatten(),
                                          nn.Linear(512 * 7 * 7, 512), nn.BatchNorm1d(512))

    def forward(self, faces: torch.Tensor) -> torch.Tensor:
        out = self.output_layer(self.body(self.input_layer(faces)))
        return out / out.norm(dim=1, keepdim=True)


def recogniser_from_state(state, name: str, input_name: str = "recogniser_name") -> IRSE50:
    model = IRSE50()
    if not isinstance(state, dict):
        raise RealisIDInputError(input_name=input_name, problem=f"{name} holds a {type(state).__name__}, "
                                 "not a state dict", fix=GET_IT)
    expected = model.state_dict()
    missing = [k for k in expected if k not in state]
    unknown = [k for k in state if k not in expected]
    wrong = [k for k in expected if k in state and tuple(state[k].shape) != tuple(expected[k].shape)]
    if missing or unknown or wrong:
        detail = "; ".join(([f"missing {', '.join(missing[:3])}"] if missing else [])
                           + ([f"unknown {', '.join(unknown[:3])}"] if unknown else [])
                           + ([f"other shapes {', '.join(wrong[:3])}"] if wrong else []))
        raise RealisIDInputError(input_name=input_name, problem=f"{name} is not facexlib's IR-SE50 ArcFace "
                                 f"({detail})", fix=GET_IT)
    model.load_state_dict({k: v.float() for k, v in state.items()})
    return model.eval().requires_grad_(False)


def read_recogniser(path: str, input_name: str = "recogniser_name") -> IRSE50:
    """The recogniser in `path` (a torch pickle read with weights_only: a file holding code is refused unrun)."""
    name = os.path.basename(path)
    check_file(path, input_name, GET_IT)
    state = read_torch_pickle(path, input_name, GET_IT)
    return recogniser_from_state(state, name, input_name)


_recognisers = SharedModels()


def load_recogniser(path: str) -> IRSE50:
    """The IR-SE50 in `path`, loaded once per (file, modification time), CPU float32."""
    key = (os.path.realpath(path), os.path.getmtime(path))
    return _recognisers.get(key, lambda: read_recogniser(path), f"IR-SE50 recogniser {os.path.basename(path)}")


def aligned_faces(bgr_images: list[np.ndarray], keypoints: list[np.ndarray]) -> torch.Tensor:
    """[N, 3, 112, 112] BGR in [-1, 1]: each face aligned on its five keypoints by the ArcFace alignment insightface's norm_crop uses (faces/alignment.py)."""
    crops = [warp(bgr, arcface_matrix(np.asarray(kps, np.float32), SIZE), SIZE)
             for bgr, kps in zip(bgr_images, keypoints)]
    faces = torch.from_numpy(np.stack(crops)).permute(0, 3, 1, 2).float() / 255
    return 2 * faces - 1


def embed(recogniser: IRSE50, bgr_images: list[np.ndarray], keypoints: list[np.ndarray],
          device=None) -> torch.Tensor:
    """[N, 512] unit IR-SE50 vectors of the faces at `keypoints` [5, 2] in each BGR uint8 picture (CPU float32)."""
    faces = aligned_faces(bgr_images, keypoints)
    parameter = next(recogniser.parameters())
    with torch.no_grad():
        out = recogniser(faces.to(device or parameter.device, parameter.dtype))
    return out.to("cpu", torch.float32)


PACK = RECOGNISER  # what Identity.pack records for identities made here
