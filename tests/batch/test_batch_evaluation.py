"""`evaluate` on pictures with known answers: the test insightface packs find a face where `paint_face` paints
one, and their recogniser's embedding comes from the pixels around it — so a person is a pattern painted
around the face, the same at every size, and a reference photo is that pattern around a face."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from realisid_batch.cli import main
from realisid_batch.ledger import Ledger

# per person: the colours (BGR) of the four quarters around the face; none reads as the detector's magenta
PATTERNS = {"ada": [(0, 0, 255), (0, 255, 0), (255, 0, 0), (0, 255, 255)],
            "bo": [(255, 255, 0), (0, 128, 255), (40, 40, 40), (255, 255, 255)],
            "cy": [(0, 255, 0), (0, 0, 255), (255, 255, 255), (0, 0, 0)]}


def person(picture, cx, cy, side, who, ring=0.6):
    """`who`'s face: the detector's square of `side` pixels at (cx, cy), framed by the person's pattern."""
    from fixtures.fake_insightface import paint_face
    out = picture.copy()
    r = side / 2 + ring * side
    x0, y0, x1, y1 = (int(round(v)) for v in (cx - r, cy - r, cx + r, cy + r))
    cxi, cyi = int(round(cx)), int(round(cy))
    for colour, (a, b, c, d) in zip(PATTERNS[who], [(y0, cyi, x0, cxi), (y0, cyi, cxi, x1), (cyi, y1, x0, cxi), (cyi, y1, cxi, x1)]):
        out[max(a, 0):max(b, 0), max(c, 0):max(d, 0)] = colour
    return paint_face(out, cx, cy, side)


def canvas(side):
    return np.full((side, side, 3), 128, np.uint8)


def save(bgr, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(bgr[..., ::-1])).save(path)
    return path


def box(cx, cy, side):
    return [cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2]


@pytest.fixture(scope="module")
def study(insightface_root, tmp_path_factory):
    """Two runs of the same four pictures: 'good' as intended, 'bad' with two people swapped and one face missing."""
    root = tmp_path_factory.mktemp("evaluation")
    for who in PATTERNS:
        save(person(canvas(320), 160, 160, 64, who), root / "refs" / f"{who}.png")
    save(person(canvas(320), 160, 160, 64, "cy"), root / "poses" / "front.png")
    good = {  # picture: (canvas side, [(who, cx, cy, side)])
        "pic1": (640, [("ada", 192, 192, 64), ("bo", 448, 448, 64)]),
        "pic2": (320, [("ada", 160, 160, 40)]),
        "pic3": (640, [("bo", 320, 320, 128)]),
        "pic4": (1024, [("cy", 512, 512, 256)]),
    }
    bad = {**good, "pic1": (640, [("bo", 192, 192, 64), ("ada", 448, 448, 64)]), "pic2": (320, [])}
    for run, pictures in (("good", good), ("bad", bad)):
        for name, (side, people) in pictures.items():
            picture = canvas(side)
            for who, cx, cy, s in people:
                picture = person(picture, cx, cy, s, who)
            # the bad run is a batch output folder: pictures named by the ledger, not by the picture id
            save(picture, root / run / (f"{name}.png" if run == "good" else f"out-{name}.png"))
    ledger = Ledger(root / "bad" / "realisid_batch.sqlite")
    ledger.sync([(name, k, {}, None) for k, name in enumerate(bad)])
    for name in bad:
        ledger.mark_queued(name, "http://127.0.0.1:1", f"p-{name}")
        ledger.mark_done(name, f"p-{name}", [{"file": f"out-{name}.png", "node": "9", "title": "save", "server_file": "x.png"}])
    ledger.close()
    intended = [
        {"picture": "pic1", "people": [
            {"name": "ada", "reference": "refs/ada.png", "box": box(192, 192, 64), "pose": "poses/front.png"},
            {"name": "bo", "reference": "refs/bo.png", "location": "0.7 0.7 0.1"}]},
        {"picture": "pic2", "people": [{"name": "ada", "reference": "refs/ada.png", "box": box(160, 160, 40)}]},
        {"picture": "pic3", "people": [{"name": "bo", "reference": "refs/bo.png", "box": box(352, 320, 128)}]},
        {"picture": "pic4", "people": [{"name": "cy", "reference": "refs/cy.png", "box": box(512, 512, 256),
                                        "pose": "poses/front.png"}]},
    ]
    people = root / "people.jsonl"
    people.write_text("\n".join(json.dumps(p) for p in intended) + "\n")
    code = main(["evaluate", "--people", str(people), "--run", f"good={root / 'good'}", "--run", f"bad={root / 'bad'}",
                 "--out", str(root / "report"), "--insightface", insightface_root, "--provider", "CPU"])
    assert code == 0
    return root, json.loads((root / "report" / "evaluation.json").read_text())


