"""Rows of the table (absolute ms and ratios from the same run), the targets, markdown, JSON."""
from __future__ import annotations

import json

from .timing import paired_ratio

GLUE_TARGET = 0.03
BATCHING_TARGET = 0.70  # batched F=4 / 4 sequential forwards, on a GPU
BATCHING_FACES = 4
PASS_TARGET = 1.0  # RealisID pass / detailer route


def _row(section, measurement, ms=None, ratio=None, of="", target="", status=""):
    return {"section": section, "measurement": measurement, "ms": ms, "ratio": ratio, "ratio_of": of,
            "target": target, "status": status}


def _status(ok: bool) -> str:
    return "met" if ok else "MISSED"


def crop_rows(crops: dict, device: str) -> list[dict]:
    """Crops per ControlNet forward: ms per crop against one crop per forward, activation memory."""
    rows = []
    size = crops["working_size"]
    for k, t in sorted(crops.get("time", {}).items(), key=lambda kv: int(kv[0])):
        rows.append(_row("crops", f"ControlNet forward of {k} crop(s) at {size}, ms per crop", t["ms_per_crop"],
                         t["per_crop_ratio"], "ms per crop with 1 crop per forward"))
        if "per_crop_ratio_fastest" in t:
            rows.append(_row("crops", f"ControlNet forward of {k} crop(s) at {size}, fastest run, ms per crop",
                             t["fastest_ms"] / int(k), t["per_crop_ratio_fastest"],
                             "fastest ms per crop with 1 crop per forward"))
    for where, label in (("device_memory", f"{device}, ComfyUI's attention there"),
                         ("meta_materialised_attention", "counted, whole attention matrix"),
                         ("meta_fused_attention", "counted, fused attention as on GPU")):
        mem = crops.get(where)
        if not mem:
            continue
        for k, peak in sorted(mem["peak_bytes"].items(), key=lambda kv: int(kv[0])):
            rows.append(_row("crops", f"activations of {k} crop(s) at {size} ({label}) (MiB)", peak / 2**20))
        rows.append(_row("crops", f"activations per crop at {size} ({label}) (MiB)", mem["bytes_per_crop"] / 2**20,
                         mem["factor"], "factor: bytes / (size² × channels × itemsize)"))
    return rows


