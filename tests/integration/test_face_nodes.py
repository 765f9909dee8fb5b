"""The face nodes run in-process through ComfyUI's own loader, on packs in the real insightface signatures."""
import sys
from pathlib import Path

import numpy as np
import pytest
import torch

pytest.importorskip("insightface")
pytest.importorskip("onnxruntime")
skimage_data = pytest.importorskip("skimage.data")

from fixtures.fake_insightface import fake_insightface_root, paint_face  # noqa: E402

FACE_NODES = {"RealisID_FaceAnalysisLoader", "RealisID_FaceAnalysis", "RealisID_Identity", "RealisID_IdentityBatch",
              "RealisID_IDProjectorLoader", "RealisID_IdentityTokens",
              "RealisID_PoseExpression", "RealisID_LocationsFromFaces", "RealisID_LocationsFromMask"}


@pytest.fixture(scope="module")
def host(tmp_path_factory):
    from fixtures.host import host_node, load_pack, pack_module
    load_pack()
    import folder_paths
    folder_paths.add_model_folder_path("insightface", fake_insightface_root(), is_default=True)
    realisid = tmp_path_factory.mktemp("realisid")
    from safetensors.torch import save_file
    projector = pack_module("realisid_core.id_projector").IDProjector(512, 4, 768)
    save_file({k: v.contiguous() for k, v in projector.state_dict().items()}, str(realisid / "realisid_id_proj.safetensors"))
    folder_paths.add_model_folder_path("realisid", str(realisid), is_default=True)
    return host_node, pack_module


def as_image(bgr):
    return torch.from_numpy(np.ascontiguousarray(bgr[..., ::-1])).float()[None] / 255


def layout_photo():
    """The astronaut photo with two detector faces: face 0 on the left, face 1 (larger) on the right."""
    bgr = np.ascontiguousarray(skimage_data.astronaut()[..., ::-1])
    return paint_face(paint_face(bgr, 128, 384, 48), 384, 128, 60)


def group_photo():
    import cv2
    return cv2.imread(str(Path(__import__("insightface").__file__).parent / "data" / "images" / "t1.jpg"))


def load(host, pack="antelopev2"):
    node, _ = host
    return node("RealisID_FaceAnalysisLoader").load(pack, "CPU", "640")[0]


def test_face_nodes_register_in_comfyui(host):
    import nodes
    assert FACE_NODES <= set(nodes.NODE_CLASS_MAPPINGS)
    for name in FACE_NODES:
        cls = nodes.NODE_CLASS_MAPPINGS[name]
        assert cls.CATEGORY.startswith("RealisID/") and name in nodes.NODE_DISPLAY_NAME_MAPPINGS


def test_two_loader_nodes_get_the_same_analyzer(host):
    node, pack_module = host
    a = node("RealisID_FaceAnalysisLoader").load("antelopev2", "CPU", "640")[0]
    b = node("RealisID_FaceAnalysisLoader").load("antelopev2", "CPU", "640")[0]
    assert a is b
    assert len([k for k in pack_module("realisid_core.face_analyzer").cached_analyzers() if k == a.key]) == 1
    assert node("RealisID_FaceAnalysisLoader").load("buffalo_l", "CPU", "640")[0] is not a  # nested layout found


def test_analysis_selects_faces_and_names_the_picture_without_a_face(host):
    node, _ = host
    analyzer = load(host)
    images = torch.cat([as_image(layout_photo()), as_image(np.ascontiguousarray(group_photo()[:512, :512]))])
    analysis = node("RealisID_FaceAnalysis")
    with pytest.raises(ValueError, match=r"RealisID Face Analysis: input 'images': no face was found in image 1 of 2.*Fix:"):
        analysis.analyze(analyzer, images, "all, left to right", 0, 0.5, True)
    faces, preview = analysis.analyze(analyzer, images, "all, left to right", 0, 0.5, False)
    assert faces.count == 2 and [f.centre_x < 256 for f in faces.faces] == [True, False]
    assert preview.shape == (2, 512, 512, 3) and preview.min() >= 0 and preview.max() <= 1
    largest, _ = analysis.analyze(analyzer, images[:1], "largest", 0, 0.5, True)
    assert largest.count == 1 and largest.faces[0].centre_x > 256
    with pytest.raises(ValueError, match=r"input 'index': index 5 asks for face 6 in reading order, but photo 1 of 1 has 2 faces"):
        analysis.analyze(analyzer, images[:1], "by index", 5, 0.5, True)