def _faces(result, run):
    return {(p["picture"], f["person"]): f for p in result["runs"][run]["pictures"] for f in p["faces"]}


def _embedding(insightface_root, pack, path):
    """A reference embedding straight from the analyzer, for the numbers the evaluation must give."""
    from realisid_core.faces.analyzer import get_analyzer
    from realisid_core.faces.packs import find_pack_folder
    from realisid_batch.evaluation.faces import read_bgr
    analyzer = get_analyzer(find_pack_folder([insightface_root], pack), pack, "CPU", 640)
    return max(analyzer.analyze(read_bgr(path)), key=lambda f: f.area).embedding


def test_the_intended_run_gives_the_known_numbers(study, insightface_root):
    root, result = study
    assert result["recogniser"]["pack"] == "buffalo_l" and result["recogniser"]["file"] == "w600k_r50.onnx"
    assert result["conditioning_pack"] == "antelopev2" and result["recogniser"]["note"] is None
    faces = _faces(result, "good")
    assert all(f["found"] and not f["swapped"] for f in faces.values())
    assert all(f["identity"] > 0.99 for f in faces.values())
    # sizes and buckets from the intended boxes ('location' 0.1 of 640 = 64 px)
    assert {k: (f["face_side"], f["bucket"]) for k, f in faces.items()} == {
        ("pic1", "ada"): (64, "48-96"), ("pic1", "bo"): (64, "48-96"), ("pic2", "ada"): (40, "<=48"),
        ("pic3", "bo"): (128, "96-192"), ("pic4", "cy"): (256, ">192")}
    # place: the test detector boxes the painted square (a fraction of a pixel inside it);
    # pic3's intended box is 32 px to the right of the face: IoU 96·128 / (2·128² − 96·128) = 0.6
    for key in [("pic1", "ada"), ("pic1", "bo"), ("pic2", "ada"), ("pic4", "cy")]:
        assert faces[key]["iou"] == pytest.approx(1.0, abs=0.02)
    assert faces[("pic3", "bo")]["iou"] == pytest.approx(0.6, abs=0.01)
    # leak: ada's face against bo's reference, and the reverse, is the similarity of the two references
    ada, bo = (_embedding(insightface_root, "buffalo_l", root / "refs" / f"{w}.png") for w in ("ada", "bo"))
    assert faces[("pic1", "ada")]["leak_person"] == "bo"
    assert faces[("pic1", "ada")]["leak"] == pytest.approx(float(ada @ bo), abs=0.02)
    assert faces[("pic1", "ada")]["leak"] < 0.5
    # the test pack's landmarks are its mean face, so the pose and expression of every face match the driver's
    for key in [("pic1", "ada"), ("pic4", "cy")]:
        assert max(faces[key]["pose_error"].values()) < 0.5
        assert faces[key]["expression_error"] < 0.01
    assert faces[("pic2", "ada")]["pose_error"] is None  # no driving face given
    summary = result["runs"]["good"]["summary"]
    assert [summary[b]["faces"] for b in ("<=48", "48-96", "96-192", ">192", "all")] == [1, 2, 1, 1, 5]
    assert summary["all"]["found_rate"] == 1.0 and summary["all"]["swapped"] == 0
    assert summary["96-192"]["iou_mean"] == pytest.approx(0.6, abs=0.01)


