"""Per intended face: found, identity, place, pose, expression and leak; then per face-size bucket and person.

Faces are matched to the intended people by their boxes (Hungarian matching on overlap, one face
per person); people given without a place take, among the faces left, those most like their
references (Hungarian again). A face is *swapped* when it is more like another person of the same
picture than like its own. For pictures of several people, the confusion matrix (each person's
face against every person's reference) and MultiHuman-Testbench's identity matching (faces to
references by similarity alone, Hungarian) are kept: where that matching disagrees with the
places, identities went to the wrong faces.

A person whose reference photo has no face the recogniser finds fails alone: its faces are
reported with that reason, every other person is measured.
"""
from __future__ import annotations

from pathlib import Path

import numpy as np

from . import metrics
from .faces import FaceReader, read_bgr
from .limit import probe
from .people import Person, PictureSpec
from .pictures import RunFolder
from ..errors import BatchError


def _largest(reader: FaceReader, path: Path | None, what: str):
    """(face, photo) of the largest face of a photo, or (None, None) and the reason."""
    if path is None:
        return None, None, None
    try:
        faces = reader.faces(path)
    except BatchError as exc:
        return None, None, f"{what} {path}: {exc}"
    if not faces:
        return None, None, f"no face found in the {what} {path}"
    return max(faces, key=lambda f: f.area), path, None


class PersonSignals:
    """One person's reference embedding, held-out embedding, driving face and measurability per face size."""

    def __init__(self, reader: FaceReader, person: Person):
        self.reader, self.person = reader, person
        self.reference, self._photo, self.error = _largest(reader, person.reference, "reference photo")
        self.embedding = None if self.reference is None else self.reference.embedding
        held, _, self.held_out_error = _largest(reader, person.held_out, "held-out photo")
        self.held_out = None if held is None else held.embedding
        self.driving, _, self.pose_error = _largest(reader, person.pose, "pose photo")
        self._probes: dict[int, object] = {}

    def probe(self, box, width: int | None, height: int | None):
        """Can the recogniser find and recognise this person's reference put at `box` of a `width`×`height`
        picture? (cached)"""
        if self.reference is None or box is None or width is None:
            return None
        key = (width, height) + tuple(int(round(float(v))) for v in box)
        if key not in self._probes:
            self._probes[key] = probe(self.reader, read_bgr(self._photo), self.reference,
                                      max(4, int(round(metrics.face_side(box)))), key[2:], (width, height))
        return self._probes[key]


def _face_record(reader: FaceReader, person: Person, face, overlap, intended, signals: PersonSignals,
                 others: dict[str, PersonSignals], size: tuple = (None, None)) -> dict:
    record = {"person": person.name, "found": face is not None,
              "intended_box": None if intended is None else [round(float(v), 2) for v in intended]}
    side = metrics.face_side(intended) if intended is not None else (metrics.face_side(face.box) if face else None)
    record["face_side"] = None if side is None else round(side, 2)
    record["bucket"] = None if side is None else metrics.bucket(side)
    record.update(detected_box=None, detection_score=None, iou=overlap, identity=None, held_out=None,
                  copy_paste=None, leak=None, leak_person=None, swapped=False, pose_error=None,
                  expression_error=None, error=signals.error, measurable=None, reference_probe=None)
    check = signals.probe(intended if intended is not None else (None if face is None else face.box), *size)
    if check is not None:
        record["measurable"], record["reference_probe"] = check.measurable, check.as_dict()
    if face is None:
        return record
    record["detected_box"] = [round(float(v), 2) for v in face.box]
    record["detection_score"] = round(float(face.score), 4)
    if intended is not None and overlap is None:
        record["iou"] = metrics.iou(intended, face.box)
    if signals.embedding is None:
        return record
    record["identity"] = reader.similarity(face.embedding, signals.embedding)
    if signals.held_out is not None:
        record["held_out"] = reader.similarity(face.embedding, signals.held_out)
        record["copy_paste"] = metrics.copy_paste(reader.distance(face.embedding, signals.held_out),
                                                  reader.distance(face.embedding, signals.embedding),
                                                  reader.distance(signals.embedding, signals.held_out))
    leaks = {name: reader.similarity(face.embedding, s.embedding) for name, s in others.items() if s.embedding is not None}
    if leaks:
        record["leak_person"], record["leak"] = max(leaks.items(), key=lambda kv: kv[1])
        # a face the recogniser cannot resolve at this size says nothing about who it is
        record["swapped"] = record["leak"] > record["identity"] and record["measurable"] is not False
    driving = signals.driving
    if driving is not None:
        if face.pose is not None and driving.pose is not None:
            record["pose_error"] = metrics.pose_error(face.pose, driving.pose)
        if face.landmarks_3d_68 is not None and driving.landmarks_3d_68 is not None:
            record["expression_error"] = metrics.expression_error(face.landmarks_3d_68, driving.landmarks_3d_68)
    return record


def _similarities(reader: FaceReader, faces: list, people: list[PersonSignals]) -> np.ndarray:
    """[faces, people] similarity of every face to every reference (-inf where a reference has no face)."""
    return np.array([[reader.similarity(f.embedding, s.embedding) if s.embedding is not None else -np.inf
                      for s in people] for f in faces]).reshape(len(faces), len(people))


