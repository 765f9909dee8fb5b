"""The evaluation's JSON (every number) and Markdown tables (runs side by side by face size, then per person)."""
from __future__ import annotations

import json
from pathlib import Path

from . import metrics


def _num(value, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _pose(value) -> str:
    return "—" if not value else " / ".join(f"{value[a]:.1f}" for a in ("yaw", "pitch", "roll"))


def _found(s: dict) -> str:
    return f"{s['found']} ({100 * s['found_rate']:.0f}%)" if s["faces"] else "0"


def _rows(label: str, summary: dict) -> list[str]:
    lines = []
    for bucket, size in list(metrics.BUCKET_LABELS.items()) + [("all", "all")]:
        s = summary[bucket]
        if not s["faces"] and bucket != "all":
            continue
        agreement = s["identity_matching_agreement"]
        lines.append(f"| {label} | {size} | {s['faces']} | {_found(s)} | {s['not_measurable']} | "
                     f"{_num(s['identity_mean'])} | {_num(s['identity_median'])} | {_num(s['held_out_mean'])} | "
                     f"{_num(s['copy_paste_mean'], 2)} | {_num(s['iou_mean'], 2)} | {_pose(s['pose_error_mean'])} | "
                     f"{_num(s['expression_error_mean'])} | {_num(s['leak_mean'])} | {s['swapped']} | "
                     f"{'—' if agreement is None else f'{100 * agreement:.0f}%'} |")
    return lines


HEADER = ("| {what} | face side | faces | found | not measurable | identity mean | identity median | held-out mean | "
          "copy-paste | location IoU | pose error yaw / pitch / roll (°) | expression error (IOD) | identity leak | "
          "swapped | identity matching agrees |", "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|")


def _problems(result: dict) -> list[str]:
    problems = [f"- **failed person** {failed}: that person is not measured" for failed in result.get("failed_people", [])]
    for name, run in result["runs"].items():
        for picture in run["pictures"]:
            where = f"**{name}** · {picture['picture']}"
            if picture.get("missing_picture"):
                problems.append(f"- {where}: picture not found in {run['folder']}")
                continue
            for f in picture["faces"]:
                probe = f.get("reference_probe") or {}
                if f["error"]:
                    continue
                if f["measurable"] is False:
                    seen = ("not found" if not probe.get("found") else
                            f"found but only {probe['self_similarity']:.3f} like itself")
                    problems.append(f"- {where} · {f['person']}: not measurable at {f['face_side']:.0f} px — the "
                                    f"recogniser cannot see this person at that size (the reference shrunk to it: "
                                    f"{seen}); {'a face was found' if f['found'] else 'no face found'}")
                elif not f["found"]:
                    problems.append(f"- {where} · {f['person']}: no face found at the intended place")
                elif f["swapped"]:
                    problems.append(f"- {where} · {f['person']}: swapped — more like {f['leak_person']} "
                                    f"({f['leak']:.3f}) than like {f['person']} ({f['identity']:.3f})")
    return problems


def markdown(result: dict) -> str:
    rec = result["recogniser"]
    lines = ["# Identity evaluation", "",
             f"Recogniser: **{rec['name']}** ({rec['file']}) from `{rec['folder']}` · detector: {rec['detector']} · "
             f"similarity: {rec['similarity']} · conditioning pack: {result['conditioning_pack']} · a face counts as "
             f"found at its place above IoU {result['min_iou']:g}.", ""]
    if rec.get("note"):
        lines += [f"> Note: {rec['note']}.", ""]
    lines += [HEADER[0].format(what="run"), HEADER[1]]
    for name, run in result["runs"].items():
        lines += _rows(name, run["summary"])
    lines += ["", "## Per person", "", HEADER[0].format(what="run · person"), HEADER[1]]
    for name, run in result["runs"].items():
        for person, summary in run["people"].items():
            lines += _rows(f"{name} · {person}", summary)
    confusions = [(name, p) for name, run in result["runs"].items() for p in run["pictures"] if p.get("confusion")]
    if confusions:
        lines += ["", "## Confusion (pictures of several people)", "",
                  "Row: the face at that person's place; column: similarity to each person's reference.", ""]
        for name, picture in confusions:
            c = picture["confusion"]
            lines += [f"**{name}** · {picture['picture']}", "", "| face of \\ reference | " + " | ".join(c["people"]) + " |",
                      "|---|" + "---:|" * len(c["people"])]
            lines += [f"| {who} | " + " | ".join(_num(v) for v in row) + " |" for who, row in zip(c["people"], c["matrix"])]
            lines.append("")
    problems = _problems(result)
    lines += ["", "## Faces not found, not measurable or swapped", ""] + (problems or ["None."])
    lines += ["", "Identity: the recogniser's similarity, face against the person's reference photo; held-out: against "
              "the person's other photo (the people file's `held_out`); copy-paste (MultiID-Bench): "
              "(d(face, held-out) − d(face, reference)) / d(reference, held-out), +1 a copy of the reference, −1 the "
              "held-out photo. Leak: the highest similarity to another person of the same picture. Not measurable: the "
              "person's reference, shrunk to the face's size, is not found or not recognised by the recogniser itself "
              "(see `python -m realisid_batch limit`). Identity matching agrees: faces matched to references by "
              "similarity alone (Hungarian) give each person the face at its place. Face side: square root of the "
              "intended box's area. Expression error: mean distance of the eye and mouth landmarks to the driving "
              "face's, in inter-ocular distances, after removing place, size and in-plane rotation.", ""]
    return "\n".join(lines)


def write(result: dict, out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "evaluation.json", "markdown": out / "evaluation.md"}
    paths["json"].write_text(json.dumps(result, indent=1), encoding="utf-8")
    paths["markdown"].write_text(markdown(result), encoding="utf-8")
    return paths
