"""`evaluate --recogniser dlib` on real people: faces of the packaged photos (t1.jpg's six people, the Tom
Hanks portrait, the astronaut) pasted at known places and sizes, measured by dlib's real models."""
from __future__ import annotations

import json

import numpy as np
import pytest
from PIL import Image

from fixtures import real_faces
from realisid_batch.cli import main

pytestmark = pytest.mark.skipif(not real_faces.AVAILABLE, reason=real_faces.MISSING)
SIDE = 512


def background():
    """A face-free grey gradient."""
    ramp = np.linspace(90, 170, SIDE, dtype=np.float64)
    return np.repeat(((ramp[:, None] + ramp[None, :]) / 2).astype(np.uint8)[..., None], 3, axis=2)


def box(cx, cy, side):
    return [cx - side / 2, cy - side / 2, cx + side / 2, cy + side / 2]


def paste(picture, who, cx, cy, side, sources):
    from realisid_batch.evaluation.limit import place
    bgr, face_box = sources[who]
    return place(bgr, face_box, box(cx, cy, side), SIDE, SIDE, onto=picture)[0]


def save(bgr, path):
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.ascontiguousarray(bgr[..., ::-1])).save(path)


LEFT, RIGHT, MIDDLE = (150, 256), (362, 256), (256, 256)
GOOD = {  # picture: [(who, (cx, cy), side)]
    "pair": [("t1-1", LEFT, 96), ("t1-2", RIGHT, 96)],
    "hanks": [("hanks", MIDDLE, 128)],
    "hanks-other": [("hanks-mirrored", MIDDLE, 128)],
    "small": [("t1-3", MIDDLE, 64)],
    "tiny": [("astronaut", MIDDLE, 24)],
    "nobody": [("t1-4", LEFT, 96), ("t1-5", RIGHT, 96)],
}
BAD = {**GOOD, "pair": [("t1-2", LEFT, 96), ("t1-1", RIGHT, 96)], "hanks": [("t1-6", MIDDLE, 128)],
       "small": [], "tiny": [("t1-4", MIDDLE, 24)]}
PEOPLE = [
    {"picture": "pair", "people": [{"name": "t1-1", "reference": "refs/t1-1.png", "box": box(*LEFT, 96)},
                                   {"name": "t1-2", "reference": "refs/t1-2.png", "box": box(*RIGHT, 96)}]},
    {"picture": "hanks", "people": [{"name": "hanks", "reference": "refs/hanks.png", "held_out": "refs/hanks-2.png",
                                     "box": box(*MIDDLE, 128)}]},
    {"picture": "hanks-other", "people": [{"name": "hanks", "reference": "refs/hanks.png",
                                           "held_out": "refs/hanks-2.png", "box": box(*MIDDLE, 128)}]},
    {"picture": "small", "people": [{"name": "t1-3", "reference": "refs/t1-3.png", "box": box(*MIDDLE, 64)}]},
    {"picture": "tiny", "people": [{"name": "astronaut", "reference": "refs/astronaut.png", "box": box(*MIDDLE, 24)}]},
    {"picture": "nobody", "people": [{"name": "ghost", "reference": "refs/ghost.png", "box": box(*LEFT, 96)},
                                     {"name": "t1-5", "reference": "refs/t1-5.png", "box": box(*RIGHT, 96)}]},
]


@pytest.fixture(scope="module")
def study(tmp_path_factory):
    """Three runs: 'good' as intended, 'bad' with people swapped, replaced and missing, 'empty' all blank."""
    root = tmp_path_factory.mktemp("real-evaluation")
    photos = real_faces.photos()
    sources = {f"t1-{k}": real_faces.crop(photos["t1"], f.box, 3.0) for k, f in enumerate(real_faces.faces("t1"), 1)}
    hanks = real_faces.faces("hanks")[0]
    sources["hanks"] = (photos["hanks"], hanks.box)
    mirrored = np.ascontiguousarray(photos["hanks"][:, ::-1])
    sources["hanks-mirrored"] = (mirrored, np.array([112 - hanks.box[2], hanks.box[1], 112 - hanks.box[0], hanks.box[3]]))
    sources["astronaut"] = real_faces.crop(photos["astronaut"], real_faces.faces("astronaut")[0].box, 3.0)
    for who in ("t1-1", "t1-2", "t1-3", "t1-5", "astronaut", "hanks"):
        save(sources[who][0], root / "refs" / f"{who}.png")
    save(mirrored, root / "refs" / "hanks-2.png")
    save(np.full((200, 200, 3), 128, np.uint8), root / "refs" / "ghost.png")  # a reference without a face
    for run, pictures in (("good", GOOD), ("bad", BAD), ("empty", {k: [] for k in GOOD})):
        for name, people in pictures.items():
            picture = background()
            for who, (cx, cy), side in people:
                picture = paste(picture, who, cx, cy, side, sources)
            save(picture, root / run / f"{name}.png")
    people = root / "people.jsonl"
    people.write_text("\n".join(json.dumps(p) for p in PEOPLE) + "\n")
    code = main(["evaluate", "--people", str(people), "--recogniser", "dlib", "--out", str(root / "report"),
                 *[f"--run={r}={root / r}" for r in ("good", "bad", "empty")]])
    return root, code, json.loads((root / "report" / "evaluation.json").read_text())


def faces_of(result, run):
    return {(p["picture"], f["person"]): f for p in result["runs"][run]["pictures"] for f in p["faces"]}


def test_the_output_says_dlib_measured_and_how_similarity_is_made(study):
    root, _, result = study
    rec = result["recogniser"]
    assert rec["name"] == "dlib" and rec["file"] == "dlib_face_recognition_resnet_model_v1.dat"
    assert "1 - Euclidean distance / 1.2" in rec["similarity"] and rec["same_person_threshold"] == pytest.approx(0.5)
    assert "Recogniser: **dlib**" in (root / "report" / "evaluation.md").read_text()


