"""benchmarks.infiniteyou: its options and its table (the measurement itself runs for minutes: docs/flux.md)."""
import pytest

from benchmarks import infiniteyou


def test_at_least_five_repeats_are_required():
    with pytest.raises(SystemExit):
        infiniteyou.main(["--repeats", "3"])


def test_the_reduced_net_keeps_fluxs_rope_split_of_its_head_width():
    r = infiniteyou.REDUCED
    assert sum(r["axes_dim"]) == r["hidden_size"] // r["num_heads"]
    assert sum(infiniteyou.FULL["axes_dim"]) == infiniteyou.FULL["hidden_size"] // infiniteyou.FULL["num_heads"]


def test_the_table_says_when_the_net_was_reduced():
    row = {"resolution": 1536, "faces": 4, "full_frame": {"median_ms": 8000.0}, "crops": {"median_ms": 2000.0},
           "full_forwards": 4, "crop_forwards": 1, "ratio": 0.25}
    results = {"rows": [row], "settings": {"controlnet": "InfuseNet (reduced)", "controlnet_parameters": 11e6,
                                           "device": "cpu", "reduced": True, "dtype": "torch.float32", "repeats": 5}}
    table = infiniteyou.markdown(results)
    assert "REDUCED depth and width" in table and "| 1536×1536 | 4 | 8,000 ms (4) | 2,000 ms (1) | 0.25× |" in table
