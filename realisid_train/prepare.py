"""Data preparation: every photo of a folder through the pack's face analysis, one usable face kept.

A photo is kept when exactly one face is usable (detection score ≥ min_score and box side ≥
min_face_size pixels); smaller faces elsewhere in it are ignored (counted as `other_faces`).
Every other photo is dropped with its reason counted and written to dropped.jsonl: a corrupt
file, a photo without a face or a group photo is reported, never a crash.

Resumable: each photo's signature (size and modification time of the photo and of its caption)
is recorded, so a second run analyses only new or changed photos and forgets deleted ones.
Changing the analysis settings (pack, sizes, score) re-analyses everything. Results are flushed
every `flush_every` photos, so an interrupted run loses at most that much work.

Parallel where the analyzer allows: decoding and the recognition / landmark models run in
`workers` threads (onnxruntime releases the GIL); the detector runs one picture at a time (the
analyzer's lock: the detection threshold is detector state).
"""
from __future__ import annotations

import hashlib
import logging
import os
import time
from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from dataclasses import asdict, dataclass

import numpy as np

from realisid_core.faces.images import MIN_SIDE

from .manifest import DROPPED, MANIFEST, STATE, read_json, read_jsonl, write_json, write_jsonl, write_shard
from .photos import UnreadablePhoto, list_photos, load_photo, read_caption, signature

log = logging.getLogger("realisid_train")

REASONS = {
    "unreadable": "not a picture that can be decoded (corrupt, truncated or another format)",
    "picture too small": f"fewer than {MIN_SIDE} pixels on a side",
    "no face": "no face found at the minimum detection score",
    "face too small": "faces found, none as large as the minimum face size",
    "several faces": "more than one usable face (a group photo)",
    "analysis failed": "the face analysis raised an error on this picture",
}


@dataclass(frozen=True)
class PrepareSettings:
    pack: str = "antelopev2"          # insightface pack in <insightface root>/models/<pack>
    min_face_size: int = 128          # face box's longer side, pixels
    min_score: float = 0.5            # detection score (also the detector's threshold)
    detection_size: int = 640
    provider: str = "auto"            # onnxruntime provider: auto | CUDA | ROCm | CoreML | CPU
    workers: int = 4
    flush_every: int = 500

    def analysis_key(self) -> dict:
        """The settings a photo's verdict depends on (a change re-analyses every photo)."""
        return {"pack": self.pack, "min_face_size": self.min_face_size, "min_score": self.min_score,
                "detection_size": self.detection_size}


@dataclass
class PrepareSummary:
    photos: int = 0           # photos in the folder now
    analysed: int = 0         # analysed in this run (new or changed)
    unchanged: int = 0        # skipped: analysed by an earlier run, unchanged since
    removed: int = 0          # in the manifest before, gone from the folder now
    kept: int = 0             # in the manifest now
    kept_new: int = 0         # of them, analysed in this run
    dropped: dict | None = None       # reason → count, all photos now dropped
    dropped_new: dict | None = None   # reason → count, of this run's photos
    seconds: float = 0.0

    def lines(self) -> list[str]:
        out = [f"photos: {self.photos} ({self.analysed} analysed now, {self.unchanged} unchanged since the last run"
               + (f", {self.removed} gone from the folder" if self.removed else "") + ")",
               f"kept: {self.kept} ({self.kept_new} new)",
               f"dropped: {sum((self.dropped or {}).values())}"]
        for reason, count in sorted((self.dropped or {}).items(), key=lambda kv: -kv[1]):
            new = (self.dropped_new or {}).get(reason, 0)
            out.append(f"  {reason}: {count} ({new} new) — {REASONS.get(reason, '')}")
        out.append(f"time: {self.seconds:.1f} s")
        return out