def test_right_people_rank_above_swapped_and_replaced_ones(study):
    _, _, result = study
    good, bad = faces_of(result, "good"), faces_of(result, "bad")
    for who in ("t1-1", "t1-2"):
        g, b = good[("pair", who)], bad[("pair", who)]
        assert g["found"] and b["found"] and g["measurable"] and b["measurable"]
        assert g["identity"] >= 0.5 > b["identity"]  # dlib's same-person threshold, as a similarity
        assert not g["swapped"] and b["swapped"] and b["leak"] > b["identity"]
        assert g["identity_matching_agrees"] is True and b["identity_matching_agrees"] is False
    assert good[("hanks", "hanks")]["identity"] >= 0.5 > bad[("hanks", "hanks")]["identity"]
    assert good[("small", "t1-3")]["identity"] >= 0.5
    pair = next(p for p in result["runs"]["good"]["pictures"] if p["picture"] == "pair")["confusion"]
    (a, b_), (c, d) = pair["matrix"]
    assert a > b_ and d > c  # each face most like its own reference
    swapped = next(p for p in result["runs"]["bad"]["pictures"] if p["picture"] == "pair")["confusion"]["matrix"]
    assert swapped[0][1] > swapped[0][0] and swapped[1][0] > swapped[1][1]
    assert result["runs"]["good"]["summary"]["48-96"]["swapped"] == 0
    assert result["runs"]["bad"]["summary"]["48-96"]["swapped"] == 2


def test_the_copy_paste_score_tells_the_reference_from_the_held_out_photo(study):
    _, _, result = study
    good = faces_of(result, "good")
    copy, other = good[("hanks", "hanks")], good[("hanks-other", "hanks")]
    assert copy["copy_paste"] > 0.5 and other["copy_paste"] < -0.5  # +1: the reference's copy, -1: the held-out
    assert other["held_out"] > other["identity"] and copy["identity"] > copy["held_out"]


def test_a_face_too_small_for_the_recogniser_is_not_measurable_not_a_wrong_identity(study):
    root, _, result = study
    for run in ("good", "bad"):
        tiny = faces_of(result, run)[("tiny", "astronaut")]
        assert tiny["face_side"] == 24 and tiny["measurable"] is False and not tiny["swapped"]
        assert tiny["reference_probe"]["found"] is False
    missing = faces_of(result, "bad")[("small", "t1-3")]  # 64 px: the recogniser sees that size, the face is missing
    assert missing["found"] is False and missing["measurable"] is True
    md = (root / "report" / "evaluation.md").read_text()
    assert "**good** · tiny · astronaut: not measurable at 24 px" in md
    assert "**bad** · small · t1-3: no face found at the intended place" in md
    assert result["runs"]["good"]["summary"]["<=48"]["not_measurable"] == 1


def test_a_reference_without_a_face_fails_that_person_only(study):
    root, code, result = study
    assert code == 1  # some people could not be measured; the report is written
    assert result["failed_people"] == [f"ghost: no face found in the reference photo {root / 'refs' / 'ghost.png'}"]
    good = faces_of(result, "good")
    assert good[("nobody", "ghost")]["error"] and good[("nobody", "ghost")]["identity"] is None
    assert good[("nobody", "t1-5")]["identity"] >= 0.5 and good[("nobody", "t1-5")]["error"] is None
    assert "**failed person** ghost" in (root / "report" / "evaluation.md").read_text()


def test_the_plot_shows_detection_rates_and_a_run_where_nothing_was_found(study):
    root, _, result = study
    from realisid_batch.evaluation.plot import COLOURS, MARGIN, RATE_PANEL, SIZE
    assert result["runs"]["empty"]["summary"]["all"]["found"] == 0
    with Image.open(root / "report" / "identity_vs_face_size.png") as im:
        assert im.size == SIZE
        pixels = np.asarray(im.convert("RGB"))
    identity_panel = pixels[MARGIN[1]:RATE_PANEL[0] - MARGIN[3] - 30, MARGIN[0]:SIZE[0] - MARGIN[2]]
    rates = pixels[RATE_PANEL[0]:RATE_PANEL[1] + 1, MARGIN[0]:SIZE[0] - MARGIN[2]]

    def count(area, colour):
        return int((area == colour).all(axis=-1).sum())
    assert count(identity_panel, COLOURS[2]) > 20  # "empty: no face found", in the empty run's colour
    for colour in COLOURS[:3]:  # a bar per run; the empty run's 0 % bars are drawn too
        assert count(rates, colour) > 20


def test_the_limit_command_finds_where_the_recogniser_stops_seeing_a_face(tmp_path, capsys):
    photo = tmp_path / "astronaut.png"
    save(real_faces.photos()["astronaut"], photo)
    assert main(["limit", "--recogniser", "dlib", "--photo", str(photo), "--sizes", "16,64,128",
                 "--out", str(tmp_path / "limit")]) == 0
    table = json.loads((tmp_path / "limit" / "limit.json").read_text())
    assert len(table["faces"]) == 1  # the astronaut, not her suit's badge
    rows = {r["side"]: r for r in table["rows"]}
    assert rows[16]["detection_rate"] == 0 and rows[16]["self_similarity_mean"] is None  # too small to see
    assert rows[64]["detection_rate"] == 1 and rows[64]["recognised_rate"] == 1
    assert rows[64]["self_similarity_mean"] > 0.8 and rows[128]["upscaled"] == 1
    out = capsys.readouterr().out
    assert "| 16 | 0 / 1 | 0% |" in out and (tmp_path / "limit" / "limit.md").read_text().startswith("Recogniser: **dlib**")