def build_rows(results: dict) -> list[dict]:
    """Every figure as a row; each ratio divides two medians of this same run."""
    if results["settings"].get("crops_only"):
        return crop_rows(results["crops"], results["environment"]["device"])
    step, gpu = results["per_step"], results["environment"]["device"].startswith("cuda")
    unet = step["unet"]["median_ms"]
    rows = [_row("step", "U-Net alone", unet, 1.0, "U-Net"),
            _row("step", "U-Net + global branch", step["unet_global"]["median_ms"],
                 paired_ratio(step["unet_global"], step["unet"]), "U-Net")]
    for faces, local in sorted(step["local"].items(), key=lambda kv: int(kv[0])):
        b, s, g = local["batched"]["median_ms"], local["sequential"]["median_ms"], local["glue"]
        batching = paired_ratio(local["batched"], local["sequential"])
        rows.append(_row("step", f"local branch, F={faces}, batched ({local['batched']['forwards']} forward)", b,
                         b / unet, "U-Net"))
        target = ""
        status = ""
        if int(faces) == BATCHING_FACES:
            target = f"≤ {BATCHING_TARGET:.2f}" + ("" if gpu else " (GPU target)")
            status = _status(batching <= BATCHING_TARGET)
        rows.append(_row("step", f"local branch, F={faces}, sequential ({local['sequential']['forwards']} forwards)",
                         s, batching, "batched / sequential", target, status))
        rows.append(_row("step", f"glue (crop, hints, paste, merge), F={faces}", g["median_ms"], g["share"],
                         "share of the local branch", f"≤ {GLUE_TARGET:.0%}", _status(g["share"] <= GLUE_TARGET)))
    p = results["passes"]
    rows.append(_row("pass", f"base pass (U-Net + 1 ControlNet), {results['settings']['steps']} steps",
                     p["base"]["median_ms"], p["base"]["median_ms"] / unet, "U-Net step"))
    for faces in sorted(p["realisid"], key=int):
        r, d = p["realisid"][faces]["median_ms"], p["detailer_route"][faces]["median_ms"]
        ratio = paired_ratio(p["realisid"][faces], p["detailer_route"][faces])
        rows.append(_row("pass", f"detailer route, F={faces}: base pass + {faces} face pass(es)", d,
                         d / p["base"]["median_ms"], "base pass"))
        rows.append(_row("pass", f"RealisID pass, F={faces} (U-Net + global + local)", r, ratio,
                         "RealisID / detailer route", f"< {PASS_TARGET:.2f}", _status(ratio < PASS_TARGET)))
    mem = results.get("memory")
    if mem:
        first = None
        for faces in sorted(mem["bytes"], key=int):
            row = mem["bytes"][faces]
            for mode in ("batched", "sequential"):
                value = row[mode]
                if value is None:
                    continue
                if mode == "batched" and first is None:
                    first = max(value, 1)
                rows.append(_row("memory", f"local branch peak, F={faces}, {mode} (MiB)", value / 2**20,
                                 None if first is None else value / first, "batched F=1"))
            if row.get("batched") and row.get("sequential"):
                rows.append(_row("memory", f"local branch peak, F={faces}, batched / sequential", None,
                                 row["batched"] / row["sequential"], "sequential peak"))
    if results.get("crops"):
        rows += crop_rows(results["crops"], results["environment"]["device"])
    share = results.get("sharing")
    if share:
        rows.append(_row("sharing", "one file loaded twice by ComfyUI's ControlNet loader",
                         status="one copy" if share["loader_two_loads_share_weights"] else "TWO copies"))
        rows.append(_row("sharing", "RealisID nodes given one loaded ControlNet",
                         status="one copy" if share["nodes_on_one_loaded_controlnet_share_weights"] else "copies"))
    fa = results.get("face_analysis")
    if fa:
        if fa.get("status") == "measured":
            rows.append(_row("faces", f"face analysis, {fa['picture']}, CPU (images/s)", fa["images_per_s"],
                             status="one analyzer" if fa["two_loads_same_analyzer"] else "TWO analyzers"))
        else:
            rows.append(_row("faces", "face analysis throughput", status=fa["status"]))
    return rows


def ratios(rows: list[dict]) -> dict:
    return {r["measurement"]: r["ratio"] for r in rows if r["ratio"] is not None}


def _fmt(value, kind):
    if value is None:
        return ""
    if kind == "share":
        return f"{value:.1%}"
    if kind == "factor":
        return f"{value:.1f}"
    if kind == "ratio":
        return f"{value:.2f}×"
    return f"{value:.1f}" if value < 1000 else f"{value:,.0f}"


def _kind(ratio_of: str) -> str:
    return "share" if "share" in ratio_of else "factor" if ratio_of.startswith("factor") else "ratio"


def markdown(rows: list[dict]) -> str:
    lines = ["| Measurement | ms (or unit) | Ratio | Ratio of | Target | Status |",
             "|---|---:|---:|---|---|---|"]
    for r in rows:
        lines.append(f"| {r['measurement']} | {_fmt(r['ms'], 'ms')} | {_fmt(r['ratio'], _kind(r['ratio_of']))} | "
                     f"{r['ratio_of']} | {r['target']} | {r['status']} |")
    return "\n".join(lines)


def write_json(results: dict, rows: list[dict], path: str) -> None:
    payload = dict(results, rows=rows, ratios=ratios(rows))
    with open(path, "w") as f:
        json.dump(payload, f, indent=2, default=str)
