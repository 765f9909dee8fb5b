"""Per intended face: found, identity, place, pose, expression and leak; then per face-size bucket.

Faces are matched to the intended people by their boxes (best overlap first, one face per
person); people given without a place take the remaining face most like their reference. A
face is *swapped* when it is more like another person of the same picture than like its own.
"""
from __future__ import annotations

from pathlib import Path

from . import metrics
from .faces import FaceReader, read_bgr
from .people import Person, PictureSpec
from .pictures import RunFolder


def _person_signals(reader: FaceReader, person: Person) -> dict:
    """The reference embedding and the driving face (pose, landmarks) of one person."""
    ref = reader.largest(person.reference)
    driving = reader.largest(person.pose) if person.pose else None
    return {"embedding": ref.embedding, "driving": driving}


def _face_record(person: Person, face, overlap, intended, signals: dict, others: dict[str, dict]) -> dict:
    record = {"person": person.name, "found": face is not None,
              "intended_box": None if intended is None else [round(float(v), 2) for v in intended]}
    side = metrics.face_side(intended) if intended is not None else (metrics.face_side(face.box) if face else None)
    record["face_side"] = None if side is None else round(side, 2)
    record["bucket"] = None if side is None else metrics.bucket(side)
    record.update(detected_box=None, detection_score=None, iou=overlap, identity=None, leak=None, leak_person=None,
                  swapped=False, pose_error=None, expression_error=None)
    if face is None:
        return record
    record["detected_box"] = [round(float(v), 2) for v in face.box]
    record["detection_score"] = round(float(face.score), 4)
    if intended is not None and overlap is None:
        record["iou"] = metrics.iou(intended, face.box)
    record["identity"] = metrics.cosine(face.embedding, signals["embedding"])
    leaks = {name: metrics.cosine(face.embedding, s["embedding"]) for name, s in others.items()}
    if leaks:
        record["leak_person"], record["leak"] = max(leaks.items(), key=lambda kv: kv[1])
        record["swapped"] = record["leak"] > record["identity"]
    driving = signals["driving"]
    if driving is not None:
        if face.pose is not None and driving.pose is not None:
            record["pose_error"] = metrics.pose_error(face.pose, driving.pose)
        if face.landmarks_3d_68 is not None and driving.landmarks_3d_68 is not None:
            record["expression_error"] = metrics.expression_error(face.landmarks_3d_68, driving.landmarks_3d_68)
    return record


def evaluate_picture(reader: FaceReader, path: Path, spec: PictureSpec, signals: dict[str, dict], min_iou: float) -> dict:
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
    for i, person in enumerate(spec.people):  # people without a place: the most similar face left
        if intended[i] is None:
            free = [j for j in range(len(faces)) if j not in used]
            if free:
                j = max(free, key=lambda j: metrics.cosine(faces[j].embedding, signals[person.name]["embedding"]))
                matched[i] = (j, None)
                used.add(j)
    records = []
    for i, person in enumerate(spec.people):
        j, overlap = matched.get(i, (None, None))
        others = {p.name: signals[p.name] for p in spec.people if p.name != person.name}
        records.append(_face_record(person, faces[j] if j is not None else None, overlap, intended[i],
                                    signals[person.name], others))
    return {"picture": spec.picture, "file": str(path), "width": width, "height": height,
            "faces_detected": len(faces), "unexpected_faces": len(faces) - len(used), "faces": records}


def evaluate_run(reader: FaceReader, run: RunFolder, specs: list[PictureSpec], min_iou: float) -> dict:
    """Every picture of the people file in one run's folder; a picture not found counts its people as not found."""
    pictures = []
    for spec in specs:
        per_person = {p.name: _person_signals(reader, p) for p in spec.people}
        files = run.files(spec.picture)
        if not files:
            pictures.append({"picture": spec.picture, "file": None, "missing_picture": True,
                             "faces": [_face_record(p, None, None, p.box, per_person[p.name], {}) for p in spec.people]})
            continue
        for path in files:
            pictures.append(evaluate_picture(reader, path, spec, per_person, min_iou))
    faces = [f for p in pictures for f in p["faces"]]
    return {"folder": str(run.folder), "pictures": pictures, "summary": summarise(faces)}


def summarise(faces: list[dict]) -> dict:
    """Per face-size bucket and overall: counts, found rate and the means of every measure."""
    groups = {name: [f for f in faces if f["bucket"] == name] for name, _ in metrics.BUCKETS}
    groups["all"] = faces
    out = {}
    for name, group in groups.items():
        found = [f for f in group if f["found"]]
        poses = [f["pose_error"] for f in found if f["pose_error"]]
        out[name] = {
            "faces": len(group), "found": len(found), "found_rate": len(found) / len(group) if group else None,
            "identity_mean": metrics.mean(f["identity"] for f in found),
            "identity_median": metrics.median(f["identity"] for f in found),
            "iou_mean": metrics.mean(f["iou"] for f in found),
            "pose_error_mean": {axis: metrics.mean(p[axis] for p in poses) for axis in ("yaw", "pitch", "roll")}
            if poses else None,
            "expression_error_mean": metrics.mean(f["expression_error"] for f in found),
            "leak_mean": metrics.mean(f["leak"] for f in found),
            "swapped": sum(f["swapped"] for f in found),
        }
    return out
