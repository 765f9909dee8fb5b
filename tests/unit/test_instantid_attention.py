"""The adapter's identity attention, per person and region: a person's tokens change the attention
output only inside their region; two people each get their own; CFG's unconditional rows get the
null tokens; tokens outside every region come back bit for bit."""
import math

import pytest
import torch
import torch.nn.functional as F

from realisid_core.branches.identity_attention import (TokenRegions, add_identity_attention, box_weights, region_weights,
                                              token_grid)

HEADS, WIDTH, K = 2, 16, 4


def attention(q, k, v):
    def split(t):
        return t.unflatten(-1, (HEADS, -1)).transpose(1, 2)
    return F.scaled_dot_product_attention(split(q), split(k), split(v)).transpose(1, 2).flatten(2)


def setup(batch=2, h=6, w=8, people=2, seed=0):
    g = torch.Generator().manual_seed(seed)
    q = torch.randn(batch, h * w, WIDTH, generator=g)
    text_k, text_v = torch.randn(batch, 5, WIDTH, generator=g), torch.randn(batch, 5, WIDTH, generator=g)
    keys, values = torch.randn(people, K, WIDTH, generator=g), torch.randn(people, K, WIDTH, generator=g)
    null_k, null_v = torch.randn(1, K, WIDTH, generator=g), torch.randn(1, K, WIDTH, generator=g)
    return q, attention(q, text_k, text_v), keys, values, null_k, null_v


def test_box_weights_cover_the_grown_box_in_proportion():
    # a box 0.25 wide and tall at the centre of an 8×8 grid, grown 1.5× → 0.375 = 3 cells
    w = box_weights(torch.tensor([[0.5, 0.5, 0.25, 0.25]]), 1.5, 8, 8).reshape(8, 8)
    assert math.isclose(float(w.sum()), 9.0, rel_tol=1e-6)
    assert w[4, 4] == 1 and w[2, 2] == pytest.approx(0.25) and w[0, 0] == 0  # edge cells half covered per side
    # a face far smaller than a cell still gets its share
    tiny = box_weights(torch.tensor([[0.5, 0.5, 0.01, 0.01]]), 1.0, 4, 4)
    assert float(tiny.sum()) == pytest.approx(0.01 * 0.01 * 16)
    # a box over the border is clipped, not an error
    edge = box_weights(torch.tensor([[0.0, 0.0, 0.5, 0.5]]), 1.0, 4, 4).reshape(4, 4)
    assert float(edge.sum()) == pytest.approx(1.0) and edge[0, 0] == 1


def test_overlapping_regions_share_never_add_up_beyond_one():
    boxes = torch.tensor([[0.4, 0.5, 0.4, 0.4], [0.6, 0.5, 0.4, 0.4]])
    weights = region_weights(boxes, 1.0, 10, 10)
    assert float(weights.sum(0).max()) <= 1 + 1e-6
    assert (weights[0] > 0).sum() > 0 and (weights[1] > 0).sum() > 0


def test_masks_replace_or_limit_the_box_regions():
    boxes = torch.tensor([[0.25, 0.5, 0.2, 0.2], [0.75, 0.5, 0.2, 0.2]])
    masks = torch.zeros(2, 40, 40)
    masks[0, :, :20] = 1  # person 1: the whole left half
    masks[1, :20, 20:] = 1  # person 2: the top-right quarter
    per_person = region_weights(boxes, 1.5, 4, 4, masks).reshape(2, 4, 4)
    assert torch.equal(per_person[0, :, :2], torch.ones(4, 2)) and per_person[0, :, 2:].sum() == 0
    assert torch.equal(per_person[1, :2, 2:], torch.ones(2, 2)) and per_person[1, 2:].sum() == 0
    limit = torch.zeros(1, 40, 40)
    limit[:, :, :20] = 1  # one mask for everybody: only the left half
    limited = region_weights(boxes, 1.5, 4, 4, limit)
    assert limited[1].sum() == 0 and torch.equal(limited[0], region_weights(boxes, 1.5, 4, 4)[0])


