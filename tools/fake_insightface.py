"""insightface packs built for tests and benchmarks: ONNX graphs with the real packs' file names and signatures.

The real weights cannot be downloaded here, so each file is a small graph that insightface's
`model_zoo` routes exactly as it routes the real one (by output count and input shape) and
that onnxruntime really runs:

- the detector (SCRFD-10G signature: one [1, 3, ?, ?] input, 9 outputs = scores, boxes and
  5 keypoints for strides 8/16/32, two anchors each) finds "faces" where the picture has a
  magenta (255, 0, 255) square of 56-80 detector pixels centred on a multiple of 32 detector
  pixels (`paint_face`): its stride-32 score is a centre-minus-surround filter on magenta, so a
  square far bigger than that is only found at a smaller detection size, like a real close-up. Boxes are centred on the anchor, sized from the
  magenta area around it; keypoints a fixed frontal layout scaled with the box;
- the recogniser (ArcFace signature: [N, 3, 112, 112] → [N, 512]) is a fixed random
  projection of the pooled aligned crop, so embeddings depend on the pixels;
- 1k3d68 ([1, 3, 192, 192] → [1, 3309]) outputs insightface's own 3-D mean face
  (`meanshape_68.pkl`, shipped as realisid_core/faces/meanshape_68.npy; real geometry) plus a tiny pixel-dependent term;
  2d106det ([1, 3, 192, 192] → [1, 212]) outputs 106 points derived from that mean face
  (their order is NOT the real 106-point markup); genderage ([1, 3, 96, 96] → [1, 3]).
"""
from __future__ import annotations

import functools
import os
import tempfile

import numpy as np
import onnx
from onnx import TensorProto, helper, numpy_helper

MAGENTA_BGR = (255, 0, 255)
FACE_DETECTOR_PIXELS = 64  # the side of the square the detector answers best, in detector pixels
KEYPOINT_OFFSETS = np.array([[-0.35, -0.2], [0.35, -0.2], [0.0, 0.1], [-0.3, 0.4], [0.3, 0.4]], np.float32)

PACK_FILES = {
    "antelopev2": {"detection": "scrfd_10g_bnkps.onnx", "recognition": "glintr100.onnx", "landmark_3d_68": "1k3d68.onnx",
                   "landmark_2d_106": "2d106det.onnx", "genderage": "genderage.onnx"},
    "buffalo_l": {"detection": "det_10g.onnx", "recognition": "w600k_r50.onnx", "landmark_3d_68": "1k3d68.onnx",
                  "landmark_2d_106": "2d106det.onnx", "genderage": "genderage.onnx"},
}


class _Graph:
    """A tiny helper around onnx.helper: named nodes, constants as initializers."""

    def __init__(self):
        self.nodes, self.inits, self.n = [], [], 0

    def const(self, value, dtype=np.float32):
        self.n += 1
        name = f"c{self.n}"
        self.inits.append(numpy_helper.from_array(np.asarray(value, dtype), name))
        return name

    def op(self, op_type, *inputs, out=None, **attrs):
        self.n += 1
        out = out or f"t{self.n}"
        # neutral node names: insightface reads 'Sub'/'Mul' names as "mxnet model, no normalisation"
        self.nodes.append(helper.make_node(op_type, list(inputs), [out], name=f"node{self.n}", **attrs))
        return out

    def model(self, inputs, outputs, path):
        graph = helper.make_graph(self.nodes, "fake", inputs, outputs, self.inits)
        model = helper.make_model(graph, opset_imports=[helper.make_opsetid("", 13)])
        model.ir_version = 8
        onnx.checker.check_model(model)
        onnx.save(model, path)


def _anchors(g: _Graph, score_map: str) -> str:
    """[1, 1, h, w] → [h*w*2, 1]: the same value for both anchors of a location, in SCRFD's order."""
    flat = g.op("Reshape", score_map, g.const([-1, 1], np.int64))
    return g.op("Reshape", g.op("Concat", flat, flat, axis=1), g.const([-1, 1], np.int64))


def build_detector(path: str) -> None:
    g = _Graph()
    x = "input.1"
    channel = [g.op("Slice", x, g.const([c], np.int64), g.const([c + 1], np.int64), g.const([1], np.int64)) for c in range(3)]
    r, gr, b = channel  # blobFromImage(swapRB=True): channels are R, G, B
    magenta = g.op("Mul", g.op("Relu", g.op("Sub", g.op("Min", r, b), gr)), g.const(0.5))
    scores, boxes, kps = [], [], []
    for stride in (8, 16, 32):
        if stride == 32:
            centre = g.op("AveragePool", magenta, kernel_shape=[64, 64], strides=[32, 32], pads=[32, 32, 0, 0])
            around = g.op("AveragePool", magenta, kernel_shape=[128, 128], strides=[32, 32], pads=[64, 64, 32, 32])
            contrast = g.op("Mul", g.op("Sub", centre, around), g.const(4.0 / 3.0))
            score_map = g.op("Sigmoid", g.op("Sub", g.op("Mul", contrast, g.const(12.0)), g.const(9.0)))
        else:
            pooled = g.op("AveragePool", magenta, kernel_shape=[stride, stride], strides=[stride, stride])
            score_map = g.op("Sigmoid", g.op("Sub", g.op("Mul", pooled, g.const(0.0)), g.const(20.0)))
        score = _anchors(g, score_map)
        if stride == 32:  # half the box, in strides: a square of side L fills L²/128² of the surround window
            half = g.op("Mul", g.op("Sqrt", _anchors(g, around)), g.const(2.0))
        else:
            half = g.op("Add", g.op("Mul", score, g.const(0.0)), g.const(FACE_DETECTOR_PIXELS / 2 / stride))
        scores.append(g.op("Identity", score, out=f"score_{stride}"))
        boxes.append(g.op("Mul", half, g.const([[1.0] * 4]), out=f"bbox_{stride}"))
        kps.append(g.op("Mul", half, g.const((KEYPOINT_OFFSETS * 2).reshape(1, 10)), out=f"kps_{stride}"))
    outputs = [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["n", 1]) for n in scores]
    outputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["n", 4]) for n in boxes]
    outputs += [helper.make_tensor_value_info(n, TensorProto.FLOAT, ["n", 10]) for n in kps]
    g.model([helper.make_tensor_value_info(x, TensorProto.FLOAT, [1, 3, "?", "?"])], outputs, path)


