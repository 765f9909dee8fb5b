"""`python -m realisid_batch evaluate`: runs compared side by side, written as JSON, Markdown and a PNG plot."""
from __future__ import annotations

import importlib.util
from pathlib import Path

from ..errors import BatchError
from . import metrics, report
from .evaluate import evaluate_run
from .faces import FaceReader, choose_recogniser, default_insightface_roots
from .people import read_people
from .pictures import RunFolder, parse_run
from .plot import plot


def evaluate(people: str, runs: list[str], out: str, recogniser: str = "auto", conditioning_pack: str = "antelopev2",
             insightface_roots: list[str] | None = None, provider: str = "auto", min_iou: float = 0.1) -> dict:
    """Evaluate every run; write evaluation.json, evaluation.md and identity_vs_face_size.png into `out`."""
    if importlib.util.find_spec("realisid_core") is None:
        raise BatchError("the evaluation needs the pack's realisid_core (its face analysis): run it from the "
                         "ComfyUI-RealisID folder, or put that folder on PYTHONPATH")
    specs = read_people(people)
    named = [parse_run(r) for r in runs]
    names = [n for n, _ in named]
    if len(set(names)) != len(names):
        raise BatchError(f"runs need different names ({', '.join(names)}): write --run NAME=FOLDER")
    for name, folder in named:
        if not folder.is_dir():
            raise BatchError(f"run '{name}': {folder} is not a folder")
    chosen = choose_recogniser(recogniser, conditioning_pack, insightface_roots or default_insightface_roots())
    reader = FaceReader(chosen, provider)
    from realisid_core.faces.packs import PACKS
    result = {"recogniser": {"pack": chosen.pack, "file": PACKS[chosen.pack].recognition, "folder": chosen.folder,
                             "note": chosen.note},
              "conditioning_pack": conditioning_pack, "min_iou": min_iou,
              "buckets": {name: None if upper == float("inf") else upper for name, upper in metrics.BUCKETS},
              "runs": {}}
    for name, folder in named:
        run = RunFolder(name, folder)
        try:
            result["runs"][name] = evaluate_run(reader, run, specs, min_iou)
        finally:
            run.close()
    paths = report.write(result, Path(out))
    paths["plot"] = plot(result["runs"], Path(out) / "identity_vs_face_size.png", chosen.pack)
    result["files"] = {k: str(v) for k, v in paths.items()}
    return result


def evaluate_command(args) -> int:
    result = evaluate(args.people, args.run, args.out, args.recogniser, args.conditioning_pack, args.insightface or None,
                      args.provider, args.min_iou)
    print(report.markdown(result))
    print("\n".join(f"{kind}: {path}" for kind, path in result["files"].items()))
    return 0
