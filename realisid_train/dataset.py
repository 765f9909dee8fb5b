"""The training stream: sample k of an endless, seeded sequence of composed training pictures.

Sample k belongs to epoch k // N (N photos), which visits the photos in a permutation drawn
from (seed, epoch); everything random about sample k (face size, position, flip, caption and
identity dropout) comes from a generator seeded with (seed, k). So a batch depends only on
its position in the stream, never on workers or on how often training was interrupted: resuming
at step s reads exactly the samples an uninterrupted run reads there.
"""
from __future__ import annotations

import logging
import os

import numpy as np
import torch

from realisid_core.families import to_cells
from realisid_core.signals.guidance import render_location_guidance
from realisid_core.signals.hints import hint_format

from .augment import ScaleDistribution, compose
from .branches import local_hints, local_plan
from .config import Config
from .manifest import STATE, FaceRecord, load_embeddings, load_records, read_json
from .photos import load_photo

log = logging.getLogger("realisid_train")


class DataError(RuntimeError):
    """The prepared data cannot be used as it is; the message says what to do."""


def photos_root(config: Config) -> str:
    """The photo folder: the configured one, else the one `prepare` recorded beside the manifest."""
    if config.data.photos:
        return config.data.photos
    state = read_json(os.path.join(os.path.dirname(os.path.abspath(config.data.manifest)), STATE)) or {}
    if not state.get("photos"):
        raise DataError(f"no photo folder is known for {config.data.manifest}: set data.photos")
    return state["photos"]


class TrainingStream(torch.utils.data.Dataset):
    """Composed training samples by stream position k (see module doc). `config` must be resolved."""

    def __init__(self, config: Config, records: list[FaceRecord] | None = None, embeddings: torch.Tensor | None = None,
                 root: str | None = None):
        self.config = config
        manifest = config.data.manifest
        data_dir = os.path.dirname(os.path.abspath(manifest))
        if records is None:
            if not os.path.exists(manifest):
                raise DataError(f"no manifest {manifest}: run `python -m realisid_train prepare` first")
            records = load_records(manifest)
        fmt = hint_format(config.local.hint_format)
        if config.local.enabled and fmt.layout == 68:
            usable = [r for r in records if r.landmarks_68 is not None]
            if len(usable) < len(records):
                log.warning("%d photos have no 68 landmarks (their pack has no 1k3d68.onnx) and are left out",
                            len(records) - len(usable))
            records = usable
        if not records:
            raise DataError(f"{manifest} has no usable photo: prepare a folder with single-face photos")
        self.records = records
        self.embeddings = load_embeddings(data_dir, records) if embeddings is None else embeddings
        if self.embeddings.shape[-1] != config.identity.embedding_width:
            raise DataError(f"the embeddings are {self.embeddings.shape[-1]} wide but identity.embedding_width is "
                            f"{config.identity.embedding_width}")
        self.root = root or photos_root(config)
        self.scales = ScaleDistribution(config.data.face_scale_min, config.data.face_scale_max,
                                        config.data.face_scale_distribution)
        self._perm_epoch, self._perm = None, None

    def __len__(self) -> int:
        """Photos per epoch (the stream itself is endless)."""
        return len(self.records)

    def record_index(self, k: int) -> int:
        epoch, pos = divmod(int(k), len(self.records))
        if self._perm_epoch != epoch:
            self._perm = np.random.default_rng([self.config.train.seed, 7919, epoch]).permutation(len(self.records))
            self._perm_epoch = epoch
        return int(self._perm[pos])

    def __getitem__(self, k: int) -> dict:
        c = self.config
        record = self.records[self.record_index(k)]
        rng = np.random.default_rng([c.train.seed, int(k)])
        photo = load_photo(os.path.join(self.root, record.path))
        if photo.shape[:2] != (record.height, record.width):
            raise DataError(f"{record.path} is {photo.shape[1]}×{photo.shape[0]} now but was {record.width}×"
                            f"{record.height} when prepared: run prepare again")
        size = c.data.resolution
        composed = compose(photo, record, size, rng, self.scales, c.data.max_upscale, c.data.flip)
        caption = "" if rng.random() < c.data.caption_dropout else (record.caption or c.data.default_caption)
        drop_identity = bool(rng.random() < c.identity.dropout)
        boxes = composed.box_fractions[None]
        latent = to_cells(size)
        sample = {
            "index": int(k),
            "pixels": torch.from_numpy(composed.pixels).permute(2, 0, 1).float() / 127.5 - 1,
            "coverage": torch.from_numpy(composed.coverage)[None],
            "box": torch.from_numpy(boxes[0]),
            "embedding": self.embeddings[self.record_index(k)].clone(),
            "drop_identity": drop_identity,
            "caption": caption,
            "face_scale": composed.face_scale,
        }
        pose = composed.pose
        sample["pose_keypoints"] = torch.from_numpy(pose.keypoints)  # the face's pose in its box frame (float64)
        sample["pose_landmarks"] = (torch.full((68, 3), float("nan"), dtype=torch.float64)
                                    if pose.landmarks_68 is None else torch.from_numpy(pose.landmarks_68))
        if c.local.enabled:
            plan = local_plan(boxes, c.local, latent, latent)
            hint = local_hints(c.local.hint_format, [composed.pose], boxes, plan, latent, latent, c.local.working_size)
            sample["local_hint"] = torch.from_numpy(hint[0]).permute(2, 0, 1).float() / 255
        if c.global_.enabled:
            guidance = render_location_guidance(locations_of(boxes), size, size)
            sample["global_hint"] = guidance[0].permute(2, 0, 1).contiguous()
        return sample


def locations_of(boxes: np.ndarray):
    """FaceLocations of (cx, cy, w, h) fraction boxes [F, 4] (fractions fit any picture size)."""
    from realisid_core.people.locations import FaceLocations
    return FaceLocations(torch.as_tensor(np.asarray(boxes, np.float64)).reshape(-1, 4), 0, 0)


class StreamBatches(torch.utils.data.Sampler):
    """Stream positions of consecutive micro-batches, from micro-batch `start` on (endless).
    Process `rank` of `world` takes every world-th slice, so processes never share a sample."""

    def __init__(self, batch_size: int, start: int = 0, rank: int = 0, world: int = 1):
        self.batch_size, self.start, self.rank, self.world = batch_size, start, rank, world

    def __iter__(self):
        m = self.start
        while True:
            first = (m * self.world + self.rank) * self.batch_size
            yield list(range(first, first + self.batch_size))
            m += 1


def stream_loader(stream: TrainingStream, batch_size: int, start: int, rank: int = 0, world: int = 1,
                  num_workers: int = 0) -> torch.utils.data.DataLoader:
    return torch.utils.data.DataLoader(stream, batch_sampler=StreamBatches(batch_size, start, rank, world),
                                       num_workers=num_workers, persistent_workers=False,
                                       prefetch_factor=2 if num_workers else None)
