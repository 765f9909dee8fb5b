"""Residual layouts of SD1.5 and SDXL U-Nets, family mismatches, shape checks."""
import torch

from realisid_core.branches.layouts import layout_from_config, layout_from_controlnet, mismatch, shape_errors

SD15 = layout_from_config(320, [1, 2, 4, 4], 2, 768)
SDXL = layout_from_config(320, [1, 2, 4], 2, 2048, 2816)


def test_sd15_and_sdxl_layouts_match_the_real_unets():
    assert [c for c, _ in SD15.output] == [320] * 4 + [640] * 3 + [1280] * 5
    assert [k for _, k in SD15.output] == [0, 0, 0, 1, 1, 1, 2, 2, 2, 3, 3, 3]
    assert SD15.middle == (1280, 3) and SD15.family == "SD1.5"
    assert [c for c, _ in SDXL.output] == [320] * 4 + [640] * 3 + [1280] * 2
    assert [k for _, k in SDXL.output] == [0, 0, 0, 1, 1, 1, 2, 2, 2]
    assert SDXL.middle == (1280, 2) and SDXL.family == "SDXL"


def test_controlnet_layout_read_from_zero_convs_equals_config_layout():
    read = layout_from_controlnet([c for c, _ in SDXL.output], [2, 2, 2], 1280, 2048, 2816)
    assert read == SDXL and mismatch(read, SDXL) is None


def test_mismatches_are_explained():
    assert "built for SDXL" in mismatch(SDXL, SD15) and "model is SD1.5" in mismatch(SDXL, SD15)
    shallow = layout_from_config(320, [1, 2], 2, 768)
    assert "residual layout" in mismatch(shallow, SD15)
    assert "class/size vector" in mismatch(layout_from_config(320, [1, 2, 4], 2, 2048, None), SDXL)


def test_shape_errors_for_odd_latents():
    shapes = SDXL.expected_shapes(2, 33, 17)
    control = {"output": [torch.zeros(s) for s in shapes["output"]], "middle": [torch.zeros(shapes["middle"][0])]}
    assert shapes["middle"][0] == (2, 1280, 9, 5)
    assert shape_errors(control, SDXL, 2, 33, 17) == []
    control["output"][4] = torch.zeros(2, 640, 16, 9)
    assert shape_errors(control, SDXL, 2, 33, 17) == ["'output'[4] is (2, 640, 16, 9), the model needs (2, 640, 17, 9)"]


def _t2i_sd15_input(batch, height, width):
    """What ComfyUI's SD1.5 T2I adapter returns: only 'input', 12 entries, a feature every third block,
    reversed (the U-Net pops the list from its end, block 0 first)."""
    blocks = SD15.expected_shapes(batch, height, width)["output"]
    return [torch.zeros(blocks[i]) if i % 3 == 2 else None for i in range(12)][::-1]


def test_a_control_returning_only_some_levels_is_no_residual_there():
    shapes = SD15.expected_shapes(2, 64, 48)
    t2i = {"input": _t2i_sd15_input(2, 64, 48), "middle": [], "output": []}
    assert shape_errors(t2i, SD15, 2, 64, 48) == []
    assert shape_errors({"input": t2i["input"]}, SD15, 2, 64, 48) == []  # keys missing altogether
    # a shorter 'output' list reaches the last blocks only (ComfyUI pops it from its end)
    assert shape_errors({"output": [torch.zeros(s) for s in shapes["output"][5:]]}, SD15, 2, 64, 48) == []
    assert shape_errors({"output": [None] * 12, "middle": [None]}, SD15, 2, 64, 48) == []


def test_a_present_residual_of_the_wrong_shape_is_still_refused():
    shapes = SD15.expected_shapes(2, 64, 48)
    t2i = {"input": _t2i_sd15_input(2, 64, 48)}
    t2i["input"][0] = torch.zeros(2, 1280, 4, 4)  # lands on the last input block (1280 × 8×6)
    assert shape_errors(t2i, SD15, 2, 64, 48) == ["'input'[0] is (2, 1280, 4, 4), the model needs (2, 1280, 8, 6)"]
    short = {"output": [torch.zeros(s) for s in shapes["output"][:5]]}  # left-aligned: lands on the wrong blocks
    assert shape_errors(short, SD15, 2, 64, 48)
    too_long = {"output": [torch.zeros(s) for s in shapes["output"]] + [torch.zeros(shapes["output"][-1])]}
    assert "the model takes at most 12" in shape_errors(too_long, SD15, 2, 64, 48)[0]
    assert shape_errors({"middle": [torch.zeros(2, 640, 8, 6)]}, SD15, 2, 64, 48) == [
        "'middle'[0] is (2, 640, 8, 6), the model needs (2, 1280, 8, 6)"]
