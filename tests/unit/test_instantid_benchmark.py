"""benchmarks.instantid: its options and its table (the measurement itself runs for minutes: see docs/instantid.md, "What it costs")."""
import pytest

from benchmarks import instantid


def test_at_least_five_repeats_are_required():
    with pytest.raises(SystemExit):
        instantid.main(["--repeats", "3"])


def test_faces_stay_apart_and_inside_the_picture():
    boxes = instantid.face_boxes(4)
    assert boxes.shape == (4, 4)
    half = boxes[:, 2:] / 2
    assert (boxes[:, :2] - half >= 0).all() and (boxes[:, :2] + half <= 1).all()
    assert len({tuple(b) for b in boxes[:, :2].tolist()}) == 4


def test_the_table_says_when_the_net_was_reduced():
    row = {"resolution": 1024, "faces": 4, "full_frame": {"median_ms": 2000.0}, "crops": {"median_ms": 1000.0},
           "full_forwards": 4, "crop_forwards": 1, "ratio": 0.5}
    results = {"rows": [row], "settings": {"controlnet": "IdentityNet (reduced)", "controlnet_parameters": 6e6,
                                           "device": "cpu", "reduced": True, "batch": 2, "dtype": "torch.float32",
                                           "repeats": 5}}
    table = instantid.markdown(results)
    assert "REDUCED depth and width" in table and "| 1024×1024 | 4 | 2,000 ms (4) | 1,000 ms (1) | 0.50× |" in table