def test_a_persons_tokens_change_the_output_only_inside_their_region():
    q, base, keys, values, null_k, null_v = setup(people=1)
    weights = region_weights(torch.tensor([[0.3, 0.4, 0.25, 0.3]]), 1.5, 6, 8)
    regions = TokenRegions.from_weights(weights)
    uncond = torch.tensor([False, False])
    out = add_identity_attention(base, q, keys, values, null_k, null_v, regions, uncond, 0.8, attention)
    inside = weights[0] > 0
    changed = (out != base).any(-1)  # [B, N]
    assert torch.equal(changed, inside[None].expand_as(changed))
    assert torch.equal(out[:, ~inside], base[:, ~inside])  # bit for bit outside
    want = base + 0.8 * weights[0][None, :, None] * attention(q, keys.expand(2, -1, -1), values.expand(2, -1, -1))
    torch.testing.assert_close(out, want)
    other_tokens = add_identity_attention(base, q, keys.flip(1), values, null_k, null_v, regions, uncond, 0.8, attention)
    assert torch.equal(other_tokens[:, ~inside], base[:, ~inside]) and not torch.allclose(other_tokens, out)


def test_two_people_each_get_their_own_identity():
    q, base, keys, values, null_k, null_v = setup(people=2, seed=1)
    boxes = torch.tensor([[0.2, 0.3, 0.2, 0.2], [0.75, 0.7, 0.2, 0.2]])
    weights = region_weights(boxes, 1.5, 6, 8)
    assert not (weights[0] * weights[1]).any()  # apart
    regions = TokenRegions.from_weights(weights)
    uncond = torch.tensor([False, False])
    out = add_identity_attention(base, q, keys, values, null_k, null_v, regions, uncond, 1.0, attention)
    for p in range(2):
        at = weights[p] > 0
        own = attention(q[:, at], keys[p:p + 1].expand(2, -1, -1), values[p:p + 1].expand(2, -1, -1))
        torch.testing.assert_close(out[:, at], base[:, at] + weights[p][at][None, :, None] * own)
    # changing person 2's tokens leaves person 1's region untouched
    swapped = add_identity_attention(base, q, torch.stack([keys[0], keys[0]]), values, null_k, null_v, regions,
                                     uncond, 1.0, attention)
    first = weights[0] > 0
    assert torch.equal(swapped[:, first], out[:, first]) and not torch.allclose(swapped, out)


def test_unconditional_rows_get_the_null_tokens():
    q, base, keys, values, null_k, null_v = setup(batch=4, people=2, seed=2)
    weights = region_weights(torch.tensor([[0.3, 0.4, 0.3, 0.3], [0.7, 0.6, 0.3, 0.3]]), 1.2, 6, 8)
    regions = TokenRegions.from_weights(weights)
    uncond = torch.tensor([True, False, True, False])
    out = add_identity_attention(base, q, keys, values, null_k, null_v, regions, uncond, 0.7, attention)
    want = base.clone()
    for p in range(2):
        for b in range(4):
            k, v = (null_k, null_v) if uncond[b] else (keys[p:p + 1], values[p:p + 1])
            want[b] += 0.7 * weights[p][:, None] * attention(q[b:b + 1], k, v)[0]
    torch.testing.assert_close(out, want)
    # the people's tokens never reach the unconditional rows
    other = add_identity_attention(base, q, keys * 3, values * 3, null_k, null_v, regions, uncond, 0.7, attention)
    assert torch.equal(other[uncond], out[uncond]) and not torch.allclose(other[~uncond], out[~uncond])


def test_no_region_or_zero_share_returns_the_base_itself():
    q, base, keys, values, null_k, null_v = setup(people=1)
    empty = TokenRegions.from_weights(torch.zeros(1, 48))
    out = add_identity_attention(base, q, keys, values, null_k, null_v, empty, torch.tensor([False, True]), 1.0,
                                 attention)
    assert out is base


def test_token_grid_from_the_activation_or_the_latent_halved():
    assert token_grid(48, [2, 320, 6, 8]) == (6, 8)
    assert token_grid(12, None, [2, 4, 11, 13]) == (3, 4)  # 11×13 → 6×7 → 3×4 (ceil)
    with pytest.raises(ValueError, match="cannot tell"):
        token_grid(50, None, [2, 4, 11, 13])
