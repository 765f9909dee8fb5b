"""RealisID Location Guidance in-process, loaded by ComfyUI's own loader: where the picture's size
comes from, its outputs and UI payload, its refusals, and its words."""
import pytest
import torch
from PIL import Image

from fixtures.host import host_node, load_pack

NODE_ID = "RealisID_LocationGuidance"


@pytest.fixture
def node(tmp_path, monkeypatch):
    import folder_paths
    monkeypatch.setattr(folder_paths, "temp_directory", str(tmp_path))
    return host_node(NODE_ID, ui=True)


def test_size_from_width_and_height(node, tmp_path):
    out = node.locate("0.5 0.4 0.3", 640, 384)
    faces, preview = out["result"]
    assert (faces.width, faces.height) == (640, 384)
    assert preview.shape == (1, 384, 640, 3)
    # square: 0.3 of the shorter side
    assert faces.boxes[0].tolist() == pytest.approx([0.5, 0.4, 0.3 * 384 / 640, 0.3])
    assert out["ui"]["realisid_frame"] == [{"width": 640, "height": 384, "source": "width/height"}]
    assert "realisid_background" not in out["ui"]
    (entry,) = out["ui"]["images"]
    assert entry["type"] == "temp"
    saved = Image.open(tmp_path / entry["subfolder"] / entry["filename"])
    assert saved.size == (640, 384)


def test_size_from_latent_overrides_width_height_and_layout(node):
    latent = {"samples": torch.zeros(1, 4, 96 // 8, 136 // 8)}
    layout = torch.rand(1, 300, 200, 3)
    out = node.locate("0.5 0.5 0.2", 512, 512, latent=latent, layout_image=layout)
    faces, preview = out["result"]
    assert (faces.width, faces.height) == (136, 96)
    assert preview.shape == (1, 96, 136, 3)  # the layout picture stretched to the latent's frame
    assert out["ui"]["realisid_frame"][0]["source"] == "latent"


def test_size_from_layout_picture_and_it_is_the_background(node, tmp_path):
    layout = torch.zeros(2, 120, 200, 3)
    layout[..., 2] = 1.0
    out = node.locate("0.5 0.5 0.2", 512, 512, layout_image=layout)
    faces, preview = out["result"]
    assert (faces.width, faces.height) == (200, 120)
    assert preview.shape == (2, 120, 200, 3)
    assert preview[0, 2, 2].tolist() == [0.0, 0.0, 1.0]
    (bg,) = out["ui"]["realisid_background"]
    background = Image.open(tmp_path / bg["subfolder"] / bg["filename"])
    assert background.size == (200, 120) and background.getpixel((100, 60)) == (0, 0, 255)  # no boxes on it


@pytest.mark.parametrize("text,needle", [
    ("0.5 0.5", "has 2 numbers"),
    ("left 0.5 0.2", "not a list of numbers"),
    ("", "no face locations"),
    ("1.7 0.5 0.1", "entirely outside"),
    ("\n".join(["0.5 0.5 0.1"] * 9), "at most 8"),
])
def test_bad_text_names_node_input_and_fix(node, text, needle):
    from realisid_core.errors import RealisIDInputError
    with pytest.raises(Exception) as err:
        node.locate(text, 512, 512)
    assert type(err.value).__name__ == RealisIDInputError.__name__
    message = str(err.value)
    assert message.startswith("RealisID Location Guidance: input 'locations':")
    assert needle in message and "Fix:" in message


def test_outputs_and_words():
    cls = load_pack().NODE_CLASS_MAPPINGS[NODE_ID]
    assert cls.RETURN_NAMES == ("face_locations", "preview")
    assert cls.RETURN_TYPES == ("FACE_LOCATIONS", "IMAGE")
    assert cls.CATEGORY == "RealisID/locations"
    assert load_pack().NODE_DISPLAY_NAME_MAPPINGS[NODE_ID] == "RealisID Location Guidance"
    spec = cls.INPUT_TYPES()
    assert list(spec["required"]) == ["locations", "width", "height"]
    assert list(spec["optional"]) == ["latent", "layout_image"]
    for group in spec.values():
        for name, (_, options) in group.items():
            assert len(options.get("tooltip", "")) > 40, name
    assert load_pack().WEB_DIRECTORY == "./web"


def test_preview_numbers_people_in_line_order(node):
    from realisid_core.signals.previews import PERSON_COLOURS
    faces, preview = node.locate("0.8 0.5 0.2\n0.2 0.5 0.2", 400, 200)["result"]
    px = (preview[0] * 255).round().to(torch.int64)
    (x0a, y0a, _, y1a), (x0b, y0b, _, y1b) = faces.pixel_boxes().round().to(torch.int64).tolist()
    assert px[(y0a + y1a) // 2, x0a].tolist() == list(PERSON_COLOURS[0])  # the right-hand face is person 1
    assert px[(y0b + y1b) // 2, x0b].tolist() == list(PERSON_COLOURS[1])
