"""Data preparation on real photos (insightface's and scikit-image's) with the test insightface packs."""
from __future__ import annotations

import json
import os

import numpy as np
import pytest

from train_helpers import DROPPED, KEPT
from train_helpers import astronaut_bgr, insightface_image, write_photo


def rows(data, name="manifest.jsonl"):
    from realisid_train.manifest import read_jsonl
    return read_jsonl(os.path.join(data, name))


def test_one_usable_face_is_kept_and_every_other_photo_is_reported_with_its_reason(prepared):
    photos, data, summary = prepared
    assert (summary.photos, summary.analysed, summary.unchanged, summary.kept) == (8, 8, 0, 4)
    assert summary.dropped == {reason: 1 for reason in DROPPED.values()}
    assert {r["path"]: r["reason"] for r in rows(data, "dropped.jsonl")} == DROPPED
    kept = {r["path"]: r for r in rows(data)}
    assert sorted(kept) == sorted(KEPT)
    for r in kept.values():
        x0, y0, x1, y1 = r["box"]
        assert 0 <= x0 < x1 <= r["width"] and 0 <= y0 < y1 <= r["height"] and x1 - x0 >= 40
        assert np.asarray(r["keypoints"]).shape == (5, 2)
        assert np.asarray(r["landmarks_68"]).shape == (68, 3)
        assert len(r["pose"]) == 3 and r["score"] >= 0.5 and r["pack"] == "antelopev2"
        assert os.path.isfile(os.path.join(data, r["embedding"]["shard"]))
    astronaut = kept["astronaut.png"]
    assert astronaut["caption"] == "an astronaut in a white suit" and kept["tom.png"]["caption"] is None
    cx, cy = (astronaut["box"][0] + astronaut["box"][2]) / 2, (astronaut["box"][1] + astronaut["box"][3]) / 2
    assert abs(cx - 384) < 3 and abs(cy - 128) < 3  # where the face was painted
    state = json.loads((data / "prepare.json").read_text())
    assert state["photos"] == str(photos) and state["settings"]["min_face_size"] == 40


def test_embeddings_in_the_shards_are_the_analyzers(prepared, insightface_root):
    from realisid_train.manifest import load_embeddings, load_records
    from realisid_train.photos import load_photo
    from realisid_train.prepare import PrepareSettings, load_analyzer
    photos, data, _ = prepared
    records = load_records(str(data / "manifest.jsonl"))
    embeddings = load_embeddings(str(data), records)
    assert embeddings.shape == (4, 512)
    np.testing.assert_allclose(embeddings.norm(dim=-1).numpy(), 1, atol=1e-5)
    analyzer = load_analyzer(insightface_root, PrepareSettings(min_face_size=40))
    index = [r.path for r in records].index("tom.png")
    face = analyzer.analyze(np.ascontiguousarray(load_photo(str(photos / "tom.png"))[..., ::-1]))[0]
    np.testing.assert_allclose(embeddings[index].numpy(), face.embedding, atol=1e-6)


def test_a_second_run_analyses_only_new_and_changed_photos(insightface_root, tmp_path, capsys):
    from fixtures.fake_insightface import paint_face
    from realisid_train.__main__ import main
    from realisid_train.manifest import load_embeddings, load_records
    from realisid_train.prepare import PrepareSettings, prepare
    photos, data = tmp_path / "photos", tmp_path / "data"
    astronaut = astronaut_bgr()
    write_photo(photos / "a.png", paint_face(astronaut, 384, 128, 60))
    write_photo(photos / "b.png", paint_face(astronaut, 128, 384, 56))
    write_photo(photos / "c.jpg", insightface_image("t1.jpg"))
    command = ["prepare", str(photos), "--out", str(data), "--insightface", insightface_root, "--min-face-size", "40",
               "--workers", "2", "--quiet"]
    assert main(command) == 0
    out = capsys.readouterr().out
    assert "photos: 3 (3 analysed now, 0 unchanged" in out and "kept: 2 (2 new)" in out and "no face: 1 (1 new)" in out
    assert main(command) == 0
    assert "photos: 3 (0 analysed now, 3 unchanged since the last run)" in capsys.readouterr().out

    first_box = {r["path"]: r["box"] for r in rows(data)}["a.png"]
    write_photo(photos / "a.png", paint_face(astronaut, 256, 256, 64))        # changed: the face moved
    os.utime(photos / "a.png", ns=(1, 1))
    write_photo(photos / "d.png", paint_face(astronaut, 128, 128, 60))        # new
    os.remove(photos / "b.png")                                               # gone
    (photos / "c.txt").write_text("a caption written later", encoding="utf-8")  # its caption changed
    summary = prepare(str(photos), str(data), insightface_root, PrepareSettings(min_face_size=40, workers=2),
                      progress=False)
    assert (summary.analysed, summary.unchanged, summary.removed, summary.kept, summary.kept_new) == (3, 0, 1, 2, 2)
    kept = {r["path"]: r for r in rows(data)}
    assert sorted(kept) == ["a.png", "d.png"] and kept["a.png"]["box"] != first_box
    assert abs((kept["a.png"]["box"][0] + kept["a.png"]["box"][2]) / 2 - 256) < 3
    records = load_records(str(data / "manifest.jsonl"))
    assert load_embeddings(str(data), records).shape == (2, 512)
    assert len(os.listdir(data / "embeddings")) == 2  # one shard per run that kept something new

    # other analysis settings: every photo again
    summary = prepare(str(photos), str(data), insightface_root, PrepareSettings(min_face_size=30, workers=2),
                      progress=False)
    assert summary.analysed == 3 and summary.unchanged == 0


