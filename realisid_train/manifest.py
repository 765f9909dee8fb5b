"""The prepared dataset on disk: a JSONL manifest of kept photos, dropped photos, embedding shards.

Layout of a data folder (written by `prepare`, read by the trainer):

    manifest.jsonl        one JSON object a line per kept photo (see `FaceRecord`)
    dropped.jsonl         one line per dropped photo: path, signature, reason, detail
    embeddings/shard-NNNNN.safetensors   512-d L2-normalised ArcFace embeddings, key = record id
    prepare.json          the photo folder, the analysis settings and the last run's summary

Files are replaced atomically (written beside, then renamed), so an interrupted run leaves the
last complete state behind and the next run carries on from it.
"""
from __future__ import annotations

import json
import os
from dataclasses import dataclass

import numpy as np
import torch

MANIFEST = "manifest.jsonl"
DROPPED = "dropped.jsonl"
STATE = "prepare.json"
EMBEDDINGS = "embeddings"


@dataclass(frozen=True)
class FaceRecord:
    """One kept photo and its face, coordinates in the upright photo's pixels (x right, y down).

    box (x0, y0, x1, y1); keypoints [5, 2] (insightface order); landmarks_68 [68, 3] (iBUG order,
    z in pixels); pose (pitch, yaw, roll) degrees; embedding: (shard file, key) of its ArcFace vector.
    """

    id: str
    path: str
    width: int
    height: int
    caption: str | None
    box: np.ndarray
    score: float
    keypoints: np.ndarray
    landmarks_68: np.ndarray | None
    pose: np.ndarray | None
    shard: str
    key: str

    @classmethod
    def from_json(cls, row: dict) -> "FaceRecord":
        lm = row.get("landmarks_68")
        pose = row.get("pose")
        return cls(row["id"], row["path"], int(row["width"]), int(row["height"]), row.get("caption"),
                   np.asarray(row["box"], np.float64), float(row["score"]), np.asarray(row["keypoints"], np.float64),
                   None if lm is None else np.asarray(lm, np.float64), None if pose is None else np.asarray(pose),
                   row["embedding"]["shard"], row["embedding"]["key"])

    @property
    def face_side(self) -> float:
        """The face box's longer side in pixels."""
        x0, y0, x1, y1 = self.box
        return float(max(x1 - x0, y1 - y0))


def read_jsonl(path: str) -> list[dict]:
    if not os.path.exists(path):
        return []
    rows = []
    with open(path, encoding="utf-8") as f:
        for line_no, line in enumerate(f, 1):
            line = line.strip()
            if line:
                try:
                    rows.append(json.loads(line))
                except json.JSONDecodeError as exc:
                    raise ValueError(f"{path}, line {line_no}, is not JSON ({exc}); run prepare again") from None
    return rows


def write_jsonl(path: str, rows: list[dict]) -> None:
    tmp = f"{path}.partial"
    with open(tmp, "w", encoding="utf-8") as f:
        for row in rows:
            f.write(json.dumps(row, ensure_ascii=False, separators=(",", ":")) + "\n")
    os.replace(tmp, path)


def write_json(path: str, value: dict) -> None:
    tmp = f"{path}.partial"
    with open(tmp, "w", encoding="utf-8") as f:
        json.dump(value, f, indent=2, ensure_ascii=False)
        f.write("\n")
    os.replace(tmp, path)


def read_json(path: str) -> dict | None:
    if not os.path.exists(path):
        return None
    with open(path, encoding="utf-8") as f:
        return json.load(f)


def next_shard_name(data_dir: str) -> str:
    """A shard file name not used yet (shards are never rewritten: a new run writes new ones)."""
    folder = os.path.join(data_dir, EMBEDDINGS)
    os.makedirs(folder, exist_ok=True)
    taken = [int(n[6:11]) for n in os.listdir(folder) if n.startswith("shard-") and n.endswith(".safetensors")
             and n[6:11].isdigit()]
    return f"{EMBEDDINGS}/shard-{max(taken, default=-1) + 1:05d}.safetensors"


def write_shard(data_dir: str, vectors: dict[str, np.ndarray]) -> str:
    """Write embeddings {key: [E]} as a new shard; returns its path relative to `data_dir`."""
    from safetensors.torch import save_file

    name = next_shard_name(data_dir)
    path = os.path.join(data_dir, name)
    tmp = f"{path}.partial"
    save_file({k: torch.from_numpy(np.asarray(v, np.float32)).contiguous() for k, v in vectors.items()}, tmp,
              metadata={"format": "realisid-arcface-embeddings", "normalised": "l2"})
    os.replace(tmp, path)
    return name


def load_embeddings(data_dir: str, records: list[FaceRecord]) -> torch.Tensor:
    """[N, E] float32 embeddings of `records`, in their order."""
    from safetensors import safe_open

    by_shard: dict[str, list[int]] = {}
    for i, r in enumerate(records):
        by_shard.setdefault(r.shard, []).append(i)
    out: list[torch.Tensor | None] = [None] * len(records)
    for shard, indices in by_shard.items():
        path = os.path.join(data_dir, shard)
        if not os.path.exists(path):
            raise FileNotFoundError(f"embedding shard {path} is missing; run prepare again")
        with safe_open(path, framework="pt") as f:
            keys = set(f.keys())
            for i in indices:
                if records[i].key not in keys:
                    raise KeyError(f"{path} has no embedding '{records[i].key}' for {records[i].path}; run prepare again")
                out[i] = f.get_tensor(records[i].key).float()
    return torch.stack(out) if out else torch.zeros(0, 512)


def load_records(manifest_path: str) -> list[FaceRecord]:
    return [FaceRecord.from_json(row) for row in read_jsonl(manifest_path)]
