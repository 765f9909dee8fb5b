"""The local branch's crop → one batched forward → paste, with a stand-in ControlNet."""
import pytest
import torch

from realisid_core.branches.geometry import halve
from realisid_core.branches.local import LocalBranchSettings, crop_index, run_local_branch
from realisid_core.people.locations import parse_locations
from realisid_core.branches.layouts import layout_from_config, shape_errors


SD15 = layout_from_config(320, [1, 2, 4, 4], 2, 768)


def stand_in_controlnet(calls):
    """Residuals in SD1.5's layout, every value the (1-based) index of its crop."""
    def run(crops, start):
        calls.append((start, len(crops)))
        n, size = len(crops), crops.shape[-1]
        tag = torch.arange(start, start + n, dtype=crops.dtype)[:, None, None, None] + 1

        def level(ch, k):
            return tag.expand(n, ch, halve(size, k), halve(size, k)).clone()
        return {"output": [level(c, k) for c, k in SD15.output], "middle": [level(*SD15.middle)]}
    return run


@pytest.mark.parametrize("faces", [1, 3, 8])
def test_one_forward_for_all_faces_and_latents_with_unet_shapes(faces):
    text = "\n".join(f"{0.1 + 0.1 * i} {0.12 + 0.1 * i} 0.08" for i in range(faces))
    locs = parse_locations(text, 520, 456)
    x = torch.randn(2, 4, 57, 65)
    calls = []
    out = run_local_branch(x, locs, stand_in_controlnet(calls), LocalBranchSettings(64, 1.6, 0.0))
    assert calls == [(0, 2 * faces)]
    assert shape_errors(out, SD15, 2, 57, 65) == []
    # crop b*F+f carries tag b*F+f+1; face f's centre shows it in latent b
    for b in range(2):
        for f in range(faces):
            cx, cy = locs.boxes[f, 0].item() * 65, locs.boxes[f, 1].item() * 57
            assert out["output"][0][b, 0, int(cy), int(cx)].item() == pytest.approx(b * faces + f + 1)


def test_chunked_forward_gives_the_same_residuals():
    locs = parse_locations("0.3 0.3 0.2\n0.7 0.6 0.3\n0.5 0.9 0.1", 512, 512)
    x = torch.randn(2, 4, 64, 64)
    whole, chunked = [], []
    a = run_local_branch(x, locs, stand_in_controlnet(whole), LocalBranchSettings(32))
    ticks = []
    b = run_local_branch(x, locs, stand_in_controlnet(chunked), LocalBranchSettings(32), max_crops_per_forward=4,
                         on_chunk=lambda: ticks.append(1))
    assert chunked == [(0, 4), (4, 2)] and len(ticks) == 2
    for key in a:
        for ra, rb in zip(a[key], b[key]):
            torch.testing.assert_close(ra, rb)


def test_crop_index_is_latent_major():
    b, f = crop_index(torch.arange(6), 3)
    assert b.tolist() == [0, 0, 0, 1, 1, 1] and f.tolist() == [0, 1, 2, 0, 1, 2]


def test_crops_see_the_noisy_latent_of_their_own_face():
    locs = parse_locations("0.25 0.25 0.2\n0.75 0.75 0.2", 512, 512)
    x = torch.zeros(1, 4, 64, 64)
    x[:, :, 40:56, 40:56] = 5.0  # only around face 2
    seen = []

    def run(crops, start):
        seen.append(crops.clone())
        return {"output": [crops], "middle": []}
    run_local_branch(x, locs, run, LocalBranchSettings(64))
    assert seen[0][0].abs().max() == 0 and seen[0][1].max() == 5.0
