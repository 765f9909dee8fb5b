"""The IR-SE50 recogniser built in the core equals facexlib's network (keys and output) on the same weights."""
import numpy as np
import pytest
import torch

from realisid_core.errors import RealisIDInputError
from realisid_core.models.arcface_ir_se50 import IRSE50, aligned_faces, embed, read_recogniser


def facexlib_state(seed=0):
    arch = pytest.importorskip("facexlib.recognition.arcface_arch")
    from fixtures.flux_models import ir_se50_state
    model = arch.Backbone(num_layers=50, drop_ratio=0.6, mode="ir_se")
    state = ir_se50_state(seed, template=model.state_dict())
    model.load_state_dict(state)
    return model.eval(), state


def test_the_cores_network_has_facexlibs_keys_and_output(tmp_path):
    reference, state = facexlib_state()
    path = tmp_path / "recognition_arcface_ir_se50.pth"
    torch.save(state, path)
    ours = read_recogniser(str(path))
    assert set(ours.state_dict()) == set(state)
    faces = torch.rand(2, 3, 112, 112) * 2 - 1
    with torch.no_grad():
        expected = reference(faces)
        got = ours(faces)
    assert torch.allclose(got, expected, atol=1e-5)
    assert torch.allclose(got.norm(dim=1), torch.ones(2), atol=1e-6)


def test_faces_are_aligned_by_insightfaces_norm_crop_bgr_in_minus_one_to_one():
    face_align = pytest.importorskip("insightface.utils.face_align")
    bgr = np.random.default_rng(0).integers(0, 256, (200, 180, 3), dtype=np.uint8)
    kps = np.array([[70, 80], [110, 80], [90, 105], [75, 130], [105, 130]], np.float32)
    faces = aligned_faces([bgr], [kps])
    expected = face_align.norm_crop(bgr, landmark=kps, image_size=112)
    assert faces.shape == (1, 3, 112, 112)
    assert torch.allclose((faces[0].permute(1, 2, 0) + 1) / 2 * 255, torch.from_numpy(expected).float(), atol=1e-3)
    net = IRSE50().eval()
    assert embed(net, [bgr], [kps]).shape == (1, 512)


def test_another_file_is_refused_with_the_download(tmp_path):
    path = tmp_path / "glintr100.pth"
    torch.save({"fc.weight": torch.zeros(2, 2)}, path)
    with pytest.raises(RealisIDInputError, match="not facexlib's IR-SE50.*xinntao/facexlib"):
        read_recogniser(str(path))
