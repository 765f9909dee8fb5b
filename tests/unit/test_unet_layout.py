"""Residual layouts of SD1.5 and SDXL U-Nets, family mismatches, shape checks."""
import torch

from realisid_core.unet_layout import layout_from_config, layout_from_controlnet, mismatch, shape_errors

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
    assert "has 8 residuals" in shape_errors({"output": control["output"][:8], "middle": []}, SDXL, 2, 33, 17)[0]