def _confusion(reader: FaceReader, spec: PictureSpec, faces: list, matched: dict, signals: dict) -> dict | None:
    """Several people: each person's face against every reference, and the identity-only matching."""
    if len(spec.people) < 2:
        return None
    people = [signals[p.name] for p in spec.people]
    sims = _similarities(reader, faces, people)
    matrix = [[None if j is None or not np.isfinite(sims[j, k]) else round(float(sims[j, k]), 4)
               for k in range(len(people))] for j in (matched.get(i, (None, None))[0] for i in range(len(people)))]
    by_identity = {col: row for row, (col, _) in metrics.assign(sims, -1e9).items()}  # person -> face
    agrees = {p.name: (None if i not in matched or i not in by_identity else by_identity[i] == matched[i][0])
              for i, p in enumerate(spec.people)}
    return {"people": [p.name for p in spec.people], "matrix": matrix,
            "identity_matching": {p.name: by_identity.get(i) for i, p in enumerate(spec.people)},
            "identity_matching_agrees": agrees}


def evaluate_picture(reader: FaceReader, path: Path, spec: PictureSpec, signals: dict[str, PersonSignals],
                     min_iou: float) -> dict:
    faces = reader.faces(path)
    if faces:
        width, height = faces[0].image_width, faces[0].image_height
    else:
        height, width = read_bgr(path).shape[:2]
    intended = [p.intended_box(width, height) for p in spec.people]
    placed = [i for i, box in enumerate(intended) if box is not None]
    matched = {placed[k]: v for k, v in
               metrics.match_by_box([intended[i] for i in placed], [f.box for f in faces], min_iou).items()}
    used = {j for j, _ in matched.values()}
    free = [j for j in range(len(faces)) if j not in used]
    unplaced = [i for i in range(len(spec.people)) if intended[i] is None]
    if free and unplaced:  # people without a place: the faces left most like them
        sims = _similarities(reader, [faces[j] for j in free], [signals[spec.people[i].name] for i in unplaced])
        for col, (row, _) in metrics.assign(sims.T, -1e9).items():
            matched[unplaced[col]] = (free[row], None)
            used.add(free[row])
    records = []
    for i, person in enumerate(spec.people):
        j, overlap = matched.get(i, (None, None))
        others = {p.name: signals[p.name] for p in spec.people if p.name != person.name}
        record = _face_record(reader, person, faces[j] if j is not None else None, overlap, intended[i],
                              signals[person.name], others, (width, height))
        records.append(record)
    confusion = _confusion(reader, spec, faces, matched, signals)
    if confusion is not None:
        for record in records:
            record["identity_matching_agrees"] = confusion["identity_matching_agrees"][record["person"]]
    return {"picture": spec.picture, "file": str(path), "width": width, "height": height,
            "faces_detected": len(faces), "unexpected_faces": len(faces) - len(used), "faces": records,
            "confusion": confusion}


def evaluate_run(reader: FaceReader, run: RunFolder, specs: list[PictureSpec], min_iou: float,
                 signals: dict[tuple, PersonSignals] | None = None) -> dict:
    """Every picture of the people file in one run's folder; a picture not found counts its people as not found.
    `signals`: per person, shared between runs (each reference analysed once)."""
    signals = {} if signals is None else signals
    pictures = []
    for spec in specs:
        for p in spec.people:
            if _key(p) not in signals:
                signals[_key(p)] = PersonSignals(reader, p)
        per_person = {p.name: signals[_key(p)] for p in spec.people}
        files = run.files(spec.picture)
        if not files:
            pictures.append({"picture": spec.picture, "file": None, "missing_picture": True, "confusion": None,
                             "faces": [_face_record(reader, p, None, None, p.box, per_person[p.name], {})
                                       for p in spec.people]})
            continue
        for path in files:
            pictures.append(evaluate_picture(reader, path, spec, per_person, min_iou))
    faces = [f for p in pictures for f in p["faces"]]
    return {"folder": str(run.folder), "pictures": pictures, "summary": summarise(faces),
            "people": {name: summarise([f for f in faces if f["person"] == name])
                       for name in dict.fromkeys(f["person"] for f in faces)}}


def _key(person: Person) -> tuple:
    return (str(person.reference), str(person.held_out), str(person.pose))


def failed_people(signals: dict[tuple, PersonSignals]) -> list[str]:
    """'name: reason' of every person whose reference photo gave no face."""
    return sorted({f"{s.person.name}: {s.error}" for s in signals.values() if s is not None and s.error})


def summarise(faces: list[dict]) -> dict:
    """Per face-size bucket and overall: counts, found rate and the means of every measure."""
    groups = {name: [f for f in faces if f["bucket"] == name] for name, _ in metrics.BUCKETS}
    groups["all"] = faces
    out = {}
    for name, group in groups.items():
        found = [f for f in group if f["found"]]
        measured = [f for f in found if f["measurable"] is not False]
        poses = [f["pose_error"] for f in found if f["pose_error"]]
        agreements = [f.get("identity_matching_agrees") for f in found if f.get("identity_matching_agrees") is not None]
        out[name] = {
            "faces": len(group), "found": len(found), "found_rate": len(found) / len(group) if group else None,
            "not_measurable": sum(f["measurable"] is False for f in group),
            "failed": sum(bool(f["error"]) for f in group),
            "identity_mean": metrics.mean(f["identity"] for f in measured),
            "identity_median": metrics.median(f["identity"] for f in measured),
            "held_out_mean": metrics.mean(f["held_out"] for f in measured),
            "copy_paste_mean": metrics.mean(f["copy_paste"] for f in measured),
            "iou_mean": metrics.mean(f["iou"] for f in found),
            "pose_error_mean": {axis: metrics.mean(p[axis] for p in poses) for axis in ("yaw", "pitch", "roll")}
            if poses else None,
            "expression_error_mean": metrics.mean(f["expression_error"] for f in found),
            "leak_mean": metrics.mean(f["leak"] for f in measured),
            "swapped": sum(f["swapped"] for f in found),
            "identity_matching_agreement": sum(agreements) / len(agreements) if agreements else None,
        }
    return out