def test_an_analysis_error_is_reported_not_raised(tmp_path):
    from realisid_train.prepare import prepare

    class Broken:
        def analyze(self, bgr, threshold=0.5):
            raise RuntimeError("the model fell over")
    write_photo(tmp_path / "photos" / "a.png", astronaut_bgr())
    summary = prepare(str(tmp_path / "photos"), str(tmp_path / "data"), "(unused)", analyzer=Broken(), progress=False)
    assert summary.dropped == {"analysis failed": 1}
    assert "the model fell over" in rows(tmp_path / "data", "dropped.jsonl")[0]["detail"]


def test_a_missing_pack_says_where_it_was_looked_for(tmp_path):
    from realisid_core.errors import RealisIDInputError
    from realisid_train.prepare import prepare
    write_photo(tmp_path / "photos" / "a.png", astronaut_bgr())
    with pytest.raises(RealisIDInputError, match="antelopev2.*not found"):
        prepare(str(tmp_path / "photos"), str(tmp_path / "data"), str(tmp_path / "nowhere"), progress=False)


def test_ctrl_c_keeps_what_was_analysed_and_the_next_run_goes_on(insightface_root, tmp_path):
    """SIGINT in the middle of a folder smaller than --flush-every: the photos analysed so far are saved, one
    line says so, exit 130, no traceback; running it again analyses only the rest."""
    import re
    import signal
    import subprocess
    import sys
    import threading
    import time

    import cv2

    from fixtures.fake_insightface import paint_face
    from train_helpers import REPO
    photos, data = tmp_path / "photos", tmp_path / "data"
    face = cv2.resize(paint_face(astronaut_bgr(), 256, 256, 120), (256, 256), interpolation=cv2.INTER_AREA)
    n = 60
    for i in range(n):
        write_photo(photos / f"p{i:03d}.png", np.roll(face, i, axis=1))
    command = [sys.executable, "-m", "realisid_train", "prepare", str(photos), "--out", str(data),
               "--insightface", insightface_root, "--min-face-size", "40", "--workers", "1"]
    proc = subprocess.Popen(command, cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    err = []
    reader = threading.Thread(target=lambda: err.extend(iter(lambda: proc.stderr.read(1), "")), daemon=True)
    reader.start()
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline and proc.poll() is None:
        done = [int(m) for m in re.findall(r"(\d+)/%d \[" % n, "".join(err))]
        if done and max(done) >= 3:
            break
        time.sleep(0.05)
    assert proc.poll() is None, "".join(err)[-3000:]
    proc.send_signal(signal.SIGINT)
    out, _ = proc.communicate(timeout=60)
    reader.join(timeout=10)
    text = "".join(err)
    assert proc.returncode == 130, text[-3000:]
    assert "Traceback" not in text, text[-3000:]
    stopped = re.search(r"stopped \(Ctrl-C\): (\d+) photos analysed in this run are saved \((\d+) of them kept", text)
    assert stopped, text[-3000:]
    analysed, kept = int(stopped.group(1)), int(stopped.group(2))
    assert 3 <= analysed < n and kept >= 1, text[-2000:]
    assert "run the same command again" in text
    assert len(rows(data)) == kept and len(rows(data)) + len(rows(data, "dropped.jsonl")) == analysed
    from realisid_train.manifest import load_embeddings, load_records
    assert load_embeddings(str(data), load_records(str(data / "manifest.jsonl"))).shape == (kept, 512)

    again = subprocess.run(command + ["--quiet"], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr[-3000:]
    assert f"photos: {n} ({n - analysed} analysed now, {analysed} unchanged" in again.stdout, again.stdout
    assert len(rows(data)) + len(rows(data, "dropped.jsonl")) == n