def test_identity_tokens_and_three_identities_for_two_locations(host):
    node, pack_module = host
    analyzer = load(host)
    photos = torch.cat([as_image(layout_photo()), as_image(layout_photo()[:, ::-1])])
    (identity,) = node("RealisID_Identity").identify(analyzer, photos, "error")
    assert identity.count == 1 and float(identity.embeddings.norm()) == pytest.approx(1, abs=1e-5)
    no_face = torch.cat([photos, as_image(np.ascontiguousarray(group_photo()[:512, -512:]))])
    with pytest.raises(ValueError, match=r"RealisID Identity: input 'images': no face was found in photo 2 of 3"):
        node("RealisID_Identity").identify(analyzer, no_face, "error")
    (skipped,) = node("RealisID_Identity").identify(analyzer, no_face, "skip")
    assert torch.allclose(skipped.embeddings, identity.embeddings)
    (three,) = node("RealisID_IdentityBatch").join(identity, identity_2=skipped, identity_3=identity)
    (projector,) = node("RealisID_IDProjectorLoader").load("realisid_id_proj.safetensors")
    assert node("RealisID_IDProjectorLoader").load("realisid_id_proj.safetensors")[0] is projector
    (tokens,) = node("RealisID_IdentityTokens").project(projector, three)
    assert isinstance(tokens, pack_module("realisid_core.identity_tokens").IdentityTokens)
    assert tokens.tokens.shape == (3, 4, 768)
    with pytest.raises(ValueError, match="3 identities were given for 2 face locations"):
        tokens.for_faces(2, "RealisID Apply Local Branch", "id_tokens")


def test_layout_photo_to_locations_to_pose_hints(host):
    node, pack_module = host
    analyzer = load(host)
    faces, _ = node("RealisID_FaceAnalysis").analyze(analyzer, as_image(layout_photo()), "all, left to right", 0, 0.5, True)
    locations, guidance = node("RealisID_LocationsFromFaces").locate(faces, 0)
    assert locations.count == 2 and guidance.shape == (1, 512, 512, 3)
    driving, _ = node("RealisID_FaceAnalysis").analyze(analyzer, as_image(layout_photo()), "largest", 0, 0.5, True)
    hints, preview = node("RealisID_PoseExpression").render(locations, driving, "68 landmarks", 512, 1.6, False)
    assert hints.shape == (2, 512, 512, 3) and preview.shape == (1, 512, 512, 3)
    assert (hints.sum(-1) > 0).float().mean() > 0.005
    keypoint_hints, _ = node("RealisID_PoseExpression").render(locations, driving, "5 keypoints", 256, 1.6, True)
    assert keypoint_hints.shape == (2, 256, 256, 3)
    with pytest.raises(ValueError, match=r"input 'driving_faces': 2 faces were given for 1 face locations"):
        single = node("RealisID_LocationsFromMask").locate(torch.ones(1, 64, 64), 0.0)[0]
        node("RealisID_PoseExpression").render(single, faces, "68 landmarks", 512, 1.6, False)


def test_missing_insightface_or_onnxruntime_says_what_to_install(host, monkeypatch):
    node, pack_module = host
    import nodes
    pack_module("realisid_core.face_analyzer").release_all()
    for missing, pip_name in (("onnxruntime", "onnxruntime-gpu"), ("insightface", "insightface")):
        with monkeypatch.context() as m:
            m.setitem(sys.modules, missing, None)  # what `import` sees when the package is not installed
            with pytest.raises(ImportError, match=rf"RealisID Face Analysis Loader needs the Python package '{pip_name}.*pip install"):
                node("RealisID_FaceAnalysisLoader").load("antelopev2", "CPU", "640")
    assert FACE_NODES <= set(nodes.NODE_CLASS_MAPPINGS)  # still registered