def test_a_missing_face_and_swapped_people_are_caught(study, insightface_root):
    root, result = study
    faces = _faces(result, "bad")
    assert faces[("pic2", "ada")]["found"] is False and faces[("pic2", "ada")]["identity"] is None
    ada, bo = (_embedding(insightface_root, "buffalo_l", root / "refs" / f"{w}.png") for w in ("ada", "bo"))
    for who, other in (("ada", "bo"), ("bo", "ada")):
        f = faces[("pic1", who)]
        assert f["found"] and f["swapped"] and f["leak_person"] == other
        assert f["identity"] == pytest.approx(float(ada @ bo), abs=0.02)  # the face is the other person's
        assert f["leak"] > 0.99
        assert f["iou"] == pytest.approx(1.0, abs=0.02)  # the place was right, the person wrong
    summary = result["runs"]["bad"]["summary"]
    assert summary["<=48"]["found_rate"] == 0.0 and summary["48-96"]["swapped"] == 2
    assert summary["all"]["found"] == 4
    # the files came through the batch ledger (named out-*.png), and both runs are in one report
    assert result["runs"]["bad"]["pictures"][0]["file"].endswith("out-pic1.png")
    md = (root / "report" / "evaluation.md").read_text()
    assert "| good | ≤ 48 px | 1 | 1 (100%) |" in md and "| bad | ≤ 48 px | 1 | 0 (0%) |" in md
    assert "**bad** · pic2 · ada: no face found at the intended place" in md
    assert "**bad** · pic1 · ada: swapped — more like bo" in md and "**bad** · pic1 · bo: swapped — more like ada" in md
    assert "Recogniser: **buffalo_l** (w600k_r50.onnx)" in md


def test_the_plot_draws_one_line_per_run(study):
    root, _ = study
    from realisid_batch.evaluation.plot import COLOURS, SIZE
    with Image.open(root / "report" / "identity_vs_face_size.png") as im:
        assert im.size == SIZE
        pixels = np.asarray(im.convert("RGB")).reshape(-1, 3)
    for colour in COLOURS[:2]:  # good, bad
        assert (pixels == colour).all(axis=1).sum() > 50


def test_the_recogniser_is_chosen_apart_from_the_conditioning_one(study, insightface_root, tmp_path):
    root, result = study
    people = root / "people.jsonl"
    out = tmp_path / "same"
    assert main(["evaluate", "--people", str(people), "--run", str(root / "good"), "--out", str(out),
                 "--insightface", insightface_root, "--recogniser", "antelopev2", "--provider", "CPU"]) == 0
    same = json.loads((out / "evaluation.json").read_text())
    assert same["recogniser"]["pack"] == "antelopev2" and "optimistic" in same["recogniser"]["note"]
    assert list(same["runs"]) == ["good"]  # a bare folder is named after itself
    # another recogniser, other numbers: the leak follows the pack that measures
    ada, bo = (_embedding(insightface_root, "antelopev2", root / "refs" / f"{w}.png") for w in ("ada", "bo"))
    leak = _faces(same, "good")[("pic1", "ada")]["leak"]
    assert leak == pytest.approx(float(ada @ bo), abs=0.02)
    assert abs(leak - _faces(result, "good")[("pic1", "ada")]["leak"]) > 0.02
    # with conditioning buffalo_l, auto picks antelopev2
    out2 = tmp_path / "auto"
    assert main(["evaluate", "--people", str(people), "--run", str(root / "good"), "--out", str(out2),
                 "--insightface", insightface_root, "--conditioning-pack", "buffalo_l", "--provider", "CPU"]) == 0
    assert json.loads((out2 / "evaluation.json").read_text())["recogniser"]["pack"] == "antelopev2"


def test_faces_and_places_are_paired_for_the_largest_total_overlap():
    from realisid_batch.evaluation.metrics import match_by_box
    # a greedy pairing takes a-one (IoU 0.82) first and leaves b without a face; the best pairing finds both
    a, b = [0, 0, 10, 10], [6, 0, 16, 10]
    one, two = [1, 0, 11, 10], [-4, 0, 6, 10]  # b overlaps only one
    matched = match_by_box([a, b], [one, two], 0.1)
    assert {i: j for i, (j, _) in matched.items()} == {0: 1, 1: 0}
    assert match_by_box([a], [[50, 50, 60, 60]], 0.1) == {}  # no overlap: not found


def test_the_copy_paste_score_is_plus_one_for_the_reference_and_minus_one_for_the_held_out_photo():
    from realisid_batch.evaluation.metrics import copy_paste
    assert copy_paste(0.8, 0.0, 0.8) == pytest.approx(1.0)  # the face is the reference
    assert copy_paste(0.0, 0.8, 0.8) == pytest.approx(-1.0)  # the face is the held-out photo
    assert copy_paste(0.4, 0.4, 0.8) == pytest.approx(0.0)
