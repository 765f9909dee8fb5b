"""The packs' ONNX files opened with onnxruntime: sessions, signatures, and the blobs they take.

insightface routes a file to its model class by its input and output shapes; the pack knows each
file's task from its name (packs.py), so here a file is only checked against that task's signature.
"""
from __future__ import annotations

import os
import threading
from dataclasses import dataclass

import numpy as np

from ..errors import RealisIDInputError, require

_cuda_preloaded = threading.Lock(), []


@dataclass(frozen=True)
class Signature:
    """What a model's graph looks like from outside: its first input's shape, its outputs' shapes, the
    names of its first graph nodes (they tell a converted mxnet model, which normalises inside itself)."""

    input_name: str
    input_shape: tuple
    input_count: int
    output_names: tuple[str, ...]
    output_shapes: tuple[tuple, ...]
    first_node_names: tuple[str, ...]

    def task(self) -> str | None:
        """The task insightface's model zoo would give this file, as far as the packs' tasks go."""
        shape = self.input_shape
        if len(self.output_names) >= 5:
            return "detection"
        if len(shape) != 4:
            return None
        if shape[2] == 192 and shape[3] == 192:
            last = self.output_shapes[0][1] if len(self.output_shapes[0]) > 1 else None
            if last == 3309:
                return "landmark_3d_68"
            return f"landmark_2d_{last // 2}" if isinstance(last, int) else None
        if shape[2] == 96 and shape[3] == 96:
            return "genderage"
        if self.input_count == 2 and shape[2] == 128 and shape[3] == 128:
            return "inswapper"
        if isinstance(shape[2], int) and shape[2] == shape[3] and shape[2] >= 112 and shape[2] % 16 == 0:
            return "recognition"
        return None


def normalisation(first_node_names, landmark: bool) -> tuple[float, float]:
    """(mean, std) the model wants its 0-255 pixels normalised with, read as insightface reads it: a graph
    whose first nodes subtract and multiply (mxnet exports, or a `bn_data` first node in a landmark
    model) normalises itself."""
    names = list(first_node_names[:8])
    has_sub = any(n.startswith(("Sub", "_minus")) for n in names)
    has_mul = any(n.startswith(("Mul", "_mul")) for n in names)
    if landmark and "bn_data" in names[:3]:
        has_sub = has_mul = True
    if has_sub and has_mul:
        return 0.0, 1.0
    return 127.5, (128.0 if landmark else 127.5)


def to_blob(bgr_images, mean: float, std: float) -> np.ndarray:
    """[N, 3, H, W] float32 of uint8 BGR pictures: channels to RGB, (pixel - mean) / std (as
    cv2.dnn.blobFromImages(…, 1/std, size, mean, swapRB=True) does for pictures already at size)."""
    stack = np.stack([np.asarray(i) for i in bgr_images]).astype(np.float32)
    stack = (stack[..., ::-1] - np.float32(mean)) * np.float32(1.0 / std)
    return np.ascontiguousarray(stack.transpose(0, 3, 1, 2), dtype=np.float32)


def _preload_cuda(ort, providers) -> None:
    """Let onnxruntime-gpu find CUDA/cuDNN installed from pip (nvidia-* wheels) before the first CUDA session."""
    lock, done = _cuda_preloaded
    if "CUDAExecutionProvider" not in providers or done or not callable(getattr(ort, "preload_dlls", None)):
        return
    with lock:
        if not done:
            try:
                ort.preload_dlls()
            except Exception:  # noqa: BLE001 — a system CUDA install is found without it
                pass
            done.append(True)


def _varint(data, at: int) -> tuple[int, int]:
    value = shift = 0
    while True:
        byte = data[at]
        value |= (byte & 0x7F) << shift
        at, shift = at + 1, shift + 7
        if byte < 0x80:
            return value, at


def _fields(data, start: int, end: int):
    """(field number, start, end) of the length-delimited fields of one protobuf message; others skipped."""
    at = start
    while at < end:
        key, at = _varint(data, at)
        kind = key & 7
        if kind == 0:
            _, at = _varint(data, at)
        elif kind == 1:
            at += 8
        elif kind == 5:
            at += 4
        elif kind == 2:
            length, at = _varint(data, at)
            yield key >> 3, at, at + length
            at += length
        else:
            raise ValueError(f"protobuf wire type {kind} at byte {at}")


def first_node_names(path: str, count: int = 8) -> tuple[str, ...]:
    """Names of a model's first graph nodes, read from the file's protobuf (ModelProto.graph = 7,
    GraphProto.node = 1, NodeProto.name = 3) without the onnx package; nodes come before the weights."""
    import mmap
    names = []
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as data:
        for number, start, end in _fields(data, 0, len(data)):
            if number != 7:
                continue
            for node_number, node_start, node_end in _fields(data, start, end):
                if node_number != 1:
                    continue
                name = next((bytes(data[a:b]) for n, a, b in _fields(data, node_start, node_end) if n == 3), b"")
                names.append(name.decode("utf-8", "replace"))
                if len(names) == count:
                    return tuple(names)
            break
    return tuple(names)


def open_model(path: str, providers: list[str], task: str, file: str, pack: str):
    """(onnxruntime session, Signature) of a pack file, or a RealisIDInputError naming the file when it is
    not a readable ONNX model or not the `task` model the pack expects there."""
    ort = require("onnxruntime", "onnxruntime-gpu")
    _preload_cuda(ort, providers)
    try:
        session = ort.InferenceSession(path, providers=list(providers))
        first_nodes = first_node_names(path)
    except Exception as exc:  # noqa: BLE001 — onnxruntime's own errors on an empty, cut or foreign file
        raise RealisIDInputError(input_name="pack", problem=f"{path} is not a readable ONNX model "
                                 f"({os.path.getsize(path):,} bytes; onnxruntime: {str(exc)[:160]})",
                                 fix=f"replace it with the original {file} of the {pack} pack (download "
                                     f"{pack}.zip again)") from None
    inputs, outputs = session.get_inputs(), session.get_outputs()
    signature = Signature(inputs[0].name, tuple(inputs[0].shape), len(inputs), tuple(o.name for o in outputs),
                          tuple(tuple(o.shape) for o in outputs), first_nodes)
    got = signature.task()
    if got != task:
        got = "nothing a face pack holds" if got is None else f"a '{got}' model"
        raise RealisIDInputError(input_name="pack",
                                 problem=f"{path} should be the pack's {task} model but is {got}",
                                 fix=f"replace it with the original {file} of the {pack} pack")
    return session, signature