class PrepareInterrupted(Exception):
    """Ctrl-C during the analysis: what was analysed is saved (the next run goes on from there)."""

    def __init__(self, summary: PrepareSummary, left: int):
        super().__init__(f"stopped (Ctrl-C): {summary.analysed} photos analysed in this run are saved "
                         f"({summary.kept_new} of them kept, {summary.kept} kept in all); {left} photos left: run the "
                         "same command again to go on from there")
        self.summary, self.left = summary, left


def record_id(path: str, sig: list) -> str:
    return hashlib.sha1(f"{path}\n{sig}".encode()).hexdigest()[:16]


def _dropped(path, sig, reason, detail=""):
    return {"path": path, "signature": sig, "reason": reason, "detail": detail}


def _points(a) -> list:
    return np.round(np.asarray(a, np.float64), 3).tolist()


def analyse_photo(analyzer, root: str, rel: str, sig: list, settings: PrepareSettings):
    """(manifest row without its embedding's shard, embedding) for a kept photo, or (dropped row, None)."""
    path = os.path.join(root, rel)
    try:
        rgb = load_photo(path)
    except UnreadablePhoto as exc:
        return _dropped(rel, sig, "unreadable", str(exc)), None
    except OSError as exc:  # vanished or unreadable file: report it, carry on
        return _dropped(rel, sig, "unreadable", f"{type(exc).__name__}: {exc}"), None
    height, width = rgb.shape[:2]
    if min(height, width) < MIN_SIDE:
        return _dropped(rel, sig, "picture too small", f"{width}×{height}"), None
    try:
        faces = analyzer.analyze(np.ascontiguousarray(rgb[..., ::-1]), threshold=settings.min_score)
    except Exception as exc:  # one bad picture never stops the run
        log.debug("analysis of %s failed", path, exc_info=True)
        return _dropped(rel, sig, "analysis failed", f"{type(exc).__name__}: {exc}"), None
    if not faces:
        return _dropped(rel, sig, "no face"), None

    def side(face):
        x0, y0, x1, y1 = (float(v) for v in face.box)
        return max(x1 - x0, y1 - y0)
    usable = [f for f in faces if side(f) >= settings.min_face_size and f.score >= settings.min_score]
    if not usable:
        largest = max(side(f) for f in faces)
        return _dropped(rel, sig, "face too small", f"largest face {largest:.0f} px < {settings.min_face_size}"), None
    if len(usable) > 1:
        return _dropped(rel, sig, "several faces", f"{len(usable)} usable faces"), None
    face = usable[0]
    pose = face.pose
    if pose is None and face.landmarks_3d_68 is not None:
        from realisid_core.faces.pose import head_pose_68
        pose = head_pose_68(face.landmarks_3d_68)
    rid = record_id(rel, sig)
    row = {"id": rid, "path": rel, "signature": sig, "width": width, "height": height, "caption": read_caption(path),
           "box": _points(face.box), "score": round(float(face.score), 4), "keypoints": _points(face.keypoints),
           "landmarks_68": None if face.landmarks_3d_68 is None else _points(face.landmarks_3d_68),
           "pose": None if pose is None else _points(pose), "pack": face.pack, "other_faces": len(faces) - 1,
           "embedding": {"shard": None, "key": rid}}
    return row, np.asarray(face.embedding, np.float32)


def load_analyzer(insightface_root: str, settings: PrepareSettings):
    """The pack's analyzer (realisid_core.faces.analyzer), found in <root>/models/<pack> as the nodes find it."""
    from realisid_core.faces.analyzer import get_analyzer
    from realisid_core.faces.packs import find_pack_folder

    folder = find_pack_folder([insightface_root], settings.pack)
    return get_analyzer(folder, settings.pack, settings.provider, settings.detection_size)


