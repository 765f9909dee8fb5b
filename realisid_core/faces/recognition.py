"""ArcFace recognition (the packs' glintr100.onnx / w600k_r50.onnx) run with onnxruntime.

The face is aligned from its 5 keypoints to the model's input size (112 px), RGB, normalised as the
model's graph asks (see onnx_models.normalisation); the embedding is the raw model output.
"""
from __future__ import annotations

import numpy as np

from .alignment import arcface_matrix, warp
from .onnx_models import Signature, normalisation, to_blob


class ArcFace:
    """An ArcFace recogniser session; `embed` gives one raw (not normalised) embedding per face."""

    taskname = "recognition"

    def __init__(self, session, signature: Signature):
        self.session, self.signature = session, signature
        self.input_size = int(signature.input_shape[2])
        self.input_mean, self.input_std = normalisation(signature.first_node_names, landmark=False)

    def aligned(self, bgr: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
        """The model's aligned input crop (uint8 BGR, input_size²) of the face with these 5 keypoints."""
        return warp(bgr, arcface_matrix(keypoints, self.input_size), self.input_size)

    def features(self, crops) -> np.ndarray:
        """[N, D] model outputs of aligned crops."""
        blob = to_blob(crops, self.input_mean, self.input_std)
        return self.session.run(list(self.signature.output_names), {self.signature.input_name: blob})[0]

    def embed(self, bgr: np.ndarray, keypoints: np.ndarray) -> np.ndarray:
        """[D] float32 raw embedding of the face with these 5 keypoints."""
        return np.asarray(self.features([self.aligned(bgr, keypoints)]), np.float32).ravel()
