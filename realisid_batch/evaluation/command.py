"""`python -m realisid_batch evaluate` (runs compared side by side, written as JSON, Markdown and a PNG plot)
and `python -m realisid_batch limit` (the face size below which the recogniser cannot measure)."""
from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

from ..errors import BatchError
from . import limit, metrics, report
from .evaluate import evaluate_run, failed_people
from .faces import default_insightface_roots, open_reader, read_bgr
from .people import read_people
from .pictures import RunFolder, parse_run
from .plot import plot


def _need_core():
    if importlib.util.find_spec("realisid_core") is None:
        raise BatchError("the evaluation needs the pack's realisid_core (its face analysis): run it from the "
                         "ComfyUI-RealisID folder, or put that folder on PYTHONPATH")


def evaluate(people: str, runs: list[str], out: str, recogniser: str = "auto", conditioning_pack: str = "antelopev2",
             insightface_roots: list[str] | None = None, provider: str = "auto", min_iou: float = 0.1,
             detector: str = "hog", upsample: int = 1) -> dict:
    """Evaluate every run; write evaluation.json, evaluation.md and identity_vs_face_size.png into `out`."""
    _need_core()
    specs = read_people(people)
    named = [parse_run(r) for r in runs]
    names = [n for n, _ in named]
    if len(set(names)) != len(names):
        raise BatchError(f"runs need different names ({', '.join(names)}): write --run NAME=FOLDER")
    for name, folder in named:
        if not folder.is_dir():
            raise BatchError(f"run '{name}': {folder} is not a folder")
    reader = open_reader(recogniser, conditioning_pack, insightface_roots or default_insightface_roots(), provider,
                         detector, upsample)
    result = {"recogniser": reader.describe(), "conditioning_pack": conditioning_pack, "min_iou": min_iou,
              "buckets": {name: None if upper == float("inf") else upper for name, upper in metrics.BUCKETS},
              "runs": {}}
    signals = {}
    for name, folder in named:
        run = RunFolder(name, folder)
        try:
            result["runs"][name] = evaluate_run(reader, run, specs, min_iou, signals)
        finally:
            run.close()
    result["failed_people"] = failed_people(signals)
    paths = report.write(result, Path(out))
    paths["plot"] = plot(result["runs"], Path(out) / "identity_vs_face_size.png", result["recogniser"])
    result["files"] = {k: str(v) for k, v in paths.items()}
    return result


def evaluate_command(args) -> int:
    """0: every person measured; 1: some people could not be (their reference photo has no face)."""
    result = evaluate(args.people, args.run, args.out, args.recogniser, args.conditioning_pack, args.insightface or None,
                      args.provider, args.min_iou, args.detector, args.upsample)
    print(report.markdown(result))
    print("\n".join(f"{kind}: {path}" for kind, path in result["files"].items()))
    for failed in result["failed_people"]:
        print(f"failed: {failed} (that person is not measured; the others are)", file=sys.stderr)
    return 1 if result["failed_people"] else 0


def packaged_photos() -> dict:
    """The real photos that ship in packages: insightface's t1.jpg (six people) and Tom Hanks portrait,
    scikit-image's astronaut (those installed)."""
    photos = {}
    spec = importlib.util.find_spec("insightface")
    if spec is not None and spec.origin:
        images = Path(spec.origin).parent / "data" / "images"
        for name in ("t1.jpg", "Tom_Hanks_54745.png"):
            if (images / name).is_file():
                photos[name] = read_bgr(images / name)
    try:
        from skimage import data
        photos["astronaut (scikit-image)"] = data.astronaut()[..., ::-1].copy()
    except ImportError:
        pass
    return photos


def limit_command(args) -> int:
    """Shrink every face of the photos to each size; print the table, write JSON/Markdown when asked."""
    _need_core()
    sizes = tuple(int(v) for v in args.sizes.split(",") if v.strip())
    if not sizes or min(sizes) < 4:
        raise BatchError(f"--sizes {args.sizes!r}: give face sides of at least 4 px, comma-separated")
    photos = {Path(p).name: read_bgr(Path(p)) for p in args.photo} if args.photo else packaged_photos()
    if not photos:
        raise BatchError("no photos: give --photo FILE (insightface and scikit-image, whose photos are the "
                         "default, are not installed)")
    reader = open_reader(args.recogniser, args.conditioning_pack, args.insightface or default_insightface_roots(),
                         args.provider, args.detector, args.upsample)
    table = limit.limit_table(reader, photos, sizes)
    if not table["faces"]:
        raise BatchError(f"the recogniser found no face in {', '.join(photos)} at their own size")
    text = limit.markdown(table)
    print(text)
    if args.out:
        out = Path(args.out)
        out.mkdir(parents=True, exist_ok=True)
        (out / "limit.json").write_text(json.dumps(table, indent=1), encoding="utf-8")
        (out / "limit.md").write_text(text + "\n", encoding="utf-8")
        print(f"json: {out / 'limit.json'}\nmarkdown: {out / 'limit.md'}")
    return 0
