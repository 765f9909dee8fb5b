"""The evaluation's JSON (every number) and Markdown table (runs side by side, by face size)."""
from __future__ import annotations

import json
from pathlib import Path

from . import metrics


def _num(value, digits: int = 3) -> str:
    return "—" if value is None else f"{value:.{digits}f}"


def _pose(value) -> str:
    return "—" if not value else " / ".join(f"{value[a]:.1f}" for a in ("yaw", "pitch", "roll"))


def markdown(result: dict) -> str:
    rec = result["recogniser"]
    lines = ["# Identity evaluation", "",
             f"Recogniser: **{rec['pack']}** ({rec['file']}) from `{rec['folder']}` · conditioning pack: "
             f"{result['conditioning_pack']} · a face counts as found at its place above IoU {result['min_iou']:g}.", ""]
    if rec.get("note"):
        lines += [f"> Note: {rec['note']}.", ""]
    lines += ["| run | face side | faces | found | identity mean | identity median | location IoU | "
              "pose error yaw / pitch / roll (°) | expression error (IOD) | identity leak | swapped |",
              "|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for name, run in result["runs"].items():
        for bucket, label in list(metrics.BUCKET_LABELS.items()) + [("all", "all")]:
            s = run["summary"][bucket]
            if not s["faces"] and bucket != "all":
                continue
            found = f"{s['found']} ({100 * s['found_rate']:.0f}%)" if s["faces"] else "0"
            lines.append(f"| {name} | {label} | {s['faces']} | {found} | {_num(s['identity_mean'])} | "
                         f"{_num(s['identity_median'])} | {_num(s['iou_mean'], 2)} | {_pose(s['pose_error_mean'])} | "
                         f"{_num(s['expression_error_mean'])} | {_num(s['leak_mean'])} | {s['swapped']} |")
    problems = []
    for name, run in result["runs"].items():
        for picture in run["pictures"]:
            where = f"**{name}** · {picture['picture']}"
            if picture.get("missing_picture"):
                problems.append(f"- {where}: picture not found in {run['folder']}")
                continue
            for f in picture["faces"]:
                if not f["found"]:
                    problems.append(f"- {where} · {f['person']}: no face found at the intended place")
                elif f["swapped"]:
                    problems.append(f"- {where} · {f['person']}: swapped — more like {f['leak_person']} "
                                    f"({f['leak']:.3f}) than like {f['person']} ({f['identity']:.3f})")
    lines += ["", "## Faces not found or swapped", ""] + (problems or ["None."])
    lines += ["", "Identity: cosine of the recogniser's embeddings, face against the person's reference photo. "
              "Leak: the highest similarity to another person of the same picture. Face side: square root of the "
              "intended box's area. Expression error: mean distance of the eye and mouth landmarks to the driving "
              "face's, in inter-ocular distances, after removing place, size and in-plane rotation.", ""]
    return "\n".join(lines)


def write(result: dict, out: Path) -> dict[str, Path]:
    out.mkdir(parents=True, exist_ok=True)
    paths = {"json": out / "evaluation.json", "markdown": out / "evaluation.md"}
    paths["json"].write_text(json.dumps(result, indent=1), encoding="utf-8")
    paths["markdown"].write_text(markdown(result), encoding="utf-8")
    return paths