def build_recogniser(path: str, seed: int) -> None:
    g = _Graph()
    pooled = g.op("AveragePool", "input.1", kernel_shape=[8, 8], strides=[8, 8])
    flat = g.op("Flatten", pooled, axis=1)
    weights = np.random.default_rng(seed).standard_normal((3 * 14 * 14, 512)).astype(np.float32)
    g.op("MatMul", flat, g.const(weights), out="embedding")
    g.model([helper.make_tensor_value_info("input.1", TensorProto.FLOAT, ["N", 3, 112, 112])],
            [helper.make_tensor_value_info("embedding", TensorProto.FLOAT, ["N", 512])], path)


def mean_face_68() -> np.ndarray:
    """insightface's 3-D mean face [68, 3] (iBUG order, x right, y down, roughly ±0.6), as the pack ships it."""
    from realisid_core.faces.pose import mean_face_68 as shipped
    return np.asarray(shipped(), np.float32)


def _normalised_landmarks(points: np.ndarray, scale: float = 0.6) -> np.ndarray:
    return points * scale  # the landmark crop is 1.5 × the box: the box spans ±0.67 of it


def build_landmarks(path: str, values: np.ndarray, seed: int) -> None:
    g = _Graph()
    pooled = g.op("Flatten", g.op("GlobalAveragePool", "data"), axis=1)  # [1, 3]
    wiggle = np.random.default_rng(seed).standard_normal((3, values.size)).astype(np.float32) * 1e-3
    g.op("Add", g.op("MatMul", pooled, g.const(wiggle)), g.const(values.reshape(1, -1)), out="fc1")
    g.model([helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 192, 192])],
            [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [1, values.size])], path)


def build_genderage(path: str) -> None:
    g = _Graph()
    pooled = g.op("Flatten", g.op("GlobalAveragePool", "data"), axis=1)
    g.op("Add", g.op("MatMul", pooled, g.const(np.eye(3, dtype=np.float32) * 0.01)), g.const([[0.2, 0.8, 0.3]]), out="fc1")
    g.model([helper.make_tensor_value_info("data", TensorProto.FLOAT, [1, 3, 96, 96])],
            [helper.make_tensor_value_info("fc1", TensorProto.FLOAT, [1, 3])], path)


def write_pack(insightface_root: str, pack: str, nested: bool = False, skip: tuple[str, ...] = ()) -> str:
    """Write `pack`'s files into `<root>/models/<pack>` (or the nested `<pack>/<pack>`); returns that folder."""
    folder = os.path.join(insightface_root, "models", pack, *([pack] if nested else []))
    os.makedirs(folder, exist_ok=True)
    files = PACK_FILES[pack]
    mean = mean_face_68()
    lm68 = np.zeros((1103, 3), np.float32)  # the model's output is 1103 rows; insightface keeps the last 68
    lm68[-68:] = _normalised_landmarks(mean)
    ring = np.concatenate([mean[:, :2], (mean[:38, :2] + mean[1:39, :2]) / 2])
    builders = {
        "detection": lambda p: build_detector(p),
        "recognition": lambda p: build_recogniser(p, seed=1 if pack == "antelopev2" else 2),
        "landmark_3d_68": lambda p: build_landmarks(p, lm68, seed=3),
        "landmark_2d_106": lambda p: build_landmarks(p, _normalised_landmarks(ring), seed=4),
        "genderage": build_genderage,
    }
    for task, file in files.items():
        if file not in skip:
            builders[task](os.path.join(folder, file))
    return folder


@functools.lru_cache(maxsize=None)
def fake_insightface_root() -> str:
    """An insightface models folder with both packs (antelopev2 flat, buffalo_l nested), built once per test session."""
    root = tempfile.mkdtemp(prefix="realisid-insightface-")
    write_pack(root, "antelopev2")
    write_pack(root, "buffalo_l", nested=True)
    return root


def paint_face(bgr: np.ndarray, cx: float, cy: float, side: float) -> np.ndarray:
    """Paint the detector's "face" (a magenta square of `side` pixels centred at cx, cy) onto a copy of a picture."""
    out = bgr.copy()
    x0, y0 = int(round(cx - side / 2)), int(round(cy - side / 2))
    s = int(round(side))
    out[max(0, y0):max(0, y0 + s), max(0, x0):max(0, x0 + s)] = MAGENTA_BGR
    return out