def prepare(photos_root: str, data_dir: str, insightface_root: str, settings: PrepareSettings = PrepareSettings(),
            progress: bool = True, analyzer=None) -> PrepareSummary:
    """Analyse the new and changed photos under `photos_root` into the data folder `data_dir`."""
    from tqdm.auto import tqdm

    start = time.perf_counter()
    photos_root, data_dir = os.path.abspath(photos_root), os.path.abspath(data_dir)
    if not os.path.isdir(photos_root):
        raise FileNotFoundError(f"no photo folder {photos_root}")
    os.makedirs(data_dir, exist_ok=True)
    state_path, manifest_path, dropped_path = (os.path.join(data_dir, n) for n in (STATE, MANIFEST, DROPPED))
    state = read_json(state_path) or {}
    kept_rows = {r["path"]: r for r in read_jsonl(manifest_path)}
    dropped_rows = {r["path"]: r for r in read_jsonl(dropped_path)}
    if state and (state.get("settings") != settings.analysis_key() or state.get("photos") != photos_root):
        log.info("the photo folder or the analysis settings changed since the last run: every photo is analysed again")
        kept_rows, dropped_rows = {}, {}

    photos = list_photos(photos_root, exclude=(data_dir,))
    present = set(photos)
    summary = PrepareSummary(photos=len(photos))
    summary.removed = sum(1 for p in list(kept_rows) + list(dropped_rows) if p not in present)
    kept_rows = {p: r for p, r in kept_rows.items() if p in present}
    dropped_rows = {p: r for p, r in dropped_rows.items() if p in present}
    todo = []
    for rel in photos:
        sig = signature(os.path.join(photos_root, rel)).as_list()
        previous = kept_rows.get(rel) or dropped_rows.get(rel)
        if previous is not None and previous.get("signature") == sig:
            summary.unchanged += 1
        else:
            todo.append((rel, sig))

    def flush(pending: dict[str, np.ndarray]):
        if pending:
            shard = write_shard(data_dir, pending)
            for rel_path in [p for p, r in kept_rows.items() if r["embedding"]["shard"] is None]:
                kept_rows[rel_path]["embedding"]["shard"] = shard
            pending.clear()
        write_jsonl(manifest_path, [kept_rows[p] for p in sorted(kept_rows)])
        write_jsonl(dropped_path, [dropped_rows[p] for p in sorted(dropped_rows)])
        write_json(state_path, {"photos": photos_root, "settings": settings.analysis_key(),
                                "summary": asdict(summary)})

    new_reasons: Counter = Counter()
    if todo:
        analyzer = analyzer or load_analyzer(insightface_root, settings)
        pending: dict[str, np.ndarray] = {}
        pool = ThreadPoolExecutor(max_workers=max(1, settings.workers))
        try:
            with tqdm(total=len(todo), unit="photo", desc="analysing", disable=not progress) as bar:
                for begin in range(0, len(todo), max(1, settings.flush_every)):
                    chunk = todo[begin:begin + max(1, settings.flush_every)]
                    results = pool.map(lambda item: analyse_photo(analyzer, photos_root, item[0], item[1], settings),
                                       chunk)
                    for (rel, _), (row, embedding) in zip(chunk, results):
                        kept_rows.pop(rel, None)
                        dropped_rows.pop(rel, None)
                        if embedding is None:
                            dropped_rows[rel] = row
                            new_reasons[row["reason"]] += 1
                            log.debug("dropped %s: %s %s", rel, row["reason"], row["detail"])
                        else:
                            kept_rows[rel] = row
                            pending[row["id"]] = embedding
                            summary.kept_new += 1
                        summary.analysed += 1
                        bar.update(1)
                    flush(pending)
        except KeyboardInterrupt:
            pool.shutdown(wait=False, cancel_futures=True)  # the photos not started are left for the next run
            summary.kept = len(kept_rows)
            flush(pending)
            raise PrepareInterrupted(summary, len(todo) - summary.analysed) from None
        pool.shutdown(wait=True)
    summary.kept = len(kept_rows)
    summary.dropped = dict(Counter(r["reason"] for r in dropped_rows.values()))
    summary.dropped_new = dict(new_reasons)
    summary.seconds = time.perf_counter() - start
    flush({})
    return summary
